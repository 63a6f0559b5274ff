"""The command line: flags and environment reach the config; bad settings exit 2."""

from __future__ import annotations

import subprocess
import sys

import httpx

from worker.sim.testing import SimulatorProcess

from .helpers import KEYWORDS


def test_flags_and_env_reach_the_simulator() -> None:
    args: tuple[str, ...] = ("--rate-limit", "3", "--outcomes", "failed=1", "--job-seconds", "0,0", "--credits", "500")
    args += ("--disable-route", "POST /v1/creators/enrich", "--seed", "3")
    with SimulatorProcess(*args, env={"TOKSTA_TIME_SCALE": "0.5"}, key="tk_test_cli") as sim:
        config = sim.admin.config()
        assert config["rate_limit"] == 3 and config["credits"] == 500
        assert config["outcomes"] == {"failed": 1.0} and config["disabled_routes"] == ["POST /v1/creators/enrich"]
        with httpx.Client(base_url=sim.base_url, headers=sim.headers()) as client:
            started = client.post("/v1/creators/thought-leaders", json={"keywords": KEYWORDS, "mode": "broad"})
            assert started.status_code == 202
            assert len(started.headers["X-RateLimit-Reset"].partition(".")[2]) == 3  # ms precision when scaled
            job_id = started.json()["data"]["job_id"]
            assert client.get(f"/v1/jobs/{job_id}").json()["data"]["job"]["status"] == "failed"
            assert client.post("/v1/creators/enrich", json={}).status_code == 501
            assert client.get("/v1/").status_code == 429
        assert repr(sim).find("tk_test_cli") == -1


def test_bad_setting_exits_2() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "worker.sim", "--port", "0", "--outcomes", "bogus=1"],
        capture_output=True,
        timeout=20,
        check=False,
    )
    assert result.returncode == 2
    assert b"outcomes" in result.stderr
