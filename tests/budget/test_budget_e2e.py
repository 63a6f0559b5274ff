"""The fleet-wide budget end to end: real worker processes sharing one key at the simulator's limit.

The simulator runs at a 30/minute limit and time scale 0.05 (a rate window is 3 real seconds). It
counts every 429 and every call that arrives while a Retry-After it announced is still pending.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
import redis

from tests.store_fixtures import REDIS_URL
from worker.ops.harness import Deployment, WorkerGroup
from worker.ops.requester import ReceivedReply, Requester
from worker.runtime.registry import Registry, index_name, request_key
from worker.sim.testing import SimulatorProcess
from worker.state.factory import open_state_store

from .conftest import TIME_SCALE

KINDS = ("thought_leaders", "enrichment", "content_match", "audience_match")


def request(kind: str, request_id: str, *, extra_keyword: str | None = None) -> dict[str, Any]:
    creators = [str(uuid.uuid4()), str(uuid.uuid4())]
    if kind == "thought_leaders":
        keywords = ["B2B SaaS", "demand generation", "marketing analytics", "growth", request_id]
        return {"request_id": request_id, "kind": kind, "params": {"keywords": keywords}}
    if kind == "enrichment":
        return {"request_id": request_id, "kind": kind, "params": {"creator_ids": creators}}
    if kind == "content_match":
        topics = ["devex", *([extra_keyword] if extra_keyword else [])]
        return {
            "request_id": request_id,
            "kind": kind,
            "params": {"creator_ids": creators, "topic_keywords": topics},
            "options": {"include": ["posts"]},
        }
    return {"request_id": request_id, "kind": kind, "params": {"creator_ids": creators, "audience_keywords": ["cmo"]}}


def steady_load(client: Requester, count: int, every_sim_seconds: float) -> list[str]:
    """Publish `count` requests, one every `every_sim_seconds` simulated seconds.

    Each body carries a key of its own (unknown params keys are forwarded, and must be equal for
    requests to share a start call), so every request costs its own start call: the load is
    `count` starts, whatever sharing would save.
    """
    ids = []
    for index in range(count):
        body = request(KINDS[index % len(KINDS)], f"steady-{index}")
        body["params"]["x_load_index"] = index
        client.publish(body, correlation_id=body["request_id"])
        ids.append(body["request_id"])
        time.sleep(every_sim_seconds * TIME_SCALE)  # paces the load generator; nothing waits on it
    return ids


def all_replies(client: Requester, count: int, timeout: float) -> dict[str, ReceivedReply]:
    got = {r.body["request_id"]: r for r in client.collect(count, timeout)}
    assert len(got) == count, f"{len(got)} of {count} replies"
    return got


def assert_within_the_limit(sim: SimulatorProcess, replies: dict[str, ReceivedReply]) -> dict[str, Any]:
    stats = sim.admin.stats()
    assert all(r.body["status"] == "succeeded" for r in replies.values()), [
        r.body for r in replies.values() if r.body["status"] != "succeeded"
    ]
    assert stats["rate_limited"] == 0
    assert stats["calls_during_retry_after"] == 0
    return stats


def test_three_processes_share_one_key_without_a_429(deployment: Deployment, sim: SimulatorProcess) -> None:
    sim.admin.configure(job_seconds=[20, 90])
    with WorkerGroup(deployment, processes=3, threads=4), deployment.requester() as client:
        ids = steady_load(client, 60, every_sim_seconds=1.0)  # 60 a minute
        replies = all_replies(client, len(ids), timeout=60)
    stats = assert_within_the_limit(sim, replies)
    # 60 starts a minute alone are twice the 30/minute key: the budget, not the load, set the pace.
    assert stats["calls_total"] > 60 + 10


@pytest.fixture
def redis_deployment(deployment: Deployment) -> Iterator[Deployment]:
    """The same deployment with its state (and so its budget) in Redis, as a fleet of hosts has it."""
    deployment.state_url = REDIS_URL
    yield deployment
    client = redis.Redis.from_url(REDIS_URL)
    try:
        keys = list(client.scan_iter(match=f"{deployment.request_queue}:*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


def test_two_groups_on_redis_share_one_budget(redis_deployment: Deployment, sim: SimulatorProcess) -> None:
    sim.admin.configure(job_seconds=[20, 90])
    with (
        WorkerGroup(redis_deployment, processes=2, threads=4),
        WorkerGroup(redis_deployment, processes=2, threads=4),
        redis_deployment.requester() as client,
    ):
        ids = steady_load(client, 60, every_sim_seconds=1.0)  # 60 a minute
        replies = all_replies(client, len(ids), timeout=60)
    stats = assert_within_the_limit(sim, replies)
    assert stats["calls_total"] > 60 + 10


def test_a_retry_after_pauses_the_whole_fleet(deployment: Deployment, sim: SimulatorProcess) -> None:
    retry_after = 20  # simulated seconds: 1 real second
    sim.admin.configure(job_seconds=[2, 4])
    sim.admin.add_faults(
        {"kind": "error", "route": "POST /v1/creators/enrich", "status": 429, "retry_after": retry_after}
    )
    with WorkerGroup(deployment, processes=3, threads=4), deployment.requester() as client:
        published = time.time()
        client.publish(request("enrichment", "first"), correlation_id="first")
        deadline = time.monotonic() + 10
        while sim.admin.stats()["rate_limited"] == 0 and time.monotonic() < deadline:
            client.collect(0, 0.02)
        assert sim.admin.stats()["rate_limited"] == 1
        for kind in ("thought_leaders", "content_match", "audience_match"):
            client.publish(request(kind, f"then-{kind}"), correlation_id=kind)
        replies = all_replies(client, 4, timeout=30)
    assert all(r.body["status"] == "succeeded" for r in replies.values())
    stats = sim.admin.stats()
    assert stats["rate_limited"] == 1
    assert stats["calls_during_retry_after"] == 0
    # No start of any family went out before the Retry-After had passed.
    created = [float(job["created_at"]) for job in sim.admin.jobs()]
    assert created
    assert min(created) >= published + retry_after * TIME_SCALE


def test_finished_work_is_fetched_while_many_polls_are_due(deployment: Deployment, sim: SimulatorProcess) -> None:
    """Enrichments of result sets are polled one call each: 30 of them ask for far more than 30 calls a
    minute. A content match that finishes meanwhile still gets its `posts` fetched at once."""
    sim.admin.configure(job_seconds=[900, 900])
    backlog = 30
    with WorkerGroup(deployment, processes=2, threads=4), deployment.requester() as client:
        for index in range(backlog):
            body = {"request_id": f"set-{index}", "kind": "enrichment", "params": {"result_set_id": f"rs-{index}"}}
            client.publish(body, correlation_id=body["request_id"])
        registry = _registry(deployment)
        _wait(lambda: registry.store.index_count(index_name("running", "enrichment")) == backlog, timeout=30)
        client.publish(request("content_match", "urgent", extra_keyword="sim:duration=2"), correlation_id="urgent")
        reply = client.wait_for("urgent", timeout=30)
        assert reply is not None
        now = time.time()
        overdue = registry.store.index_count(index_name("running", "enrichment"), max_score=now)
        row = registry.get(request_key(None, "urgent"))
    assert reply.body["status"] == "succeeded", reply.body
    assert "posts" in reply.body["result"]  # the follow-up fetch happened
    assert overdue >= backlog // 3  # ... while polls of running work were due and waiting for budget
    assert row is not None
    finishing_since = float(row.value["finishing_since"])
    fetched_within = (_epoch(reply.body["finished_at"]) - finishing_since) / TIME_SCALE
    assert fetched_within <= 4.0  # simulated seconds: two calls' worth of a 30/minute budget
    assert sim.admin.stats()["rate_limited"] == 0


def _registry(deployment: Deployment) -> Registry:
    store = open_state_store(
        deployment.state_url, state_dir=str(deployment.workdir / "state"), namespace=deployment.request_queue
    )
    return Registry(store, done_ttl_seconds=3600, tombstone_ttl_seconds=3600)


def _wait(condition: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout} s")
        time.sleep(0.05)


def _epoch(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
