"""/metrics, /healthz and /readyz of a running two-process worker, scraped over HTTP.

One worker group serves the module; each test publishes its own requests (unique ids) and
compares counters before and after, so the tests do not depend on each other's order.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from worker.ops.harness import Deployment, WorkerGroup
from worker.sim.testing import SimulatorProcess

from .helpers import CANARY_KEY, enrichment, free_port, http_get, json_lines, make_deployment, wait_until

PROCESSES = 2


class Worker:
    def __init__(self, deployment: Deployment, group: WorkerGroup, port: int) -> None:
        self.deployment = deployment
        self.group = group
        self.port = port

    def samples(self) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
        """Every sample of one scrape, keyed by name and labels."""
        response = http_get(self.port, "/metrics")
        assert response is not None and response.status_code == 200, response
        assert response.headers["content-type"].startswith("text/plain")
        return {
            (sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(response.text)
            for sample in family.samples
        }


def value(samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


@pytest.fixture(scope="module")
def worker(sim: SimulatorProcess) -> Iterator[Worker]:
    deployment = make_deployment(sim)
    port = free_port()
    group = WorkerGroup(deployment, processes=PROCESSES, threads=2, env={"METRICS_PORT": str(port)})
    try:
        group.start()
        wait_until(lambda: (r := http_get(port, "/readyz")) is not None and r.status_code == 200, 30, "ready")
        yield Worker(deployment, group, port)
    finally:
        group.stop()
        deployment.delete_queues()


def test_healthz_and_readyz_answer_json(worker: Worker) -> None:
    health = http_get(worker.port, "/healthz")
    assert health is not None and health.status_code == 200
    assert health.json()["alive"] is True
    ready = http_get(worker.port, "/readyz")
    assert ready is not None and ready.status_code == 200
    body = ready.json()
    assert body["ready"] is True
    assert len(body["processes"]) == PROCESSES
    assert sorted(p["pid"] for p in body["processes"]) == sorted(worker.group.children())
    assert all(p["ingress"] and p["rabbitmq"] and p["state_store"] for p in body["processes"])
    other = http_get(worker.port, "/anything-else")
    assert other is not None and other.status_code == 404


def test_only_the_supervisor_listens_on_the_metrics_port(worker: Worker) -> None:
    """The children are forked after the bind; each must have closed its copy of the socket."""
    inodes = _listening_inodes(worker.port)
    assert inodes, "nothing listens on the metrics port"
    assert worker.group.proc is not None
    holders = [pid for pid in [worker.group.proc.pid, *worker.group.children()] if _socket_inodes(pid) & inodes]
    assert holders == [worker.group.proc.pid]


def test_counters_move_with_requests_calls_and_dead_letters(worker: Worker) -> None:
    before = worker.samples()
    ids = [f"obs-{uuid.uuid4().hex[:8]}" for _ in range(2)]
    with worker.deployment.requester() as requester:
        for request_id in ids:
            requester.publish(enrichment(request_id))
        requester.publish(b"{not json", reply_to=None)  # no reply queue: dead-lettered
        replies = {r.body["request_id"]: r.body for r in requester.collect(2, timeout=60)}
    assert set(replies) == set(ids)
    assert all(body["status"] == "succeeded" for body in replies.values()), replies

    def moved() -> dict[tuple[str, frozenset[tuple[str, str]]], float] | None:
        now = worker.samples()
        done = (
            value(now, "toksta_requests_total", kind="enrichment", status="succeeded")
            - value(before, "toksta_requests_total", kind="enrichment", status="succeeded")
            >= 2
            and value(now, "toksta_dead_letters_total", reason="invalid_json")
            > value(before, "toksta_dead_letters_total", reason="invalid_json")
            and value(now, "toksta_dlq_depth") >= 1
            and value(now, "toksta_rate_budget_remaining") >= 0  # NaN until a response told the limit
        )
        return now if done else None

    after = wait_until(moved, 20, "request, dead-letter and dlq-depth metrics")
    started = ("toksta_api_calls_total", {"endpoint": "POST /v1/creators/enrich", "status": "202"})
    # Two enrichments with equal criteria: one start call, or two if they arrived in different ticks.
    assert value(after, started[0], **started[1]) - value(before, started[0], **started[1]) >= 1
    polled = ("toksta_api_calls_total", {"endpoint": "POST /v1/enrichments/results", "status": "200"})
    assert value(after, polled[0], **polled[1]) > value(before, polled[0], **polled[1])
    finished = ("toksta_time_to_terminal_seconds_count", {"kind": "enrichment"})
    assert value(after, finished[0], **finished[1]) - value(before, finished[0], **finished[1]) >= 2
    assert ("toksta_rate_limited_total", frozenset()) in after
    for kind in ("thought_leaders", "enrichment", "content_match", "audience_match"):
        assert ("toksta_requests_waiting", frozenset({("kind", kind)})) in after
        assert ("toksta_requests_inflight", frozenset({("kind", kind)})) in after
    assert ("toksta_oldest_inflight_age_seconds", frozenset()) in after
    assert ("toksta_unroutable_depth", frozenset()) in after


def test_json_log_lines_carry_request_ids_and_no_key(worker: Worker) -> None:
    request_id = f"log-{uuid.uuid4().hex[:8]}"
    with worker.deployment.requester() as requester:
        requester.publish(enrichment(request_id))
        assert requester.wait_for(request_id, timeout=60) is not None
    text = worker.group.log_path.read_text(errors="replace")
    assert CANARY_KEY not in text
    lines = json_lines(worker.group.log_path)
    mine = [line for line in lines if line.get("request_id") == request_id]
    assert {"request registered", "reply published"} <= {line["msg"] for line in mine}
    assert all(line["kind"] == "enrichment" for line in mine)
    assert all({"ts", "level", "logger", "msg"} <= set(line) for line in lines)


def _listening_inodes(port: int) -> set[str]:
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:  # 0A: LISTEN
                inodes.add(fields[9])
    return inodes


def _socket_inodes(pid: int) -> set[str]:
    found = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = fd.readlink().as_posix()
        except OSError:
            continue
        if target.startswith("socket:["):
            found.add(target[len("socket:[") : -1])
    return found
