"""A cancel call the API carried out but whose answer was lost still counts as the cancel's doing.

Found by the chaos run: a fault on `POST /v1/jobs/{id}/cancel` (the API cancels the job, then the
connection drops or the answer is garbage) made the next poll see a `canceled` job, so the request
ended `JOB_CANCELED` and its cancel request was told `canceled: false, already_terminal`.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from worker.ops.chaos import TIME_SCALE, PrivateRedis, wait_until
from worker.ops.harness import Deployment, WorkerGroup
from worker.runtime.registry import request_key
from worker.sim.testing import SimulatorProcess
from worker.state.factory import open_state_store

CANCEL_ROUTE = "POST /v1/jobs/{id}/cancel"


@pytest.fixture
def deployment(slow_jobs_sim: SimulatorProcess, private_redis: PrivateRedis) -> Iterator[Deployment]:
    slow_jobs_sim.admin.reset()
    deployment = Deployment(
        base_url=slow_jobs_sim.base_url,
        api_key=slow_jobs_sim.key,
        request_queue=f"lostcancel.{uuid.uuid4().hex[:10]}.requests",
        state_url=private_redis.url,
        time_scale=TIME_SCALE,
        extra_env={"HTTP_TIMEOUT_SECONDS": "1"},
    )
    yield deployment
    deployment.delete_queues()


def _state(deployment: Deployment, request_id: str) -> str | None:
    store = open_state_store(deployment.state_url, state_dir="", namespace=deployment.request_queue)
    try:
        row = store.get(request_key(None, request_id))
        return None if row is None else str(row.value["state"])
    finally:
        store.close()


@pytest.mark.parametrize(
    "fault",
    [
        {"kind": "reset_after_read"},
        {"kind": "plain_5xx", "status": 502, "processed": True},
        {"kind": "malformed"},
    ],
    ids=lambda f: str(f["kind"]),
)
def test_a_cancel_whose_answer_was_lost_is_reported_as_applied(
    deployment: Deployment, slow_jobs_sim: SimulatorProcess, fault: dict[str, Any]
) -> None:
    tag = uuid.uuid4().hex[:6]
    target = f"lc-{tag}"
    keywords = ["B2B SaaS", "growth", "ABM", "demand generation", f"kw-{tag}", "sim:duration=400"]
    with WorkerGroup(deployment, processes=1, threads=2), deployment.requester() as client:
        client.publish({"request_id": target, "kind": "thought_leaders", "params": {"keywords": keywords}})
        wait_until(lambda: _state(deployment, target) == "running", 30, "the job running")
        slow_jobs_sim.admin.add_faults({**fault, "route": CANCEL_ROUTE, "count": 1})
        client.publish({"request_id": f"{target}-x", "kind": "cancel", "params": {"request_id": target}})
        replies = {r.body["request_id"]: r.body for r in client.collect(2, timeout=30)}

    assert set(replies) == {target, f"{target}-x"}
    assert slow_jobs_sim.admin.stats()["calls"].get(CANCEL_ROUTE, 0) >= 1
    assert [job["status"] for job in slow_jobs_sim.admin.jobs()] == ["canceled"]
    assert replies[target]["status"] == "canceled"
    assert replies[target]["error"]["code"] == "CANCELED_BY_REQUEST", replies[target]
    assert replies[f"{target}-x"]["result"] == {"canceled": True, "reason": "cancel_applied"}
