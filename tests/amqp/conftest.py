"""Fixtures for the AMQP layer's tests, all against the real RabbitMQ (AMQP_URL, default localhost).

Every test gets its own request queue name (`test.<uuid>.requests`); the queues derived from it and any
queue registered with `track` are deleted afterwards, so tests can run concurrently with others.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

import pytest

from tests.rabbit_fixtures import amqp_url, conn, rabbit, track  # noqa: F401 (shared fixtures)
from worker.amqp.topology import WAIT_DELAYS_MS, Topology
from worker.settings import QueueType

WaitUntil = Callable[..., None]


def _wait_until(condition: Callable[[], bool], timeout: float = 10.0, interval: float = 0.02) -> None:
    """Poll `condition` until it holds; fail the test when `timeout` passes first."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout} s")
        time.sleep(interval)


@pytest.fixture
def wait_until() -> WaitUntil:
    return _wait_until


@pytest.fixture
def request_queue(track: Callable[[str], str]) -> str:
    """A unique request queue name; every queue derived from it is deleted afterwards."""
    rq = f"test.{uuid.uuid4().hex}.requests"
    for name in (rq, f"{rq}.dlq", f"{rq}.unroutable", f"{rq}.ticks", f"{rq}.ticks.DQ", f"{rq}.ticks.XQ"):
        track(name)
    for delay in WAIT_DELAYS_MS:
        track(f"{rq}.wait.{delay}ms")
    return rq


@pytest.fixture
def topology(request_queue: str) -> Topology:
    return Topology(request_queue=request_queue, queue_type=QueueType.CLASSIC)
