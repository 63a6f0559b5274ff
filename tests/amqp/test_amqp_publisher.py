"""Publisher against the real broker: confirms, unroutable replies, dead letters, reconnects."""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import pika
import pytest

from worker.amqp.publisher import Publisher, PublishFailed, PublishOutcome, Unroutable
from worker.amqp.topology import Topology

if TYPE_CHECKING:
    from tests.rabbit_fixtures import Rabbit

REPLY_PROPS = {
    "content_type": "application/json",
    "correlation_id": "corr-1",
    "message_id": "order-1:reply",
    "type": "toksta.analysis.reply.v1",
}


@pytest.fixture
def declared(conn: pika.BlockingConnection, topology: Topology) -> Topology:
    topology.declare(conn.channel())
    return topology


@pytest.fixture
def publisher(amqp_url: str, declared: Topology) -> Iterator[Publisher]:
    pub = Publisher(amqp_url, declared, name=f"test-publisher-{uuid.uuid4().hex}")
    yield pub
    pub.close()


@pytest.fixture
def reply_queue(conn: pika.BlockingConnection, track: Callable[[str], str]) -> str:
    name = track(f"test.{uuid.uuid4().hex}.replies")
    conn.channel().queue_declare(queue=name, durable=True)
    return name


def reply_properties() -> pika.BasicProperties:
    return pika.BasicProperties(headers={"x-status": "succeeded"}, **REPLY_PROPS)


def test_reply_is_delivered_persistent(publisher: Publisher, reply_queue: str, rabbit: Rabbit) -> None:
    outcome = publisher.publish_reply(reply_queue, b'{"status":"succeeded"}', reply_properties())
    assert outcome is PublishOutcome.DELIVERED
    [(properties, body)] = rabbit.drain(reply_queue)
    assert body == b'{"status":"succeeded"}'
    assert properties.delivery_mode == 2
    assert properties.headers == {"x-status": "succeeded"}
    for key, value in REPLY_PROPS.items():
        assert getattr(properties, key) == value


def test_reply_to_a_missing_queue_is_kept_in_unroutable(
    publisher: Publisher, declared: Topology, rabbit: Rabbit
) -> None:
    missing = f"test.{uuid.uuid4().hex}.nobody"
    before = int(time.time())
    outcome = publisher.publish_reply(missing, b'{"r":1}', reply_properties())
    assert outcome is PublishOutcome.NO_ROUTE
    [(properties, body)] = rabbit.drain(declared.unroutable)
    assert body == b'{"r":1}'
    headers = properties.headers
    assert headers["x-original-routing-key"] == missing
    assert headers["x-unroutable-reason"] == "no_route"
    assert headers["x-status"] == "succeeded"
    assert len(headers["x-dlq-id"]) == 32 and int(headers["x-dlq-id"], 16) >= 0
    assert isinstance(headers["x-dead-lettered-at"], int)
    assert before <= headers["x-dead-lettered-at"] <= int(time.time())
    assert properties.message_id == "order-1:reply" and properties.delivery_mode == 2


def test_reply_nacked_by_the_broker_is_kept_in_unroutable(
    publisher: Publisher,
    declared: Topology,
    conn: pika.BlockingConnection,
    track: Callable[[str], str],
    rabbit: Rabbit,
) -> None:
    full = track(f"test.{uuid.uuid4().hex}.full")
    conn.channel().queue_declare(queue=full, arguments={"x-max-length": 0, "x-overflow": "reject-publish"})
    assert publisher.publish_reply(full, b"{}", reply_properties()) is PublishOutcome.NACKED
    [(properties, _body)] = rabbit.drain(declared.unroutable)
    assert properties.headers["x-unroutable-reason"] == "nacked"
    assert properties.headers["x-original-routing-key"] == full


def test_publish_raises_unroutable_for_a_missing_queue(publisher: Publisher) -> None:
    with pytest.raises(Unroutable) as caught:
        publisher.publish(f"test.{uuid.uuid4().hex}.nobody", b"x", pika.BasicProperties())
    assert caught.value.reason == "no_route"


def test_dead_letter_adds_headers_and_keeps_body_and_properties(
    publisher: Publisher, declared: Topology, rabbit: Rabbit
) -> None:
    original = pika.BasicProperties(
        content_type="application/json",
        reply_to="crm.replies",
        correlation_id="c-9",
        message_id="m-9",
        user_id="alice",  # RabbitMQ would refuse it from the worker's user: moved to a header
        expiration="60000",  # would expire in .dlq: moved to a header
        headers={"traceparent": "00-abc-def-01"},
    )
    publisher.dead_letter(b"not json", original, reason="invalid_json", error="E" * 5000, deliveries=3)
    [(properties, body)] = rabbit.drain(declared.dlq)
    assert body == b"not json"
    headers = properties.headers
    assert headers["x-reject-reason"] == "invalid_json"
    assert headers["x-error"] == "E" * 1000
    assert headers["x-deliveries"] == 3
    assert len(headers["x-dlq-id"]) == 32
    assert isinstance(headers["x-dead-lettered-at"], int)
    assert headers["traceparent"] == "00-abc-def-01"
    assert headers["x-original-user-id"] == "alice" and properties.user_id is None
    assert headers["x-original-expiration"] == "60000" and properties.expiration is None
    assert (properties.reply_to, properties.correlation_id, properties.message_id) == (
        "crm.replies",
        "c-9",
        "m-9",
    )
    assert properties.delivery_mode == 2
    assert original.headers == {"traceparent": "00-abc-def-01"}  # the caller's object is untouched


def test_missing_dlq_is_declared_on_demand(
    publisher: Publisher, declared: Topology, conn: pika.BlockingConnection, rabbit: Rabbit
) -> None:
    conn.channel().queue_delete(queue=declared.dlq)
    publisher.dead_letter(b"{}", pika.BasicProperties(), reason="poison", error="boom", deliveries=5)
    assert rabbit.count(declared.dlq) == 1
    assert rabbit.redeclare_error(declared.dlq, {"x-queue-type": "classic"}) is None


def test_refused_message_raises_and_the_publisher_recovers(
    publisher: Publisher, reply_queue: str, rabbit: Rabbit
) -> None:
    with pytest.raises(PublishFailed) as caught:
        publisher.publish(reply_queue, b"x", pika.BasicProperties(user_id="somebody-else"))
    assert "406" in str(caught.value)
    publisher.publish(reply_queue, b"y", pika.BasicProperties())
    assert [body for _p, body in rabbit.drain(reply_queue)] == [b"y"]


def test_reconnects_after_its_connection_was_closed(publisher: Publisher, reply_queue: str, rabbit: Rabbit) -> None:
    publisher.publish(reply_queue, b"1", pika.BasicProperties())
    first = publisher._connection  # the internal connection, closed under the publisher on purpose
    assert first is not None
    first.close()
    publisher.publish(reply_queue, b"2", pika.BasicProperties())
    assert publisher._connection is not first
    assert [body for _p, body in rabbit.drain(reply_queue)] == [b"1", b"2"]


def test_reconnects_after_the_broker_closed_its_connection(
    amqp_url: str, declared: Topology, reply_queue: str, rabbit: Rabbit
) -> None:
    name = f"test-killed-{uuid.uuid4().hex}"
    publisher = Publisher(amqp_url, declared, name=name)
    try:
        publisher.publish(reply_queue, b"1", pika.BasicProperties())
        first = publisher._connection
        assert rabbit.close_connections(name) == 1  # CONNECTION_FORCED, as an operator would
        publisher.publish(reply_queue, b"2", pika.BasicProperties())
        assert publisher._connection is not first
        assert [body for _p, body in rabbit.drain(reply_queue)] == [b"1", b"2"]
    finally:
        publisher.close()


def test_survives_missed_heartbeats_while_busy(
    amqp_url: str, declared: Topology, reply_queue: str, rabbit: Rabbit, wait_until: Callable[..., None]
) -> None:
    name = f"test-heartbeat-{uuid.uuid4().hex}"
    publisher = Publisher(amqp_url, declared, name=name, heartbeat=1)
    try:
        publisher.publish(reply_queue, b"1", pika.BasicProperties())
        first = publisher._connection
        # The thread is "busy elsewhere" (not servicing the connection) until the broker gives up on it.
        wait_until(lambda: not any(name in n for _pid, n in rabbit.connections()), timeout=30, interval=0.5)
        assert publisher.publish_reply(reply_queue, b"2", pika.BasicProperties()) is PublishOutcome.DELIVERED
        assert publisher._connection is not first
        assert [body for _p, body in rabbit.drain(reply_queue)] == [b"1", b"2"]
    finally:
        publisher.close()


def test_process_events_keeps_an_idle_connection(publisher: Publisher, reply_queue: str) -> None:
    publisher.publish(reply_queue, b"1", pika.BasicProperties())
    connection = publisher._connection
    publisher.process_events()
    assert publisher._connection is connection and connection is not None and connection.is_open


def test_is_confined_to_its_thread(publisher: Publisher, reply_queue: str) -> None:
    publisher.publish(reply_queue, b"1", pika.BasicProperties())
    errors: list[BaseException] = []

    def elsewhere() -> None:
        try:
            publisher.publish(reply_queue, b"2", pika.BasicProperties())
        except RuntimeError as exc:
            errors.append(exc)

    thread = threading.Thread(target=elsewhere)
    thread.start()
    thread.join(timeout=10)
    assert len(errors) == 1 and "thread" in str(errors[0])


def test_a_forked_child_opens_its_own_connection(publisher: Publisher, reply_queue: str, rabbit: Rabbit) -> None:
    publisher.publish(reply_queue, b"parent-1", pika.BasicProperties())
    pid = os.fork()
    if pid == 0:  # child: must not touch the parent's socket
        code = 1
        try:
            publisher.publish(reply_queue, b"child", pika.BasicProperties())
            code = 0
        finally:
            os._exit(code)
    _pid, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    publisher.publish(reply_queue, b"parent-2", pika.BasicProperties())  # the parent's connection still works
    assert sorted(body for _p, body in rabbit.drain(reply_queue)) == [b"child", b"parent-1", b"parent-2"]
