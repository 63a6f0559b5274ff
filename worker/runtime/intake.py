"""What the ingress does with one valid or invalid message: register, answer, dead-letter, cancel.

Pure request logic on top of the registry and a publisher, kept apart from the pika consumer loop
(ingress.py) so it can be read and tested without a broker connection's life cycle.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pika

from worker.amqp.publisher import Publisher
from worker.contract.models import ErrorCode, Kind, Status
from worker.contract.validation import InvalidMessage, ValidRequest
from worker.observability.metrics import metrics
from worker.runtime import deliver as delivery
from worker.runtime import replies
from worker.runtime.registry import (
    DONE,
    FINISHING,
    PENDING_CANCEL,
    RUNNING,
    STARTING,
    WAITING,
    Registry,
    request_key,
    tombstone_key,
)
from worker.runtime.replies import Target, error_object
from worker.runtime.rows import add_target, cancel_result, finished_by_intake, new_row, to_finishing
from worker.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Delivery:
    """The parts of an AMQP delivery the contract reads."""

    body: bytes
    properties: pika.BasicProperties

    @property
    def user_id(self) -> str | None:
        return self.properties.user_id or None

    @property
    def traceparent(self) -> str | None:
        headers = self.properties.headers or {}
        value = headers.get("traceparent")
        if isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        return value if isinstance(value, str) and value else None

    @property
    def correlation_text(self) -> str | None:
        """The `correlation_id` property as text, so it can be stored with the request for its reply.

        AMQP short strings should be UTF-8; pika hands over any other as bytes, which are kept with
        their invalid bytes escaped (`\\xff`) rather than failing the request.
        """
        value = self.properties.correlation_id
        if isinstance(value, bytes):
            value = value.decode("utf-8", "backslashreplace")
        return value if isinstance(value, str) and value else None


class Intake:
    """Turns one message into registry changes and immediate answers."""

    def __init__(
        self,
        settings: Settings,
        registry: Registry,
        publisher: Publisher,
        wake: Callable[[str], None] = lambda kind: None,
    ) -> None:
        self.settings = settings
        self.registry = registry
        self.publisher = publisher
        # Called with a family's kind when this message gave its tick work (a new waiting row, a cancel).
        self.wake = wake

    # -- invalid --------------------------------------------------------------------------------

    def invalid(self, message: Delivery, invalid: InvalidMessage, deliveries: int) -> None:
        """Answer an invalid message where a reply queue is usable, else dead-letter it unchanged."""
        if invalid.reply_to is None:
            self.publisher.dead_letter(
                message.body,
                message.properties,
                reason=invalid.reason.value,
                error=invalid.summary,
                deliveries=deliveries,
            )
            metrics().dead_lettered(invalid.reason.value)
            log.info("invalid message dead-lettered", extra={"reason": invalid.reason.value})
            return
        now = time.time()
        body = replies.reply_body(
            request_id=invalid.request_id,
            kind=invalid.kind,
            status=Status.ERROR,
            error=error_object(
                ErrorCode.INVALID_REQUEST,
                invalid.summary,
                details={"errors": [e.as_dict() for e in invalid.errors]},
            ),
            received_at=now,
            finished_at=now,
        )
        correlation = message.properties.correlation_id or message.properties.message_id
        props = replies.properties(
            replies.invalid_message_id(message.body), correlation, Status.ERROR, message.traceparent
        )
        data, _ = replies.encode(body, self.settings.max_reply_bytes)
        outcome = self.publisher.publish_reply(invalid.reply_to, data, props)
        metrics().reply_published(invalid.kind, Status.ERROR.value, outcome)
        log.info(
            "invalid request answered",
            extra={"request_id": invalid.request_id, "reason": invalid.reason.value},
        )

    def poison(
        self,
        message: Delivery,
        reply_to: str | None,
        request_id: str | None,
        kind: str | None,
        error: str,
        deliveries: int,
    ) -> None:
        """A message that crashed the handler on every delivery: dead letter, and answer if we can."""
        self.publisher.dead_letter(
            message.body, message.properties, reason="poison", error=error, deliveries=deliveries
        )
        metrics().dead_lettered("poison")
        if reply_to is None:
            return
        now = time.time()
        body = replies.reply_body(
            request_id=request_id,
            kind=kind,
            status=Status.ERROR,
            error=error_object(
                ErrorCode.POISON_MESSAGE,
                f"the request failed the worker on {deliveries} deliveries",
                details={"last_error": error[:1000], "deliveries": deliveries},
            ),
            received_at=now,
            finished_at=now,
        )
        message_id = replies.reply_message_id(request_id) if request_id else replies.invalid_message_id(message.body)
        correlation = message.properties.correlation_id or request_id or message.properties.message_id
        props = replies.properties(message_id, correlation, Status.ERROR, message.traceparent)
        data, _ = replies.encode(body, self.settings.max_reply_bytes)
        outcome = self.publisher.publish_reply(reply_to, data, props)
        metrics().reply_published(kind, Status.ERROR.value, outcome)

    # -- valid ----------------------------------------------------------------------------------

    def accept(self, message: Delivery, request: ValidRequest) -> None:
        target = Target(request.reply_to, message.correlation_text or request.request_id, message.traceparent)
        key = request_key(message.user_id, request.request_id)
        for _ in range(10):
            existing = self.registry.get(key)
            if existing is not None:
                self._duplicate(key, existing.value, request, target, message)
                return
            if request.kind is Kind.CANCEL:
                if self._cancel(key, request, target, message):
                    return
                continue
            if self._register(key, request, target, message):
                return
        raise RuntimeError(f"request {request.request_id} kept racing with another registration")

    def accept_new(self, items: list[tuple[Delivery, ValidRequest]]) -> list[bool]:
        """Register several new requests with one read and one write for all of them.

        Takes only the common case: an analysis request (not a cancel) whose id has neither a row
        nor a tombstone yet, and appears once in `items`. Returns, per item, whether it was taken;
        the caller hands every other one to `accept`, as it does a row a concurrent duplicate created
        first. What a taken request ends as is what `accept` would make of it.
        """
        now = time.time()
        keys = [request_key(m.user_id, r.request_id) for m, r in items]
        tombs = [tombstone_key(m.user_id, r.request_id) for m, r in items]
        found = self.registry.get_many(keys + tombs)
        fresh: list[tuple[int, str, dict[str, Any]]] = []
        seen: set[str] = set()
        for i, ((message, request), key) in enumerate(zip(items, keys, strict=True)):
            if request.kind is Kind.CANCEL or key in seen or found[i] is not None or found[len(items) + i] is not None:
                continue
            seen.add(key)
            target = Target(request.reply_to, message.correlation_text or request.request_id, message.traceparent)
            fresh.append((i, key, new_row(request, message.user_id, target, now, self._deadline(request))))
        created = self.registry.create_many([(key, row) for _, key, row in fresh])
        made = [entry for entry, ok in zip(fresh, created, strict=True) if ok]
        taken = [False] * len(items)
        woken: set[str] = set()
        # A cancel may have run between the read above and the create: see `_register`.
        for (i, key, _), tomb in zip(made, self.registry.get_many([tombs[i] for i, _, _ in made]), strict=True):
            taken[i] = True
            canceled_by = None if tomb is None else self._canceled_late(key, _canceled_by_of(tomb.value))
            self._registered(key, items[i][1], canceled_by, woken)
        return taken

    def _register(self, key: str, request: ValidRequest, target: Target, message: Delivery) -> bool:
        now = time.time()
        row = new_row(request, message.user_id, target, now, self._deadline(request))
        canceled_by = self._canceled_by(message.user_id, request.request_id)
        if canceled_by is not None:
            finished_by_intake(row, Status.CANCELED, _canceled_before_arrival(canceled_by), now)
        if not self.registry.create(key, row):
            return False
        if canceled_by is None:
            # A cancel may have run between the check above and the create (it looks for this row after
            # writing its tombstone, we look for the tombstone after writing the row: one of us sees the other).
            late = self._canceled_by(message.user_id, request.request_id)
            if late is not None:
                canceled_by = self._canceled_late(key, late)
        self._registered(key, request, canceled_by, set())
        return True

    def _canceled_late(self, key: str, late: str) -> str | None:
        """Cancel a just-created row whose tombstone appeared meanwhile; the cancel's id if this call
        applied it. When the cancel's own handler got there first (it found the row after writing
        the tombstone), that handler delivers the reply: answering here too would publish it twice."""
        error = _canceled_before_arrival(late)
        applied = False

        def cancel(r: dict[str, Any]) -> dict[str, Any] | None:
            nonlocal applied
            applied = r["state"] == WAITING
            return finished_by_intake(r, Status.CANCELED, error, time.time()) if applied else None

        self.registry.update(key, cancel)
        return late if applied else None

    def _registered(self, key: str, request: ValidRequest, canceled_by: str | None, woken: set[str]) -> None:
        """After the row is created: answer a request canceled before it arrived, else wake its family
        (once per family in `woken`)."""
        log.info(
            "request registered",
            extra={"request_id": request.request_id, "kind": request.kind.value, "canceled": canceled_by is not None},
        )
        if canceled_by is not None:
            self._deliver(key)
        elif request.kind.value not in woken:
            woken.add(request.kind.value)
            self.wake(request.kind.value)

    def _canceled_by(self, user_id: str | None, request_id: str) -> str | None:
        """The request id of a cancel that arrived before this request, if any."""
        tomb = self.registry.get(tombstone_key(user_id, request_id))
        return None if tomb is None else _canceled_by_of(tomb.value)

    def _duplicate(
        self, key: str, row: dict[str, Any], request: ValidRequest, target: Target, message: Delivery
    ) -> None:
        if row["content_sha256"] != request.content_sha256:
            self._conflict(request, target)
            return
        if row["state"] == DONE and row.get("reply") is not None:
            body, status = replies.encode(row["reply"], self.settings.max_reply_bytes)
            delivery.publish_to(self.publisher, target, row["reply"], body, status)
            return
        updated = self.registry.update(key, lambda r: r if add_target(r, target) else None)
        if updated is not None and updated["state"] in (FINISHING, DONE):
            self._deliver(key)
        elif updated is not None and updated["state"] == PENDING_CANCEL:
            self._link_cancel(key, updated, message)  # finish a cancel a crash interrupted

    def _conflict(self, request: ValidRequest, target: Target) -> None:
        now = time.time()
        body = replies.reply_body(
            request_id=request.request_id,
            kind=request.kind.value,
            status=Status.ERROR,
            error=error_object(
                ErrorCode.REQUEST_ID_CONFLICT,
                "this request_id is taken by a different request",
                details={"content_sha256": request.content_sha256},
            ),
            received_at=now,
            finished_at=now,
        )
        props = replies.properties(
            replies.conflict_message_id(request.request_id, request.content_sha256),
            target.correlation_id,
            Status.ERROR,
            target.traceparent,
        )
        data, _ = replies.encode(body, self.settings.max_reply_bytes)
        outcome = self.publisher.publish_reply(target.queue, data, props)
        metrics().reply_published(request.kind, Status.ERROR.value, outcome)

    # -- cancel ---------------------------------------------------------------------------------

    def _cancel(self, key: str, request: ValidRequest, target: Target, message: Delivery) -> bool:
        now = time.time()
        row = new_row(request, message.user_id, target, now, self._deadline(request))
        row["state"] = PENDING_CANCEL
        if not self.registry.create(key, row):
            return False
        self._link_cancel(key, row, message)
        return True

    def _link_cancel(self, key: str, cancel_row: dict[str, Any], message: Delivery) -> None:
        """Apply a cancel to its target, or hand it to the target family's tick."""
        target_id = cancel_row["params"]["request_id"]
        target_key = request_key(message.user_id, target_id)
        outcome: dict[str, Any] | None = None
        finished_here = False  # this call ended the target, so this call delivers its reply

        def mark(r: dict[str, Any]) -> dict[str, Any] | None:
            nonlocal outcome, finished_here
            finished_here = False
            error_details = ((r.get("outcome") or {}).get("error") or {}).get("details") or {}
            if r["state"] in (FINISHING, DONE) and error_details.get("canceled_by") == cancel_row["request_id"]:
                # This cancel already did it (a retry, a race): here, or in the target's tick (`cancel`).
                # Whoever ended the target delivers its reply (or the tick, after `tick_after`).
                outcome = cancel_result(r) if r.get("cancel") == key else {"canceled": True, "reason": "before_start"}
                return None
            if r["kind"] == Kind.CANCEL.value or r["state"] in (FINISHING, DONE):
                outcome = {"canceled": False, "reason": "already_terminal"}
                return None
            if r["state"] == WAITING:
                outcome = {"canceled": True, "reason": "before_start"}
                error = error_object(
                    ErrorCode.CANCELED_BY_REQUEST,
                    "canceled before its start call",
                    details={"canceled_by": cancel_row["request_id"]},
                )
                finished_here = True
                return finished_by_intake(r, Status.CANCELED, error, time.time())
            if r["state"] in (STARTING, RUNNING):
                if r.get("cancel") not in (None, key):
                    outcome = {"canceled": False, "reason": "cancel_in_progress"}
                    return None
                outcome = None  # the family's tick answers
                return dict(r, cancel=key)
            return None

        updated = self.registry.update(target_key, mark)
        if updated is None:
            self.registry.tombstone(message.user_id, target_id, cancel_row["request_id"])
            # The target may have been registered meanwhile; it checks for the tombstone after its create.
            updated = self.registry.update(target_key, mark)
        if updated is None:
            outcome = {"canceled": True, "reason": "before_start"}
        elif finished_here:
            self._deliver(target_key)
        elif outcome is None:
            self.wake(str(updated["kind"]))  # the target's tick cancels it
        if outcome is not None:
            self.registry.update(
                key,
                lambda r: (
                    to_finishing(r, Status.SUCCEEDED, None, time.time(), result=outcome)
                    if r["state"] == PENDING_CANCEL
                    else None
                ),
            )
            self._deliver(key)

    # -- helpers --------------------------------------------------------------------------------

    def _deliver(self, key: str) -> None:
        delivery.deliver(self.registry, self.publisher, key, self.settings.max_reply_bytes)

    def _deadline(self, request: ValidRequest) -> float:
        seconds = request.options.deadline_seconds or self.settings.default_deadline_seconds
        return self.settings.scaled(float(seconds))


def _canceled_by_of(tombstone: dict[str, Any]) -> str:
    return str(tombstone.get("canceled_by") or "")


def _canceled_before_arrival(canceled_by: str) -> dict[str, Any]:
    return error_object(
        ErrorCode.CANCELED_BY_REQUEST,
        "a cancel request arrived before this request",
        details={"canceled_by": canceled_by},
    )
