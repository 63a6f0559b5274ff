"""Fixtures for the API client tests: one simulator subprocess per session, reset before each test.

Everything goes over real HTTP to `python -m worker.sim`; nothing is mocked.
"""

from __future__ import annotations

import socket
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from worker.api import CallRecord, TokstaClient
from worker.sim.testing import SimAdmin, SimulatorProcess

# A distinctive key, so a leak is unmistakable in any text we search.
SECRET_KEY = f"tk_live_{uuid.uuid4().hex}SECRET"


@pytest.fixture(scope="session")
def simulator() -> Iterator[SimulatorProcess]:
    # Time scale 1: simulated seconds are real seconds, so timeouts in these tests mean what they say.
    with SimulatorProcess("--time-scale", "1", "--seed", "7", key=SECRET_KEY) as sim:
        yield sim


@pytest.fixture
def admin(simulator: SimulatorProcess) -> SimAdmin:
    simulator.admin.reset()
    return simulator.admin


class RecordingTransport(httpx.HTTPTransport):
    """A real HTTP transport that also keeps each outgoing request, to check headers and bodies."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.requests: list[httpx.Request] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return super().handle_request(request)


@pytest.fixture
def calls() -> list[CallRecord]:
    return []


@pytest.fixture
def make_client(
    simulator: SimulatorProcess, admin: SimAdmin, calls: list[CallRecord]
) -> Iterator[Callable[..., TokstaClient]]:
    """Builds clients against the simulator (closed after the test); `calls` sees every attempt."""
    made: list[TokstaClient] = []

    def build(**overrides: Any) -> TokstaClient:
        options: dict[str, Any] = {
            "base_url": simulator.base_url,
            "api_key": SecretStr(SECRET_KEY),
            "timeout": 5.0,
            "connect_timeout": 2.0,
            "observers": [calls.append],
        }
        options.update(overrides)
        client = TokstaClient(options.pop("base_url"), options.pop("api_key"), **options)
        made.append(client)
        return client

    yield build
    for client in made:
        client.close()


@pytest.fixture
def client(make_client: Callable[..., TokstaClient]) -> TokstaClient:
    return make_client()


@pytest.fixture
def closed_port() -> int:
    """A local port nothing listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.fixture
def secret_key() -> str:
    return SECRET_KEY


@pytest.fixture
def recording() -> RecordingTransport:
    """A fresh recording transport; pass it as `transport=` to `make_client`."""
    return RecordingTransport()


@pytest.fixture
def keywords() -> list[str]:
    """A valid thought-leaders keyword list (the API needs at least 5)."""
    return ["B2B SaaS", "demand generation", "marketing analytics", "growth", "ABM"]
