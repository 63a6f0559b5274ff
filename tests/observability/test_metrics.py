"""The metric hooks and the shared-state readings, against a private registry and a real SQLite store."""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from worker.api.client import CallRecord
from worker.observability.metrics import (
    Metrics,
    SharedState,
    budget_remaining,
    kind_label,
    oldest_received_at,
    refresh_depths,
    refresh_oldest,
)
from worker.runtime.registry import RUNNING, WAITING, Registry
from worker.state.sqlite_store import SqliteStateStore


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def m(registry: CollectorRegistry) -> Metrics:
    return Metrics(registry)


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


def record(route: str, status: int | None) -> CallRecord:
    return CallRecord(route=route, http_status=status, rate=None, error=None, elapsed=0.01)


def test_calls_are_counted_by_endpoint_and_status(m: Metrics, registry: CollectorRegistry) -> None:
    m.observe_call(record("POST /v1/creators/enrich", 202))
    m.observe_call(record("POST /v1/creators/enrich", 202))
    m.observe_call(record("POST /v1/jobs/results:bulk", 429))
    m.observe_call(record("GET /v1/jobs/{id}", None))
    assert sample(registry, "toksta_api_calls_total", endpoint="POST /v1/creators/enrich", status="202") == 2
    assert sample(registry, "toksta_api_calls_total", endpoint="POST /v1/jobs/results:bulk", status="429") == 1
    assert sample(registry, "toksta_api_calls_total", endpoint="GET /v1/jobs/{id}", status="transport") == 1
    assert sample(registry, "toksta_rate_limited_total") == 1


def test_replies_dead_letters_and_latency(m: Metrics, registry: CollectorRegistry) -> None:
    m.reply_published("enrichment", "succeeded", "delivered")
    m.reply_published("no-such-kind", "error", "delivered")
    m.reply_published(None, "error", "no_route")
    m.reply_published("content_match", "succeeded", "nacked")
    m.dead_lettered("invalid_json")
    m.request_finished("enrichment", received_at=100.0, now=104.0)
    assert sample(registry, "toksta_requests_total", kind="enrichment", status="succeeded") == 1
    assert sample(registry, "toksta_requests_total", kind="invalid", status="error") == 1
    assert sample(registry, "toksta_requests_total", kind="unknown", status="error") == 1
    assert sample(registry, "toksta_unroutable_total", reason="no_route") == 1
    assert sample(registry, "toksta_unroutable_total", reason="nacked") == 1
    assert sample(registry, "toksta_dead_letters_total", reason="invalid_json") == 1
    assert sample(registry, "toksta_time_to_terminal_seconds_sum", kind="enrichment") == 4.0
    assert sample(registry, "toksta_time_to_terminal_seconds_bucket", kind="enrichment", le="2.5") == 0
    assert sample(registry, "toksta_time_to_terminal_seconds_bucket", kind="enrichment", le="5.0") == 1


def test_kind_labels_stay_bounded() -> None:
    assert kind_label("cancel") == "cancel"
    assert kind_label("x" * 500) == "invalid"
    assert kind_label(None) == "unknown"


@pytest.mark.parametrize(
    ("doc", "expected"),
    [
        ({}, None),
        ({"limit": 60, "remaining": 12, "reset_at": 1_000.0}, 12.0),
        ({"limit": 60, "remaining": 12, "reset_at": 900.0}, 60.0),  # the window rolled over
        ({"limit": 60, "remaining": 12, "reset_at": 1_000.0, "blocked_until": 960.0}, 0.0),  # Retry-After
    ],
)
def test_budget_remaining(doc: dict[str, Any], expected: float | None) -> None:
    assert budget_remaining(doc, now=950.0) == expected


def add_row(registry: Registry, key: str, state: str, kind: str, received_at: float) -> None:
    row = {
        "request_id": key,
        "kind": kind,
        "state": state,
        "received_at": received_at,
        "deadline_at": received_at + 3600,
        "next_start_at": received_at,
        "next_poll_at": received_at + 5,
    }
    assert registry.create(key, row)


def test_shared_gauges_read_the_store_and_the_broker(m: Metrics, registry: CollectorRegistry, tmp_path: Path) -> None:
    store = SqliteStateStore(str(tmp_path / "state.sqlite3"))
    rows = Registry(store, done_ttl_seconds=60, tombstone_ttl_seconds=60)
    now = time.time()
    add_row(rows, "req:-:w1", WAITING, "enrichment", now - 30)
    add_row(rows, "req:-:w2", WAITING, "enrichment", now - 10)
    add_row(rows, "req:-:r1", RUNNING, "content_match", now - 90)
    depths = {"q.dlq": 3, "q.unroutable": None}
    state = SharedState(
        store=store,
        registry=rows,
        budget_snapshot=lambda: {},
        queue_depth=depths.get,
        dlq="q.dlq",
        unroutable="q.unroutable",
    )
    try:
        refresh_depths(m, state, now)
        refresh_oldest(m, state, now)
        assert oldest_received_at(store, rows) == pytest.approx(now - 90)
    finally:
        store.close()
    assert sample(registry, "toksta_dlq_depth") == 3
    assert sample(registry, "toksta_unroutable_depth") == 0  # a missing queue leaves the gauge alone
    assert math.isnan(sample(registry, "toksta_rate_budget_remaining") or 0.0)
    assert sample(registry, "toksta_requests_waiting", kind="enrichment") == 2
    assert sample(registry, "toksta_requests_inflight", kind="content_match") == 1
    assert sample(registry, "toksta_requests_waiting", kind="thought_leaders") == 0
    assert sample(registry, "toksta_oldest_inflight_age_seconds") == pytest.approx(90, abs=0.01)
