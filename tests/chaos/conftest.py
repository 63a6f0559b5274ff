"""Fixtures of the chaos suite: its own Redis, its own simulator, and the gate of the full run.

The chaos run restarts RabbitMQ and Redis, so it brings a private RabbitMQ node and a private Redis
(`worker.ops.chaos`); the shutdown tests only stop worker groups, so they use the machine's RabbitMQ
with queues of unique names, and a private Redis as the fleet's state store.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from worker.ops.chaos import TIME_SCALE, PrivateRedis
from worker.sim.testing import SimulatorProcess

HERE = Path(__file__).parent


def _full_run_requested(config: pytest.Config) -> bool:
    expression = str(config.getoption("-m") or "")
    return ("slow" in expression and "not slow" not in expression) or os.environ.get("CHAOS_FULL") == "1"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The full chaos run (`slow`) runs only when asked for: `pytest tests/chaos -m slow`."""
    if _full_run_requested(config):
        return
    skip = pytest.mark.skip(
        reason="full chaos run: `pytest tests/chaos -m slow` or `python -m worker.ops.chaos --full`"
    )
    for item in items:
        if item.get_closest_marker("slow") and HERE in Path(str(item.fspath)).parents:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def redis_server_binary() -> None:
    if shutil.which("redis-server") is None or shutil.which("redis-cli") is None:
        pytest.skip("redis-server is not installed")


@pytest.fixture
def private_redis(redis_server_binary: None) -> Iterator[PrivateRedis]:
    """A Redis of the test's own (AOF on), as the fleet's STATE_URL."""
    server = PrivateRedis()
    server.start()
    yield server
    server.close()


@pytest.fixture(scope="module")
def slow_jobs_sim() -> Iterator[SimulatorProcess]:
    """Jobs of 20-40 simulated seconds (1-2 s real): in flight when a group is stopped."""
    with SimulatorProcess("--job-seconds", "20,40", env={"TOKSTA_TIME_SCALE": str(TIME_SCALE)}) as process:
        yield process
