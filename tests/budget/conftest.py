"""Fixtures for the rate-budget suite: real state stores (SQLite, Redis) and a real simulator.

The unit tests run every case against both stores; the end-to-end tests run real worker processes
(`toksta-worker run`) against the simulator at a 30/minute limit. Nothing here is shared with other
suites: queue names and Redis namespaces are unique per test.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from worker.ops.harness import Deployment
from worker.sim.testing import SimulatorProcess
from worker.state.base import StateStore
from worker.state.redis_store import RedisStateStore
from worker.state.sqlite_store import SqliteStateStore

REDIS_URL = "redis://127.0.0.1:6379/0"
TIME_SCALE = 0.05
RATE_LIMIT = 30


@pytest.fixture
def namespace() -> Iterator[str]:
    """A Redis namespace nobody else uses; its keys are removed afterwards."""
    ns = f"test-budget-{uuid.uuid4().hex}"
    yield ns
    client = redis.Redis.from_url(REDIS_URL)
    try:
        keys = list(client.scan_iter(match=f"{ns}:*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[SqliteStateStore]:
    store = SqliteStateStore(str(tmp_path / "state" / "state.sqlite3"))
    yield store
    store.close()


@pytest.fixture
def redis_store(namespace: str) -> Iterator[RedisStateStore]:
    store = RedisStateStore(REDIS_URL, namespace)
    yield store
    store.close()


@pytest.fixture(params=["sqlite", "redis"])
def store(request: pytest.FixtureRequest) -> StateStore:
    """Each real store in turn, fresh and empty."""
    fixture: StateStore = request.getfixturevalue(f"{request.param}_store")
    return fixture


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
