"""RabbitMQ fixtures shared by the AMQP and operator suites (imported into their conftests), all against
the real broker (AMQP_URL, default localhost): the test's own connection, queues deleted afterwards,
and small helpers on that connection.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from typing import Any

import pika
import pika.exceptions
import pytest

AMQP_URL = os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")


@pytest.fixture
def amqp_url() -> str:
    return AMQP_URL


@pytest.fixture
def conn() -> Iterator[pika.BlockingConnection]:
    """A plain connection for the test's own declares, gets and deletes."""
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


class Rabbit:
    """Small helpers on the test's own connection (never the code under test's)."""

    def __init__(self, conn: pika.BlockingConnection) -> None:
        self.conn = conn

    def redeclare_error(self, name: str, arguments: dict[str, Any] | None) -> str | None:
        """Declare `name` on a throwaway channel: None when accepted, else the broker's 406 text."""
        channel = self.conn.channel()
        try:
            channel.queue_declare(queue=name, durable=True, arguments=arguments)
            return None
        except pika.exceptions.ChannelClosedByBroker as exc:
            assert exc.reply_code == 406, exc
            return str(exc.reply_text)
        finally:
            if channel.is_open:
                channel.close()

    def exists(self, name: str) -> bool:
        channel = self.conn.channel()
        try:
            channel.queue_declare(queue=name, passive=True)
            return True
        except pika.exceptions.ChannelClosedByBroker as exc:
            assert exc.reply_code == 404, exc
            return False
        finally:
            if channel.is_open:
                channel.close()

    def publish(self, queue: str, body: bytes, properties: pika.BasicProperties | None = None) -> None:
        """Confirmed publish through the default exchange."""
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

    @staticmethod
    def connections() -> list[tuple[str, str]]:
        """(pid, client properties as text) of every client connection, from rabbitmqctl."""
        result = subprocess.run(
            ["rabbitmqctl", "-q", "--no-table-headers", "list_connections", "pid", "client_properties"],
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        )
        rows = (line.split("\t", 1) for line in result.stdout.splitlines() if line.startswith("<"))
        return [(row[0], row[1] if len(row) > 1 else "") for row in rows]

    @classmethod
    def close_connections(cls, name_part: str) -> int:
        """Close, from the broker's side, every connection whose properties contain `name_part`."""
        closed = 0
        for pid, name in cls.connections():
            if name_part in name:
                subprocess.run(
                    ["rabbitmqctl", "-q", "close_connection", pid, "closed by test"],
                    capture_output=True,
                    check=True,
                    timeout=30,
                )
                closed += 1
        return closed


@pytest.fixture
def rabbit(conn: pika.BlockingConnection) -> Rabbit:
    return Rabbit(conn)
