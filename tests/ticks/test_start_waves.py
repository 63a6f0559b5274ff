"""A round's start calls: one at a time until the key is known to be roomy, then overlapping.

A real simulator over HTTP (unlimited key, 100 ms a call) and an embedded state store, in this
process. The transport under the API client is wrapped to count the calls in flight as each is sent:
the overlap of calls can only be seen from the client's side, and the calls go to the simulator
unchanged.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from functools import cached_property
from pathlib import Path

import httpx
import pika
import pytest

from worker.api.client import TokstaClient
from worker.contract.validation import MessageLimits, ValidRequest, validate_message
from worker.runtime.context import Runtime
from worker.runtime.family_tick import FamilyTick
from worker.runtime.intake import Delivery, Intake
from worker.runtime.registry import request_key
from worker.settings import Settings
from worker.sim.testing import SimulatorProcess

KIND = "thought_leaders"
REQUESTS = 6


class CountingTransport(httpx.BaseTransport):
    """The real transport, noting how many calls were in flight when each was sent."""

    def __init__(self) -> None:
        self._inner = httpx.HTTPTransport()
        self._lock = threading.Lock()
        self._in_flight = 0
        self.at_send: list[int] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        with self._lock:
            self._in_flight += 1
            self.at_send.append(self._in_flight)
        try:
            response = self._inner.handle_request(request)
            response.read()
            return response
        finally:
            with self._lock:
                self._in_flight -= 1

    def close(self) -> None:
        self._inner.close()


class CountingRuntime(Runtime):
    """A runtime whose API client sends through a CountingTransport."""

    @cached_property
    def transport(self) -> CountingTransport:
        return CountingTransport()

    @cached_property
    def client(self) -> TokstaClient:
        key = self.settings.toksta_api_key
        assert key is not None
        return TokstaClient(
            self.settings.toksta_base_url, key, observers=[self.budget.observe], transport=self.transport
        )


@pytest.fixture(scope="module")
def sim() -> Iterator[SimulatorProcess]:
    with SimulatorProcess("--rate-limit", "0", "--job-seconds", "600,600") as process:
        process.admin.configure(latency_ms=100)
        yield process


@pytest.fixture
def rt(sim: SimulatorProcess, tmp_path: Path) -> Iterator[CountingRuntime]:
    settings = Settings(
        _env_file=None,
        request_queue=f"waves.{uuid.uuid4().hex[:10]}.requests",
        state_dir=str(tmp_path / "state"),
        toksta_base_url=sim.base_url,
        toksta_api_key=sim.key,
    )
    runtime = CountingRuntime(settings)
    yield runtime
    runtime.close_thread_resources()
    runtime.store.close()


def _wait_for_starts(rt: Runtime, count: int) -> list[str]:
    """`count` thought-leaders requests registered as the ingress leaves them (waiting)."""
    limits = MessageLimits(rt.settings.max_request_bytes, rt.settings.request_queue)
    intake = Intake(rt.settings, rt.registry, rt.publisher())
    ids = []
    for index in range(count):
        request_id = f"wave-{index}"
        keywords = ["B2B SaaS", "demand generation", "analytics", "growth", request_id]
        raw = json.dumps({"request_id": request_id, "kind": KIND, "params": {"keywords": keywords}}).encode()
        verdict = validate_message(raw, "waves.replies", limits)
        assert isinstance(verdict, ValidRequest)
        intake.accept(Delivery(raw, pika.BasicProperties(reply_to="waves.replies")), verdict)
        ids.append(request_id)
    return ids


def _states(rt: Runtime, ids: list[str]) -> list[str]:
    rows = rt.registry.get_many([request_key(None, request_id) for request_id in ids])
    return [str(row.value["state"]) if row else "missing" for row in rows]


def test_a_cold_fleet_sends_its_first_start_alone_then_overlaps_the_rest(rt: CountingRuntime) -> None:
    """Before any response the key's limit is unknown (the budget assumes the smallest plan), so the
    first call goes alone; its answer shows an unlimited key, and the rest of the same round overlaps.
    Before, the whole first round went one call at a time."""
    assert rt.budget.limit() is None
    ids = _wait_for_starts(rt, REQUESTS)

    FamilyTick(rt, KIND, renew=lambda: True, token="tick-1").start_phase()

    assert _states(rt, ids) == ["running"] * REQUESTS
    assert len(rt.transport.at_send) == REQUESTS
    assert rt.transport.at_send[0] == 1
    assert max(rt.transport.at_send[1:]) > 1, rt.transport.at_send


def test_a_counted_key_sends_starts_one_at_a_time(rt: CountingRuntime, sim: SimulatorProcess) -> None:
    """On a key with a real limit each call is granted just before it is sent (budget.py)."""
    sim.admin.configure(rate_limit=150)
    try:
        ids = _wait_for_starts(rt, 3)
        for token in ("tick-1", "tick-2", "tick-3"):
            FamilyTick(rt, KIND, renew=lambda: True, token=token).start_phase()
            if "waiting" not in _states(rt, ids):
                break
    finally:
        sim.admin.configure(rate_limit=0)

    assert "waiting" not in _states(rt, ids)
    assert rt.transport.at_send and max(rt.transport.at_send) == 1, rt.transport.at_send
