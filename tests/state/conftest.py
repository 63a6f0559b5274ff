"""Fixtures for the state-store suite: every contract test runs against SQLite and against Redis."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from worker.state.base import StateStore
from worker.state.redis_store import RedisStateStore
from worker.state.sqlite_store import SqliteStateStore

REDIS_URL = "redis://127.0.0.1:6379/0"


WaitUntil = Callable[[Callable[[], bool]], None]


def _wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    """Poll `condition` until it holds; fail the test when `timeout` passes first."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout} s")
        time.sleep(0.02)


@pytest.fixture
def wait_until() -> WaitUntil:
    """`wait_until(condition)`: poll with a deadline instead of sleeping a fixed time."""
    return _wait_until


@pytest.fixture
def namespace() -> Iterator[str]:
    """A Redis namespace no other test (or concurrent test run) uses; its keys are removed afterwards."""
    ns = f"test-state-{uuid.uuid4().hex}"
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
    """Each implementation in turn, fresh and empty."""
    fixture: StateStore = request.getfixturevalue(f"{request.param}_store")
    return fixture
