"""Coalescing, end to end: a poll round costs as few calls as the endpoints' batch limits allow,
whatever the number of worker processes, and the ingress never holds more than its prefetch.

Rounds are measured with the simulator's own record of when each call of a route arrived: calls
with less than QUIET seconds between them are one round (a family's rounds follow the poll cadence
the key's rate limit affords, 14 simulated seconds at 120 calls a minute; a round itself takes a
fraction of that). The simulator's clock decides, so a stall of the test process cannot run two
rounds together.
"""

from __future__ import annotations

import math
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from worker.ops.harness import Deployment, WorkerGroup
from worker.sim.testing import SimulatorProcess

KEYWORDS = ["B2B SaaS", "demand generation", "marketing analytics", "growth", "ABM"]
TL_START = "POST /v1/creators/thought-leaders"
BULK = "POST /v1/jobs/results:bulk"
CONTENT_START = "POST /v1/creators/content-match"
CONTENT_RESULTS = "POST /v1/content-match/results"
BULK_LIMIT = 20
LONG_JOB = 100_000  # simulated seconds: the jobs stay in flight for the whole test
RATE_LIMIT = 120  # calls a minute: starts go out at once, and rounds come 14 simulated seconds apart
# A round is over once its route has been quiet this long (real seconds): rounds are 0.7 s real
# apart at RATE_LIMIT, and one takes a few tens of milliseconds.
QUIET = 0.3
SLOW_CALL = 8  # simulated seconds (0.4 s real): longer than POLL_COALESCE_SECONDS (5)


# -- helpers --------------------------------------------------------------------------------------


def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def calls(sim: SimulatorProcess, route: str) -> int:
    return int(sim.admin.stats()["calls"].get(route, 0))


def quiet_count(sim: SimulatorProcess, route: str, timeout: float = 20.0) -> int:
    """The route's call count once the simulator has had no call of it for QUIET seconds (between two rounds)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        seen = sim.admin.calls(route)
        if not seen["times"] or seen["now"] - seen["times"][-1] >= QUIET:
            return int(seen["count"])
        time.sleep(0.01)
    raise AssertionError(f"{route} never went quiet for {QUIET} s within {timeout} s")


def split_rounds(times: list[float]) -> list[list[float]]:
    """Arrival times, in order, cut wherever the route was quiet for QUIET seconds."""
    rounds: list[list[float]] = []
    for at in times:
        if rounds and at - rounds[-1][-1] < QUIET:
            rounds[-1].append(at)
        else:
            rounds.append([at])
    return rounds


def round_costs(sim: SimulatorProcess, route: str, rounds: int, since: int | None = None) -> list[int]:
    """Calls to `route` in each of the next `rounds` poll rounds (after call number `since`, when given)."""
    before = quiet_count(sim, route) if since is None else since
    deadline = time.monotonic() + 20 * rounds
    while time.monotonic() < deadline:
        seen = sim.admin.calls(route)
        kept_from = int(seen["count"]) - len(seen["times"])  # the call number of the oldest time kept
        found = split_rounds(seen["times"][max(0, before - kept_from) :])
        if found and seen["now"] - found[-1][-1] < QUIET:
            found.pop()  # the last round may still be going on
        if len(found) >= rounds:
            return [len(r) for r in found[:rounds]]
        time.sleep(0.02)
    raise AssertionError(f"fewer than {rounds} rounds on {route} after call {before} in {20 * rounds} s")


def slow_second_call(sim: SimulatorProcess, route: str, per_round: int) -> int:
    """Slow down the second call of the next round beyond POLL_COALESCE_SECONDS; the call count
    once that round's calls have all gone out (the tick is one, so the next round comes after)."""
    start = quiet_count(sim, route)
    sim.admin.add_faults(
        {"kind": "slow", "route": route, "count": 1, "delay_seconds": 0},
        {"kind": "slow", "route": route, "count": 1, "delay_seconds": SLOW_CALL},
    )
    wait_until(lambda: calls(sim, route) >= start + per_round, 20, "the slowed round")
    assert not pending_faults(sim)
    return start + per_round


def pending_faults(sim: SimulatorProcess) -> list[Any]:
    response = httpx.get(f"{sim.base_url}/_sim/faults", timeout=5)
    response.raise_for_status()
    faults: list[Any] = response.json()["faults"]
    return faults


def tl_request(index: int) -> dict[str, Any]:
    return {
        "request_id": f"tl-{index}",
        "kind": "thought_leaders",
        "params": {"keywords": [*KEYWORDS, f"topic-{index}", f"sim:duration={LONG_JOB}"]},
    }


def match_request(request_id: str, detail_level: str | None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "request_id": request_id,
        "kind": "content_match",
        "params": {"creator_ids": [str(uuid.uuid4()) for _ in range(2)], "topic_keywords": ["devex"]},
    }
    if detail_level is not None:
        body["options"] = {"detail_level": detail_level}
    return body


def long_creators(sim: SimulatorProcess, bodies: list[dict[str, Any]]) -> None:
    """Per-creator knobs: every creator's analyses stay in flight."""
    creators = {c for body in bodies for c in body["params"].get("creator_ids", [])}
    sim.admin.configure(creators={c: {"duration": LONG_JOB} for c in creators})


@pytest.fixture
def paced_api(sim: SimulatorProcess) -> None:
    """A key with RATE_LIMIT calls a minute (the worker's poll cadence follows what the key affords)."""
    sim.admin.configure(rate_limit=RATE_LIMIT)


def group_of(deployment: Deployment, processes: int, **env: str) -> WorkerGroup:
    return WorkerGroup(deployment, processes=processes, threads=4, env=env)


# -- discovery: ceil(N/20) bulk calls a round -----------------------------------------------------


@pytest.mark.parametrize("processes", [1, 3])
def test_discovery_round_costs_ceil_n_over_20(
    processes: int, deployment: Deployment, sim: SimulatorProcess, paced_api: None
) -> None:
    count = 45
    # Prefixed ids in flight beside the discovery jobs: none of them may reach /v1/jobs/*.
    others = [match_request("cm-1", None), match_request("cm-2", "full")]
    enrichment = {"request_id": "en-1", "kind": "enrichment", "params": {"creator_ids": [str(uuid.uuid4())]}}
    long_creators(sim, [*others, enrichment])
    with group_of(deployment, processes), deployment.requester() as client:
        for index in range(count):
            client.publish(tl_request(index))
        for body in [*others, enrichment]:
            client.publish(body)
        wait_until(lambda: calls(sim, TL_START) == count, 30, f"{count} discovery starts")
        # A round that takes long must not split the rounds after it.
        slowed = slow_second_call(sim, BULK, math.ceil(count / BULK_LIMIT))
        costs = round_costs(sim, BULK, 2, since=slowed)
        stats = sim.admin.stats()
        assert client.collect(1, 0.1) == []  # nothing finished: every job is still in flight
    assert costs == [math.ceil(count / BULK_LIMIT)] * 2, costs
    assert stats["wrong_format_ids"] == 0
    assert stats["jobs_created"] == count + 2 * 2 + 1
    assert stats["calls"].get("POST /v1/enrichments/results", 0) >= 1  # the prefixed families were polled too
    assert stats["calls"].get(CONTENT_RESULTS, 0) >= 1


# -- match: one job_ids call per detail_level a round ---------------------------------------------


def test_match_polls_merge_per_detail_level(deployment: Deployment, sim: SimulatorProcess, paced_api: None) -> None:
    levels = [None, "summary", "full"]
    bodies = [match_request(f"cm-{level}-{i}", level) for level in levels for i in range(3)]
    long_creators(sim, bodies)
    with group_of(deployment, 2), deployment.requester() as client:
        for body in bodies:
            client.publish(body)
        # Equal criteria: the requests share start calls, so count the jobs, not the calls.
        wait_until(lambda: sim.admin.stats()["jobs_created"] == 2 * len(bodies), 30, "every content-match job")
        costs = round_costs(sim, CONTENT_RESULTS, 2)
    assert costs == [len(levels)] * 2, costs
    stats = sim.admin.stats()
    assert stats["wrong_format_ids"] == 0
    assert stats["jobs_created"] == 2 * len(bodies)


# -- the ingress never holds more than INGRESS_PREFETCH -------------------------------------------


def rabbitmqctl_rows(*args: str) -> list[list[str]]:
    """Tab-separated rows of a rabbitmqctl listing (header lines dropped)."""
    out = subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, text=True, timeout=60)
    lines = [line.split("\t") for line in out.stdout.splitlines() if line.strip()]
    return lines[1:] if lines and lines[0][0] in ("name", "pid", "queue_name") else lines


def queue_row(name: str) -> tuple[int, int, int]:
    """(ready, unacknowledged, consumers) of one queue."""
    for row in rabbitmqctl_rows("list_queues", "name", "messages_ready", "messages_unacknowledged", "consumers"):
        if row[0] == name:
            return int(row[1]), int(row[2]), int(row[3])
    raise AssertionError(f"queue {name} not listed")


def consumer_channels(queue: str) -> dict[str, int]:
    """Unacknowledged messages held by each channel consuming `queue`."""
    pids = {row[1] for row in rabbitmqctl_rows("list_consumers", "queue_name", "channel_pid") if row[0] == queue}
    channels = rabbitmqctl_rows("list_channels", "pid", "messages_unacknowledged")
    return {row[0]: int(row[1]) for row in channels if row[0] in pids}


@pytest.fixture
def starts_blocked(sim: SimulatorProcess) -> Iterator[None]:
    """Every start answered 429 with a long Retry-After: admitted requests wait, the backlog grows."""
    sim.admin.add_faults(
        {"kind": "error", "status": 429, "route": TL_START, "count": 1000, "retry_after": 600},
    )
    yield
    sim.admin.clear_faults()


@pytest.mark.parametrize("processes", [1, 3])
def test_ingress_holds_at_most_prefetch(
    processes: int, deployment: Deployment, sim: SimulatorProcess, starts_blocked: None
) -> None:
    prefetch, window, backlog = 3, 2, 30
    rq = deployment.request_queue
    env = {"INGRESS_PREFETCH": str(prefetch), "ADMISSION_WINDOW": str(window)}
    with group_of(deployment, processes, **env), deployment.requester() as client:
        for index in range(backlog):
            client.publish(tl_request(index))
        # Every consumer fills its prefetch with deliveries it defers while the window is full.
        wait_until(lambda: queue_row(rq)[1] >= processes * prefetch, 30, "every ingress to hold its prefetch")
        ready, unacked, consumers = queue_row(rq)
        held = consumer_channels(rq)
        assert calls(sim, TL_START) >= 1  # the admitted requests did try to start
        assert client.collect(1, 0.1) == []
    assert consumers == processes
    assert unacked == processes * prefetch, (ready, unacked)
    assert ready >= backlog // 2, (ready, unacked)  # the backlog waits in the queue, not in the workers
    assert len(held) == processes
    assert all(count <= prefetch for count in held.values()), held
