"""Fixtures for the end-to-end tests: a simulator, a worker group and a requester per test.

Everything is real: RabbitMQ on 127.0.0.1, the simulator over HTTP, `toksta-worker run` as a
subprocess. Each test gets its own request queue (and so its own state and tick documents).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from worker.ops.harness import Deployment, WorkerGroup
from worker.ops.requester import Requester
from worker.sim.testing import SimulatorProcess

TIME_SCALE = 0.05


@pytest.fixture(scope="session")
def sim() -> Iterator[SimulatorProcess]:
    with SimulatorProcess("--job-seconds", "2,6", env={"TOKSTA_TIME_SCALE": str(TIME_SCALE)}) as process:
        yield process


@pytest.fixture
def deployment(sim: SimulatorProcess) -> Iterator[Deployment]:
    sim.admin.reset()
    deployment = Deployment(base_url=sim.base_url, api_key=sim.key, time_scale=TIME_SCALE)
    yield deployment
    deployment.delete_queues()


@pytest.fixture
def worker(deployment: Deployment) -> Iterator[WorkerGroup]:
    group = WorkerGroup(deployment, processes=1, threads=4)
    group.start()
    yield group
    group.stop()


@pytest.fixture
def requester(deployment: Deployment, worker: WorkerGroup) -> Iterator[Requester]:
    with deployment.requester() as client:
        yield client
