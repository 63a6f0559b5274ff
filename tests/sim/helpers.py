"""Helpers of the simulator tests: a schema-checking v1 client and a deadline wait."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx

from worker.sim.schemas import check_response
from worker.sim.testing import SimulatorProcess

# 1 simulated second = 10 real ms: default jobs (5-30 s) finish in 0.05-0.3 s, holds last <= 0.3 s.
SCALE = 0.01


class Api:
    """A v1 client that checks every answer against the strict schema of its route."""

    def __init__(self, sim: SimulatorProcess) -> None:
        self.sim = sim
        self.http = httpx.Client(base_url=sim.base_url, headers=sim.headers(), timeout=10.0)

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        route: str | None = None,
        expect: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        response = self.http.request(method, path, json=body, headers=headers)
        if expect is not None:
            assert response.status_code == expect, response.text
        check_response(route or f"{method} {path}", response.status_code, response.json())
        return response

    def post(self, path: str, body: Any, expect: int = 200, route: str | None = None) -> dict[str, Any]:
        data: dict[str, Any] = self.call("POST", path, body, expect=expect, route=route).json()["data"]
        return data

    def get(self, path: str, expect: int = 200, route: str | None = None) -> dict[str, Any]:
        data: dict[str, Any] = self.call("GET", path, expect=expect, route=route).json()["data"]
        return data

    def error(self, method: str, path: str, body: Any, status: int, route: str | None = None) -> dict[str, Any]:
        error: dict[str, Any] = self.call(method, path, body, expect=status, route=route).json()["error"]
        return error


def wait_until(condition: Callable[[], Any], timeout: float = 5.0, interval: float = 0.01) -> Any:
    """Polls `condition` until it returns something truthy; fails after `timeout` real seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(interval)


KEYWORDS = ["B2B SaaS", "demand generation", "marketing analytics", "growth", "ABM"]
