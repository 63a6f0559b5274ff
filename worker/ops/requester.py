"""A small client of the wire contract: publish requests and collect their replies.

Used by `toksta-worker submit`, the demo and the end-to-end tests, the way another team's
service would: plain JSON, AMQP properties, a named reply queue (server-named `amq.gen-*` queues
are not valid reply queues), publisher confirms and `mandatory`.
"""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pika
import pika.exceptions

from worker.amqp.connection import open_connection


@dataclass
class ReceivedReply:
    body: dict[str, Any]
    properties: pika.BasicProperties
    raw: bytes = field(repr=False)

    @property
    def headers(self) -> dict[str, Any]:
        return dict(self.properties.headers or {})


class Requester:
    """Publishes to the request queue and reads one reply queue of its own."""

    def __init__(
        self,
        amqp_url: str,
        request_queue: str,
        *,
        reply_queue: str | None = None,
        durable_reply_queue: bool = False,
    ) -> None:
        self.request_queue = request_queue
        self.reply_queue = reply_queue or f"toksta.client.{uuid.uuid4().hex[:12]}"
        self._connection = open_connection(amqp_url, name="toksta-requester")
        self._channel = self._connection.channel()
        self._channel.confirm_delivery()
        self._channel.queue_declare(self.reply_queue, durable=durable_reply_queue, auto_delete=not durable_reply_queue)
        self.replies: list[ReceivedReply] = []

    def wait_for_worker(self, timeout: float, alive: Callable[[], bool] = lambda: True) -> None:
        """Wait until the request queue exists and a worker consumes it (clients never declare it)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not alive():
                raise RuntimeError("the worker exited before consuming the request queue")
            channel = self._connection.channel()
            try:
                ok = channel.queue_declare(self.request_queue, passive=True)
                if ok.method.consumer_count > 0:
                    channel.close()
                    return
                channel.close()
            except pika.exceptions.ChannelClosedByBroker:
                pass  # not declared yet
            self._connection.process_data_events(time_limit=0.2)
        raise TimeoutError(f"no worker consumes {self.request_queue} after {timeout} s")

    def publish(self, body: dict[str, Any] | bytes, **props: Any) -> None:
        """Publish one request (a dict is JSON-encoded); `reply_to` defaults to our reply queue."""
        data = body if isinstance(body, bytes) else json.dumps(body).encode("utf-8")
        props.setdefault("reply_to", self.reply_queue)
        props.setdefault("content_type", "application/json")
        props.setdefault("delivery_mode", 2)
        if props["reply_to"] is None:
            del props["reply_to"]
        self._channel.basic_publish("", self.request_queue, data, pika.BasicProperties(**props), mandatory=True)

    def collect(self, count: int, timeout: float, queue: str | None = None) -> list[ReceivedReply]:
        """Wait (with a deadline) until `count` replies arrived on `queue`; returns all received so far."""
        target = queue or self.reply_queue
        deadline = time.monotonic() + timeout
        got: list[ReceivedReply] = []
        while len(got) < count and time.monotonic() < deadline:
            method, properties, raw = self._channel.basic_get(target, auto_ack=True)
            if method is None:
                self._connection.process_data_events(time_limit=0.05)
                continue
            got.append(ReceivedReply(json.loads(raw), properties, raw))
        self.replies.extend(got)
        return got

    def wait_for(self, request_id: str, timeout: float) -> ReceivedReply | None:
        """The first reply for `request_id` (other replies are kept in `.replies`)."""
        for reply in self.replies:
            if reply.body.get("request_id") == request_id:
                return reply
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for reply in self.collect(1, max(0.0, deadline - time.monotonic())):
                if reply.body.get("request_id") == request_id:
                    return reply
        return None

    def declare_queue(self, name: str) -> None:
        self._channel.queue_declare(name, durable=False, auto_delete=False)

    def delete_queue(self, name: str) -> None:
        self._channel.queue_delete(name)

    def close(self) -> None:
        with contextlib.suppress(pika.exceptions.AMQPError):
            self._channel.queue_delete(self.reply_queue)
        if self._connection.is_open:
            self._connection.close()

    def __enter__(self) -> Requester:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
