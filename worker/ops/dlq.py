"""Inspecting, replaying and purging `<request queue>.dlq` and `<request queue>.unroutable`.

Reading never reorders or drops: every operation takes a snapshot with `basic_get` without ack on one
channel (a channel does not get its own unacked messages again, so the loop ends at the queue's
end), acknowledges only what it removes, and closes the channel. Closing requeues the rest, and a
classic queue (both holding queues always are) puts a requeued message back at its old position.

Replay publishes a copy with publisher confirms and acknowledges the dead letter only after the
broker confirmed the copy: a crash in between leaves a duplicate (consumers drop it by
`message_id`), never a loss. The copy has the original body and properties: our `x-*` headers are
removed and `user_id` / `expiration` (moved to headers when dead-lettered) are restored. RabbitMQ
accepts a `user_id` only from a connection of that user (or one tagged `impersonator`); otherwise
the replay of that message is refused and it stays where it is.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import time
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field
from typing import Any

import pika
import pika.exceptions
from pika.adapters.blocking_connection import BlockingChannel

from worker.amqp.publisher import (
    H_DEAD_LETTERED_AT,
    H_DELIVERIES,
    H_DLQ_ID,
    H_ERROR,
    H_ORIGINAL_EXPIRATION,
    H_ORIGINAL_ROUTING_KEY,
    H_ORIGINAL_USER_ID,
    H_REJECT_REASON,
    H_UNROUTABLE_REASON,
    OUR_HEADERS,
)
from worker.amqp.topology import Topology

NOT_FOUND = 404
BODY_ID_HEX = 16

PROPERTY_NAMES = (
    "content_type",
    "content_encoding",
    "headers",
    "delivery_mode",
    "priority",
    "correlation_id",
    "reply_to",
    "expiration",
    "message_id",
    "timestamp",
    "type",
    "user_id",
    "app_id",
    "cluster_id",
)


class DlqError(Exception):
    """An operation on a holding queue cannot run (e.g. the queue does not exist)."""


@dataclass(frozen=True)
class DeadLetter:
    """One message of a holding queue, as `dlq list` shows it."""

    id: str
    queue: str
    position: int
    reason: str | None
    error: str | None
    deliveries: int | None
    kind: str | None
    request_id: str | None
    dead_lettered_at: float | None
    age_seconds: float | None
    original_routing_key: str | None
    body: bytes = field(repr=False)
    properties: pika.BasicProperties = field(repr=False)

    @property
    def headers(self) -> dict[str, Any]:
        return dict(self.properties.headers or {})

    def summary(self) -> dict[str, Any]:
        """JSON-ready fields for `list --json`."""
        return {
            "id": self.id,
            "queue": self.queue,
            "position": self.position,
            "reason": self.reason,
            "error": self.error,
            "deliveries": self.deliveries,
            "kind": self.kind,
            "request_id": self.request_id,
            "dead_lettered_at": self.dead_lettered_at,
            "age_seconds": None if self.age_seconds is None else round(self.age_seconds, 3),
            "original_routing_key": self.original_routing_key,
            "message_id": self.properties.message_id,
            "correlation_id": self.properties.correlation_id,
            "body_bytes": len(self.body),
        }


@dataclass
class ReplayReport:
    replayed: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (id, why)
    not_found: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return not self.skipped and not self.not_found


def holding_queue(topology: Topology, *, unroutable: bool) -> str:
    return topology.unroutable if unroutable else topology.dlq


def properties_dict(properties: pika.BasicProperties) -> dict[str, Any]:
    """The properties that are set, by AMQP name."""
    values = {name: getattr(properties, name, None) for name in PROPERTY_NAMES}
    return {name: value for name, value in values.items() if value is not None}


def restored_properties(properties: pika.BasicProperties) -> pika.BasicProperties:
    """The properties a message had before it was held: our headers out, user_id/expiration back."""
    result = copy.copy(properties)
    headers = dict(properties.headers or {})
    user_id = headers.get(H_ORIGINAL_USER_ID)
    expiration = headers.get(H_ORIGINAL_EXPIRATION)
    kept = {key: value for key, value in headers.items() if key not in OUR_HEADERS}
    result.headers = kept or None
    if user_id is not None:
        result.user_id = str(user_id)
    if expiration is not None:
        result.expiration = str(expiration)
    return result


def list_messages(
    connection: pika.BlockingConnection,
    queue: str,
    *,
    reason: str | None = None,
    older_than: float | None = None,
    limit: int | None = None,
) -> list[DeadLetter]:
    """The messages of `queue` in order (filtered by reason / minimum age), leaving the queue as it was."""
    with _snapshot(connection, queue, limit) as (_channel, items):
        letters = [letter for _tag, letter in items]
    return [
        letter
        for letter in letters
        if _matches(letter, reason)
        and (older_than is None or (letter.age_seconds is not None and letter.age_seconds >= older_than))
    ]


def show(connection: pika.BlockingConnection, queue: str, dead_letter_id: str) -> DeadLetter | None:
    """The first message with this id, or None."""
    with _snapshot(connection, queue, None) as (_channel, items):
        return next((letter for _tag, letter in items if letter.id == dead_letter_id), None)


def replay(
    connection: pika.BlockingConnection,
    topology: Topology,
    *,
    unroutable: bool = False,
    ids: Collection[str] | None = None,
    reason: str | None = None,
) -> ReplayReport:
    """Republish the selected messages (`ids`, or all when None) and remove each once confirmed.

    From `.dlq` to the request queue; from `.unroutable` to the message's original reply queue, and
    only when that queue exists (else the message stays and the report says why).
    """
    queue = holding_queue(topology, unroutable=unroutable)
    report = ReplayReport()
    found: set[str] = set()
    publisher = _ConfirmChannel(connection)
    try:
        with _snapshot(connection, queue, None) as (channel, items):
            for tag, letter in items:
                if (ids is not None and letter.id not in ids) or not _matches(letter, reason):
                    continue
                found.add(letter.id)
                problem = _replay_one(connection, publisher, topology, letter, unroutable=unroutable)
                if problem is None:
                    channel.basic_ack(delivery_tag=tag)  # only now: the copy is confirmed
                    report.replayed.append(letter.id)
                else:
                    report.skipped.append((letter.id, problem))
    finally:
        publisher.close()
    report.not_found = [i for i in ids or () if i not in found]
    return report


def purge(
    connection: pika.BlockingConnection,
    queue: str,
    *,
    reason: str | None = None,
    ids: Collection[str] | None = None,
) -> int:
    """Remove the messages matching `reason` (and `ids` when given); returns how many."""
    removed = 0
    with _snapshot(connection, queue, None) as (channel, items):
        for tag, letter in items:
            if _matches(letter, reason) and (ids is None or letter.id in ids):
                channel.basic_ack(delivery_tag=tag)
                removed += 1
    return removed


# -- internals -------------------------------------------------------------------------------------


def _matches(letter: DeadLetter, reason: str | None) -> bool:
    return reason is None or letter.reason == reason


@contextlib.contextmanager
def _snapshot(
    connection: pika.BlockingConnection, queue: str, limit: int | None
) -> Iterator[tuple[BlockingChannel, list[tuple[int, DeadLetter]]]]:
    """Every message of `queue` held unacked on one channel; closing the channel requeues the rest."""
    channel = connection.channel()
    try:
        items: list[tuple[int, DeadLetter]] = []
        now = time.time()
        while limit is None or len(items) < limit:
            try:
                method, properties, body = channel.basic_get(queue=queue, auto_ack=False)
            except pika.exceptions.ChannelClosedByBroker as exc:
                if exc.reply_code == NOT_FOUND:
                    raise DlqError(f"queue {queue!r} does not exist") from None
                raise
            if method is None:
                break
            items.append((method.delivery_tag, _parse(queue, len(items), body, properties, now)))
        yield channel, items
    finally:
        if channel.is_open:
            channel.close()


def _parse(queue: str, position: int, body: bytes, properties: pika.BasicProperties, now: float) -> DeadLetter:
    headers = properties.headers or {}
    at = _number(headers.get(H_DEAD_LETTERED_AT))
    if at is None and properties.timestamp is not None:
        at = float(properties.timestamp)
    kind, request_id = _body_fields(body)
    reason = headers.get(H_REJECT_REASON, headers.get(H_UNROUTABLE_REASON))
    deliveries = _number(headers.get(H_DELIVERIES))
    return DeadLetter(
        id=_letter_id(body, properties),
        queue=queue,
        position=position,
        reason=None if reason is None else str(reason),
        error=_text(headers.get(H_ERROR)),
        deliveries=None if deliveries is None else int(deliveries),
        kind=kind,
        request_id=request_id,
        dead_lettered_at=at,
        age_seconds=None if at is None else max(0.0, now - at),
        original_routing_key=_text(headers.get(H_ORIGINAL_ROUTING_KEY)),
        body=body,
        properties=properties,
    )


def _letter_id(body: bytes, properties: pika.BasicProperties) -> str:
    headers = properties.headers or {}
    if headers.get(H_DLQ_ID):
        return str(headers[H_DLQ_ID])
    if properties.message_id:
        return str(properties.message_id)
    return hashlib.sha256(body).hexdigest()[:BODY_ID_HEX]


def _body_fields(body: bytes) -> tuple[str | None, str | None]:
    try:
        document = json.loads(body)
    except ValueError:  # not JSON or not UTF-8: nothing to show
        return None, None
    if not isinstance(document, dict):
        return None, None
    kind, request_id = document.get("kind"), document.get("request_id")
    return (
        kind if isinstance(kind, str) else None,
        request_id if isinstance(request_id, str) else None,
    )


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str | bytes):
        with contextlib.suppress(ValueError):
            return float(value)
    return None


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def _replay_one(
    connection: pika.BlockingConnection,
    publisher: _ConfirmChannel,
    topology: Topology,
    letter: DeadLetter,
    *,
    unroutable: bool,
) -> str | None:
    """Publish one copy; None when confirmed, else why not."""
    if unroutable:
        target = letter.original_routing_key
        if not target:
            return f"no {H_ORIGINAL_ROUTING_KEY} header"
        if not _queue_exists(connection, target):
            return f"queue {target!r} does not exist (yet); left in place"
    else:
        target = topology.request_queue
    return publisher.publish(target, letter.body, restored_properties(letter.properties))


def _queue_exists(connection: pika.BlockingConnection, name: str) -> bool:
    """Passive declare on a throwaway channel (a 404 closes the channel)."""
    channel = connection.channel()
    try:
        channel.queue_declare(queue=name, passive=True)
        return True
    except pika.exceptions.ChannelClosedByBroker as exc:
        if exc.reply_code == NOT_FOUND:
            return False
        raise
    finally:
        if channel.is_open:
            channel.close()


class _ConfirmChannel:
    """A confirm-mode channel re-opened after the broker closes it (e.g. a refused `user_id`)."""

    def __init__(self, connection: pika.BlockingConnection) -> None:
        self._connection = connection
        self._channel: BlockingChannel | None = None

    def publish(self, routing_key: str, body: bytes, properties: pika.BasicProperties) -> str | None:
        channel = self._open()
        try:
            channel.basic_publish(
                exchange="", routing_key=routing_key, body=body, properties=properties, mandatory=True
            )
            return None
        except pika.exceptions.UnroutableError:
            return f"no_route: no queue {routing_key!r}"
        except pika.exceptions.NackError:
            return "nacked by the broker"
        except pika.exceptions.ChannelClosedByBroker as exc:
            self._channel = None
            return f"refused by the broker: ({exc.reply_code}) {exc.reply_text}"

    def close(self) -> None:
        if self._channel is not None and self._channel.is_open:
            self._channel.close()

    def _open(self) -> BlockingChannel:
        if self._channel is None or not self._channel.is_open:
            self._channel = self._connection.channel()
            self._channel.confirm_delivery()
        return self._channel
