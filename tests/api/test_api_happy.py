"""Every client method against the simulator: the success envelope unwrapped, ids and routes right."""

from __future__ import annotations

import hashlib
import json
import uuid
from typing import Any

from worker.api import CallRecord, TokstaClient
from worker.sim.testing import SimAdmin


def _sha(body: dict[str, Any]) -> str:
    """The simulator's start-body fingerprint: canonical JSON, sha256."""
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _new() -> str:
    return str(uuid.uuid4())


def test_thought_leaders_start_forwards_the_body_as_given(
    client: TokstaClient, admin: SimAdmin, keywords: list[str]
) -> None:
    body = {"keywords": keywords, "mode": "broad", "max_candidates_to_analyze": 7, "future_knob": {"x": 1}}
    response = client.start_thought_leaders(body)
    assert response.status == 202
    assert response.route == "POST /v1/creators/thought-leaders"
    uuid.UUID(response.data["job_id"])
    assert response.data["job_type"] == "thought_leaders"
    assert response.meta["request_id"] == response.toksta_request_id
    assert response.toksta_request_id and response.toksta_request_id.startswith("req_")
    assert response.rate.credit_cost == 7.0  # 7 candidates x broad rate 1
    [job] = admin.jobs()
    assert job["start_body_sha256"] == _sha(body)  # unknown keys reached the API untouched


def test_discovery_job_lifecycle(client: TokstaClient, admin: SimAdmin, keywords: list[str]) -> None:
    admin.configure(job_seconds=[0, 0])
    job_id = client.start_thought_leaders({"keywords": keywords}).data["job_id"]

    status = client.get_job(job_id)
    assert status.route == "GET /v1/jobs/{id}"
    assert status.data["job"]["id"] == job_id
    assert status.data["job"]["status"] == "succeeded"

    results = client.job_results(job_id, limit=3, wait_seconds=0)
    assert results.route == "POST /v1/jobs/results"
    assert results.data["job"]["job_id"] == job_id
    assert len(results.data["job"]["results"]) <= 3
    assert results.meta["wait_seconds"] == 0

    missing = _new()
    bulk = client.job_results_bulk([job_id, missing], limit=2)
    assert bulk.route == "POST /v1/jobs/results:bulk"
    found = {entry["job_id"]: entry["found"] for entry in bulk.data["jobs"]}
    assert found == {job_id: True, missing: False}
    assert bulk.meta["found_count"] == 1
    assert bulk.meta["not_found_count"] == 1

    cancel = client.cancel_job(job_id)
    assert cancel.route == "POST /v1/jobs/{id}/cancel"
    assert cancel.data["job"]["canceled"] is False
    assert cancel.data["job"]["reason"] == "already_terminal"
    assert admin.stats()["calls"]["POST /v1/jobs/results:bulk"] == 1


def test_cancel_of_a_running_job(client: TokstaClient, admin: SimAdmin, keywords: list[str]) -> None:
    admin.configure(job_seconds=[600, 600])
    job_id = client.start_thought_leaders({"keywords": keywords}).data["job_id"]
    cancel = client.cancel_job(job_id)
    assert cancel.data["job"]["canceled"] is True
    assert client.get_job(job_id).data["job"]["status"] == "canceled"


def test_enrichment_202_then_results(client: TokstaClient, admin: SimAdmin) -> None:
    creator = _new()
    admin.configure(job_seconds=[0, 0])
    start = client.start_enrichment({"creator_ids": [creator]})
    assert start.status == 202
    assert start.data["jobs_created"] == 1
    assert start.data["jobs"][0]["job_id"] == f"enrichment:{creator}"
    results = client.enrichment_results({"creator_ids": [creator], "detail_level": "summary"})
    assert results.route == "POST /v1/enrichments/results"
    assert results.data["pending"] == 0
    assert results.data["results_summary"][0]["creator_id"] == creator


def test_enrichment_synchronous_200_is_success(client: TokstaClient, admin: SimAdmin) -> None:
    creator = _new()
    admin.configure(creators={creator: {"enriched": True}})
    start = client.start_enrichment({"creator_ids": [creator]})
    assert start.status == 200
    assert start.data["jobs_created"] == 0
    assert start.data["all_complete"] is True


def test_content_match_start_results_posts(client: TokstaClient, admin: SimAdmin) -> None:
    creator = _new()
    admin.configure(job_seconds=[0, 0])
    start = client.start_content_match({"creator_ids": [creator], "topic_keywords": ["developer tools"]})
    assert start.status == 202
    [job_id] = start.data["job_ids"]
    assert job_id.startswith("content-fit:")
    results = client.content_match_results({"job_ids": [job_id], "detail_level": "summary"})
    assert results.data["found_count"] == 1
    assert results.data["results_summary"][0]["status"] == "succeeded"
    posts = client.content_match_posts({"job_id": job_id, "detail_level": "full", "posts_limit_per_creator": 2})
    assert posts.route == "POST /v1/content-match/posts"
    assert posts.data["results"][0]["job_id"] == job_id


def test_audience_match_start_results_details(client: TokstaClient, admin: SimAdmin) -> None:
    creator = _new()
    admin.configure(job_seconds=[0, 0])
    start = client.start_audience_match(
        {"creator_ids": [creator], "target_audience_criteria": ["VP Marketing"], "analysis_depth": "quick_scan"}
    )
    assert start.status == 202
    [job_id] = start.data["job_ids"]
    assert job_id.startswith("audience-fit:")
    assert start.rate.credit_cost == 10.0
    results = client.audience_match_results({"job_id": job_id})
    assert results.data["results_summary"][0]["job_id"] == job_id
    details = client.audience_match_details({"job_id": job_id, "detail_level": "full", "engagers_limit": 3})
    assert details.route == "POST /v1/audience-match/details"
    assert details.data["results"][0]["job_id"] == job_id


def test_account_usage_with_and_without_month(client: TokstaClient, admin: SimAdmin) -> None:
    assert client.account_usage("2026-05").data["period"] == "2026-05"
    current = client.account_usage()
    assert current.route == "GET /v1/account/usage"
    assert len(current.data["period"]) == 7
    assert admin.stats()["calls"]["GET /v1/account/usage"] == 2


def test_probes_return_plain_json(client: TokstaClient, admin: SimAdmin, calls: list[CallRecord]) -> None:
    assert client.health().data == {"status": "ok"}
    assert client.ready().data["status"] == "ready"
    version = client.version()
    assert "version" in version.data
    assert version.meta == {}
    assert version.rate.empty
    assert [record.route for record in calls] == ["GET /health", "GET /ready", "GET /version"]
    assert admin.stats()["calls_total"] == 0  # probes are not v1 calls
