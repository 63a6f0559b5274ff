"""Probes, envelopes and ids, auth, rate limiting and its headers, Retry-After accounting, 501."""

from __future__ import annotations

import time

import httpx
import pytest

from worker.sim.schemas import check_response
from worker.sim.testing import SimulatorProcess

from .helpers import KEYWORDS, SCALE, Api, wait_until

RATE_HEADERS = ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset")


@pytest.mark.parametrize("path", ["/health", "/ready", "/version"])
def test_probes_need_no_auth(sim: SimulatorProcess, path: str) -> None:
    response = httpx.get(f"{sim.base_url}{path}")
    assert response.status_code == 200
    check_response(f"GET {path}", 200, response.json())
    assert response.headers["x-request-id"].startswith("req_")


def test_envelope_ids_match_headers(api: Api) -> None:
    response = api.call("GET", "/v1/", expect=200)
    meta = response.json()["meta"]
    assert response.headers["x-request-id"] == meta["request_id"]
    assert response.headers["x-trace-id"] == meta["trace_id"]
    assert all(name in response.headers for name in RATE_HEADERS)


def test_unauthorized_has_no_rate_headers(api: Api, sim: SimulatorProcess) -> None:
    for headers in ({"Authorization": "Bearer tk_live_wrong"}, {"Authorization": ""}):
        response = api.call("GET", "/v1/account/usage", headers=headers, expect=401)
        assert response.json()["error"]["code"] == "UNAUTHORIZED"
        assert not any(name in response.headers for name in RATE_HEADERS)
        assert sim.key not in response.text
    assert sim.admin.stats()["status_counts"]["401"] == 2


def test_errors_carry_rate_headers_and_unknown_routes_404(api: Api) -> None:
    response = api.call("POST", "/v1/creators/thought-leaders", {"keywords": []}, expect=400)
    assert all(name in response.headers for name in RATE_HEADERS)
    missing = api.call("GET", "/v1/nowhere", expect=404)
    assert missing.json()["error"]["code"] == "NOT_FOUND"
    assert api.error("GET", "/v1/campaigns", None, 403)["code"] == "FORBIDDEN"


def test_usage_counts_calls_and_credits(api: Api) -> None:
    api.post("/v1/creators/thought-leaders", {"keywords": KEYWORDS, "mode": "broad"}, 202)
    usage = api.get("/v1/account/usage")
    assert usage["total_calls"] == 2
    assert usage["operations"]["thought_leaders"]["credits_charged"] == 100
    assert api.error("GET", "/v1/account/usage?month=2026-5", None, 400, route="GET /v1/account/usage")


def test_rate_limit_window_and_retry_after(api: Api, sim: SimulatorProcess) -> None:
    sim.admin.configure(rate_limit=3)
    seen = [api.call("GET", "/v1/", expect=200).headers for _ in range(3)]
    assert [h["X-RateLimit-Remaining"] for h in seen] == ["2", "1", "0"]
    assert {h["X-RateLimit-Limit"] for h in seen} == {"3"}
    limited = api.call("GET", "/v1/", expect=429)
    assert limited.json()["error"]["code"] == "RATE_LIMITED"
    retry_after = int(limited.headers["Retry-After"])
    assert 1 <= retry_after <= 60  # simulated seconds, whatever the time scale
    reset = float(limited.headers["X-RateLimit-Reset"])  # real epoch, ms precision when scaled
    assert "." in limited.headers["X-RateLimit-Reset"]
    assert time.time() - 0.1 < reset < time.time() + 60 * SCALE + 0.1
    api.call("GET", "/v1/", expect=429)
    api.call("GET", "/v1/", expect=429)
    stats = sim.admin.stats()
    assert stats["rate_limited"] == 3 and stats["calls_during_retry_after"] == 2
    time.sleep(retry_after * SCALE)  # the client side of Retry-After: what a well-behaved client does
    fresh = api.call("GET", "/v1/", expect=200)
    assert fresh.headers["X-RateLimit-Remaining"] == "2"  # the 429s did not count
    assert sim.admin.stats()["calls_during_retry_after"] == 2


def test_unlimited_still_sends_headers(api: Api) -> None:
    response = api.call("GET", "/v1/", expect=200)
    assert int(response.headers["X-RateLimit-Limit"]) >= 1_000_000


def test_disabled_route_is_501(api: Api, sim: SimulatorProcess) -> None:
    sim.admin.configure(disabled_routes=["POST /v1/creators/enrich"])
    response = api.call("POST", "/v1/creators/enrich", {"creator_ids": []}, expect=501)
    assert response.json()["error"]["code"] == "NOT_IMPLEMENTED"
    assert "X-RateLimit-Remaining" in response.headers


def test_latency_is_added(api: Api, sim: SimulatorProcess) -> None:
    sim.admin.configure(latency_ms=150)
    started = time.monotonic()
    api.call("GET", "/v1/", expect=200)
    assert time.monotonic() - started >= 0.15


def test_time_scale_drives_durations(api: Api, sim: SimulatorProcess) -> None:
    job_id = api.post("/v1/creators/thought-leaders", {"keywords": [*KEYWORDS, "sim:duration=100"]}, 202)["job_id"]
    early = api.post("/v1/jobs/results", {"job_id": job_id, "wait_seconds": 5})["job"]
    assert early["status"] in ("queued", "running")  # 5 + overhead of 100 simulated seconds (1 real s)

    def finished() -> bool:
        job = api.post("/v1/jobs/results", {"job_id": job_id, "wait_seconds": 30})["job"]
        return bool(job["status"] == "succeeded")

    wait_until(finished, timeout=5.0)
    (job,) = sim.admin.jobs()
    assert job["terminal_at"] - job["created_at"] == pytest.approx(100 * SCALE, abs=0.02)
