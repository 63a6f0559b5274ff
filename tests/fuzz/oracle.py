"""What the contract says each probe must produce, and what the broker actually holds afterwards.

Both sides are reduced to hashable outcome tuples so a run compares as two multisets: every
expected answer present exactly once, nothing else anywhere we look. The verdict comes from the
worker's own validator (`validate_message`), which is the contract's executable form.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import pika
from pika.adapters.blocking_connection import BlockingChannel

from worker.contract.validation import InvalidMessage, MessageLimits, ValidRequest, validate_message
from worker.runtime.replies import invalid_message_id, reply_message_id

from .strategies import Probe

# Error codes a valid probe must never end with: they would mean the worker mistook it.
NOT_COMPLETED = frozenset({"INVALID_REQUEST", "POISON_MESSAGE", "REQUEST_ID_CONFLICT"})

Outcome = tuple[Any, ...]


def as_received(value: str | bytes | None) -> str | bytes | None:
    """A short string as a pika consumer sees it: text when it is UTF-8, else the raw bytes."""
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return value
    return value


def as_text(value: str | bytes | None) -> str | None:
    """A correlation id as the worker stores it for a later reply (JSON needs text)."""
    received = as_received(value)
    if isinstance(received, bytes):
        return received.decode("utf-8", "backslashreplace")
    return received


def body_digest(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


@dataclass
class Expectation:
    """The multiset of outcomes a corpus must produce, and the valid requests among it."""

    outcomes: Counter[Outcome] = field(default_factory=Counter)
    valid: list[ValidRequest] = field(default_factory=list)
    invalid: int = 0


def verdict_of(probe: Probe, limits: MessageLimits) -> ValidRequest | InvalidMessage:
    reply_to = as_received(probe.props.get("reply_to"))
    assert not isinstance(reply_to, bytes)
    return validate_message(probe.body, reply_to, limits)


def expect(corpus: list[Probe], limits: MessageLimits, reply_queues: tuple[str, ...]) -> Expectation:
    expectation = Expectation()
    for probe in corpus:
        verdict = verdict_of(probe, limits)
        if isinstance(verdict, InvalidMessage):
            expectation.invalid += 1
            expectation.outcomes[_expected_invalid(probe, verdict, reply_queues)] += 1
        else:
            expectation.valid.append(verdict)
            expectation.outcomes[_expected_valid(probe, verdict, reply_queues)] += 1
    return expectation


def _where(queue: str, reply_queues: tuple[str, ...]) -> str:
    return "reply" if queue in reply_queues else "unroutable"


def _expected_invalid(probe: Probe, verdict: InvalidMessage, reply_queues: tuple[str, ...]) -> Outcome:
    props = probe.props
    if verdict.reply_to is None:
        return ("dlq", body_digest(probe.body), verdict.reason.value, verdict.summary[:1000])
    correlation = as_received(props.get("correlation_id")) or as_received(props.get("message_id"))
    errors = json.dumps([e.as_dict() for e in verdict.errors])
    return (
        _where(verdict.reply_to, reply_queues),
        verdict.reply_to,
        invalid_message_id(probe.body),
        correlation,
        verdict.request_id,
        verdict.kind,
        "INVALID_REQUEST",
        errors,
    )


def _expected_valid(probe: Probe, verdict: ValidRequest, reply_queues: tuple[str, ...]) -> Outcome:
    correlation = as_text(probe.props.get("correlation_id")) or verdict.request_id
    return (
        _where(verdict.reply_to, reply_queues),
        verdict.reply_to,
        reply_message_id(verdict.request_id),
        correlation,
        verdict.request_id,
        verdict.kind.value,
        "completed",
        "",
    )


# -- what the broker holds ------------------------------------------------------------------------------


@dataclass
class Held:
    properties: pika.BasicProperties
    body: bytes

    @property
    def headers(self) -> dict[str, Any]:
        return dict(self.properties.headers or {})


def drain(channel: BlockingChannel, queue: str) -> list[Held]:
    """Every message currently in `queue` (taken, acknowledged)."""
    taken: list[Held] = []
    while True:
        method, properties, body = channel.basic_get(queue, auto_ack=True)
        if method is None:
            return taken
        taken.append(Held(properties, body))


def reply_outcome(where: str, queue: str, held: Held) -> Outcome:
    """A reply (in a reply queue, or kept in `.unroutable` for `queue`) as an outcome tuple."""
    body = json.loads(held.body)
    props = held.properties
    error = body.get("error") or {}
    if str(props.message_id).startswith("invalid:"):
        code = error.get("code")
        errors = json.dumps((error.get("details") or {}).get("errors"))
    else:
        code = error.get("code") if error.get("code") in NOT_COMPLETED else "completed"
        errors = ""
    return (
        where,
        queue,
        props.message_id,
        props.correlation_id,
        body.get("request_id"),
        body.get("kind"),
        code,
        errors,
    )


def dead_letter_outcome(held: Held) -> Outcome:
    headers = held.headers
    error = headers.get("x-error")
    if isinstance(error, bytes):
        error = error.decode("utf-8", "replace")
    return ("dlq", body_digest(held.body), as_received(headers.get("x-reject-reason")), error)


def unroutable_queue(held: Held) -> str:
    key = held.headers.get("x-original-routing-key")
    received = as_received(key)
    return received.decode("latin-1") if isinstance(received, bytes) else str(received)
