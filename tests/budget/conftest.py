"""Fixtures for the rate-budget suite: real state stores (SQLite, Redis) and a real simulator.

The unit tests run every case against both stores; the end-to-end tests run real worker processes
(`toksta-worker run`) against the simulator at a 30/minute limit. Nothing here is shared with other
suites: queue names and Redis namespaces are unique per test.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from tests.store_fixtures import REDIS_URL, namespace, redis_store, sqlite_store, store  # noqa: F401 (shared fixtures)
from worker.ops.harness import Deployment
from worker.sim.testing import SimulatorProcess

TIME_SCALE = 0.05
RATE_LIMIT = 30


@pytest.fixture(scope="module")
def sim() -> Iterator[SimulatorProcess]:
    """One simulator per test module at a 30/minute limit; each test resets it."""
    args = ("--time-scale", str(TIME_SCALE), "--rate-limit", str(RATE_LIMIT), "--job-seconds", "4,12")
    with SimulatorProcess(*args, env={"TOKSTA_TIME_SCALE": str(TIME_SCALE)}) as process:
        yield process


@pytest.fixture
def deployment(sim: SimulatorProcess) -> Iterator[Deployment]:
    sim.admin.reset()
    dep = Deployment(
        base_url=sim.base_url,
        api_key=sim.key,
        time_scale=TIME_SCALE,
        request_queue=f"budget.{uuid.uuid4().hex[:10]}.requests",
        extra_env={"TICK_MAX_IDLE_SECONDS": "0.2", "LOG_LEVEL": "WARNING"},
    )
    yield dep
    dep.delete_queues()
