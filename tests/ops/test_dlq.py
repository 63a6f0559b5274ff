"""dlq list / show / replay / purge round trips against the real broker."""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING

import pika
import pytest

from worker.amqp.publisher import Publisher, PublishOutcome
from worker.amqp.topology import Topology
from worker.ops import dlq

if TYPE_CHECKING:
    from tests.rabbit_fixtures import Rabbit


def body(n: int, kind: str = "thought_leaders") -> bytes:
    return json.dumps({"request_id": f"req-{n}", "kind": kind, "params": {}}).encode()


def original_properties(n: int) -> pika.BasicProperties:
    return pika.BasicProperties(
        content_type="application/json",
        delivery_mode=2,
        reply_to=f"crm.replies.{n}",
        correlation_id=f"corr-{n}",
        message_id=f"msg-{n}",
        user_id="guest",  # the test connection's user, so the broker accepts it back on replay
        expiration="600000",
        headers={"traceparent": f"00-{n:032x}-{n:016x}-01"},
    )


def fill(publisher: Publisher, reasons: list[str]) -> list[bytes]:
    bodies = []
    for n, reason in enumerate(reasons):
        publisher.dead_letter(body(n), original_properties(n), reason=reason, error=f"error {n}", deliveries=n + 1)
        bodies.append(body(n))
    return bodies


def test_list_parses_and_keeps_order(
    conn: pika.BlockingConnection, topology: Topology, publisher: Publisher, rabbit: Rabbit
) -> None:
    bodies = fill(publisher, ["invalid_request", "poison", "no_reply_to", "poison", "too_large"])
    letters = dlq.list_messages(conn, topology.dlq)
    assert [letter.body for letter in letters] == bodies
    first = letters[0]
    assert first.reason == "invalid_request"
    assert first.error == "error 0"
    assert first.deliveries == 1
    assert (first.kind, first.request_id) == ("thought_leaders", "req-0")
    assert first.id == first.headers["x-dlq-id"] and len(first.id) == 32
    assert first.age_seconds is not None and 0 <= first.age_seconds < 60
    assert len({letter.id for letter in letters}) == 5
    # Listing twice changes nothing, and the queue still holds everything in the original order.
    assert [letter.id for letter in dlq.list_messages(conn, topology.dlq)] == [letter.id for letter in letters]
    assert rabbit.bodies(topology.dlq) == bodies


def test_list_filters_by_reason_and_age(
    conn: pika.BlockingConnection, topology: Topology, publisher: Publisher, rabbit: Rabbit
) -> None:
    fill(publisher, ["poison", "invalid_json"])
    old = {"x-dlq-id": "old-one", "x-dead-lettered-at": int(time.time()) - 7200, "x-reject-reason": "poison"}
    rabbit.publish(topology.dlq, b"{}", pika.BasicProperties(headers=old))
    assert [letter.reason for letter in dlq.list_messages(conn, topology.dlq, reason="poison")] == [
        "poison",
        "poison",
    ]
    aged = dlq.list_messages(conn, topology.dlq, older_than=3600)
    assert [letter.id for letter in aged] == ["old-one"]
    assert aged[0].age_seconds is not None and aged[0].age_seconds >= 7200
    assert rabbit.count(topology.dlq) == 3


def test_ids_and_age_fall_back_to_properties_and_body(
    conn: pika.BlockingConnection, topology: Topology, rabbit: Rabbit
) -> None:
    stamp = int(time.time()) - 100
    rabbit.publish(topology.dlq, b"raw-1", pika.BasicProperties(message_id="mid-1", timestamp=stamp))
    rabbit.publish(topology.dlq, b"raw-2")
    by_message_id, by_body = dlq.list_messages(conn, topology.dlq)
    assert by_message_id.id == "mid-1"
    assert (
        by_message_id.dead_lettered_at == stamp
        and by_message_id.age_seconds is not None
        and by_message_id.age_seconds >= 100
    )
    assert by_body.id == hashlib.sha256(b"raw-2").hexdigest()[:16]
    assert by_body.age_seconds is None and by_body.kind is None and by_body.reason is None


def test_show_finds_one_message_and_leaves_the_queue(
    conn: pika.BlockingConnection, topology: Topology, publisher: Publisher, rabbit: Rabbit
) -> None:
    bodies = fill(publisher, ["poison", "invalid_request", "poison"])
    target = dlq.list_messages(conn, topology.dlq)[1]
    shown = dlq.show(conn, topology.dlq, target.id)
    assert shown is not None and shown.body == bodies[1] and shown.reason == "invalid_request"
    assert shown.properties.correlation_id == "corr-1"
    assert dlq.show(conn, topology.dlq, "no-such-id") is None
    assert rabbit.bodies(topology.dlq) == bodies


def test_replay_restores_body_and_properties_and_removes_only_the_replayed(
    conn: pika.BlockingConnection, topology: Topology, publisher: Publisher, rabbit: Rabbit
) -> None:
    bodies = fill(publisher, ["poison", "poison", "invalid_request"])
    letters = dlq.list_messages(conn, topology.dlq)
    report = dlq.replay(conn, topology, ids=[letters[1].id])
    assert report.replayed == [letters[1].id] and report.complete
    [(properties, replayed_body)] = rabbit.drain(topology.request_queue)
    assert replayed_body == bodies[1]
    expected = original_properties(1)
    for name in dlq.PROPERTY_NAMES:
        assert getattr(properties, name) == getattr(expected, name), name
    assert rabbit.bodies(topology.dlq) == [bodies[0], bodies[2]]


def test_replay_all_with_reason(
    conn: pika.BlockingConnection, topology: Topology, publisher: Publisher, rabbit: Rabbit
) -> None:
    bodies = fill(publisher, ["poison", "invalid_request", "poison", "invalid_request"])
    report = dlq.replay(conn, topology, ids=None, reason="poison")
    assert len(report.replayed) == 2 and report.complete
    assert rabbit.bodies(topology.request_queue) == [bodies[0], bodies[2]]
    assert rabbit.bodies(topology.dlq) == [bodies[1], bodies[3]]


def test_replay_reports_unknown_ids(conn: pika.BlockingConnection, topology: Topology, publisher: Publisher) -> None:
    fill(publisher, ["poison"])
    report = dlq.replay(conn, topology, ids=["nope"])
    assert report.not_found == ["nope"] and not report.replayed and not report.complete


def test_replay_acks_only_after_the_confirm(
    conn: pika.BlockingConnection, amqp_url: str, topology: Topology, rabbit: Rabbit, track: Callable[[str], str]
) -> None:
    """A request queue that nacks every publish: nothing may leave the dlq, and its order stays."""
    refusing = Topology(request_queue=f"test.{uuid.uuid4().hex}.full", queue_type=topology.queue_type)
    for name in (refusing.request_queue, refusing.dlq, refusing.unroutable):
        track(name)
    conn.channel().queue_declare(
        queue=refusing.request_queue,
        durable=True,
        arguments={"x-max-length": 0, "x-overflow": "reject-publish"},
    )
    refusing.declare_holding_queues(conn.channel())
    publisher = Publisher(amqp_url, refusing, name="test-dlq-refusing")
    try:
        bodies = fill(publisher, ["poison", "poison", "poison"])
    finally:
        publisher.close()
    report = dlq.replay(conn, refusing, ids=None)
    assert report.replayed == [] and len(report.skipped) == 3
    assert all("nacked" in why for _id, why in report.skipped)
    assert rabbit.bodies(refusing.dlq) == bodies


def test_replay_refused_user_id_stays_in_the_dlq(
    conn: pika.BlockingConnection, topology: Topology, publisher: Publisher, rabbit: Rabbit
) -> None:
    properties = original_properties(0)
    properties.user_id = "alice"  # not the replaying connection's user: the broker refuses it
    publisher.dead_letter(body(0), properties, reason="poison", error="x", deliveries=5)
    fill(publisher, ["poison"])
    report = dlq.replay(conn, topology, ids=None)
    assert len(report.replayed) == 1 and len(report.skipped) == 1
    assert "alice" in report.skipped[0][1]
    [(kept, _body)] = rabbit.drain(topology.dlq)
    assert kept.headers["x-original-user-id"] == "alice"
    assert rabbit.bodies(topology.request_queue) == [body(0)]  # the second one, replayed as guest


def test_unroutable_reply_is_replayed_once_its_queue_exists(
    conn: pika.BlockingConnection, topology: Topology, publisher: Publisher, rabbit: Rabbit, track: Callable[[str], str]
) -> None:
    reply_queue = track(f"test.{uuid.uuid4().hex}.late-replies")
    reply = json.dumps({"request_id": "r-1", "kind": "enrichment", "status": "succeeded"}).encode()
    props = pika.BasicProperties(
        content_type="application/json",
        message_id="r-1:reply",
        correlation_id="c-1",
        headers={"x-status": "succeeded"},
    )
    assert publisher.publish_reply(reply_queue, reply, props) is PublishOutcome.NO_ROUTE
    [letter] = dlq.list_messages(conn, topology.unroutable)
    assert (letter.reason, letter.original_routing_key, letter.kind) == (
        "no_route",
        reply_queue,
        "enrichment",
    )

    report = dlq.replay(conn, topology, unroutable=True, ids=[letter.id])
    assert report.replayed == [] and "does not exist" in report.skipped[0][1]
    assert rabbit.count(topology.unroutable) == 1

    conn.channel().queue_declare(queue=reply_queue, durable=True)
    report = dlq.replay(conn, topology, unroutable=True, ids=[letter.id])
    assert report.replayed == [letter.id]
    [(properties, replayed)] = rabbit.drain(reply_queue)
    assert replayed == reply
    assert properties.headers == {"x-status": "succeeded"}
    assert (properties.message_id, properties.correlation_id, properties.delivery_mode) == (
        "r-1:reply",
        "c-1",
        2,
    )
    assert rabbit.count(topology.unroutable) == 0


def test_purge_with_reason_keeps_the_rest_in_order(
    conn: pika.BlockingConnection, topology: Topology, publisher: Publisher, rabbit: Rabbit
) -> None:
    bodies = fill(publisher, ["poison", "invalid_json", "poison", "too_large"])
    assert dlq.purge(conn, topology.dlq, reason="poison") == 2
    assert rabbit.bodies(topology.dlq) == [bodies[1], bodies[3]]


def test_purge_all(conn: pika.BlockingConnection, topology: Topology, publisher: Publisher, rabbit: Rabbit) -> None:
    fill(publisher, ["poison", "invalid_json"])
    assert dlq.purge(conn, topology.dlq) == 2
    assert rabbit.count(topology.dlq) == 0


def test_missing_queue_is_an_explicit_error(conn: pika.BlockingConnection) -> None:
    with pytest.raises(dlq.DlqError, match="does not exist"):
        dlq.list_messages(conn, f"test.{uuid.uuid4().hex}.dlq")
