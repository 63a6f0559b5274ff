"""End to end: how the worker answers what the API does to it (errors, faults, rate limits, deadlines).

Real RabbitMQ, the simulator over HTTP (its faults and knobs), `toksta-worker run` as a subprocess.
Where a test must know the API's own `meta.request_id`, the worker talks to the simulator through
`RecordingProxy`, a real pass-through HTTP proxy that keeps what the API answered.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from worker.ops.harness import Deployment, WorkerGroup
from worker.ops.requester import ReceivedReply, Requester
from worker.sim.testing import SimulatorProcess

KEYWORDS = ["B2B SaaS", "demand generation", "marketing analytics", "growth", "ABM"]
REPLY_TIMEOUT = 30.0
TL_START = "POST /v1/creators/thought-leaders"
ENRICH_START = "POST /v1/creators/enrich"
CM_START = "POST /v1/creators/content-match"
CM_RESULTS = "POST /v1/content-match/results"
CANCEL_ROUTE = "POST /v1/jobs/{id}/cancel"
_FORWARDED_HEADERS = ("content-type", "x-request-id", "x-trace-id", "retry-after", "x-toksta-credit-cost")

StartWorker = Callable[..., WorkerGroup]


# -- a recording pass-through proxy ---------------------------------------------------------------


class RecordingProxy:
    """Forwards every call to the simulator unchanged and records (method, path, status, JSON body)."""

    def __init__(self, upstream: str) -> None:
        self.records: list[tuple[str, str, int, Any]] = []
        self._http = httpx.Client(base_url=upstream, timeout=30)
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                proxy.forward(self)

            def do_POST(self) -> None:
                proxy.forward(self)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def forward(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else None
        headers = {k: v for k, v in handler.headers.items() if k.lower() in ("authorization", "content-type", "accept")}
        response = self._http.request(handler.command, handler.path, content=body, headers=headers)
        try:
            parsed = response.json()
        except ValueError:
            parsed = None
        self.records.append((handler.command, handler.path, response.status_code, parsed))
        handler.send_response(response.status_code)
        for name, value in response.headers.items():
            if name.lower() in _FORWARDED_HEADERS or name.lower().startswith("x-ratelimit-"):
                handler.send_header(name, value)
        handler.send_header("Content-Length", str(len(response.content)))
        handler.end_headers()
        handler.wfile.write(response.content)

    def answers(self, method: str, path: str) -> list[tuple[int, Any]]:
        return [(status, body) for m, p, status, body in self.records if (m, p) == (method, path)]

    def __enter__(self) -> RecordingProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._http.close()


# -- fixtures: workers configured per test ------------------------------------------------------


@pytest.fixture
def start_worker(deployment: Deployment) -> Iterator[StartWorker]:
    """Starts a worker group with extra environment; every group is stopped after the test."""
    groups: list[WorkerGroup] = []

    def start(**env: str) -> WorkerGroup:
        group = WorkerGroup(deployment, processes=1, threads=4, env=env)
        groups.append(group)
        return group.start()

    yield start
    for group in groups:
        group.stop()


@pytest.fixture
def client(deployment: Deployment) -> Iterator[Requester]:
    with deployment.requester() as requester:
        yield requester


@pytest.fixture
def proxy(sim: SimulatorProcess) -> Iterator[RecordingProxy]:
    with RecordingProxy(sim.base_url) as recording:
        yield recording


# -- helpers ------------------------------------------------------------------------------------


def reply_of(requester: Requester, request_id: str, timeout: float = REPLY_TIMEOUT) -> ReceivedReply:
    reply = requester.wait_for(request_id, timeout)
    assert reply is not None, f"no reply for {request_id} within {timeout} s"
    return reply


def check_envelope(reply: ReceivedReply, request_id: str, kind: str, status: str) -> None:
    """The parts every reply of a valid request shares (the tests use the request id as correlation)."""
    assert reply.body["request_id"] == request_id
    assert reply.body["kind"] == kind
    assert reply.body["status"] == status
    assert (reply.body["error"] is None) == (status == "succeeded")
    assert reply.properties.message_id == f"{request_id}:reply"
    assert reply.properties.correlation_id == request_id
    assert reply.properties.type == "toksta.analysis.reply.v1"
    assert reply.headers["x-status"] == status


def only_answer(proxy: RecordingProxy, path: str) -> dict[str, Any]:
    [(status, body)] = proxy.answers("POST", path)
    assert isinstance(body, dict) and body["success"] is False, (status, body)
    return body


def check_counters(sim: SimulatorProcess, replies: list[ReceivedReply]) -> dict[str, Any]:
    stats = sim.admin.stats()
    assert stats["wrong_format_ids"] == 0
    assert abs(sum(r.body["api_calls"] for r in replies) - stats["calls_total"]) < 0.01
    return stats


def tl_request(request_id: str, *extra_keywords: str, **options: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "request_id": request_id,
        "kind": "thought_leaders",
        "params": {"keywords": [*KEYWORDS, *extra_keywords]},
    }
    if options:
        body["options"] = options
    return body


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)  # polling interval of a condition wait


# -- the API's own errors -----------------------------------------------------------------------


def test_insufficient_credits_402(
    start_worker: StartWorker, client: Requester, sim: SimulatorProcess, proxy: RecordingProxy
) -> None:
    sim.admin.configure(credits=0)
    start_worker(TOKSTA_BASE_URL=proxy.url)
    client.publish(tl_request("tl-402"))
    reply = reply_of(client, "tl-402")
    check_envelope(reply, "tl-402", "thought_leaders", "error")
    api = only_answer(proxy, "/v1/creators/thought-leaders")
    assert reply.body["error"] == {
        "code": "INSUFFICIENT_CREDITS",
        "message": api["error"]["message"],
        "http_status": 402,
        "retryable": False,
        "toksta_request_id": api["meta"]["request_id"],
        "details": api["error"]["details"],
    }
    assert (reply.body["job_ids"], reply.body["result"], reply.body["credits"]) == ([], None, None)
    assert reply.body["api_calls"] == 1
    stats = check_counters(sim, [reply])
    assert stats["jobs_created"] == 0
    assert stats["calls"] == {TL_START: 1}


def test_wrong_api_key_401(
    start_worker: StartWorker, client: Requester, sim: SimulatorProcess, proxy: RecordingProxy
) -> None:
    wrong_key = f"tk_wrong_{uuid.uuid4().hex}"
    worker = start_worker(TOKSTA_BASE_URL=proxy.url, TOKSTA_API_KEY=wrong_key)
    client.publish({"request_id": "en-401", "kind": "enrichment", "params": {"creator_ids": [str(uuid.uuid4())]}})
    reply = reply_of(client, "en-401")
    check_envelope(reply, "en-401", "enrichment", "error")
    api = only_answer(proxy, "/v1/creators/enrich")
    error = reply.body["error"]
    assert (error["code"], error["http_status"], error["retryable"]) == ("UNAUTHORIZED", 401, False)
    assert error["toksta_request_id"] == api["meta"]["request_id"]
    assert reply.body["job_ids"] == []
    assert sim.admin.stats()["calls"] == {ENRICH_START: 1}
    assert wrong_key not in reply.raw.decode() and wrong_key not in worker.log_text()


def test_not_implemented_501_is_never_retried(
    start_worker: StartWorker, client: Requester, sim: SimulatorProcess, proxy: RecordingProxy
) -> None:
    sim.admin.configure(disabled_routes=[CM_START])
    start_worker(TOKSTA_BASE_URL=proxy.url)
    body = {
        "request_id": "cm-501",
        "kind": "content_match",
        "params": {"creator_ids": [str(uuid.uuid4())], "keywords": ["x"]},
    }
    client.publish(body)
    reply = reply_of(client, "cm-501")
    check_envelope(reply, "cm-501", "content_match", "error")
    api = only_answer(proxy, "/v1/creators/content-match")
    assert reply.body["error"] == {
        "code": "NOT_IMPLEMENTED",
        "message": api["error"]["message"],
        "http_status": 501,
        "retryable": False,
        "toksta_request_id": api["meta"]["request_id"],
        "details": None,
    }
    assert reply.body["job_ids"] == []
    assert reply.body["api_calls"] == 1
    assert sim.admin.stats()["calls"] == {CM_START: 1}


# -- retries of the start call -------------------------------------------------------------------


def test_enveloped_5xx_on_start_is_resent_then_succeeds(
    start_worker: StartWorker, client: Requester, sim: SimulatorProcess
) -> None:
    sim.admin.add_faults({"kind": "error", "route": TL_START, "status": 500, "count": 2})
    start_worker()
    client.publish(tl_request("tl-5xx"))
    reply = reply_of(client, "tl-5xx")
    check_envelope(reply, "tl-5xx", "thought_leaders", "succeeded")
    stats = check_counters(sim, [reply])
    assert stats["jobs_created"] == 1
    assert stats["calls"][TL_START] == 3
    assert stats["status_counts"]["500"] == 2
    assert reply.body["job_ids"] == [job["id"] for job in sim.admin.jobs()]
    assert reply.body["api_calls"] == stats["calls_total"] >= 4  # 3 start attempts and at least one poll


def test_unconfirmed_start_is_not_resent(start_worker: StartWorker, client: Requester, sim: SimulatorProcess) -> None:
    sim.admin.add_faults(
        {"kind": "reset_after_read", "route": TL_START},
        # A gateway 5xx without the API's envelope: the API may have acted (here it did).
        {"kind": "plain_5xx", "route": CM_START, "status": 502},
    )
    start_worker()
    client.publish(tl_request("tl-unconfirmed"))
    client.publish(
        {
            "request_id": "cm-unconfirmed",
            "kind": "content_match",
            "params": {"creator_ids": [str(uuid.uuid4())], "keywords": ["x"]},
        }
    )
    replies = [reply_of(client, "tl-unconfirmed"), reply_of(client, "cm-unconfirmed")]
    for reply, kind in zip(replies, ("thought_leaders", "content_match"), strict=True):
        check_envelope(reply, reply.body["request_id"], kind, "error")
        error = reply.body["error"]
        assert (error["code"], error["retryable"]) == ("START_UNCONFIRMED", False)
        assert error["details"]["may_have_started"] is True
        assert reply.body["job_ids"] == []
        assert reply.body["api_calls"] == 1
    assert replies[1].body["error"]["http_status"] == 502
    stats = check_counters(sim, replies)
    assert stats["jobs_created"] == 2  # each start was processed once by the API ...
    assert stats["calls"] == {TL_START: 1, CM_START: 1}  # ... and never re-sent, nor polled


def test_resend_unconfirmed_start_opt_in(start_worker: StartWorker, client: Requester, sim: SimulatorProcess) -> None:
    """RESEND_UNCONFIRMED_START=enrichment re-sends a start whose outcome is unknown.

    What the opt-in costs: the API has no idempotency key, so the worker cannot tell a start the API
    never saw (`reset_before_read`: the re-send is the only job) from one it processed before the
    connection broke (`reset_after_read`: the re-send starts, and charges, a second job). Both halves
    are shown here.
    """
    sim.admin.add_faults({"kind": "reset_before_read", "route": ENRICH_START})
    start_worker(RESEND_UNCONFIRMED_START="enrichment")
    first = [str(uuid.uuid4()), str(uuid.uuid4())]
    client.publish({"request_id": "en-resend", "kind": "enrichment", "params": {"creator_ids": first}})
    reply = reply_of(client, "en-resend")
    check_envelope(reply, "en-resend", "enrichment", "succeeded")
    assert reply.body["job_ids"] == [f"enrichment:{c}" for c in first]
    assert reply.body["credits"] == 2
    stats = check_counters(sim, [reply])
    assert stats["calls"][ENRICH_START] == 2  # the reset attempt and its re-send
    assert stats["jobs_created"] == 2  # the first attempt created nothing
    assert stats["duplicate_starts"] == 0

    sim.admin.add_faults({"kind": "reset_after_read", "route": ENRICH_START})
    second = str(uuid.uuid4())
    # The first job must still run when the re-send arrives: a creator enriched meanwhile would be
    # answered `all_complete` without a second job (a re-send 2 simulated seconds late did that in CI).
    sim.admin.configure(creators={second: {"duration": 40}})
    client.publish({"request_id": "en-resend-dup", "kind": "enrichment", "params": {"creator_ids": [second]}})
    duplicate = reply_of(client, "en-resend-dup")
    check_envelope(duplicate, "en-resend-dup", "enrichment", "succeeded")
    stats = check_counters(sim, [reply, duplicate])
    assert stats["calls"][ENRICH_START] == 4
    assert stats["jobs_created"] == 4  # two jobs for one creator: the price of the opt-in
    assert stats["duplicate_starts"] == 1
    assert [j["creator_id"] for j in sim.admin.jobs()][2:] == [second, second]


# -- rate limits and outages ----------------------------------------------------------------------


def test_rate_limit_429_retry_after_is_obeyed(
    start_worker: StartWorker, client: Requester, sim: SimulatorProcess
) -> None:
    sim.admin.configure(rate_limit=2)
    # One 429 the pacing cannot avoid: Retry-After 5 simulated seconds, which blocks every call.
    sim.admin.add_faults({"kind": "error", "route": TL_START, "status": 429, "retry_after": 5})
    start_worker()
    ids = [f"tl-rl-{n}" for n in range(3)]
    for n, request_id in enumerate(ids):
        client.publish(tl_request(request_id, f"topic {n}", "sim:duration=2"))
    replies = [reply_of(client, request_id, timeout=60) for request_id in ids]
    for reply in replies:
        check_envelope(reply, reply.body["request_id"], "thought_leaders", "succeeded")
        assert len(reply.body["job_ids"]) == 1
    stats = check_counters(sim, replies)
    assert stats["status_counts"]["429"] >= 1
    assert stats["calls_during_retry_after"] == 0
    assert stats["jobs_created"] == 3
    assert stats["duplicate_starts"] == 0
    assert stats["calls"][TL_START] == 3 + stats["status_counts"]["429"]  # only the 429s were re-sent


def test_api_outage_ends_upstream_unavailable(
    start_worker: StartWorker, client: Requester, sim: SimulatorProcess
) -> None:
    sim.admin.add_faults(
        # The start route answers 503 with the API's envelope on every call: re-sent until the deadline.
        {"kind": "error", "route": ENRICH_START, "status": 503, "code": "SERVICE_UNAVAILABLE", "count": 1000},
        # After a clean start, every poll gets a gateway 502 without envelope until the deadline.
        {"kind": "plain_5xx", "route": CM_RESULTS, "status": 502, "processed": False, "count": 1000},
    )
    start_worker()
    client.publish(
        {
            "request_id": "en-outage",
            "kind": "enrichment",
            "params": {"creator_ids": [str(uuid.uuid4())]},
            "options": {"deadline_seconds": 40},
        }
    )
    client.publish(
        {
            "request_id": "cm-outage",
            "kind": "content_match",
            "params": {"creator_ids": [str(uuid.uuid4())], "keywords": ["x"]},
            "options": {"deadline_seconds": 40},
        }
    )
    start_outage, poll_outage = reply_of(client, "en-outage"), reply_of(client, "cm-outage")
    for reply, kind in ((start_outage, "enrichment"), (poll_outage, "content_match")):
        check_envelope(reply, reply.body["request_id"], kind, "error")
        error = reply.body["error"]
        assert (error["code"], error["retryable"]) == ("UPSTREAM_UNAVAILABLE", True), reply.body
    stats = check_counters(sim, [start_outage, poll_outage])
    assert start_outage.body["job_ids"] == []
    assert start_outage.body["error"]["http_status"] == 503
    assert start_outage.body["api_calls"] == stats["calls"][ENRICH_START] >= 2
    assert poll_outage.body["job_ids"] == [j["id"] for j in sim.admin.jobs()]
    assert poll_outage.body["error"]["http_status"] == 502
    assert stats["calls"][CM_START] == 1
    assert stats["calls"][CM_RESULTS] >= 1
    assert stats["jobs_created"] == 1


def test_deadline_cancels_thought_leaders_job(
    start_worker: StartWorker, client: Requester, sim: SimulatorProcess
) -> None:
    start_worker()
    client.publish(tl_request("tl-deadline", "sim:duration=400", deadline_seconds=40))
    reply = reply_of(client, "tl-deadline")
    check_envelope(reply, "tl-deadline", "thought_leaders", "error")
    error = reply.body["error"]
    assert (error["code"], error["retryable"]) == ("DEADLINE_EXCEEDED", True)
    [job] = sim.admin.jobs()
    assert reply.body["job_ids"] == [job["id"]]
    assert job["status"] == "canceled"
    result_job = reply.body["result"]["job"]  # the last payload fetched before the deadline
    assert result_job["job_id"] == job["id"]
    assert result_job["status"] in ("queued", "running")
    assert reply.body["credits"] == job["credits_reserved"] == 200  # the reservation, before the refund
    stats = check_counters(sim, [reply])
    assert stats["calls"][CANCEL_ROUTE] == 1
    assert job["credits_charged"] < job["credits_reserved"]
    assert stats["credits_balance"] == 100_000 - job["credits_charged"]  # the unused reservation came back
