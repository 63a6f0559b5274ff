"""Enrichment: 202 then results, synchronous 200 for enriched creators, missing profiles, statuses."""

from __future__ import annotations

import uuid

from worker.sim.testing import SimulatorProcess

from .helpers import Api

ENRICH = "/v1/creators/enrich"
RESULTS = "/v1/enrichments/results"


def creators(n: int) -> list[str]:
    return [str(uuid.uuid4()) for _ in range(n)]


def test_enrich_then_results_then_synchronous(api: Api, sim: SimulatorProcess) -> None:
    ids = creators(2)
    sim.admin.configure(job_seconds=[100_000, 100_000])
    response = api.call("POST", ENRICH, {"creator_ids": ids}, expect=202)
    assert response.headers["X-Toksta-Credit-Cost"] == "2"
    data = response.json()["data"]
    assert data["jobs_created"] == 2 and data["credits"]["deducted"] == 2
    assert [job["job_id"] for job in data["jobs"]] == [f"enrichment:{c}" for c in ids]
    assert data["selection"] == {"source": "creator_ids", "selected_count": 2}
    pending = api.post(RESULTS, {"creator_ids": ids})
    assert pending["pending"] == 2 and {e["status"] for e in pending["results_summary"]} <= {
        "queued",
        "running",
    }
    assert pending["results_summary"][0]["followers_count"] is None
    for creator_id in ids:
        sim.admin.force_job(f"enrichment:{creator_id}", "succeeded")
    done = api.post(RESULTS, {"creator_ids": ids, "wait_seconds": 30})
    assert done["pending"] == 0 and done["completed"] == 2
    assert all(entry["status"] == "succeeded" and entry["enriched_at"] for entry in done["results_summary"])
    again = api.call("POST", ENRICH, {"creator_ids": ids}, expect=200)
    assert again.headers["X-Toksta-Credit-Cost"] == "0"
    sync = again.json()["data"]
    assert sync["jobs_created"] == 0 and sync["all_complete"] is True and sync["already_enriched_count"] == 2


def test_mixed_selection_enriches_only_the_rest(api: Api, sim: SimulatorProcess) -> None:
    enriched, missing, fresh = creators(3)
    sim.admin.configure(creators={enriched: {"enriched": True}, missing: {"missing_profile": True}})
    data = api.post(ENRICH, {"creator_ids": [enriched, missing, fresh]}, 202)
    assert data["already_enriched_count"] == 1
    assert data["missing_linkedin_profiles"] == [missing]
    assert [job["creator_id"] for job in data["jobs"]] == [fresh]
    assert data["credits"]["required"] == 1
    summary = {
        e["creator_id"]: e for e in api.post(RESULTS, {"creator_ids": [enriched, missing, fresh]})["results_summary"]
    }
    assert summary[enriched]["status"] == "succeeded"
    assert summary[missing]["status"] == "failed" and summary[missing]["error_message"]


def test_results_full_not_found_and_expired(api: Api, sim: SimulatorProcess) -> None:
    good, gone = creators(2)
    never_seen = str(uuid.uuid4())
    sim.admin.configure(creators={gone: {"outcome": "expired", "duration": 0}, good: {"duration": 0}})
    api.post(ENRICH, {"creator_ids": [good, gone]}, 202)
    data = api.post(RESULTS, {"creator_ids": [good, gone, never_seen], "detail_level": "full"})
    assert data["not_found_ids"] == [never_seen]
    assert data["expired_ids"] == [gone]
    assert [e["creator_id"] for e in data["results_summary"]] == [good]
    assert data["results"][0]["creator_id"] == good and data["results"][0]["headline"]
    summary_only = api.post(RESULTS, {"creator_ids": [good]})
    assert "results" not in summary_only


def test_failed_enrichment_can_be_retried(api: Api, sim: SimulatorProcess) -> None:
    (creator,) = creators(1)
    sim.admin.configure(creators={creator: {"outcome": "failed", "duration": 0}})
    api.post(ENRICH, {"creator_ids": [creator]}, 202)
    entry = api.post(RESULTS, {"creator_ids": [creator]})["results_summary"][0]
    assert entry["status"] == "failed" and entry["error_message"]
    sim.admin.configure(creators={creator: {"duration": 0}})
    assert api.post(ENRICH, {"creator_ids": [creator]}, 202)["jobs_created"] == 1
    assert api.post(RESULTS, {"creator_ids": [creator]})["results_summary"][0]["status"] == "succeeded"


def test_selection_rules(api: Api) -> None:
    assert api.error("POST", ENRICH, {}, 400)["code"] == "VALIDATION_ERROR"
    assert api.error("POST", ENRICH, {"creator_ids": ["not-a-uuid"]}, 400)["code"] == "VALIDATION_ERROR"
    assert api.error("POST", RESULTS, {"detail_level": "full"}, 400)["code"] == "VALIDATION_ERROR"
    ids = creators(1)
    by_ids = api.post(ENRICH, {"creator_ids": ids, "result_set_id": "rs_1"}, 202)
    assert by_ids["selection"]["source"] == "creator_ids"
    by_set = api.post(ENRICH, {"result_set_id": "rs_1", "top_n": 3}, 202)
    assert by_set["selection"] == {"source": "result_set_id", "selected_count": 3}
    merged = api.post(ENRICH, {"result_set_ids": ["rs_1", "rs_2"]}, 202)
    assert merged["selection"]["source"] == "result_set_ids" and merged["creators_requested"] == 20
    ranked = api.post(RESULTS, {"result_set_id": "rs_1", "ranks": [1, 3]})
    assert ranked["selection"]["selected_count"] == 2


def test_start_failure_has_no_side_effects_on_402(api: Api, sim: SimulatorProcess) -> None:
    sim.admin.configure(credits=1)
    error = api.error("POST", ENRICH, {"creator_ids": creators(2)}, 402)
    assert error["code"] == "INSUFFICIENT_CREDITS"
    stats = sim.admin.stats()
    assert stats["jobs_created"] == 0 and stats["credits_balance"] == 1


def test_hold_until_enrichment_completes(api: Api) -> None:
    ids = creators(3)
    api.post(ENRICH, {"creator_ids": ids}, 202)
    done = api.post(RESULTS, {"creator_ids": ids, "wait_seconds": 30})  # default durations are <= 30 s
    assert done["completed"] == 3 and done["pending"] == 0
