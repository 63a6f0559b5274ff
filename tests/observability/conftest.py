"""Fixtures for the observability suite: a simulator keyed with a canary, a Sentry sink.

Everything is real: RabbitMQ on 127.0.0.1, the simulator over HTTP, `toksta-worker run` as a
subprocess, a local HTTP server standing in for Sentry's ingest (the only thing that cannot run
here is sentry.io itself). The API key is a canary (`tk_live_CANARY_...`) so a leak anywhere is
one substring search away.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from worker.sim.testing import SimulatorProcess

from .helpers import CANARY_KEY, TIME_SCALE, SentrySink


@pytest.fixture(scope="session")
def sim() -> Iterator[SimulatorProcess]:
    with SimulatorProcess(
        "--job-seconds", "2,4", env={"TOKSTA_TIME_SCALE": str(TIME_SCALE)}, key=CANARY_KEY
    ) as process:
        yield process


@pytest.fixture
def sentry_sink() -> Iterator[SentrySink]:
    sink = SentrySink()
    yield sink
    sink.close()
