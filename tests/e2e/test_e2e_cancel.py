"""End to end: every row of the wire contract's cancel table, and cancels that cross AMQP users.

Real RabbitMQ, the simulator over HTTP, `toksta-worker run` as a subprocess. A cancel gets its own
reply (`succeeded`, `result: {"canceled", "reason"}`); the canceled request X gets the reply its
state calls for. The simulator tells whether a start or a cancel call reached the API.
"""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from worker.ops.harness import Deployment, WorkerGroup
from worker.ops.requester import ReceivedReply, Requester
from worker.sim.testing import SimulatorProcess

KEYWORDS = ["B2B SaaS", "demand generation", "marketing analytics", "growth", "ABM"]
REPLY_TIMEOUT = 30.0
TL_START = "POST /v1/creators/thought-leaders"
CANCEL_ROUTE = "POST /v1/jobs/{id}/cancel"


# -- helpers ------------------------------------------------------------------------------------


def reply_of(requester: Requester, request_id: str, timeout: float = REPLY_TIMEOUT) -> ReceivedReply:
    reply = requester.wait_for(request_id, timeout)
    assert reply is not None, f"no reply for {request_id} within {timeout} s"
    return reply


def cancel(request_id: str, target: str) -> dict[str, Any]:
    return {"request_id": request_id, "kind": "cancel", "params": {"request_id": target}}


def check_cancel_reply(reply: ReceivedReply, request_id: str, canceled: bool, reason: str) -> None:
    """A cancel's own reply: always `succeeded`, the outcome in `result`, no calls of its own."""
    assert reply.body == {
        "request_id": request_id,
        "kind": "cancel",
        "status": "succeeded",
        "job_ids": [],
        "result": {"canceled": canceled, "reason": reason},
        "error": None,
        "api_calls": 0,
        "credits": None,
        "received_at": reply.body["received_at"],
        "finished_at": reply.body["finished_at"],
    }
    assert reply.properties.message_id == f"{request_id}:reply"
    assert reply.properties.correlation_id == request_id
    assert reply.headers["x-status"] == "succeeded"


def check_canceled(reply: ReceivedReply, request_id: str, kind: str) -> dict[str, Any]:
    """X's reply after a cancel stopped it: `canceled` / CANCELED_BY_REQUEST; returns the error."""
    body = reply.body
    assert (body["request_id"], body["kind"], body["status"]) == (request_id, kind, "canceled")
    assert reply.properties.message_id == f"{request_id}:reply"
    assert reply.headers["x-status"] == "canceled"
    error: dict[str, Any] = body["error"]
    assert (error["code"], error["retryable"], error["http_status"]) == ("CANCELED_BY_REQUEST", False, None)
    assert isinstance(error["message"], str) and error["message"]
    return error


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)  # polling interval of a condition wait


def registered(worker: WorkerGroup, request_id: str) -> bool:
    """Whether the worker logged the registration of `request_id` (its row now exists, waiting)."""
    for line in worker.log_text().splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if record.get("msg") == "request registered" and record.get("request_id") == request_id:
            return True
    return False


def tl_request(request_id: str, *extra: str) -> dict[str, Any]:
    return {"request_id": request_id, "kind": "thought_leaders", "params": {"keywords": [*KEYWORDS, *extra]}}


def sim_calls(sim: SimulatorProcess) -> dict[str, int]:
    calls: dict[str, int] = sim.admin.stats()["calls"]
    return calls


# -- the cancel table -----------------------------------------------------------------------------


def test_cancel_of_unknown_request_leaves_a_tombstone(requester: Requester, sim: SimulatorProcess) -> None:
    requester.publish(cancel("c-unknown", "x-later"))
    check_cancel_reply(reply_of(requester, "c-unknown"), "c-unknown", True, "before_start")
    requester.publish(tl_request("x-later"))
    reply = reply_of(requester, "x-later")
    check_canceled(reply, "x-later", "thought_leaders")
    assert (reply.body["job_ids"], reply.body["api_calls"], reply.body["result"]) == ([], 0, None)
    assert sim.admin.stats()["calls_total"] == 0  # no start call, no call at all


def test_cancel_while_waiting_to_start(requester: Requester, worker: WorkerGroup, sim: SimulatorProcess) -> None:
    # One call per 60 simulated seconds: the first request's start takes the window, so the next
    # request waits for its start (about 3 real seconds) while the cancel arrives.
    sim.admin.configure(rate_limit=1)
    requester.publish(tl_request("first"))
    wait_until(lambda: sim_calls(sim).get(TL_START) == 1, 15, "the first start call")
    target = {
        "request_id": "x-waiting",
        "kind": "content_match",
        "params": {"creator_ids": [str(uuid.uuid4())], "keywords": ["x"]},
    }
    requester.publish(target)
    wait_until(lambda: registered(worker, "x-waiting"), 15, "x-waiting to be registered")
    requester.publish(cancel("c-waiting", "x-waiting"))
    check_cancel_reply(reply_of(requester, "c-waiting"), "c-waiting", True, "before_start")
    reply = reply_of(requester, "x-waiting")
    error = check_canceled(reply, "x-waiting", "content_match")
    assert error["details"]["canceled_by"] == "c-waiting"  # canceled as a registered row, not by a tombstone
    assert (reply.body["job_ids"], reply.body["api_calls"], reply.body["credits"]) == ([], 0, None)
    assert "POST /v1/creators/content-match" not in sim_calls(sim)  # never started


def test_cancel_during_a_start_that_will_be_resent(
    requester: Requester, worker: WorkerGroup, sim: SimulatorProcess
) -> None:
    """A cancel that meets the start call in flight, whose answer (429) sends the request back to waiting."""
    sim.admin.configure(latency_ms=1000)  # the start call stays in flight for a real second
    sim.admin.add_faults({"kind": "error", "route": TL_START, "status": 429, "retry_after": 600})
    requester.publish(tl_request("x-inflight"))
    wait_until(lambda: sim_calls(sim).get(TL_START) == 1, 15, "the start call to reach the API")
    requester.publish(cancel("c-inflight", "x-inflight"))
    check_cancel_reply(reply_of(requester, "c-inflight"), "c-inflight", True, "before_start")
    reply = reply_of(requester, "x-inflight")
    error = check_canceled(reply, "x-inflight", "thought_leaders")
    assert error["details"]["canceled_by"] == "c-inflight"
    assert (reply.body["job_ids"], reply.body["api_calls"]) == ([], 1)  # the 429 call, and no re-send
    stats = sim.admin.stats()
    assert stats["calls"] == {TL_START: 1}
    assert stats["jobs_created"] == 0


def test_cancel_of_running_thought_leaders_cancels_the_job(requester: Requester, sim: SimulatorProcess) -> None:
    requester.publish(tl_request("x-tl", "sim:duration=400"))
    wait_until(lambda: len(sim.admin.jobs()) == 1, 15, "the discovery job to start")
    requester.publish(cancel("c-tl", "x-tl"))
    check_cancel_reply(reply_of(requester, "c-tl"), "c-tl", True, "cancel_applied")
    reply = reply_of(requester, "x-tl")
    error = check_canceled(reply, "x-tl", "thought_leaders")
    assert error["details"]["canceled_by"] == "c-tl"
    [job] = sim.admin.jobs()
    assert reply.body["job_ids"] == [job["id"]]
    assert job["status"] == "canceled"
    assert reply.body["credits"] == job["credits_reserved"]
    stats = sim.admin.stats()
    assert stats["calls"][CANCEL_ROUTE] == 1
    assert stats["calls"][TL_START] == 1
    assert stats["wrong_format_ids"] == 0
    assert reply.body["api_calls"] == stats["calls_total"]  # the cancel at the API is X's call
    assert stats["credits_balance"] == 100_000 - job["credits_charged"]  # the unused reservation came back


def test_cancel_of_running_match_stops_polling(requester: Requester, sim: SimulatorProcess) -> None:
    creator = str(uuid.uuid4())
    params = {"creator_ids": [creator], "topic_keywords": ["devex", "sim:duration=400"]}
    requester.publish({"request_id": "x-cm", "kind": "content_match", "params": params})
    wait_until(lambda: len(sim.admin.jobs()) == 1, 15, "the analysis to start")
    requester.publish(cancel("c-cm", "x-cm"))
    check_cancel_reply(reply_of(requester, "c-cm"), "c-cm", True, "polling_stopped")
    reply = reply_of(requester, "x-cm")
    error = check_canceled(reply, "x-cm", "content_match")
    assert error["details"]["api_job_continues"] is True
    [job] = sim.admin.jobs()
    assert reply.body["job_ids"] == [job["id"]]
    assert job["status"] in ("pending", "running")  # the API has no cancel for analyses
    assert reply.body["credits"] == 3  # spent: not returned
    stats = sim.admin.stats()
    assert CANCEL_ROUTE not in stats["calls"]
    assert reply.body["api_calls"] == stats["calls_total"]


def test_cancel_of_terminal_request_changes_nothing(requester: Requester, sim: SimulatorProcess) -> None:
    target = {"request_id": "x-done", "kind": "enrichment", "params": {"creator_ids": [str(uuid.uuid4())]}}
    requester.publish(target)
    original = reply_of(requester, "x-done")
    assert original.body["status"] == "succeeded"
    calls_before = sim.admin.stats()["calls_total"]
    requester.publish(cancel("c-done", "x-done"))
    check_cancel_reply(reply_of(requester, "c-done"), "c-done", False, "already_terminal")
    requester.publish(target)  # a duplicate gets the stored reply: X is unchanged
    again = requester.collect(1, timeout=REPLY_TIMEOUT)
    assert [r.raw for r in again] == [original.raw]
    assert sim.admin.stats()["calls_total"] == calls_before


# -- namespaces: a cancel never touches another user's request -----------------------------------


@pytest.fixture
def other_user() -> Iterator[tuple[str, str]]:
    """A second RabbitMQ user (publishing with `user_id` needs the connection's own user)."""
    name, password = f"toksta-e2e-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex

    def ctl(*args: str) -> None:
        subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=60)

    ctl("add_user", name, password)
    try:
        ctl("set_permissions", "-p", "/", name, ".*", ".*", ".*")
        yield name, password
    finally:
        ctl("delete_user", name)


def test_cancel_of_another_users_request(
    requester: Requester, deployment: Deployment, sim: SimulatorProcess, other_user: tuple[str, str]
) -> None:
    name, password = other_user
    requester.publish(tl_request("x-shared", "sim:duration=40"), user_id="guest")
    wait_until(lambda: len(sim.admin.jobs()) == 1, 15, "guest's job to start")
    with Requester(f"amqp://{name}:{password}@127.0.0.1:5672/%2F", deployment.request_queue) as other:
        # The same request_id in the other user's namespace is unknown: a tombstone there, nothing here.
        other.publish(cancel("c-other", "x-shared"), user_id=name)
        check_cancel_reply(reply_of(other, "c-other"), "c-other", True, "before_start")
        guest_reply = reply_of(requester, "x-shared")
        assert guest_reply.body["status"] == "succeeded"
        assert guest_reply.body["error"] is None
        # The other user's own "x-shared" meets its tombstone: canceled, never started.
        other.publish(tl_request("x-shared", "sim:duration=40"), user_id=name)
        other_reply = reply_of(other, "x-shared")
        check_canceled(other_reply, "x-shared", "thought_leaders")
        assert (other_reply.body["job_ids"], other_reply.body["api_calls"]) == ([], 0)
    stats = sim.admin.stats()
    assert stats["jobs_created"] == 1 and stats["calls"][TL_START] == 1
    assert CANCEL_ROUTE not in stats["calls"]
    assert guest_reply.body["job_ids"] == [job["id"] for job in sim.admin.jobs()]
