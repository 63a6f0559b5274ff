"""Fixtures for the state-store suite: every contract test runs against SQLite and against Redis."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from tests.store_fixtures import REDIS_URL, namespace, redis_store, sqlite_store, store  # noqa: F401 (shared fixtures)

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
