"""The queues the worker owns, derived from the request queue's name, and their declaration.

Names (with the default request queue `toksta.requests`):

- `toksta.requests`: requests from clients (type `QUEUE_TYPE`).
- `toksta.requests.dlq`, `toksta.requests.unroutable`: dead letters and unroutable replies. Always
  classic, whatever `QUEUE_TYPE`: classic queues put a requeued message back at its position, so
  `toksta-worker dlq list` can read them without reordering (quorum queues requeue to the back).
- `toksta.requests.ticks`: the poll ticks' dramatiq actor queue. Declared by the dramatiq broker
  (`worker.amqp.broker`) with its own dead-letter arguments, not here.
- `toksta.requests.wait.<N>ms`: delay queues without consumers. Each has one fixed `x-message-ttl`
  (a per-message TTL would block behind the queue's head) and dead-letters expired messages back to
  the ticks queue. Declared with plain pika: a queue declared through dramatiq gets a consumer.

Equivalence (checked against RabbitMQ 3.10.8): a queue declared without arguments and redeclared with
`x-queue-type: classic` is accepted, and the reverse too; the broker treats an absent queue type as
classic. So we always send `x-queue-type` explicitly, and a classic queue created by an older version
(or by a client) without arguments redeclares cleanly. Any other difference (`quorum` against an
existing classic queue, or a different `x-message-ttl`) is a 406 PRECONDITION_FAILED that closes the
channel; `declare` turns it into `TopologyMismatch`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pika.exceptions
from pika.adapters.blocking_connection import BlockingChannel

from worker.amqp.connection import AmqpError
from worker.settings import QueueType, Settings

WAIT_DELAYS_MS: tuple[int, ...] = (50, 200, 1000, 5000)

PRECONDITION_FAILED = 406


class TopologyMismatch(AmqpError):
    """A queue exists with other arguments than the ones this worker declares."""

    def __init__(self, queue: str, wanted: dict[str, Any], broker_says: str) -> None:
        self.queue = queue
        self.wanted = wanted
        self.broker_says = broker_says
        super().__init__(
            f"queue {queue!r} already exists with other arguments than this worker declares. "
            f"Broker says: {broker_says}. Wanted arguments: {wanted}. "
            "RabbitMQ cannot change a queue's arguments in place. Fix: set QUEUE_TYPE (and REQUEST_QUEUE) "
            "to match the existing queue, or drain and delete the queue so the worker recreates it, "
            "or migrate: declare the new queue under another name (REQUEST_QUEUE), move the messages "
            "(e.g. with a shovel), then delete the old one."
        )


@dataclass(frozen=True)
class Topology:
    """Queue names and arguments of one worker deployment."""

    request_queue: str
    queue_type: QueueType

    @classmethod
    def from_settings(cls, settings: Settings) -> Topology:
        return cls(request_queue=settings.request_queue, queue_type=settings.queue_type)

    @property
    def dlq(self) -> str:
        return f"{self.request_queue}.dlq"

    @property
    def unroutable(self) -> str:
        return f"{self.request_queue}.unroutable"

    @property
    def ticks(self) -> str:
        return f"{self.request_queue}.ticks"

    def wait_queue(self, delay_ms: int) -> str:
        return f"{self.request_queue}.wait.{delay_ms}ms"

    def pick_wait_queue(self, delay_seconds: float) -> tuple[str, float]:
        """The largest wait queue whose delay is <= `delay_seconds` (else the smallest), and its delay.

        Callers wanting a long delay re-arm through the largest queue repeatedly; a delay shorter
        than the smallest queue's is rounded up to it.
        """
        fitting = [ms for ms in WAIT_DELAYS_MS if ms <= delay_seconds * 1000]
        delay_ms = max(fitting) if fitting else min(WAIT_DELAYS_MS)
        return self.wait_queue(delay_ms), delay_ms / 1000

    def is_reserved(self, name: str) -> bool:
        """True for the request queue and every `<request queue>.` name (not usable as a reply queue)."""
        return name == self.request_queue or name.startswith(f"{self.request_queue}.")

    def request_queue_arguments(self) -> dict[str, Any]:
        """The request queue's arguments, for clients that want to know (they must not declare it)."""
        return {"x-queue-type": str(self.queue_type)}

    def holding_queue_arguments(self) -> dict[str, Any]:
        """`.dlq` and `.unroutable`: classic whatever QUEUE_TYPE, so inspection keeps their order."""
        return {"x-queue-type": str(QueueType.CLASSIC)}

    def wait_queue_arguments(self, delay_ms: int) -> dict[str, Any]:
        arguments: dict[str, Any] = {
            "x-queue-type": str(self.queue_type),
            "x-message-ttl": delay_ms,
            "x-dead-letter-exchange": "",
            "x-dead-letter-routing-key": self.ticks,
        }
        if self.queue_type is QueueType.QUORUM:
            # Quorum queues dead-letter at least once only with both of these (classic: at most once).
            arguments["x-dead-letter-strategy"] = "at-least-once"
            arguments["x-overflow"] = "reject-publish"
        return arguments

    def declare(self, channel: BlockingChannel) -> None:
        """Declare the request queue, `.dlq`, `.unroutable` and the wait queues (durable, idempotent).

        Raises `TopologyMismatch` when one exists with other arguments; `channel` is then closed by
        the broker and must not be reused.
        """
        declare_queue(channel, self.request_queue, self.request_queue_arguments())
        self.declare_holding_queues(channel)
        for delay_ms in WAIT_DELAYS_MS:
            declare_queue(channel, self.wait_queue(delay_ms), self.wait_queue_arguments(delay_ms))

    def declare_holding_queues(self, channel: BlockingChannel) -> None:
        """Declare only `.dlq` and `.unroutable` (for a publisher that found one missing)."""
        for name in (self.dlq, self.unroutable):
            declare_queue(channel, name, self.holding_queue_arguments())


def declare_queue(channel: BlockingChannel, name: str, arguments: dict[str, Any]) -> None:
    """Durable declare of `name`; PRECONDITION_FAILED becomes `TopologyMismatch`."""
    try:
        channel.queue_declare(queue=name, durable=True, arguments=arguments)
    except pika.exceptions.ChannelClosedByBroker as exc:
        if exc.reply_code == PRECONDITION_FAILED:
            raise TopologyMismatch(name, arguments, str(exc.reply_text)) from None
        raise
