"""Topology against the real broker: idempotent declares, queue types, mismatches, names."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import pika
import pytest

from worker.amqp.topology import WAIT_DELAYS_MS, Topology, TopologyMismatch
from worker.settings import QueueType

if TYPE_CHECKING:
    from tests.rabbit_fixtures import Rabbit


def test_names_are_derived_from_the_request_queue() -> None:
    topology = Topology(request_queue="toksta.requests", queue_type=QueueType.CLASSIC)
    assert topology.dlq == "toksta.requests.dlq"
    assert topology.unroutable == "toksta.requests.unroutable"
    assert topology.ticks == "toksta.requests.ticks"
    assert topology.wait_queue(200) == "toksta.requests.wait.200ms"


@pytest.mark.parametrize(
    ("delay", "expected_ms"),
    [
        (0.0, 50),
        (0.01, 50),
        (0.05, 50),
        (0.199, 50),
        (0.2, 200),
        (0.9, 200),
        (1.0, 1000),
        (4.99, 1000),
        (5, 5000),
        (3600, 5000),
    ],
)
def test_pick_wait_queue_takes_the_largest_that_fits(delay: float, expected_ms: int) -> None:
    topology = Topology(request_queue="rq", queue_type=QueueType.CLASSIC)
    assert topology.pick_wait_queue(delay) == (f"rq.wait.{expected_ms}ms", expected_ms / 1000)


def test_reserved_names() -> None:
    topology = Topology(request_queue="toksta.requests", queue_type=QueueType.CLASSIC)
    assert topology.is_reserved("toksta.requests")
    assert topology.is_reserved("toksta.requests.dlq")
    assert topology.is_reserved("toksta.requests.anything")
    assert not topology.is_reserved("toksta.requestsX")
    assert not topology.is_reserved("toksta.request")
    assert not topology.is_reserved("crm.toksta.replies")


def test_request_queue_arguments_name_the_type() -> None:
    assert Topology("rq", QueueType.QUORUM).request_queue_arguments() == {"x-queue-type": "quorum"}
    assert Topology("rq", QueueType.CLASSIC).request_queue_arguments() == {"x-queue-type": "classic"}


def test_classic_declare_is_idempotent(conn: pika.BlockingConnection, topology: Topology, rabbit: Rabbit) -> None:
    channel = conn.channel()
    topology.declare(channel)
    topology.declare(channel)  # twice on the same channel: no PRECONDITION_FAILED
    assert channel.is_open
    # Classic: equivalent to a declare without arguments, and a quorum redeclare is refused.
    assert rabbit.redeclare_error(topology.request_queue, None) is None
    error = rabbit.redeclare_error(topology.request_queue, {"x-queue-type": "quorum"})
    assert error is not None and "quorum" in error
    for name in (topology.dlq, topology.unroutable):
        assert rabbit.redeclare_error(name, {"x-queue-type": "classic"}) is None
    for delay in WAIT_DELAYS_MS:
        assert rabbit.redeclare_error(topology.wait_queue(delay), topology.wait_queue_arguments(delay)) is None
        error = rabbit.redeclare_error(topology.wait_queue(delay), {"x-message-ttl": delay + 1})
        assert error is not None and "x-message-ttl" in error


def test_quorum_declare_is_idempotent_and_keeps_holding_queues_classic(
    conn: pika.BlockingConnection, request_queue: str, rabbit: Rabbit
) -> None:
    topology = Topology(request_queue=request_queue, queue_type=QueueType.QUORUM)
    topology.declare(conn.channel())
    topology.declare(conn.channel())
    error = rabbit.redeclare_error(request_queue, {"x-queue-type": "classic"})
    assert error is not None and "quorum" in error
    for delay in WAIT_DELAYS_MS:
        arguments = topology.wait_queue_arguments(delay)
        assert rabbit.redeclare_error(topology.wait_queue(delay), arguments) is None
        error = rabbit.redeclare_error(topology.wait_queue(delay), {**arguments, "x-queue-type": "classic"})
        assert error is not None and "x-queue-type" in error and "quorum" in error
    for name in (topology.dlq, topology.unroutable):
        assert rabbit.redeclare_error(name, None) is None  # classic
        error = rabbit.redeclare_error(name, {"x-queue-type": "quorum"})
        assert error is not None and "quorum" in error


def test_a_classic_queue_declared_without_arguments_is_accepted(
    conn: pika.BlockingConnection, topology: Topology
) -> None:
    conn.channel().queue_declare(queue=topology.request_queue, durable=True)  # as an older version did
    channel = conn.channel()
    topology.declare(channel)
    assert channel.is_open


def test_mismatch_names_the_queue_and_the_fix(conn: pika.BlockingConnection, topology: Topology) -> None:
    topology.declare(conn.channel())  # classic
    quorum = Topology(request_queue=topology.request_queue, queue_type=QueueType.QUORUM)
    with pytest.raises(TopologyMismatch) as caught:
        quorum.declare(conn.channel())
    error = caught.value
    assert error.queue == topology.request_queue
    assert error.wanted == {"x-queue-type": "quorum"}
    text = str(error)
    assert topology.request_queue in text
    assert "x-queue-type" in text and "quorum" in text
    assert "delete" in text and "migrate" in text


@pytest.mark.parametrize("queue_type", [QueueType.CLASSIC, QueueType.QUORUM])
def test_wait_queue_dead_letters_into_the_ticks_queue(
    conn: pika.BlockingConnection,
    request_queue: str,
    queue_type: QueueType,
    rabbit: Rabbit,
    wait_until: Callable[..., None],
) -> None:
    topology = Topology(request_queue=request_queue, queue_type=queue_type)
    topology.declare(conn.channel())
    conn.channel().queue_declare(queue=topology.ticks, durable=True)  # stands in for dramatiq's declare
    rabbit.publish(topology.wait_queue(50), b"tick", pika.BasicProperties(delivery_mode=2))
    wait_until(lambda: rabbit.count(topology.ticks) == 1)
    [(_properties, body)] = rabbit.drain(topology.ticks)
    assert body == b"tick"
    assert rabbit.count(topology.wait_queue(50)) == 0
