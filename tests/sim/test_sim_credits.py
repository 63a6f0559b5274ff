"""Credits: reservation and refund of thought leaders, per-call costs, 402."""

from __future__ import annotations

import uuid

import pytest

from worker.sim.testing import SimulatorProcess

from .helpers import KEYWORDS, Api

TL = "/v1/creators/thought-leaders"
START = 100_000


def balance(sim: SimulatorProcess) -> int:
    value: int = sim.admin.stats()["credits_balance"]
    return value


def test_reservation_then_refund_of_unused(api: Api, sim: SimulatorProcess) -> None:
    body = {"keywords": [*KEYWORDS, "sim:duration=100000"], "mode": "strict", "max_candidates_to_analyze": 50}
    response = api.call("POST", TL, body, expect=202)
    assert response.headers["X-Toksta-Credit-Cost"] == "150"
    job_id = response.json()["data"]["job_id"]
    assert balance(sim) == START - 150
    sim.admin.force_job(job_id, "succeeded")
    progress = api.get(f"/v1/jobs/{job_id}", route="GET /v1/jobs/{id}")["job"]["progress"]
    assert 25 <= progress["total_items"] <= 50
    assert balance(sim) == START - 3 * progress["completed_items"]


def test_cancel_refunds_the_unused_reservation(api: Api, sim: SimulatorProcess) -> None:
    job_id = api.post(TL, {"keywords": [*KEYWORDS, "sim:duration=100000"]}, 202)["job_id"]
    job = api.post(f"/v1/jobs/{job_id}/cancel", {}, route="POST /v1/jobs/{id}/cancel")["job"]
    assert job["canceled"] is True
    assert balance(sim) == START - 2 * job["progress"]["completed_items"]


def test_failed_job_refunds_everything(api: Api, sim: SimulatorProcess) -> None:
    job_id = api.post(TL, {"keywords": [*KEYWORDS, "sim:outcome=failed", "sim:duration=0"]}, 202)["job_id"]
    assert api.post("/v1/jobs/results", {"job_id": job_id})["job"]["status"] == "failed"
    assert balance(sim) == START


def test_insufficient_credits(api: Api, sim: SimulatorProcess) -> None:
    sim.admin.configure(credits=100)
    error = api.error("POST", TL, {"keywords": KEYWORDS, "mode": "balanced"}, 402)
    assert error["code"] == "INSUFFICIENT_CREDITS"
    assert api.post(TL, {"keywords": KEYWORDS, "mode": "broad"}, 202)["status"] == "queued"
    assert balance(sim) == 0
    assert sim.admin.stats()["jobs_created"] == 1


@pytest.mark.parametrize(("posts", "cost"), [(10, 3), (20, 5), (30, 8)])
def test_content_match_cost(api: Api, posts: int, cost: int) -> None:
    body = {"creator_ids": [str(uuid.uuid4())], "topic_keywords": ["x"], "posts_to_analyze": posts}
    response = api.call("POST", "/v1/creators/content-match", body, expect=202)
    assert response.headers["X-Toksta-Credit-Cost"] == str(cost)


@pytest.mark.parametrize(("depth", "cost"), [("quick_scan", 10), ("deep_dive", 20), ("comprehensive", 30)])
def test_audience_match_cost(api: Api, sim: SimulatorProcess, depth: str, cost: int) -> None:
    body = {"creator_ids": [str(uuid.uuid4())], "campaign_brief": "CMOs", "analysis_depth": depth}
    response = api.call("POST", "/v1/creators/audience-match", body, expect=202)
    assert response.headers["X-Toksta-Credit-Cost"] == str(cost)
    assert balance(sim) == START - cost
