"""Admin routes: config knobs and their validation, keys, reset, jobs listing and forcing, stats."""

from __future__ import annotations

import httpx
import pytest

from worker.sim.stats import body_sha256
from worker.sim.testing import SimulatorProcess

from .helpers import KEYWORDS, Api

TL = "/v1/creators/thought-leaders"


@pytest.mark.parametrize(
    "knobs",
    [
        {"rate_limit": -1},
        {"job_seconds": [5]},
        {"job_seconds": [9, 3]},
        {"outcomes": {"succeeded": 0}},
        {"outcomes": {"done": 1}},
        {"creators": {"not-a-uuid": {}}},
        {"creators": {"6f1c2a4e-3b7d-4c59-9a1e-0d2b8c7f5e31": {"outcome": "weird"}}},
        {"keys": []},
        {"bogus": 1},
    ],
)
def test_config_rejects_bad_knobs(sim: SimulatorProcess, knobs: dict[str, object]) -> None:
    response = httpx.post(f"{sim.base_url}/_sim/config", json=knobs)
    assert response.status_code == 400 and response.json()["error"]


def test_config_round_trip_hides_keys(sim: SimulatorProcess) -> None:
    config = sim.admin.configure(rate_limit=7, job_seconds=[1, 2], outcomes={"succeeded": 3, "failed": 1})
    assert config == sim.admin.config()
    assert config["rate_limit"] == 7 and config["job_seconds"] == [1.0, 2.0]
    assert sim.key not in str(config) and config["keys_count"] == 1


def test_keys_knob(api: Api, sim: SimulatorProcess) -> None:
    sim.admin.configure(keys=["tk_test_other"])
    api.call("GET", "/v1/", expect=401)
    api.call("GET", "/v1/", headers={"Authorization": "Bearer tk_test_other"}, expect=200)


def test_reset_restores_everything(api: Api, sim: SimulatorProcess) -> None:
    sim.admin.configure(rate_limit=1, credits=5)
    sim.admin.add_faults({"kind": "error", "route": "POST /v1/jobs/results"})
    api.call("GET", "/v1/", expect=200)
    sim.admin.reset()
    stats = sim.admin.stats()
    assert stats["calls_total"] == 0 and stats["credits_balance"] == 100_000
    assert sim.admin.config()["rate_limit"] == 0  # the command line's value
    assert httpx.get(f"{sim.base_url}/_sim/faults").json() == {"faults": []}
    assert sim.admin.jobs() == []


def test_jobs_listing_and_forcing(api: Api, sim: SimulatorProcess) -> None:
    body = {"keywords": [*KEYWORDS, "sim:duration=100000"]}
    job_id = api.post(TL, body, 202)["job_id"]
    creator = "0b7c3c1e-9a55-4d8e-8f00-1f2e3a4b5c6d"
    match_id = api.post("/v1/creators/content-match", {"creator_ids": [creator], "topic_keywords": ["x"]}, 202)[
        "job_ids"
    ][0]
    jobs = {job["id"]: job for job in sim.admin.jobs()}
    assert jobs[job_id]["kind"] == "thought_leaders" and jobs[job_id]["terminal_at"] is None
    assert jobs[job_id]["start_body_sha256"] == body_sha256(body)
    assert jobs[match_id]["kind"] == "content_match"
    forced = sim.admin.force_job(match_id, "failed")
    assert forced["status"] == "failed" and forced["terminal_at"] is not None
    entry = api.post("/v1/content-match/results", {"job_id": match_id})["results_summary"][0]
    assert entry["status"] == "failed"
    assert httpx.post(f"{sim.base_url}/_sim/jobs/nope", json={"status": "failed"}).status_code == 404
    assert httpx.post(f"{sim.base_url}/_sim/jobs/{job_id}", json={"status": "done"}).status_code == 400


def test_stats_count_routes_starts_and_duplicates(api: Api, sim: SimulatorProcess) -> None:
    body = {"keywords": KEYWORDS}
    api.post(TL, body, 202)
    api.post(TL, body, 202)
    api.post(TL, {"keywords": [*KEYWORDS, "other"]}, 202)
    api.error("POST", TL, {"keywords": []}, 400)
    stats = sim.admin.stats()
    assert stats["calls"] == {f"POST {TL}": 4}
    assert stats["starts_by_body"][body_sha256(body)] == 2
    assert stats["duplicate_starts"] == 1 and stats["jobs_created"] == 3
    assert stats["status_counts"] == {"202": 3, "400": 1}


def test_calls_gives_each_route_s_arrival_times_on_the_simulator_s_clock(api: Api, sim: SimulatorProcess) -> None:
    sim.admin.reset()
    for _ in range(3):
        api.call("GET", "/v1/", expect=200)
    seen = sim.admin.calls("GET /v1/")
    assert seen["count"] == 3 and len(seen["times"]) == 3
    assert seen["times"] == sorted(seen["times"]) and seen["times"][-1] <= seen["now"]
    unused = sim.admin.calls("POST /v1/jobs/results:bulk")
    assert unused["count"] == 0 and unused["times"] == []
    response = httpx.get(f"{sim.base_url}/_sim/calls")
    assert response.status_code == 400 and "route" in response.json()["error"]
