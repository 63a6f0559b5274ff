"""Fixtures for `toksta-worker dlq` tests, against the real RabbitMQ (AMQP_URL, default localhost).

Each test gets its own request queue (`test.<uuid>.requests`) with `.dlq` and `.unroutable` declared;
all of them, and every queue registered with `track`, are deleted afterwards.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import pika
import pytest

from tests.rabbit_fixtures import AMQP_URL, amqp_url, conn, rabbit, track  # noqa: F401 (shared fixtures)
from worker.amqp.publisher import Publisher
from worker.amqp.topology import WAIT_DELAYS_MS, Topology
from worker.settings import QueueType


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
