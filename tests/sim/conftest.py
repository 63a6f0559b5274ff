"""Fixtures of the simulator tests: one simulator subprocess per session, reset before every test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from worker.sim.testing import SimulatorProcess

from .helpers import SCALE, Api


@pytest.fixture(scope="session")
def sim_process() -> Iterator[SimulatorProcess]:
    with SimulatorProcess("--time-scale", str(SCALE), "--rate-limit", "0", "--seed", "7") as sim:
        yield sim


@pytest.fixture
def sim(sim_process: SimulatorProcess) -> SimulatorProcess:
    sim_process.admin.reset()
    return sim_process


@pytest.fixture
def api(sim: SimulatorProcess) -> Iterator[Api]:
    client = Api(sim)
    yield client
    client.http.close()
