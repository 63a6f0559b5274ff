"""Content and audience match: starts, results by job id (prefixed or bare) or creators, evidence routes."""

from __future__ import annotations

import uuid

from worker.sim.testing import SimulatorProcess

from .helpers import Api

CM = "/v1/creators/content-match"
AM = "/v1/creators/audience-match"


def creators(n: int) -> list[str]:
    return [str(uuid.uuid4()) for _ in range(n)]


def test_content_match_flow(api: Api) -> None:
    ids = creators(2)
    response = api.call(
        "POST", CM, {"creator_ids": ids, "topic_keywords": ["DevEx"], "posts_to_analyze": 20}, expect=202
    )
    assert response.headers["X-Toksta-Credit-Cost"] == "10"
    data = response.json()["data"]
    assert data["jobs_created"] == 2 and data["posts_to_analyze"] == 20 and data["failures"] == []
    assert all(job_id.startswith("content-fit:") for job_id in data["job_ids"])
    first = data["jobs"][0]
    assert first["job_id"] == f"content-fit:{first['analysis_id']}" and first["status"] == "pending"
    bare = data["jobs"][1]["analysis_id"]
    done = api.post("/v1/content-match/results", {"job_ids": [first["job_id"], bare], "wait_seconds": 30})
    assert done["found_count"] == 2 and done["requested_count"] == 2
    assert [e["status"] for e in done["results_summary"]] == ["succeeded", "succeeded"]
    assert all(e["job_id"].startswith("content-fit:") for e in done["results_summary"])
    assert all(isinstance(e["match_score"], int) for e in done["results_summary"])
    posts = api.post("/v1/content-match/posts", {"job_id": first["job_id"], "posts_limit_per_creator": 2})
    entry = posts["results"][0]
    assert entry["returned_posts_count"] == len(entry["matched_posts"]) <= 2
    assert entry["source"] == f"job_id {first['job_id']}"


def test_results_by_creator_and_not_found(api: Api) -> None:
    (creator,) = creators(1)
    unknown = f"content-fit:{uuid.uuid4()}"
    api.post(CM, {"creator_ids": [creator], "keywords": ["x", "sim:duration=0"]}, 202)
    by_creator = api.post("/v1/content-match/results", {"creator_ids": [creator, *creators(1)], "detail_level": "full"})
    assert by_creator["found_count"] == 1 and len(by_creator["missing_creator_ids"]) == 1
    assert by_creator["results"][0]["topic_keywords"] == ["sim:duration=0", "x"]
    missing = api.post("/v1/content-match/results", {"job_ids": [unknown, "garbage"]})
    assert missing["not_found_ids"] == [unknown, "garbage"] and missing["results_summary"] == []


def test_failures_expired_and_failed_items(api: Api, sim: SimulatorProcess) -> None:
    broken, gone, bad = creators(3)
    sim.admin.configure(
        creators={
            broken: {"start_failure": True},
            gone: {"outcome": "expired", "duration": 0},
            bad: {"outcome": "failed", "duration": 0},
        }
    )
    data = api.post(CM, {"creator_ids": [broken, gone, bad], "topic_keywords": ["x"]}, 202)
    assert [f["creator_id"] for f in data["failures"]] == [broken]
    assert data["jobs_created"] == 2
    gone_id, bad_id = data["job_ids"]
    results = api.post("/v1/content-match/results", {"job_ids": data["job_ids"]})
    assert results["expired_ids"] == [gone_id]
    (entry,) = results["results_summary"]
    assert entry["job_id"] == bad_id and entry["status"] == "failed" and entry["error_message"]
    assert entry["match_score"] is None


def test_cached_analysis_costs_nothing(api: Api) -> None:
    ids = creators(1)
    body = {"creator_ids": ids, "topic_keywords": ["x", "sim:duration=0"]}
    first = api.post(CM, body, 202)
    response = api.call("POST", CM, body, expect=202)
    second = response.json()["data"]
    assert response.headers["X-Toksta-Credit-Cost"] == "0"
    assert second["jobs_created"] == 0 and second["jobs"][0]["cached"] is True
    assert second["job_ids"] == first["job_ids"]


def test_content_match_validation(api: Api) -> None:
    assert api.error("POST", CM, {"topic_keywords": ["x"]}, 400)["code"] == "VALIDATION_ERROR"
    assert api.error("POST", CM, {"creator_ids": creators(1)}, 400)["code"] == "VALIDATION_ERROR"
    bad_posts = {"creator_ids": creators(1), "topic_keywords": ["x"], "posts_to_analyze": 15}
    assert api.error("POST", CM, bad_posts, 400)["code"] == "VALIDATION_ERROR"
    with_campaign = api.post(CM, {"creator_ids": creators(1), "campaign_id": str(uuid.uuid4())}, 202)
    assert with_campaign["jobs_created"] == 1
    assert api.error("POST", "/v1/content-match/results", {}, 400)["code"] == "VALIDATION_ERROR"


def test_audience_match_flow(api: Api) -> None:
    ids = creators(2)
    body = {"creator_ids": ids, "target_audience_criteria": ["VP Marketing"], "analysis_depth": "deep_dive"}
    response = api.call("POST", AM, body, expect=202)
    assert response.headers["X-Toksta-Credit-Cost"] == "40"
    data = response.json()["data"]
    assert data["analysis_depth"] == "deep_dive"
    assert all(job_id.startswith("audience-fit:") for job_id in data["job_ids"])
    results = api.post("/v1/audience-match/results", {"job_ids": data["job_ids"], "wait_seconds": 30})
    assert {e["status"] for e in results["results_summary"]} == {"succeeded"}
    assert results["results_summary"][0]["total_engagers_analyzed"] == 300
    details = api.post("/v1/audience-match/details", {"job_id": data["jobs"][0]["analysis_id"], "engagers_limit": 2})
    assert details["engagers_limit"] == 2 and len(details["results"][0]["top_matching_engagers"]) <= 2
    full = api.post("/v1/audience-match/results", {"creator_ids": ids, "detail_level": "full"})
    assert [r["analysis_depth"] for r in full["results"]] == ["deep_dive", "deep_dive"]


def test_audience_match_validation(api: Api) -> None:
    assert api.error("POST", AM, {"creator_ids": creators(1)}, 400)["code"] == "VALIDATION_ERROR"
    assert api.error("POST", AM, {"audience_keywords": ["x"]}, 400)["code"] == "VALIDATION_ERROR"
    for criteria in ({"campaign_brief": "CMOs"}, {"target_audience": "CMOs"}, {"audience_keywords": ["cmo"]}):
        assert api.post(AM, {"creator_ids": creators(1), **criteria}, 202)["jobs_created"] == 1
    wrong_family = api.post(AM, {"creator_ids": creators(1), "campaign_brief": "x"}, 202)["job_ids"][0]
    cross = api.post("/v1/content-match/results", {"job_id": wrong_family})
    assert cross["not_found_ids"] == [wrong_family]
