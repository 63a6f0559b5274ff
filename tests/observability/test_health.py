"""Readiness from the processes' reports, and the supervisor's HTTP server, in this process."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from worker.observability.health import ProcessStatus, readiness, remove_status, write_status
from worker.observability.server import ObservabilityServer

from .helpers import http_get


def status(
    pid: int, *, ingress: bool = True, at: float | None = None, problems: list[str] | None = None
) -> ProcessStatus:
    return ProcessStatus(
        pid=pid,
        at=time.time() if at is None else at,
        state_store=True,
        rabbitmq=True,
        ingress=ingress,
        problems=problems or [],
    )


def test_ready_only_when_every_expected_process_reports_all_connected(tmp_path: Path) -> None:
    ready, body = readiness(tmp_path, 2)
    assert not ready
    assert body["missing"] == ["0 of 2 worker processes reporting"]

    write_status(tmp_path, status(101))
    write_status(tmp_path, status(102, ingress=False))
    ready, body = readiness(tmp_path, 2)
    assert not ready
    assert body["missing"] == ["process 102: ingress consumer not connected"]

    write_status(tmp_path, status(102))
    ready, body = readiness(tmp_path, 2)
    assert ready, body
    assert sorted(p["pid"] for p in body["processes"]) == [101, 102]

    remove_status(tmp_path, 101)
    assert readiness(tmp_path, 2)[0] is False


def test_a_stale_report_is_not_ready(tmp_path: Path) -> None:
    write_status(tmp_path, status(201, at=time.time() - 60))
    ready, body = readiness(tmp_path, 1)
    assert not ready
    assert body["missing"][0] == "0 of 1 worker processes reporting"
    assert body["missing"][1].startswith("process 201: no report for 60")


def test_problems_are_listed(tmp_path: Path) -> None:
    broken = ProcessStatus(
        pid=301, at=time.time(), state_store=False, rabbitmq=True, ingress=True, problems=["state store: boom"]
    )
    write_status(tmp_path, broken)
    ready, body = readiness(tmp_path, 1)
    assert not ready
    assert body["missing"] == ["process 301: state store not connected", "process 301: state store: boom"]


def test_server_answers_readyz_503_with_what_is_missing(tmp_path: Path) -> None:
    write_status(tmp_path, status(401, ingress=False))
    server = ObservabilityServer(0, tmp_path, 1, host="127.0.0.1").start()
    port = server.port
    try:
        ready = http_get(server.port, "/readyz")
        assert ready is not None and ready.status_code == 503
        assert ready.headers["content-type"] == "application/json"
        assert ready.json()["missing"] == ["process 401: ingress consumer not connected"]
        health = http_get(server.port, "/healthz")
        assert health is not None and health.status_code == 200
        write_status(tmp_path, status(401))
        ready = http_get(server.port, "/readyz")
        assert ready is not None and ready.status_code == 200
        metrics = http_get(server.port, "/metrics")
        assert metrics is not None and metrics.status_code == 200
        assert list(text_string_to_metric_families(metrics.text)) == []  # no process wrote values yet
    finally:
        server.close()
    assert http_get(port, "/healthz") is None  # closed: nothing listens any more


def test_a_taken_port_fails_to_start(tmp_path: Path) -> None:
    first = ObservabilityServer(0, tmp_path, 1, host="127.0.0.1").start()
    try:
        with pytest.raises(OSError):
            ObservabilityServer(first.port, tmp_path, 1, host="127.0.0.1").start()
    finally:
        first.close()
