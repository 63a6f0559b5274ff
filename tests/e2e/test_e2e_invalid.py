"""What is never lost, end to end: invalid messages, hostile reply queues, poison messages, replies
the broker refuses and replies too large, each against a real `toksta-worker run` process.

Validation order (contract): size, UTF-8, JSON object, reply queue, request_id, kind, top-level keys,
options, params; the first failure is the one reported.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pika
import pytest

from worker.ops import dlq
from worker.ops.harness import Deployment, WorkerGroup
from worker.ops.requester import ReceivedReply, Requester
from worker.sim.testing import SimulatorProcess

KEYWORDS = ["B2B SaaS", "demand generation", "marketing analytics", "growth", "ABM"]
MAX_REQUEST_BYTES = 4096
TL_START = "POST /v1/creators/thought-leaders"
REPLY_TIMEOUT = 30.0
BODY_LEVEL_PATHS = ("", "$", "body")


# -- helpers --------------------------------------------------------------------------------------


def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def text(value: object) -> str | None:
    if isinstance(value, bytes):
        return value.decode("utf-8")
    return None if value is None else str(value)


def invalid_id(body: bytes) -> str:
    return f"invalid:{hashlib.sha256(body).hexdigest()[:32]}"


def tl_request(request_id: str, sim_seconds: int = 4) -> dict[str, Any]:
    return {
        "request_id": request_id,
        "kind": "thought_leaders",
        "params": {"keywords": [*KEYWORDS, f"sim:duration={sim_seconds}"]},
        "options": {"results_limit": 2},
    }


def encode(doc: object) -> bytes:
    return json.dumps(doc).encode("utf-8")


def oversized() -> bytes:
    """A valid-looking request just over MAX_REQUEST_BYTES."""
    doc = tl_request("big-1")
    doc["params"]["padding"] = "x" * MAX_REQUEST_BYTES
    return encode(doc)


def held_letters(deployment: Deployment, queue: str, count: int, timeout: float) -> list[dlq.DeadLetter]:
    """The messages of a holding queue once it has at least `count`, read without removing any."""
    wait_until(lambda: deployment.queue_depth(queue) >= count, timeout, f"{count} message(s) in {queue}")
    connection = pika.BlockingConnection(pika.URLParameters(deployment.amqp_url))
    try:
        return dlq.list_messages(connection, queue)
    finally:
        connection.close()


def start_group(deployment: Deployment, **env: str) -> WorkerGroup:
    return WorkerGroup(deployment, processes=1, threads=4, env={"MAX_REQUEST_BYTES": str(MAX_REQUEST_BYTES), **env})


@pytest.fixture
def group(deployment: Deployment) -> Iterator[WorkerGroup]:
    """One worker process with a small MAX_REQUEST_BYTES (the limit is a setting)."""
    with start_group(deployment) as worker:
        yield worker


@pytest.fixture
def client(deployment: Deployment, group: WorkerGroup) -> Iterator[Requester]:
    with deployment.requester() as requester:
        yield requester


# -- invalid message, reply queue known -----------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """One invalid message answered on our reply queue."""

    name: str
    body: bytes
    path: str | None  # None: a body-level error
    request_id: str | None = None
    kind: str | None = None
    props: dict[str, Any] = field(default_factory=dict)


def answered_cases() -> list[Case]:
    valid = tl_request("x")
    return [
        Case("too-large", oversized(), None),
        Case("not-utf8", b'{"request_id": "u-1", "kind": "thought_leaders", "params": {"k": "\xff\xfe"}}', None),
        Case("array", encode([tl_request("arr-1")]), None),
        Case("not-json", b'{"request_id": "nj-1", "kind": ', None),
        Case("nan", b'{"request_id": "nan-1", "kind": "thought_leaders", "params": {"count": NaN}}', None),
        # The body's reply_to wins, and is hostile: the answer goes to the (valid) property instead.
        Case(
            "body-reply-to",
            encode(dict(valid, request_id="rt-1", reply_to="amq.gen-abc")),
            "reply_to",
            "rt-1",
            "thought_leaders",
        ),
        Case("no-request-id", encode({"kind": "enrichment", "params": {}}), "request_id", None, "enrichment"),
        # Several faults: the first in the contract's order is the one reported.
        Case("bad-id-first", encode({"request_id": "bad id!", "kind": "nope", "extra": 1}), "request_id", None, None),
        Case("kind-before-keys", encode({"request_id": "k-1", "kind": "nope", "extra": 1}), "kind", "k-1", None),
        Case(
            "keys-before-options",
            encode(dict(valid, request_id="t-1", extra=1, options={"colour": "red"})),
            "extra",
            "t-1",
            "thought_leaders",
        ),
        Case(
            "options-before-params",
            encode(
                {"request_id": "o-1", "kind": "thought_leaders", "params": {"keywords": []}, "options": {"colour": 1}}
            ),
            "options.colour",
            "o-1",
            "thought_leaders",
        ),
        Case(
            "deadline-range",
            encode(dict(valid, request_id="o-2", options={"deadline_seconds": 5})),
            "options.deadline_seconds",
            "o-2",
            "thought_leaders",
        ),
        Case(
            "params",
            encode({"request_id": "p-1", "kind": "thought_leaders", "params": {"keywords": ["one", "two"]}}),
            "params.keywords",
            "p-1",
            "thought_leaders",
        ),
        Case(
            "no-params",
            encode({"request_id": "p-2", "kind": "audience_match"}),
            "params",
            "p-2",
            "audience_match",
        ),
        # No correlation_id property: the AMQP message_id is the reply's correlation.
        Case(
            "message-id-correlation",
            encode({"request_id": "m-1", "kind": "cancel", "params": {}}),
            "params.request_id",
            "m-1",
            "cancel",
            {"message_id": "amqp-message-id-1"},
        ),
    ]


def test_invalid_message_with_reply_queue_is_answered(client: Requester, sim: SimulatorProcess) -> None:
    cases = answered_cases()
    trace = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    for case in cases:
        props = case.props or {"correlation_id": f"corr-{case.name}"}
        client.publish(case.body, headers={"traceparent": trace}, **props)
    replies = client.collect(len(cases), REPLY_TIMEOUT)
    assert len(replies) == len(cases), [r.body for r in replies]
    by_correlation = {r.properties.correlation_id: r for r in replies}
    for case in cases:
        expected_correlation = case.props.get("message_id") or f"corr-{case.name}"
        reply = by_correlation.get(expected_correlation)
        assert reply is not None, f"no answer for {case.name}"
        check_invalid_reply(case, reply)
        assert text(reply.headers.get("traceparent")) == trace
    assert sim.admin.stats()["calls_total"] == 0
    assert client.collect(1, 0.3) == []  # one answer per message


def check_invalid_reply(case: Case, reply: ReceivedReply) -> None:
    body = reply.body
    assert body["status"] == "error", (case.name, body)
    error = body["error"]
    assert error["code"] == "INVALID_REQUEST", (case.name, body)
    assert error["retryable"] is False
    errors = error["details"]["errors"]
    assert isinstance(errors, list) and len(errors) >= 1, (case.name, error)
    first = errors[0]
    assert set(first) == {"path", "message"} and isinstance(first["message"], str) and first["message"]
    if case.path is None:
        assert first["path"] in BODY_LEVEL_PATHS, (case.name, first)
    else:
        assert first["path"] == case.path, (case.name, first)
    assert body["request_id"] == case.request_id, (case.name, body)
    assert body["kind"] == case.kind, (case.name, body)
    assert body["job_ids"] == [] and body["result"] is None and body["api_calls"] == 0
    assert reply.properties.message_id == invalid_id(case.body), case.name
    assert reply.properties.type == "toksta.analysis.reply.v1"
    assert reply.headers.get("x-status") == "error"


# -- invalid message, no usable reply queue -------------------------------------------------------


def dead_letter_cases(request_queue: str) -> list[tuple[str, bytes, dict[str, Any], str]]:
    """(name, body, extra properties, expected x-reject-reason); none has a usable reply queue."""
    no_reply = tl_request("dl-1")
    return [
        ("too-large", oversized(), {}, "too_large"),
        ("not-utf8", b'{"request_id": "dl-2", "x": "\xc3\x28"}', {}, "invalid_json"),
        ("array", encode([no_reply]), {}, "invalid_json"),
        ("no-reply-to", encode(no_reply), {}, "no_reply_to"),
        ("body-reply-to-amq", encode(dict(no_reply, reply_to="amq.gen-xyz")), {}, "invalid_reply_to"),
        ("prop-reply-to-own", encode(no_reply), {"reply_to": request_queue}, "invalid_reply_to"),
    ]


def test_invalid_message_without_reply_queue_is_dead_lettered_unchanged(
    deployment: Deployment, client: Requester, sim: SimulatorProcess
) -> None:
    cases = dead_letter_cases(deployment.request_queue)
    sent: dict[str, tuple[bytes, pika.BasicProperties, str]] = {}
    for index, (name, body, extra, reason) in enumerate(cases):
        props: dict[str, Any] = {
            "message_id": f"dl-msg-{name}",
            "correlation_id": f"dl-corr-{name}",
            "app_id": "e2e-client",
            "type": "some.request",
            "timestamp": 1_700_000_000 + index,
            "headers": {"x-client-header": name},
            "reply_to": None,
            **extra,
        }
        client.publish(body, **props)
        sent[f"dl-msg-{name}"] = (body, pika.BasicProperties(content_type="application/json", **props), reason)

    letters = held_letters(deployment, f"{deployment.request_queue}.dlq", len(cases), REPLY_TIMEOUT)
    assert len(letters) == len(cases)
    for letter in letters:
        body, expected, reason = sent[str(letter.properties.message_id)]
        assert letter.body == body, letter.id
        headers = letter.headers
        assert text(headers["x-reject-reason"]) == reason, (letter.properties.message_id, headers)
        assert text(headers["x-error"]), headers
        assert headers["x-deliveries"] == 1
        assert text(headers["x-client-header"]) == text((expected.headers or {})["x-client-header"])
        for name in ("message_id", "correlation_id", "app_id", "type", "timestamp", "content_type", "reply_to"):
            assert getattr(letter.properties, name) == getattr(expected, name), (name, letter.properties)
        assert letter.properties.delivery_mode == 2
    assert client.collect(1, 0.3) == []
    assert sim.admin.stats()["calls_total"] == 0


# -- hostile reply queues -------------------------------------------------------------------------


def test_hostile_reply_queues_never_receive_anything(
    deployment: Deployment, group: WorkerGroup, client: Requester, sim: SimulatorProcess
) -> None:
    rq = deployment.request_queue
    # RabbitMQ itself refuses a published `amq.rabbitmq.reply-to` property (no direct reply-to
    # consumer on our channel), so that name is tried in the body only; 256 bytes cannot be a property.
    hostile_props = ["amq.gen-e2e", rq, f"{rq}.dlq", f"{rq}.ticks", f"{rq}.unroutable"]
    hostile_bodies = [*hostile_props, "amq.rabbitmq.reply-to", "q" * 256]
    for index, name in enumerate(hostile_props):
        # A valid request with a hostile reply_to property: never processed, never answered.
        client.publish(tl_request(f"h-prop-{index}"), reply_to=name)
    for index, name in enumerate(hostile_bodies):
        # A hostile body reply_to and no property.
        client.publish(dict(tl_request(f"h-body-{index}"), reply_to=name), reply_to=None)
    published = len(hostile_props) + len(hostile_bodies)
    # With a valid property beside a hostile body value, only the property's queue is answered.
    client.publish(dict(tl_request("h-fallback"), reply_to=f"{rq}.dlq"), correlation_id="corr-fallback")
    # A valid request after all of them shows the worker still works (and that it got that far).
    client.publish(tl_request("h-after"), correlation_id="corr-after")

    replies = {r.body["request_id"]: r for r in client.collect(2, REPLY_TIMEOUT)}
    assert set(replies) == {"h-fallback", "h-after"}, replies.keys()
    assert replies["h-fallback"].body["error"]["code"] == "INVALID_REQUEST"
    assert replies["h-fallback"].body["error"]["details"]["errors"][0]["path"] == "reply_to"
    assert replies["h-after"].body["status"] == "succeeded", replies["h-after"].body

    letters = held_letters(deployment, f"{rq}.dlq", published, REPLY_TIMEOUT)
    # Exactly the hostile requests, unchanged; no reply was ever put into `.dlq` or the request queue.
    assert len(letters) == published, [letter.summary() for letter in letters]
    assert all(text(letter.headers.get("x-reject-reason")) == "invalid_reply_to" for letter in letters)
    assert all("x-status" not in letter.headers for letter in letters)
    assert {letter.request_id for letter in letters} == {
        *(f"h-prop-{i}" for i in range(len(hostile_props))),
        *(f"h-body-{i}" for i in range(len(hostile_bodies))),
    }
    assert deployment.queue_depth(f"{rq}.unroutable") == 0
    assert deployment.queue_depth(f"{rq}.ticks.XQ") == 0
    assert deployment.queue_depth(rq) == 0
    assert sim.admin.stats()["calls"].get(TL_START) == 1  # h-after only
    assert group.running


# -- nothing is registered for an invalid message -------------------------------------------------


def test_invalid_message_registers_nothing(deployment: Deployment, client: Requester, sim: SimulatorProcess) -> None:
    # Answered as invalid, then the same request_id as a valid request: no conflict.
    client.publish(
        {"request_id": "reg-1", "kind": "thought_leaders", "params": {"keywords": ["too", "few"]}},
        correlation_id="bad-1",
    )
    first = client.collect(1, REPLY_TIMEOUT)
    assert first and first[0].body["error"]["code"] == "INVALID_REQUEST"
    # Dead-lettered (no reply queue), then the same request_id with one.
    client.publish(tl_request("reg-2"), reply_to=None)
    held_letters(deployment, f"{deployment.request_queue}.dlq", 1, REPLY_TIMEOUT)

    client.publish(tl_request("reg-1"), correlation_id="good-1")
    client.publish(tl_request("reg-2"), correlation_id="good-2")
    replies = {r.body["request_id"]: r for r in client.collect(2, REPLY_TIMEOUT)}
    assert set(replies) == {"reg-1", "reg-2"}
    for request_id, reply in replies.items():
        assert reply.body["status"] == "succeeded", reply.body
        assert reply.properties.message_id == f"{request_id}:reply"
    assert sim.admin.stats()["calls"].get(TL_START) == 2


# -- poison ---------------------------------------------------------------------------------------


def test_poison_message_is_dead_lettered_and_answered(deployment: Deployment, sim: SimulatorProcess) -> None:
    with start_group(deployment, CRASH_REQUEST_IDS="poison-1"), deployment.requester() as client:
        client.publish(tl_request("before-1"))
        poison = encode(tl_request("poison-1"))
        client.publish(poison, correlation_id="corr-poison", message_id="poison-msg")
        client.publish(tl_request("after-1"))
        replies = {r.body["request_id"]: r for r in client.collect(3, REPLY_TIMEOUT)}
        letters = held_letters(deployment, f"{deployment.request_queue}.dlq", 1, REPLY_TIMEOUT)

    assert set(replies) == {"before-1", "poison-1", "after-1"}, replies.keys()
    assert replies["before-1"].body["status"] == "succeeded"
    assert replies["after-1"].body["status"] == "succeeded"
    answer = replies["poison-1"]
    assert answer.body["status"] == "error"
    assert answer.body["error"]["code"] == "POISON_MESSAGE"
    assert answer.body["error"]["retryable"] is False
    assert answer.body["kind"] == "thought_leaders"
    assert answer.properties.message_id == "poison-1:reply"
    assert answer.properties.correlation_id == "corr-poison"

    [letter] = letters
    assert letter.body == poison
    assert letter.properties.message_id == "poison-msg"
    assert text(letter.headers["x-reject-reason"]) == "poison"
    assert letter.headers["x-deliveries"] == 5  # POISON_DELIVERY_LIMIT's default
    assert "injected handler crash for poison-1" in (text(letter.headers["x-error"]) or "")
    assert sim.admin.stats()["calls"].get(TL_START) == 2  # the poison request never started


# -- replies the broker refuses, replies too large ------------------------------------------------


def test_reply_refused_by_the_broker_is_kept_in_unroutable(
    deployment: Deployment, client: Requester, sim: SimulatorProcess
) -> None:
    full = f"e2e.full.{uuid.uuid4().hex[:10]}"
    connection = pika.BlockingConnection(pika.URLParameters(deployment.amqp_url))
    try:
        connection.channel().queue_declare(full, arguments={"x-max-length": 0, "x-overflow": "reject-publish"})
        client.publish(tl_request("nack-1"), reply_to=full, correlation_id="corr-nack")
        [held] = held_letters(deployment, f"{deployment.request_queue}.unroutable", 1, REPLY_TIMEOUT)
    finally:
        connection.channel().queue_delete(full)
        connection.close()
    assert text(held.headers.get("x-unroutable-reason")) == "nacked"
    assert text(held.headers.get("x-original-routing-key")) == full
    assert held.properties.message_id == "nack-1:reply"
    assert held.properties.correlation_id == "corr-nack"
    reply = json.loads(held.body)
    assert reply["status"] == "succeeded"
    assert abs(reply["api_calls"] - sim.admin.stats()["calls_total"]) < 0.001


def test_reply_too_large_is_replaced(deployment: Deployment, sim: SimulatorProcess) -> None:
    with start_group(deployment, MAX_REPLY_BYTES="1500"), deployment.requester() as client:
        client.publish(dict(tl_request("huge-1"), options={"results_limit": 50}), correlation_id="corr-huge")
        replies = client.collect(1, REPLY_TIMEOUT)
    assert replies, "no reply"
    [reply] = replies
    assert reply.body["status"] == "error"
    assert reply.body["error"]["code"] == "REPLY_TOO_LARGE"
    assert reply.body["error"]["retryable"] is False
    assert reply.body["result"] is None
    jobs = [job["id"] for job in sim.admin.jobs()]
    assert reply.body["job_ids"] == jobs and len(jobs) == 1
    assert reply.properties.message_id == "huge-1:reply"
    assert reply.headers.get("x-status") == "error"
    assert len(reply.raw) <= 1500
