"""Real state-store fixtures shared by the state and budget suites (loaded as a pytest plugin).

`store` runs a test against the embedded SQLite store and against Redis, each fresh and empty;
the Redis namespace is unique per test and its keys are removed afterwards.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from worker.state.base import StateStore
from worker.state.redis_store import RedisStateStore
from worker.state.sqlite_store import SqliteStateStore

REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture
def namespace() -> Iterator[str]:
    """A Redis namespace no other test (or concurrent test run) uses; its keys are removed afterwards."""
    ns = f"test-store-{uuid.uuid4().hex}"
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
