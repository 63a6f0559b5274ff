"""The pika consumer on the request queue: count, validate, hand off durably, then acknowledge.

Other systems publish plain JSON with AMQP properties, not dramatiq messages, so this is a plain
pika consumer on its own thread and connection. A message is acknowledged only after its outcome
is durable (a registry row, a confirmed reply or a confirmed dead letter), so a crash in between
redelivers it and loses nothing. Requests are taken only while the fleet's admission window has
room, so the request queue's depth is the real backlog. Deliveries are counted in the state store
(not by the broker) so a message is dead-lettered as poison only after it failed the handler
itself `POISON_DELIVERY_LIMIT` times; SIGKILLed neighbours never count against innocent messages.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any

import pika
import pika.exceptions
from pika.adapters.blocking_connection import BlockingChannel
from pika.spec import Basic

from worker.amqp.connection import AmqpError, open_connection
from worker.contract.models import Kind
from worker.contract.validation import InvalidMessage, MessageLimits, ValidRequest, validate_message
from worker.runtime.context import Runtime
from worker.runtime.intake import Delivery, Intake
from worker.runtime.ticks import TickScheduler
from worker.state.base import StateStoreError

log = logging.getLogger(__name__)

ADMISSION_RECHECK_SECONDS = 0.1
_INFRA_ERRORS = (StateStoreError, AmqpError, pika.exceptions.AMQPError, OSError)


@dataclass(frozen=True, slots=True)
class _NewRequest:
    """A first delivery of a valid analysis request, waiting to be registered with its batch."""

    channel: BlockingChannel
    tag: int
    message: Delivery
    request: ValidRequest


class InfrastructureDown(RuntimeError):
    """The state store or the broker failed: stop consuming, requeue, reconnect after a pause."""


class Ingress:
    """Consumes the request queue on a thread of its own."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.settings = rt.settings
        self.limits = MessageLimits(self.settings.max_request_bytes, self.settings.request_queue)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="toksta-ingress", daemon=True)
        self._connection: pika.BlockingConnection | None = None
        self._channel: BlockingChannel | None = None
        self.consuming = threading.Event()
        self._pending: deque[tuple[BlockingChannel, Basic.Deliver, pika.BasicProperties, bytes]] = deque()

    # -- life cycle -----------------------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float) -> None:
        """Stop taking messages; unacknowledged ones go back to the queue when the channel closes."""
        self._stop.set()
        self._thread.join(timeout)

    def _run(self) -> None:
        pause = 0.5
        while not self._stop.is_set():
            try:
                self._consume()
                pause = 0.5
            except (InfrastructureDown, *_INFRA_ERRORS) as exc:
                log.warning("ingress paused: %s: %s", type(exc).__name__, exc)
            finally:
                self.consuming.clear()
                self._pending.clear()  # unacknowledged: the broker requeues them with the channel
                self._close()
            self._stop.wait(pause)
            pause = min(pause * 2, 10.0)
        self.rt.close_thread_resources()

    def _consume(self) -> None:
        self._connection = open_connection(self.settings.amqp_url, name="toksta-worker:ingress")
        self._channel = self._connection.channel()
        self._channel.basic_qos(prefetch_count=self.settings.ingress_prefetch)
        self._channel.basic_consume(self.settings.request_queue, self._on_message, auto_ack=False)
        self.consuming.set()
        log.info("ingress consuming %s", self.settings.request_queue)
        while not self._stop.is_set():
            # Returns once deliveries were dispatched (into `_pending`), or after the time limit.
            self._connection.process_data_events(time_limit=ADMISSION_RECHECK_SECONDS if self._pending else 0.5)
            self._drain()
            self.rt.publisher().process_events()

    def _close(self) -> None:
        try:
            if self._connection is not None and self._connection.is_open:
                self._connection.close()
        except Exception:
            log.debug("closing the ingress connection failed", exc_info=True)
        self._connection = None
        self._channel = None

    # -- one message ----------------------------------------------------------------------------

    def _on_message(
        self, channel: BlockingChannel, method: Basic.Deliver, properties: pika.BasicProperties, body: bytes
    ) -> None:
        """Queue the delivery behind any that wait for admission, in arrival order. The consume loop
        drains the queue once pika has dispatched every delivery that arrived together, so they are
        handled as one batch."""
        self._pending.append((channel, method, properties, body))

    def _drain(self) -> None:
        """Handle waiting deliveries, in arrival order, as far as the admission window has room.

        One count query admits as many as the window has room for; what it does not admit waits for
        the next look (the consume loop looks again within ADMISSION_RECHECK_SECONDS).
        """
        while self._pending:
            if self._stop.is_set() or not self._pending[0][0].is_open:
                self._pending.clear()
                return
            room = self._room()
            if room <= 0:
                return
            batch = [self._pending.popleft() for _ in range(min(room, len(self._pending)))]
            self._handle_batch(batch)

    def _room(self) -> int:
        try:
            return self.settings.admission_window - self.rt.registry.count_waiting()
        except StateStoreError as exc:
            raise InfrastructureDown(str(exc)) from exc

    def _handle_batch(self, batch: list[tuple[BlockingChannel, Basic.Deliver, pika.BasicProperties, bytes]]) -> None:
        """Register the batch's new requests together (`Intake.accept_new`); any other message goes
        through `handle` on its own, after the new ones before it, so the order of arrival holds."""
        new: list[_NewRequest] = []
        for channel, method, properties, body in batch:
            message = Delivery(body, properties)
            verdict = None if method.redelivered else self._new_request(message)
            if verdict is None:
                self._accept_new(new)
                new = []
                self.handle(message, *_settlers(channel, method.delivery_tag), redelivered=bool(method.redelivered))
            else:
                new.append(_NewRequest(channel, method.delivery_tag, message, verdict))
        self._accept_new(new)

    def _new_request(self, message: Delivery) -> ValidRequest | None:
        """The message's request if it may go in a batch: valid, not a cancel, not a test crash."""
        try:
            verdict = validate_message(message.body, message.properties.reply_to, self.limits)
        except Exception:  # noqa: BLE001 (`handle` validates again and deals with the failure)
            return None
        if not isinstance(verdict, ValidRequest) or verdict.kind is Kind.CANCEL:
            return None
        return None if verdict.request_id in self.settings.crash_request_ids else verdict

    def _accept_new(self, new: list[_NewRequest]) -> None:
        """Register `new` in one go and acknowledge them with one ack; a request the batch did not
        take (a duplicate, a tombstone, a failure) is handled on its own first."""
        if not new:
            return
        intake = Intake(self.settings, self.rt.registry, self.rt.publisher(), self._wake)
        try:
            taken = intake.accept_new([(n.message, n.request) for n in new])
        except _INFRA_ERRORS as exc:
            raise InfrastructureDown(f"{type(exc).__name__}: {exc}") from exc
        except Exception:  # each request is tried again on its own, where a crash counts
            log.exception("registering %d requests together failed; taking them one by one", len(new))
            taken = [False] * len(new)
        for n, done in zip(new, taken, strict=True):
            if not done:
                self.handle(n.message, *_settlers(n.channel, n.tag), redelivered=False)
        last = max((n.tag for n, done in zip(new, taken, strict=True) if done), default=None)
        if last is not None:
            # Every earlier delivery of this channel is settled by now (handled in arrival order).
            new[0].channel.basic_ack(last, multiple=True)

    def handle(self, message: Delivery, ack: Any, nack: Any, *, redelivered: bool = True) -> None:
        """Process one delivery to a durable outcome, then ack; poison after the delivery limit.

        Deliveries are counted in the state store only once the broker says the message was
        delivered before (`redelivered`): a first delivery is delivery 1 without a store write, and
        the first redelivery counts itself and that first one. Most messages are delivered once,
        so this spares two writes per request (count and clear) where nothing can be poison yet.
        """
        counter = _delivery_counter(message)
        deliveries = self._count(counter) if redelivered else 1
        intake = Intake(self.settings, self.rt.registry, self.rt.publisher(), self._wake)
        try:
            verdict = validate_message(message.body, message.properties.reply_to, self.limits)
        except Exception as exc:  # noqa: BLE001 (a validator bug must not stop the ingress thread)
            self._crashed(message, None, exc, deliveries, counter, ack, nack)
            return
        with self.request_context(verdict.request_id, verdict.kind):
            try:
                if isinstance(verdict, InvalidMessage):
                    intake.invalid(message, verdict, deliveries)
                else:
                    _fault_hook(verdict.request_id, self.settings.crash_request_ids)
                    intake.accept(message, verdict)
            except _INFRA_ERRORS as exc:
                if redelivered:
                    self._forgive(counter)
                raise InfrastructureDown(f"{type(exc).__name__}: {exc}") from exc
            except Exception as exc:  # noqa: BLE001 (any other failure counts as a crash of the handler)
                self._crashed(message, verdict, exc, deliveries, counter, ack, nack)
                return
        if redelivered:
            self._clear(counter)
        ack()

    def _wake(self, kind: str) -> None:
        """Run the family's tick now rather than at the end of its idle delay. Best effort: a tick
        comes by within TICK_MAX_IDLE_SECONDS anyway, so a failure here costs latency, not the request."""
        try:
            TickScheduler(self.rt).wake(kind)
        except _INFRA_ERRORS as exc:
            log.warning("could not wake the %s tick: %s: %s", kind, type(exc).__name__, exc)

    def _count(self, counter: str) -> int:
        try:
            deliveries = int(self.rt.store.incr(counter, 1, ttl_seconds=86400))
            if deliveries == 1:  # the first delivery was not counted
                deliveries = int(self.rt.store.incr(counter, 1, ttl_seconds=86400))
        except StateStoreError as exc:
            raise InfrastructureDown(str(exc)) from exc
        return deliveries

    def request_context(self, request_id: str | None, kind: object) -> AbstractContextManager[object]:
        """Where the handling of one message runs; observability binds its ids to logs and errors."""
        return nullcontext()

    def _crashed(
        self,
        message: Delivery,
        verdict: Any,
        exc: Exception,
        deliveries: int,
        counter: str,
        ack: Any,
        nack: Any,
    ) -> None:
        error = f"{type(exc).__name__}: {exc}"
        log.exception("request handler failed (delivery %d)", deliveries)
        if deliveries < self.settings.poison_delivery_limit:
            nack()
            return
        if verdict is None:  # validation itself failed: nothing about the message is known
            reply_to, request_id, kind = None, None, None
        else:
            valid = not isinstance(verdict, InvalidMessage)
            reply_to, request_id = verdict.reply_to, verdict.request_id
            kind = verdict.kind.value if valid else verdict.kind
        Intake(self.settings, self.rt.registry, self.rt.publisher()).poison(
            message, reply_to, request_id, kind, error, deliveries
        )
        self._clear(counter)
        ack()

    def _forgive(self, counter: str) -> None:
        """An infrastructure failure is not the message's fault: take its delivery back."""
        try:
            self.rt.store.incr(counter, -1, ttl_seconds=86400)
        except StateStoreError:
            log.debug("could not un-count a delivery", exc_info=True)

    def _clear(self, counter: str) -> None:
        try:
            self.rt.store.delete_counter(counter)
        except StateStoreError:
            log.debug("could not clear a delivery counter", exc_info=True)


def _settlers(channel: BlockingChannel, tag: int) -> tuple[Callable[[], None], Callable[[], None]]:
    """A delivery's ack and its nack (requeued), for `Ingress.handle`."""
    return (lambda: channel.basic_ack(tag)), (lambda: channel.basic_nack(tag, requeue=True))


def _delivery_counter(message: Delivery) -> str:
    digest = hashlib.sha256()
    digest.update((message.user_id or "").encode("utf-8") + b"\x00")
    digest.update(message.body)
    return f"deliveries:{digest.hexdigest()[:40]}"


def _fault_hook(request_id: str, crash_ids: frozenset[str]) -> None:
    """Test hook (CRASH_REQUEST_IDS): make the handler fail for these request ids, every time."""
    if request_id in crash_ids:
        raise RuntimeError(f"injected handler crash for {request_id}")


__all__ = ["Ingress", "time"]
