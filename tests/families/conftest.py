"""A simulator (time scale 0.02, jobs of 1-3 simulated seconds) and a client for the family-rule tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from worker.api.client import TokstaClient
from worker.sim.testing import SimulatorProcess


@pytest.fixture(scope="session")
def family_sim() -> Iterator[SimulatorProcess]:
    with SimulatorProcess("--job-seconds", "1,3", env={"TOKSTA_TIME_SCALE": "0.02"}) as process:
        yield process


@pytest.fixture
def client(family_sim: SimulatorProcess) -> Iterator[TokstaClient]:
    family_sim.admin.reset()
    family_sim.admin.configure(rate_limit=0)  # these tests count calls, not budget
    with TokstaClient(family_sim.base_url, family_sim.key, time_scale=0.02) as api:
        yield api
