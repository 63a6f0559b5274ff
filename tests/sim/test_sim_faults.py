"""Injected faults: each kind, its side effects (or their absence), and its accounting."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from worker.sim.stats import body_sha256
from worker.sim.testing import SimulatorProcess

from .helpers import KEYWORDS, SCALE, Api

TL = "/v1/creators/thought-leaders"
TL_KEY = f"POST {TL}"
BODY = {"keywords": KEYWORDS}


def jobs_of(sim: SimulatorProcess) -> int:
    return len(sim.admin.jobs())


def test_error_fault_has_no_side_effects(api: Api, sim: SimulatorProcess) -> None:
    sim.admin.add_faults({"kind": "error", "route": TL_KEY, "status": 403, "code": "FORBIDDEN"})
    response = api.call("POST", TL, BODY, expect=403)
    assert response.json()["error"]["code"] == "FORBIDDEN"
    assert "X-RateLimit-Limit" in response.headers
    assert jobs_of(sim) == 0
    api.call("POST", TL, BODY, expect=202)  # consumed
    assert jobs_of(sim) == 1


def test_error_fault_count_and_wildcard(api: Api, sim: SimulatorProcess) -> None:
    sim.admin.add_faults({"kind": "error", "route": "*", "count": 2})
    assert api.error("GET", "/v1/", None, 500)["code"] == "INTERNAL_ERROR"
    assert api.error("GET", "/v1/account/usage", None, 500)["code"] == "INTERNAL_ERROR"
    api.call("GET", "/v1/", expect=200)
    assert sim.admin.stats()["status_counts"] == {"500": 2, "200": 1}


def test_injected_429_counts_retry_after(api: Api, sim: SimulatorProcess) -> None:
    sim.admin.add_faults({"kind": "error", "status": 429, "retry_after": 30})
    response = api.call("GET", "/v1/", expect=429)
    assert response.headers["Retry-After"] == "30"
    api.call("GET", "/v1/", expect=200)
    assert sim.admin.stats()["calls_during_retry_after"] == 1


def test_plain_5xx_processed_by_default(api: Api, sim: SimulatorProcess) -> None:
    sim.admin.add_faults({"kind": "plain_5xx", "route": TL_KEY, "status": 502})
    response = api.http.post(TL, json=BODY)
    assert response.status_code == 502
    assert response.headers["content-type"].startswith("text/html")
    with pytest.raises(json.JSONDecodeError):
        response.json()
    (job,) = sim.admin.jobs()
    assert job["start_body_sha256"] == body_sha256(BODY)
    assert sim.admin.stats()["starts_by_body"] == {body_sha256(BODY): 1}


def test_plain_5xx_not_processed(api: Api, sim: SimulatorProcess) -> None:
    sim.admin.add_faults({"kind": "plain_5xx", "route": TL_KEY, "status": 503, "processed": False})
    assert api.http.post(TL, json=BODY).status_code == 503
    assert jobs_of(sim) == 0


def test_reset_before_read(api: Api, sim: SimulatorProcess) -> None:
    sim.admin.add_faults({"kind": "reset_before_read", "route": TL_KEY})
    with pytest.raises(httpx.TransportError):
        api.http.post(TL, json=BODY)
    stats = sim.admin.stats()
    assert jobs_of(sim) == 0 and stats["calls_total"] == 1 and stats["status_counts"] == {"reset": 1}


def test_reset_after_read(api: Api, sim: SimulatorProcess) -> None:
    sim.admin.add_faults({"kind": "reset_after_read", "route": TL_KEY})
    with pytest.raises(httpx.TransportError):
        api.http.post(TL, json=BODY)
    assert jobs_of(sim) == 1
    api.call("POST", TL, BODY, expect=202)  # the client may re-send: a duplicate start
    stats = sim.admin.stats()
    assert stats["duplicate_starts"] == 1 and stats["jobs_created"] == 2


def test_malformed(api: Api, sim: SimulatorProcess) -> None:
    sim.admin.add_faults({"kind": "malformed", "route": TL_KEY})
    response = api.http.post(TL, json=BODY)
    assert response.status_code == 200
    with pytest.raises(json.JSONDecodeError):
        response.json()
    assert jobs_of(sim) == 1


def test_slow_trips_client_timeouts(api: Api, sim: SimulatorProcess) -> None:
    delay = 40  # simulated seconds
    sim.admin.add_faults({"kind": "slow", "route": TL_KEY, "delay_seconds": delay, "count": 2})
    with pytest.raises(httpx.ReadTimeout):
        api.http.post(TL, json=BODY, timeout=delay * SCALE / 4)
    assert jobs_of(sim) == 1
    started = time.monotonic()
    api.call("POST", TL, BODY, expect=202)
    assert time.monotonic() - started >= delay * SCALE


def test_fault_validation_and_clear(sim: SimulatorProcess) -> None:
    for bad in ({"kind": "boom"}, {"kind": "error", "status": 200}, {"kind": "error", "count": 0}):
        response = httpx.post(f"{sim.base_url}/_sim/faults", json={"faults": [bad]})
        assert response.status_code == 400
    sim.admin.add_faults({"kind": "error"})
    sim.admin.clear_faults()
    assert httpx.get(f"{sim.base_url}/_sim/faults").json() == {"faults": []}
