"""Nothing lost, nothing charged twice: requests through real worker groups while things break for real.

The short run is part of the normal suite (about a minute); the full run (>= 300 requests, 6 kills) runs
with `pytest tests/chaos -m slow` or `python -m worker.ops.chaos --full`. Both start their own RabbitMQ
node, Redis and simulator (see worker/ops/chaos.py); `CHAOS_SEED` replays a run's random choices.
"""

from __future__ import annotations

import os
import random
import shutil
from dataclasses import replace

import pytest

from worker.ops.chaos import FULL, SHORT, ChaosConfig, ChaosReport, run_chaos


@pytest.fixture(autouse=True)
def _services_installed() -> None:
    for binary in ("rabbitmq-server", "rabbitmqctl", "redis-server", "redis-cli"):
        if shutil.which(binary) is None:
            pytest.skip(f"{binary} is not installed: the chaos run needs a private RabbitMQ node and Redis")


def _seeded(config: ChaosConfig) -> ChaosConfig:
    seed = int(os.environ.get("CHAOS_SEED") or random.randrange(1 << 30))
    return replace(config, seed=seed)


def _check(report: ChaosReport, config: ChaosConfig) -> None:
    print(report.render())  # the figures, with -s or on failure
    assert report.requests >= config.requests
    assert report.analysis_requests > 0 and report.cancel_requests > 0 and report.duplicate_publishes > 0
    assert report.lost == [], report.render()
    assert report.answered == report.requests
    assert report.extra_logical == {}
    assert report.differing_copies == []
    assert report.duplicate_starts == 0 and report.over_started == []
    kinds = {status.split(":")[0] for status in report.statuses}
    assert kinds == {"thought_leaders", "enrichment", "content_match", "audience_match", "cancel"}
    assert report.chaos.child_kills + report.chaos.group_kills >= config.child_kills + config.group_kills
    assert report.chaos.child_kill_exit_codes and all(code != 0 for code in report.chaos.child_kill_exit_codes)
    assert report.chaos.rabbitmq_restarts == 1 and report.chaos.redis_restarts == 1
    assert sum(report.chaos.faults.values()) > 0
    assert report.problems() == [], report.render()


@pytest.mark.serial
@pytest.mark.timeout(420)
def test_chaos_short() -> None:
    config = _seeded(SHORT)
    assert config.requests >= 60
    _check(run_chaos(config), config)


@pytest.mark.slow
@pytest.mark.serial
@pytest.mark.timeout(1800)
def test_chaos_full() -> None:
    config = _seeded(FULL)
    assert config.requests >= 300 and config.child_kills + config.group_kills >= 5
    _check(run_chaos(config), config)
