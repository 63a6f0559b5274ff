"""Publishing with publisher confirms: replies, dead letters, unroutable replies.

One `Publisher` per thread (pika's BlockingConnection is not thread-safe): it owns one connection,
opened lazily, and one channel in confirm mode. Every publish goes through the default exchange and
waits for the broker's confirm, so "returned" means the message is in a queue.

A thread that holds the connection may be busy elsewhere longer than the heartbeat allows; the broker
then closes the connection. Rather than a heartbeat thread (BlockingConnection forbids one), each
publish after an idle second first services the connection (`process_data_events(0)`), which
surfaces such a close, and a connection lost before or during a publish is re-opened and the publish
retried once. That retry can duplicate a message whose confirm was lost: delivery is at least once,
and consumers drop duplicates by `message_id`. After `os.fork` the child forgets the parent's
connection (never closing it: the socket is shared) and opens its own.
"""

from __future__ import annotations

import contextlib
import copy
import os
import threading
import time
import uuid
from enum import StrEnum
from typing import Any

import pika
import pika.exceptions
from pika.adapters.blocking_connection import BlockingChannel

from worker.amqp.connection import AmqpError, AmqpUnavailable, open_connection
from worker.amqp.topology import Topology

PERSISTENT = 2
# A connection idle for longer is serviced before a publish (see `_ready_channel`).
SERVICE_AFTER_IDLE_SECONDS = 1.0
MAX_ERROR_CHARS = 1000

# Headers this package adds; `dlq replay` removes exactly these before republishing.
H_REJECT_REASON = "x-reject-reason"
H_ERROR = "x-error"
H_DELIVERIES = "x-deliveries"
H_DLQ_ID = "x-dlq-id"
H_DEAD_LETTERED_AT = "x-dead-lettered-at"
H_ORIGINAL_ROUTING_KEY = "x-original-routing-key"
H_UNROUTABLE_REASON = "x-unroutable-reason"
# Properties a dead letter cannot keep (see `dead_letter`), saved in headers and restored on replay.
H_ORIGINAL_USER_ID = "x-original-user-id"
H_ORIGINAL_EXPIRATION = "x-original-expiration"
OUR_HEADERS = frozenset(
    {
        H_REJECT_REASON,
        H_ERROR,
        H_DELIVERIES,
        H_DLQ_ID,
        H_DEAD_LETTERED_AT,
        H_ORIGINAL_ROUTING_KEY,
        H_UNROUTABLE_REASON,
        H_ORIGINAL_USER_ID,
        H_ORIGINAL_EXPIRATION,
    }
)

# Errors after which the connection is unusable: reconnect and retry once.
_CONNECTION_LOST: tuple[type[Exception], ...] = (
    pika.exceptions.AMQPConnectionError,
    pika.exceptions.ChannelWrongStateError,
    pika.exceptions.ChannelClosedByClient,
    AmqpUnavailable,
)


class PublishOutcome(StrEnum):
    """Where a reply went. The two refusals are kept in `<request queue>.unroutable`, their value
    being its `x-unroutable-reason` (and the unroutable metric's `reason`)."""

    DELIVERED = "delivered"
    NO_ROUTE = "no_route"  # returned: no such reply queue
    NACKED = "nacked"  # the reply queue refused it (e.g. full, with `x-overflow: reject-publish`)


class PublishFailed(AmqpError):
    """The broker did not confirm the message (it may or may not hold it: publish again)."""


class Unroutable(AmqpError):
    """The broker returned (`no_route`) or nacked (`nacked`) a mandatory, confirmed publish."""

    def __init__(self, routing_key: str, reason: str) -> None:
        self.routing_key = routing_key
        self.reason = reason
        super().__init__(f"message to {routing_key!r} not accepted: {reason}")


def persistent_copy(properties: pika.BasicProperties) -> pika.BasicProperties:
    """A copy of `properties` with `delivery_mode` 2 (the input is untouched)."""
    result = copy.copy(properties)
    result.delivery_mode = PERSISTENT
    return result


def with_headers(properties: pika.BasicProperties, extra: dict[str, Any]) -> pika.BasicProperties:
    """A persistent copy of `properties` with `extra` merged into its headers (the input is untouched)."""
    result = persistent_copy(properties)
    result.headers = {**(properties.headers or {}), **extra}
    return result


def held_properties(properties: pika.BasicProperties, headers: dict[str, Any]) -> pika.BasicProperties:
    """Properties for `.dlq` / `.unroutable`: persistent, our headers added, and two properties moved
    to headers: `user_id` (RabbitMQ accepts it only from a connection of that user) and `expiration`
    (the message would expire in the holding queue). `dlq replay` restores both."""
    extra = dict(headers)
    if properties.user_id is not None:
        extra[H_ORIGINAL_USER_ID] = properties.user_id
    if properties.expiration is not None:
        extra[H_ORIGINAL_EXPIRATION] = properties.expiration
    held = with_headers(properties, extra)
    held.user_id = None
    held.expiration = None
    return held


def dead_letter_stamp() -> dict[str, Any]:
    """The id and time every dead letter carries (`dlq list` shows them)."""
    return {H_DLQ_ID: uuid.uuid4().hex, H_DEAD_LETTERED_AT: int(time.time())}


class Publisher:
    """Confirmed publishing on one connection, for the thread that first uses it."""

    def __init__(self, amqp_url: str, topology: Topology, *, name: str, heartbeat: int = 30) -> None:
        self._amqp_url = amqp_url
        self._topology = topology
        self._name = name
        self._heartbeat = heartbeat
        self._connection: pika.BlockingConnection | None = None
        self._channel: BlockingChannel | None = None
        self._pid = os.getpid()
        self._owner: int | None = None
        self._serviced_at = float("-inf")  # when a confirm wait last serviced the connection

    # -- public API ---------------------------------------------------------------------------------

    def publish(
        self,
        routing_key: str,
        body: bytes,
        properties: pika.BasicProperties,
        *,
        mandatory: bool = True,
    ) -> None:
        """Publish through the default exchange and wait for the confirm.

        Raises `Unroutable` when the broker returns or nacks the message, `PublishFailed` when it
        cannot be confirmed after one reconnect and retry.
        """
        self._check_thread()
        last: Exception | None = None
        for _attempt in range(2):
            try:
                channel = self._ready_channel()
                channel.basic_publish(
                    exchange="",
                    routing_key=routing_key,
                    body=body,
                    properties=properties,
                    mandatory=mandatory,
                )
                self._serviced_at = time.monotonic()
                return
            except pika.exceptions.UnroutableError:
                raise Unroutable(routing_key, "no_route") from None
            except pika.exceptions.NackError:
                raise Unroutable(routing_key, "nacked") from None
            except pika.exceptions.ChannelClosedByBroker as exc:
                # E.g. a `user_id` other than the connection's user: retrying cannot help.
                self._channel = None
                raise PublishFailed(
                    f"broker refused the message to {routing_key!r}: ({exc.reply_code}) {exc.reply_text}"
                ) from None
            except _CONNECTION_LOST as exc:
                self._drop_connection()
                last = exc
        raise PublishFailed(
            f"message to {routing_key!r} not confirmed after a reconnect: {type(last).__name__}: {last}"
        )

    def publish_reply(self, routing_key: str, body: bytes, properties: pika.BasicProperties) -> PublishOutcome:
        """Publish a reply persistent, mandatory and confirmed; keep it in `.unroutable` if refused
        (the outcome says why)."""
        try:
            self.publish(routing_key, body, persistent_copy(properties), mandatory=True)
            return PublishOutcome.DELIVERED
        except Unroutable as exc:
            headers = {
                H_ORIGINAL_ROUTING_KEY: routing_key,
                H_UNROUTABLE_REASON: exc.reason,
                **dead_letter_stamp(),
            }
            self._publish_held(self._topology.unroutable, body, held_properties(properties, headers))
            return PublishOutcome(exc.reason)

    def dead_letter(
        self,
        body: bytes,
        properties: pika.BasicProperties,
        *,
        reason: str,
        error: str,
        deliveries: int,
    ) -> None:
        """Put a request into `.dlq`: body and properties as received, plus our headers.

        Made persistent, with `user_id` and `expiration` moved to headers (see `held_properties`).
        """
        headers: dict[str, Any] = {
            H_REJECT_REASON: reason,
            H_ERROR: error[:MAX_ERROR_CHARS],
            H_DELIVERIES: int(deliveries),
            **dead_letter_stamp(),
        }
        self._publish_held(self._topology.dlq, body, held_properties(properties, headers))

    def process_events(self) -> None:
        """Service heartbeats while idle; a lost connection is dropped and re-opened on next use."""
        self._check_thread()
        if self._connection is None or self._forked():
            return
        try:
            self._connection.process_data_events(time_limit=0)
            self._serviced_at = time.monotonic()
        except _CONNECTION_LOST:
            self._drop_connection()

    def close(self) -> None:
        if self._forked():
            self._forget()
            return
        self._drop_connection()

    # -- internals ----------------------------------------------------------------------------------

    def _publish_held(self, queue: str, body: bytes, properties: pika.BasicProperties) -> None:
        """Publish into `.dlq` / `.unroutable`, declaring them if they are missing."""
        try:
            self.publish(queue, body, properties, mandatory=True)
        except Unroutable as exc:
            if exc.reason != "no_route":
                raise PublishFailed(f"broker nacked the message to {queue!r}") from None
            self._topology.declare_holding_queues(self._ready_channel())
            try:
                self.publish(queue, body, properties, mandatory=True)
            except Unroutable as again:
                raise PublishFailed(f"message to {queue!r} not accepted: {again.reason}") from None

    def _ready_channel(self) -> BlockingChannel:
        if self._forked():
            self._forget()
        if self._connection is not None and self._connection.is_open:
            if time.monotonic() - self._serviced_at > SERVICE_AFTER_IDLE_SECONDS:
                # Surfaces a close the broker sent while this thread was busy elsewhere. A connection
                # serviced just now (every confirm wait services it) is not worth the ioloop pass:
                # a close that came since fails the publish, which reconnects and retries.
                self._connection.process_data_events(time_limit=0)
        else:
            self._connection = open_connection(self._amqp_url, name=self._name, heartbeat=self._heartbeat)
            self._channel = None
        if self._channel is None or not self._channel.is_open:
            channel = self._connection.channel()
            channel.confirm_delivery()
            self._channel = channel
        return self._channel

    def _drop_connection(self) -> None:
        connection = self._connection
        self._forget()
        if connection is not None and connection.is_open:
            with contextlib.suppress(pika.exceptions.AMQPError, OSError):  # already broken
                connection.close()

    def _forget(self) -> None:
        self._connection = None
        self._channel = None
        self._pid = os.getpid()

    def _forked(self) -> bool:
        return os.getpid() != self._pid

    def _check_thread(self) -> None:
        if self._forked():
            self._forget()
            self._owner = None
        current = threading.get_ident()
        if self._owner is None:
            self._owner = current
        elif self._owner != current:
            raise RuntimeError("Publisher is confined to the thread that first used it")
