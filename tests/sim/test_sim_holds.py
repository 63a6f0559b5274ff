"""wait_seconds holds: early return, expiry, bulk ignores them, hundreds held at once."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import aiohttp
import httpx
import pytest

from worker.sim.testing import SimulatorProcess

from .helpers import KEYWORDS, SCALE, Api, wait_until

HELD = 300


def test_hold_expires_without_terminal(api: Api) -> None:
    job_id = api.post("/v1/creators/thought-leaders", {"keywords": [*KEYWORDS, "sim:duration=100000"]}, 202)["job_id"]
    started = time.monotonic()
    job = api.post("/v1/jobs/results", {"job_id": job_id, "wait_seconds": 20})["job"]
    assert job["status"] == "running"
    assert time.monotonic() - started >= 20 * SCALE
    assert api.sim.admin.stats()["held_requests_max"] == 1


def test_bulk_ignores_wait_seconds(api: Api) -> None:
    job_id = api.post("/v1/creators/thought-leaders", {"keywords": [*KEYWORDS, "sim:duration=100000"]}, 202)["job_id"]
    api.post("/v1/jobs/results:bulk", {"job_ids": [job_id], "wait_seconds": 30})
    assert api.sim.admin.stats()["held_requests_max"] == 0


def test_wait_seconds_bounds(api: Api) -> None:
    job_id = api.post("/v1/creators/thought-leaders", {"keywords": KEYWORDS}, 202)["job_id"]
    assert api.error("POST", "/v1/jobs/results", {"job_id": job_id, "wait_seconds": 31}, 400)
    assert api.error("POST", "/v1/enrichments/results", {"creator_ids": [job_id], "wait_seconds": -1}, 400)


@pytest.fixture(scope="module")
def slow_sim() -> Iterator[SimulatorProcess]:
    # A coarse scale: a 30 s hold lasts 15 real seconds, ample time to park hundreds of requests.
    with SimulatorProcess("--time-scale", "0.5", "--rate-limit", "0") as sim:
        yield sim


async def _held_calls(sim: SimulatorProcess, job_id: str) -> tuple[list[str], float]:
    """HELD calls parked on one job, released by forcing it: (their statuses, real seconds after the force)."""
    # aiohttp's client, not httpx's: httpx's async pool serializes hundreds of concurrent answers.
    connector = aiohttp.TCPConnector(limit=HELD + 10)
    async with aiohttp.ClientSession(sim.base_url, headers=sim.headers(), connector=connector) as client:

        async def one() -> str:
            async with client.post("/v1/jobs/results", json={"job_id": job_id, "wait_seconds": 30}) as response:
                status: str = (await response.json())["data"]["job"]["status"]
                return status

        calls = [asyncio.create_task(one()) for _ in range(HELD)]
        await asyncio.to_thread(wait_until, lambda: sim.admin.stats()["held_requests_now"] == HELD, 10.0)
        forced = time.monotonic()
        await asyncio.to_thread(sim.admin.force_job, job_id, "succeeded")
        statuses = await asyncio.gather(*calls)
        return statuses, time.monotonic() - forced


def test_hundreds_of_concurrent_holds(slow_sim: SimulatorProcess) -> None:
    slow_sim.admin.reset()
    with httpx.Client(base_url=slow_sim.base_url, headers=slow_sim.headers()) as client:
        body = {"keywords": [*KEYWORDS, "sim:duration=100000"]}
        job_id = client.post("/v1/creators/thought-leaders", json=body).json()["data"]["job_id"]
    statuses, release = asyncio.run(_held_calls(slow_sim, job_id))
    # An expired hold (15 real seconds) would answer "running": every call was released by the change.
    assert statuses == ["succeeded"] * HELD
    assert release < 5.0
    stats = slow_sim.admin.stats()
    assert stats["held_requests_max"] == HELD and stats["held_requests_now"] == 0
