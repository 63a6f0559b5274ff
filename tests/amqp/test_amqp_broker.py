"""The dramatiq broker subclass against the real broker: queue types and an in-process worker."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import dramatiq
import pytest
from dramatiq.brokers.rabbitmq import DEAD_MESSAGE_TTL
from dramatiq.middleware import Retries

from worker.amqp.broker import TokstaBroker, make_broker
from worker.amqp.topology import TopologyMismatch
from worker.settings import QueueType, Settings

if TYPE_CHECKING:
    from tests.rabbit_fixtures import Rabbit


@pytest.fixture
def actor_queue(track: Callable[[str], str]) -> str:
    name = f"test.{uuid.uuid4().hex}.requests.ticks"
    for suffix in ("", ".DQ", ".XQ"):
        track(name + suffix)
    return name


def build(amqp_url: str, queue_type: QueueType) -> TokstaBroker:
    settings = Settings(amqp_url=amqp_url, queue_type=queue_type)
    return make_broker(settings, name=f"test-dramatiq-{uuid.uuid4().hex}")


@pytest.fixture
def broker_factory(amqp_url: str) -> Iterator[Callable[[QueueType], TokstaBroker]]:
    brokers: list[TokstaBroker] = []

    def factory(queue_type: QueueType) -> TokstaBroker:
        brokers.append(build(amqp_url, queue_type))
        return brokers[-1]

    yield factory
    for broker in brokers:
        broker.close()


def run_one_message(broker: TokstaBroker, queue_name: str) -> list[int]:
    """Send one message to an actor on `queue_name` and let an in-process dramatiq Worker run it."""
    done = threading.Event()
    seen: list[int] = []

    def handle(value: int) -> None:
        seen.append(value)
        done.set()

    actor = dramatiq.actor(broker=broker, queue_name=queue_name, actor_name=f"handle_{uuid.uuid4().hex}")(handle)
    worker = dramatiq.Worker(broker, worker_threads=1, worker_timeout=100)
    worker.start()
    try:
        actor.send(42)
        assert done.wait(timeout=20), "the actor did not run"
    finally:
        worker.stop()
    return seen


def test_middleware_is_explicit_without_retries_or_prometheus(amqp_url: str) -> None:
    broker = build(amqp_url, QueueType.CLASSIC)
    kinds = {type(m).__name__ for m in broker.middleware}
    assert kinds == {"AgeLimit", "TimeLimit", "ShutdownNotifications", "Callbacks", "Pipelines"}
    assert not any(isinstance(m, Retries) for m in broker.middleware)  # Prometheus: by name above
    assert broker.confirm_delivery is True


def test_quorum_actor_queues_are_quorum_and_process_messages(
    broker_factory: Callable[[QueueType], TokstaBroker], actor_queue: str, rabbit: Rabbit
) -> None:
    broker = broker_factory(QueueType.QUORUM)
    assert run_one_message(broker, actor_queue) == [42]
    for name in (actor_queue, actor_queue + ".DQ"):
        error = rabbit.redeclare_error(
            name,
            {
                "x-dead-letter-exchange": "",
                "x-dead-letter-routing-key": actor_queue + ".XQ",
                "x-queue-type": "classic",
            },
        )
        assert error is not None and "current is 'quorum'" in error
    xq_error = rabbit.redeclare_error(
        actor_queue + ".XQ", {"x-message-ttl": DEAD_MESSAGE_TTL, "x-queue-type": "classic"}
    )
    assert xq_error is not None and "current is 'quorum'" in xq_error


def test_classic_actor_queues_keep_dramatiqs_arguments(
    broker_factory: Callable[[QueueType], TokstaBroker], actor_queue: str, rabbit: Rabbit
) -> None:
    broker = broker_factory(QueueType.CLASSIC)
    assert run_one_message(broker, actor_queue) == [42]
    dramatiq_arguments = {"x-dead-letter-exchange": "", "x-dead-letter-routing-key": actor_queue + ".XQ"}
    assert rabbit.redeclare_error(actor_queue, dramatiq_arguments) is None
    assert rabbit.redeclare_error(actor_queue + ".DQ", dramatiq_arguments) is None
    assert rabbit.redeclare_error(actor_queue + ".XQ", {"x-message-ttl": DEAD_MESSAGE_TTL}) is None
    error = rabbit.redeclare_error(actor_queue, {**dramatiq_arguments, "x-queue-type": "quorum"})
    assert error is not None and "quorum" in error


def test_switching_queue_type_raises_topology_mismatch(
    broker_factory: Callable[[QueueType], TokstaBroker], actor_queue: str
) -> None:
    classic = broker_factory(QueueType.CLASSIC)
    classic.declare_queue(actor_queue, ensure=True)
    quorum = broker_factory(QueueType.QUORUM)
    with pytest.raises(TopologyMismatch) as caught:
        quorum.declare_queue(actor_queue, ensure=True)
    assert caught.value.queue == actor_queue
    assert caught.value.wanted["x-queue-type"] == "quorum"
