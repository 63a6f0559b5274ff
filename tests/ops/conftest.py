"""Fixtures for `toksta-worker dlq` tests, against the real RabbitMQ (AMQP_URL, default localhost).

Each test gets its own request queue (`test.<uuid>.requests`) with `.dlq` and `.unroutable` declared;
all of them, and every queue registered with `track`, are deleted afterwards.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator

import pika
import pytest

from worker.amqp.publisher import Publisher
from worker.amqp.topology import WAIT_DELAYS_MS, Topology
from worker.settings import QueueType

AMQP_URL = os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")


@pytest.fixture
def amqp_url() -> str:
    return AMQP_URL


@pytest.fixture
def conn() -> Iterator[pika.BlockingConnection]:
    connection = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
    yield connection
    if connection.is_open:
        connection.close()


@pytest.fixture
def track() -> Iterator[Callable[[str], str]]:
    """`track(name)` registers a queue for deletion at the end of the test."""
    names: list[str] = []

    def register(name: str) -> str:
        names.append(name)
        return name

    yield register
    connection = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
    try:
        channel = connection.channel()
        for name in names:
            channel.queue_delete(queue=name)
    finally:
        connection.close()


@pytest.fixture
def topology(conn: pika.BlockingConnection, track: Callable[[str], str]) -> Topology:
    """A declared classic topology under a unique request queue name."""
    topology = Topology(request_queue=f"test.{uuid.uuid4().hex}.requests", queue_type=QueueType.CLASSIC)
    for name in (topology.request_queue, topology.dlq, topology.unroutable):
        track(name)
    for delay in WAIT_DELAYS_MS:
        track(topology.wait_queue(delay))
    topology.declare(conn.channel())
    return topology


@pytest.fixture
def publisher(topology: Topology) -> Iterator[Publisher]:
    pub = Publisher(AMQP_URL, topology, name="test-dlq-publisher")
    yield pub
    pub.close()


class Rabbit:
    """Small helpers on the test's own connection."""

    def __init__(self, conn: pika.BlockingConnection) -> None:
        self.conn = conn

    def publish(self, queue: str, body: bytes, properties: pika.BasicProperties | None = None) -> None:
        channel = self.conn.channel()
        channel.confirm_delivery()
        channel.basic_publish("", queue, body, properties or pika.BasicProperties(), mandatory=True)
        channel.close()

    def drain(self, queue: str) -> list[tuple[pika.BasicProperties, bytes]]:
        """Take (and ack) every message of `queue`, in order."""
        channel = self.conn.channel()
        messages = []
        while True:
            method, properties, body = channel.basic_get(queue=queue, auto_ack=True)
            if method is None:
                break
            messages.append((properties, body))
        channel.close()
        return messages

    def bodies(self, queue: str) -> list[bytes]:
        return [body for _properties, body in self.drain(queue)]

    def count(self, queue: str) -> int:
        channel = self.conn.channel()
        try:
            return int(channel.queue_declare(queue=queue, passive=True).method.message_count)
        finally:
            channel.close()


@pytest.fixture
def rabbit(conn: pika.BlockingConnection) -> Rabbit:
    return Rabbit(conn)
