"""Wire-level rows of the contract, end to end: duplicates, conflicts, user namespaces, trace context,
unroutable replies, result filtering of shared polls, and the api_calls accounting.

Everything is real: RabbitMQ, the simulator over HTTP, `toksta-worker run` subprocesses. Every test
also checks that the replies' `api_calls` add up to the calls the simulator saw for them.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pika
import pytest
import rfc8785

from worker.amqp.topology import Topology
from worker.ops import dlq
from worker.ops.harness import Deployment
from worker.ops.requester import ReceivedReply, Requester
from worker.settings import QueueType
from worker.sim.testing import SimulatorProcess

KEYWORDS = ["B2B SaaS", "demand generation", "marketing analytics", "growth", "ABM"]
TL_START = "POST /v1/creators/thought-leaders"
ENRICH_START = "POST /v1/creators/enrich"
CONTENT_START = "POST /v1/creators/content-match"
CONTENT_RESULTS = "POST /v1/content-match/results"
ENRICH_RESULTS = "POST /v1/enrichments/results"
REPLY_TIMEOUT = 30.0


# -- helpers --------------------------------------------------------------------------------------


def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll a condition until it holds; fail with `what` at the deadline."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def calls(sim: SimulatorProcess, route: str) -> int:
    return int(sim.admin.stats()["calls"].get(route, 0))


def tl_body(request_id: str, sim_seconds: int, *extra: str) -> dict[str, Any]:
    """A thought-leaders request whose job runs `sim_seconds` simulated seconds."""
    return {
        "request_id": request_id,
        "kind": "thought_leaders",
        "params": {"keywords": [*KEYWORDS, *extra, f"sim:duration={sim_seconds}"]},
        "options": {"results_limit": 3},
    }


def new_creators(count: int) -> list[str]:
    return [str(uuid.uuid4()) for _ in range(count)]


def collect_one(client: Requester, timeout: float = REPLY_TIMEOUT, queue: str | None = None) -> ReceivedReply:
    got = client.collect(1, timeout, queue=queue)
    assert got, f"no reply on {queue or client.reply_queue} within {timeout} s"
    return got[0]


def assert_calls_accounted(one_reply_per_request: list[ReceivedReply], sim: SimulatorProcess) -> None:
    """Sum of `api_calls` over the requests' replies (one each) equals the simulator's calls_total."""
    spent = [float(reply.body["api_calls"]) for reply in one_reply_per_request]
    total = sim.admin.stats()["calls_total"]
    assert abs(sum(spent) - total) <= 0.001 * len(spent) + 1e-6, (spent, total)


def traceparent() -> str:
    return f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-01"


def header_text(value: object) -> str | None:
    if isinstance(value, bytes):
        return value.decode("utf-8")
    return value if value is None else str(value)


# -- duplicates -----------------------------------------------------------------------------------


@pytest.fixture
def second(deployment: Deployment, requester: Requester) -> Iterator[Requester]:
    """A second sender with its own reply queue (the worker is already consuming)."""
    with deployment.requester() as client:
        yield client


@pytest.fixture
def third(deployment: Deployment, requester: Requester) -> Iterator[Requester]:
    with deployment.requester() as client:
        yield client


def test_duplicates_share_one_start_and_reach_every_queue(
    requester: Requester, second: Requester, third: Requester, sim: SimulatorProcess
) -> None:
    body = tl_body("dup-1", 30)
    first_tp, second_tp, third_tp = traceparent(), traceparent(), traceparent()
    requester.publish(body, correlation_id="corr-first", headers={"traceparent": first_tp})
    wait_until(lambda: calls(sim, TL_START) == 1, 15, "the start call of dup-1")
    # While it runs: the same content with keys in another order, from another sender.
    reordered = {"options": body["options"], "params": body["params"], "kind": body["kind"], "request_id": "dup-1"}
    second.publish(reordered, correlation_id="corr-second", headers={"traceparent": second_tp})

    one = collect_one(requester)
    two = collect_one(second)
    assert one.body["status"] == "succeeded", one.body
    assert one.body == two.body
    assert one.properties.message_id == two.properties.message_id == "dup-1:reply"
    assert one.properties.correlation_id == "corr-first"
    assert two.properties.correlation_id == "corr-second"
    assert header_text(one.headers.get("traceparent")) == first_tp
    assert header_text(two.headers.get("traceparent")) == second_tp

    # After it is done: a third sender gets the stored reply at once, still without a new start.
    third.publish(body, correlation_id="corr-third", headers={"traceparent": third_tp})
    three = collect_one(third)
    assert three.body == one.body
    assert three.properties.message_id == "dup-1:reply"
    assert three.properties.correlation_id == "corr-third"
    assert header_text(three.headers.get("traceparent")) == third_tp

    stats = sim.admin.stats()
    assert stats["calls"].get(TL_START) == 1
    assert stats["jobs_created"] == 1
    assert stats["duplicate_starts"] == 0
    assert requester.collect(1, 0.3) == [] and second.collect(1, 0.3) == []  # one copy per sender
    assert_calls_accounted([one], sim)  # one request, three copies of its reply


def conflict_message_id(request_id: str, content: dict[str, Any]) -> str:
    canonical = rfc8785.dumps({"kind": content["kind"], "params": content["params"], "options": content["options"]})
    return f"{request_id}:conflict:{hashlib.sha256(canonical).hexdigest()[:16]}"


def test_request_id_conflict_leaves_the_original_untouched(
    requester: Requester, second: Requester, sim: SimulatorProcess
) -> None:
    original = tl_body("conf-1", 30)
    requester.publish(original, correlation_id="corr-original")
    wait_until(lambda: calls(sim, TL_START) == 1, 15, "the start call of conf-1")
    rival = {
        "request_id": "conf-1",
        "kind": "thought_leaders",
        "params": {"keywords": ["other", "words", "entirely", "five", "six"], "count": 5},
        "options": {"results_limit": 7, "deadline_seconds": 600},
    }
    second.publish(rival, correlation_id="corr-rival")

    conflict = collect_one(second)
    assert conflict.body["request_id"] == "conf-1"
    assert conflict.body["status"] == "error"
    assert conflict.body["error"]["code"] == "REQUEST_ID_CONFLICT"
    assert conflict.body["error"]["retryable"] is False
    assert conflict.body["job_ids"] == []
    assert conflict.properties.message_id == conflict_message_id("conf-1", rival)
    assert conflict.properties.correlation_id == "corr-rival"
    assert conflict.headers.get("x-status") == "error"

    done = collect_one(requester)
    assert done.body["status"] == "succeeded", done.body
    assert done.properties.message_id == "conf-1:reply"
    assert done.properties.correlation_id == "corr-original"
    assert len(done.body["result"]["job"]["results"]) <= 3  # the original's options, not the rival's
    stats = sim.admin.stats()
    assert stats["calls"].get(TL_START) == 1 and stats["jobs_created"] == 1
    assert_calls_accounted([done, conflict], sim)


# -- user_id namespaces ---------------------------------------------------------------------------


def rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", *args], check=True, capture_output=True, timeout=60)


@pytest.fixture
def two_users(deployment: Deployment) -> Iterator[list[tuple[str, str]]]:
    """Two RabbitMQ users with full rights on `/`, deleted afterwards."""
    users = [(f"e2e-{uuid.uuid4().hex[:8]}", secrets.token_hex(12)) for _ in range(2)]
    created: list[str] = []
    try:
        for name, password in users:
            rabbitmqctl("add_user", name, password)
            created.append(name)
            rabbitmqctl("set_permissions", "-p", "/", name, ".*", ".*", ".*")
        yield users
    finally:
        for name in created:
            rabbitmqctl("delete_user", name)


def user_url(name: str, password: str) -> str:
    return f"amqp://{name}:{password}@127.0.0.1:5672/%2F"


def test_user_namespaces_are_independent(
    two_users: list[tuple[str, str]], deployment: Deployment, requester: Requester, sim: SimulatorProcess
) -> None:
    (name_a, pass_a), (name_b, pass_b) = two_users
    creators_a, creators_b = new_creators(2), new_creators(2)
    sim.admin.configure(creators={c: {"duration": 20} for c in creators_a + creators_b})
    with (
        Requester(user_url(name_a, pass_a), deployment.request_queue) as a,
        Requester(user_url(name_b, pass_b), deployment.request_queue) as b,
    ):
        # Same request_id, different content: no conflict, two independent requests.
        a.publish(
            {"request_id": "ns-same", "kind": "enrichment", "params": {"creator_ids": creators_a}}, user_id=name_a
        )
        b.publish(
            {"request_id": "ns-same", "kind": "enrichment", "params": {"creator_ids": creators_b}}, user_id=name_b
        )
        # Same id and content in both namespaces, long enough to be canceled while running.
        a.publish(tl_body("ns-cancel", 200), user_id=name_a)
        b.publish(tl_body("ns-cancel", 30), user_id=name_b)
        # A request only B has.
        b.publish(tl_body("ns-b-only", 30, "b-only"), user_id=name_b)
        wait_until(lambda: calls(sim, TL_START) == 3, 15, "three thought-leaders starts")
        a.publish({"request_id": "c-1", "kind": "cancel", "params": {"request_id": "ns-cancel"}}, user_id=name_a)
        a.publish({"request_id": "c-2", "kind": "cancel", "params": {"request_id": "ns-b-only"}}, user_id=name_a)

        from_a = {r.body["request_id"]: r for r in a.collect(4, REPLY_TIMEOUT)}
        from_b = {r.body["request_id"]: r for r in b.collect(3, REPLY_TIMEOUT)}

    assert set(from_a) == {"ns-same", "ns-cancel", "c-1", "c-2"}, from_a.keys()
    assert set(from_b) == {"ns-same", "ns-cancel", "ns-b-only"}, from_b.keys()
    for reply in [from_a["ns-same"], from_b["ns-same"]]:
        assert reply.body["status"] == "succeeded", reply.body
    assert {e["creator_id"] for e in from_a["ns-same"].body["result"]["results_summary"]} == set(creators_a)
    assert {e["creator_id"] for e in from_b["ns-same"].body["result"]["results_summary"]} == set(creators_b)

    assert from_a["c-1"].body["result"] == {"canceled": True, "reason": "cancel_applied"}
    assert from_a["ns-cancel"].body["status"] == "canceled"
    assert from_a["ns-cancel"].body["error"]["code"] == "CANCELED_BY_REQUEST"
    assert from_b["ns-cancel"].body["status"] == "succeeded", from_b["ns-cancel"].body
    # A's cancel of an id only B has finds nothing in A's namespace; B's request is untouched.
    assert from_a["c-2"].body["result"] == {"canceled": True, "reason": "before_start"}
    assert from_b["ns-b-only"].body["status"] == "succeeded", from_b["ns-b-only"].body

    stats = sim.admin.stats()
    # The two users' enrichments may share one start call (same key, same criteria) or not, by timing.
    assert stats["calls"].get(ENRICH_START) in (1, 2)
    assert stats["calls"].get("POST /v1/jobs/{id}/cancel") == 1
    statuses = sorted(job["status"] for job in sim.admin.jobs() if job["kind"] == "thought_leaders")
    assert statuses == ["canceled", "succeeded", "succeeded"]
    assert_calls_accounted([*from_a.values(), *from_b.values()], sim)


# -- trace context and correlation ----------------------------------------------------------------


def test_traceparent_and_correlation_defaults(requester: Requester, sim: SimulatorProcess) -> None:
    creators = new_creators(1)
    sim.admin.configure(creators={creators[0]: {"duration": 4}})
    trace = traceparent()
    params = {"creator_ids": creators}
    requester.publish(
        {"request_id": "tp-1", "kind": "enrichment", "params": params},
        correlation_id="corr-tp-1",
        headers={"traceparent": trace},
    )
    requester.publish({"request_id": "tp-2", "kind": "enrichment", "params": params})
    replies = {r.body["request_id"]: r for r in requester.collect(2, REPLY_TIMEOUT)}
    assert set(replies) == {"tp-1", "tp-2"}
    assert header_text(replies["tp-1"].headers.get("traceparent")) == trace
    assert replies["tp-1"].properties.correlation_id == "corr-tp-1"
    assert "traceparent" not in replies["tp-2"].headers
    assert replies["tp-2"].properties.correlation_id == "tp-2"
    for reply in replies.values():
        assert reply.body["status"] == "succeeded", reply.body
        assert reply.properties.type == "toksta.analysis.reply.v1"
        assert reply.properties.content_type == "application/json"
        assert reply.headers.get("x-status") == "succeeded"
    assert_calls_accounted(list(replies.values()), sim)


# -- a missing reply queue ------------------------------------------------------------------------


def held_messages(deployment: Deployment, queue: str, count: int, timeout: float) -> list[dlq.DeadLetter]:
    """The messages of a holding queue once it has `count` of them, read without removing any."""
    wait_until(lambda: deployment.queue_depth(queue) >= count, timeout, f"{count} message(s) in {queue}")
    connection = pika.BlockingConnection(pika.URLParameters(deployment.amqp_url))
    try:
        return dlq.list_messages(connection, queue)
    finally:
        connection.close()


def take_message(amqp_url: str, queue: str) -> tuple[pika.BasicProperties, bytes]:
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        method, properties, body = connection.channel().basic_get(queue, auto_ack=True)
        assert method is not None, f"{queue} is empty"
        return properties, body
    finally:
        connection.close()


def test_reply_to_a_missing_queue_is_kept_in_unroutable(
    deployment: Deployment, requester: Requester, sim: SimulatorProcess
) -> None:
    missing = f"e2e.missing.{uuid.uuid4().hex[:10]}"
    unroutable = f"{deployment.request_queue}.unroutable"
    creators = new_creators(1)
    sim.admin.configure(creators={creators[0]: {"duration": 4}})
    body = {"request_id": "lost-1", "kind": "enrichment", "params": {"creator_ids": creators}}
    requester.publish(body, reply_to=missing, correlation_id="corr-lost")

    [held] = held_messages(deployment, unroutable, 1, REPLY_TIMEOUT)
    assert header_text(held.headers.get("x-original-routing-key")) == missing
    assert header_text(held.headers.get("x-unroutable-reason")) == "no_route"
    assert held.properties.message_id == "lost-1:reply"
    assert held.properties.correlation_id == "corr-lost"
    reply = json.loads(held.body)
    assert reply["request_id"] == "lost-1" and reply["status"] == "succeeded", reply
    assert abs(reply["api_calls"] - sim.admin.stats()["calls_total"]) < 0.001

    # Once the queue exists, `dlq replay --unroutable` hands the reply over, exactly once.
    connection = pika.BlockingConnection(pika.URLParameters(deployment.amqp_url))
    try:
        connection.channel().queue_declare(missing, auto_delete=False)
        topology = Topology(request_queue=deployment.request_queue, queue_type=QueueType.CLASSIC)
        report = dlq.replay(connection, topology, unroutable=True)
        assert len(report.replayed) == 1 and report.complete, report
        assert deployment.queue_depth(unroutable) == 0
        assert deployment.queue_depth(missing) == 1
        properties, replayed = take_message(deployment.amqp_url, missing)
        assert json.loads(replayed) == reply
        assert properties.message_id == "lost-1:reply"
        assert properties.correlation_id == "corr-lost"
        assert "x-unroutable-reason" not in (properties.headers or {})
    finally:
        connection.channel().queue_delete(missing)
        connection.close()


# -- result filtering of a shared poll ------------------------------------------------------------


def shared_poll_round(
    requester: Requester,
    sim: SimulatorProcess,
    *,
    kind: str,
    start_route: str,
    params: Callable[[list[str]], dict[str, Any]],
) -> tuple[dict[str, ReceivedReply], dict[str, list[str]]]:
    """Three requests of `kind`; A and B are started in one tick and polled in one call.

    A blocker (Z, detail_level full: a poll group of its own) holds the family's tick in a slowed
    start call while A and B are registered; the next tick then starts both and polls them together.
    Every job is terminal as soon as it exists, so one poll call finishes A and B.
    """
    creators = {name: new_creators(2) for name in ("Z", "A", "B")}
    sim.admin.configure(creators={c: {"duration": 0} for ids in creators.values() for c in ids})
    sim.admin.add_faults({"kind": "slow", "route": start_route, "count": 1, "delay_seconds": 40})
    requester.publish(
        {"request_id": "shared-Z", "kind": kind, "params": params(creators["Z"]), "options": {"detail_level": "full"}}
    )
    wait_until(lambda: calls(sim, start_route) == 1, 15, "the blocker's start call")
    for name in ("A", "B"):
        requester.publish({"request_id": f"shared-{name}", "kind": kind, "params": params(creators[name])})
    replies = {r.body["request_id"]: r for r in requester.collect(3, REPLY_TIMEOUT)}
    assert set(replies) == {"shared-Z", "shared-A", "shared-B"}, replies.keys()
    for reply in replies.values():
        assert reply.body["status"] == "succeeded", reply.body
    return replies, creators


def assert_only_own(reply: ReceivedReply, own: list[str], others: list[str]) -> None:
    text = json.dumps(reply.body["result"])
    for creator in others:
        assert creator not in text, f"{reply.body['request_id']} got another request's creator {creator}"
    assert {e["creator_id"] for e in reply.body["result"]["results_summary"]} == set(own)
    assert reply.body["result"]["selection"]["selected_count"] == len(own)


def test_content_match_shared_poll_is_filtered(requester: Requester, sim: SimulatorProcess) -> None:
    replies, creators = shared_poll_round(
        requester,
        sim,
        kind="content_match",
        start_route=CONTENT_START,
        params=lambda ids: {"creator_ids": ids, "topic_keywords": ["devex"]},
    )
    # Z's start and results calls are its own; A and B (same criteria, waiting behind Z's slow start)
    # share one start call and one results call: each pays half of both.
    assert calls(sim, CONTENT_START) == 2
    assert calls(sim, CONTENT_RESULTS) == 2
    assert replies["shared-A"].body["api_calls"] == replies["shared-B"].body["api_calls"] == 1.0
    assert replies["shared-Z"].body["api_calls"] == 2.0
    for name, other in (("A", "B"), ("B", "A")):
        reply = replies[f"shared-{name}"]
        assert_only_own(reply, creators[name], creators[other] + creators["Z"])
        result = reply.body["result"]
        assert result["requested_count"] == result["found_count"] == 2
        assert result["not_found_ids"] == [] and result["expired_ids"] == []
        own_jobs = {j.split(":", 1)[1] for j in reply.body["job_ids"]}
        assert {e["job_id"].split(":")[-1] for e in result["results_summary"]} == own_jobs
    # Each pays for its own analyses (3 credits each), although A and B shared the start call.
    assert replies["shared-A"].body["credits"] == replies["shared-B"].body["credits"] == 6
    assert not set(replies["shared-A"].body["job_ids"]) & set(replies["shared-B"].body["job_ids"])
    assert "results" in replies["shared-Z"].body["result"]  # detail_level full: its own call
    assert "results" not in replies["shared-A"].body["result"]
    assert sim.admin.stats()["wrong_format_ids"] == 0
    assert_calls_accounted(list(replies.values()), sim)


def test_a_refused_shared_start_is_retried_alone(requester: Requester, sim: SimulatorProcess) -> None:
    """One request's bad creator id makes the API refuse a shared start (400): nothing was started,
    so each request is re-sent on its own call; the bad one gets the API's error, the others their
    results, and no job is started twice."""
    sim.admin.add_faults({"kind": "slow", "route": CONTENT_START, "count": 1, "delay_seconds": 40})

    def params(ids: list[str]) -> dict[str, Any]:
        return {"creator_ids": ids, "topic_keywords": ["devex"]}

    requester.publish({"request_id": "alone-Z", "kind": "content_match", "params": params(new_creators(1))})
    wait_until(lambda: calls(sim, CONTENT_START) == 1, 15, "the blocker's start call")
    requester.publish({"request_id": "alone-A", "kind": "content_match", "params": params(new_creators(2))})
    requester.publish({"request_id": "alone-X", "kind": "content_match", "params": params(["not-a-uuid"])})
    requester.publish({"request_id": "alone-B", "kind": "content_match", "params": params(new_creators(2))})
    replies = {r.body["request_id"]: r for r in requester.collect(4, REPLY_TIMEOUT)}
    assert set(replies) == {"alone-Z", "alone-A", "alone-X", "alone-B"}, replies.keys()
    bad = replies["alone-X"].body
    assert bad["status"] == "error" and bad["job_ids"] == [], bad
    assert (bad["error"]["code"], bad["error"]["http_status"]) == ("VALIDATION_ERROR", 400)
    for name in ("Z", "A", "B"):
        assert replies[f"alone-{name}"].body["status"] == "succeeded", replies[f"alone-{name}"].body
    # Z's call, the refused shared call, then one call each for A, X and B.
    assert calls(sim, CONTENT_START) == 5
    assert sim.admin.stats()["jobs_created"] == 5
    assert bad["api_calls"] == round(1 / 3 + 1, 3)
    assert_calls_accounted(list(replies.values()), sim)


def test_enrichment_shared_poll_is_filtered(requester: Requester, sim: SimulatorProcess) -> None:
    replies, creators = shared_poll_round(
        requester,
        sim,
        kind="enrichment",
        start_route=ENRICH_START,
        params=lambda ids: {"creator_ids": ids},
    )
    # One start call and one results call (merged creator_ids) served A and B.
    assert calls(sim, ENRICH_START) == 2
    assert calls(sim, ENRICH_RESULTS) == 2
    assert replies["shared-A"].body["api_calls"] == replies["shared-B"].body["api_calls"] == 1.0
    for name, other in (("A", "B"), ("B", "A")):
        reply = replies[f"shared-{name}"]
        assert_only_own(reply, creators[name], creators[other] + creators["Z"])
        result = reply.body["result"]
        assert result["creators_requested"] == 2
        assert result["completed"] == 2 and result["pending"] == 0
        assert result["not_found_ids"] == [] and result["expired_ids"] == []
    assert_calls_accounted(list(replies.values()), sim)
