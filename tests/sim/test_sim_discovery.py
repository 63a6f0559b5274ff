"""Thought leaders / discovery jobs: start, status, results, bulk, cancel, wrong-format ids."""

from __future__ import annotations

import uuid

from worker.sim.testing import SimulatorProcess

from .helpers import KEYWORDS, Api

TL = "/v1/creators/thought-leaders"


def start(api: Api, *extra: str, **body: object) -> str:
    response = api.call("POST", TL, {"keywords": [*KEYWORDS, *extra], **body}, expect=202)
    data = response.json()["data"]
    assert data["job_type"] == "thought_leaders" and data["status"] == "queued"
    uuid.UUID(data["job_id"])
    return str(data["job_id"])


def results(api: Api, job_id: str, **body: object) -> dict[str, object]:
    job: dict[str, object] = api.post("/v1/jobs/results", {"job_id": job_id, **body})["job"]
    return job


def test_start_then_status_reaches_terminal(api: Api) -> None:
    job_id = start(api, "sim:duration=30")  # a 30 s hold outlasts it
    first = api.get(f"/v1/jobs/{job_id}", route="GET /v1/jobs/{id}")["job"]
    assert first["job_type"] == "creator_discovery"
    if not first["is_terminal"]:  # unless this machine took more than 0.3 s to ask
        assert first["status"] in ("queued", "running") and first["completed_at"] is None
    done = results(api, job_id, wait_seconds=30)
    assert done["status"] == "succeeded" and done["is_terminal"] is True
    status = api.get(f"/v1/jobs/{job_id}", route="GET /v1/jobs/{id}")["job"]
    assert status["status"] == "succeeded" and status["source_status"] == "completed"
    assert status["progress"]["completed_items"] == status["progress"]["total_items"]


def test_results_rows_honor_limit(api: Api) -> None:
    job_id = start(api, "sim:duration=0", count=100, max_candidates_to_analyze=200)
    full = results(api, job_id)
    assert full["status"] == "succeeded"
    assert full["result_count"] == len(full["results"]) > 3  # type: ignore[arg-type]
    cut = results(api, job_id, limit=3)
    assert len(cut["results"]) == 3 and cut["results_truncated"] is True  # type: ignore[arg-type]
    alias = results(api, job_id, results_limit=2)
    assert len(alias["results"]) == 2  # type: ignore[arg-type]


def test_failed_outcome_carries_error_message(api: Api) -> None:
    job_id = start(api, "sim:outcome=failed", "sim:duration=0")
    job = results(api, job_id)
    assert job["status"] == "failed" and job["results"] == [] and job["error_message"]
    status = api.get(f"/v1/jobs/{job_id}", route="GET /v1/jobs/{id}")["job"]
    assert status["error_message"]


def test_keyword_validation(api: Api) -> None:
    for body in ({"keywords": KEYWORDS[:4]}, {}, {"keywords": "a,b,c,d,e"}, {"keywords": [1, 2, 3, 4, 5]}):
        assert api.error("POST", TL, body, 400)["code"] == "VALIDATION_ERROR"
    assert api.error("POST", TL, {"keywords": KEYWORDS, "mode": "loose"}, 400)["code"] == "VALIDATION_ERROR"
    assert api.sim.admin.stats()["jobs_created"] == 0


def test_invalid_json_is_bad_request(api: Api) -> None:
    response = api.http.post(TL, content=b"{not json")
    assert response.status_code == 400
    assert response.json()["error"] == {"code": "BAD_REQUEST", "message": "Request body must be valid JSON"}


def test_bulk_results(api: Api) -> None:
    done = start(api, "sim:duration=0")
    unknown = str(uuid.uuid4())
    response = api.call("POST", "/v1/jobs/results:bulk", {"job_ids": [done, unknown], "limit": 2}, expect=200)
    body = response.json()
    first, second = body["data"]["jobs"]
    assert first["found"] is True and first["job_id"] == done and len(first["results"]) <= 2
    assert second == {"job_id": unknown, "found": False}
    assert body["meta"]["found_count"] == 1 and body["meta"]["not_found_count"] == 1


def test_bulk_limits(api: Api) -> None:
    route = "/v1/jobs/results:bulk"
    assert api.error("POST", route, {"job_ids": []}, 400)["code"] == "VALIDATION_ERROR"
    too_many = [str(uuid.uuid4()) for _ in range(21)]
    assert api.error("POST", route, {"job_ids": too_many}, 400)["code"] == "VALIDATION_ERROR"
    twenty = [str(uuid.uuid4()) for _ in range(20)]
    assert len(api.post(route, {"job_ids": twenty, "wait_seconds": 30})["jobs"]) == 20


def test_prefixed_ids_are_404_and_counted(api: Api) -> None:
    prefixed = f"content-fit:{uuid.uuid4()}"
    api.error("GET", f"/v1/jobs/{prefixed}", None, 404, route="GET /v1/jobs/{id}")
    api.error("POST", "/v1/jobs/results", {"job_id": f"enrichment:{uuid.uuid4()}"}, 404)
    api.error("POST", f"/v1/jobs/{prefixed}/cancel", {}, 404, route="POST /v1/jobs/{id}/cancel")
    api.error("POST", "/v1/jobs/results:bulk", {"job_ids": [prefixed, str(uuid.uuid4())]}, 404)
    api.error("GET", f"/v1/jobs/{uuid.uuid4()}", None, 404, route="GET /v1/jobs/{id}")
    stats = api.sim.admin.stats()
    assert stats["wrong_format_ids"] == 4
    assert stats["calls"]["GET /v1/jobs/{id}"] == 2


def test_analysis_ids_are_not_discovery_jobs(api: Api) -> None:
    creator = str(uuid.uuid4())
    started = api.post("/v1/creators/content-match", {"creator_ids": [creator], "topic_keywords": ["x"]}, 202)
    bare = started["jobs"][0]["analysis_id"]
    api.error("GET", f"/v1/jobs/{bare}", None, 404, route="GET /v1/jobs/{id}")
    assert api.sim.admin.stats()["wrong_format_ids"] == 0


def test_cancel_needs_a_json_body(api: Api) -> None:
    job_id = start(api, "sim:duration=100000")
    route = "POST /v1/jobs/{id}/cancel"
    for content in (b"", b"nope"):
        response = api.http.post(f"/v1/jobs/{job_id}/cancel", content=content)
        assert response.status_code == 400
        assert response.json()["error"]["message"] == "Request body must be valid JSON"
    job = api.post(f"/v1/jobs/{job_id}/cancel", {}, route=route)["job"]
    assert job["canceled"] is True and job["reason"] == "cancel_applied" and job["status"] == "canceled"
    again = api.post(f"/v1/jobs/{job_id}/cancel", {}, route=route)["job"]
    assert again["canceled"] is False and again["reason"] == "already_terminal" and again["status"] == "canceled"
    assert results(api, job_id)["status"] == "canceled"


def test_cancel_of_a_finished_job(api: Api) -> None:
    job_id = start(api, "sim:duration=0")
    job = api.post(f"/v1/jobs/{job_id}/cancel", {}, route="POST /v1/jobs/{id}/cancel")["job"]
    assert job == {**job, "canceled": False, "reason": "already_terminal", "status": "succeeded"}


def test_outcome_weights_from_config(api: Api, sim: SimulatorProcess) -> None:
    sim.admin.configure(outcomes={"expired": 1}, job_seconds=[0, 0])
    job_id = start(api)
    assert results(api, job_id)["status"] == "expired"
    assert [job["status"] for job in sim.admin.jobs()] == ["expired"]
