"""Read timeouts: a server-side hold (`wait_seconds`) extends them, so a held poll is never cut short."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

import pytest

from worker.api import TIMEOUT, ApiError, TokstaClient
from worker.sim.testing import SimAdmin


@pytest.fixture
def running_job(client: TokstaClient, admin: SimAdmin, keywords: list[str]) -> str:
    """A discovery job that stays running for the whole test, so results calls are held."""
    admin.configure(job_seconds=[600, 600])
    job_id: str = client.start_thought_leaders({"keywords": keywords}).data["job_id"]
    return job_id


def test_held_call_longer_than_the_timeout_succeeds(make_client: Callable[..., TokstaClient], running_job: str) -> None:
    client = make_client(timeout=1.0)
    started = time.monotonic()
    response = client.job_results(running_job, wait_seconds=2)
    elapsed = time.monotonic() - started
    assert elapsed >= 1.9  # the simulator really held it past the 1 s base timeout
    assert response.meta["wait_seconds"] == 2
    assert response.data["job"]["is_terminal"] is False


def test_hold_in_a_results_body_extends_the_timeout_too(
    make_client: Callable[..., TokstaClient], admin: SimAdmin
) -> None:
    client = make_client(timeout=1.0)
    admin.configure(job_seconds=[600, 600])
    creator = str(uuid.uuid4())
    client.start_enrichment({"creator_ids": [creator]})
    started = time.monotonic()
    response = client.enrichment_results({"creator_ids": [creator], "wait_seconds": 2})
    assert time.monotonic() - started >= 1.9
    assert response.data["pending"] == 1


def test_time_scale_shrinks_the_extension(make_client: Callable[..., TokstaClient], running_job: str) -> None:
    # With time_scale 0.01 the client expects the 2 s hold to last 0.02 s, so the
    # simulator (running at scale 1) outlasts the 1.02 s read timeout: the control case.
    client = make_client(timeout=1.0, time_scale=0.01)
    with pytest.raises(ApiError) as info:
        client.job_results(running_job, wait_seconds=2)
    assert info.value.code == TIMEOUT
    assert info.value.sent and info.value.outcome_unknown
