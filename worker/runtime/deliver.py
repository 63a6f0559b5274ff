"""Publishing a finished request's reply to every sender, then marking it done.

The reply is fixed in the row before anything is published, so every copy (to duplicate senders,
or again after a crash) carries the same body and `message_id`; fixing it drops the payload it was
built from, which keeps finished rows small. The row becomes `done` only when
every target has been published to; a sender who arrives while this runs is caught by the
version check and served in the next round, which publishes to nobody this delivery reached.

A row that ended while a cancel request waited on it (`cancel`) answers that cancel request
before it is marked done: once done, nothing would lead back to the waiting cancel.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any

from worker.amqp.publisher import Publisher
from worker.contract.models import Status
from worker.families import rules_for
from worker.observability.metrics import metrics
from worker.runtime import replies
from worker.runtime.registry import DONE, FINISHING, PENDING_CANCEL, Registry
from worker.runtime.replies import Target
from worker.runtime.rows import cancel_result, to_finishing
from worker.state.base import Versioned

log = logging.getLogger(__name__)


def build_reply(row: dict[str, Any], now: float) -> dict[str, Any]:
    """The reply body of a finished row (its outcome, job ids, filtered result, accounting)."""
    outcome = row["outcome"]
    if "result" in outcome:
        result = outcome["result"]
    elif row["kind"] == "cancel":
        result = None
    else:
        result = rules_for(row["kind"]).result(row.get("payload"), row.get("extra"))
    return replies.reply_body(
        request_id=row["request_id"],
        kind=row["kind"],
        status=outcome["status"],
        job_ids=row.get("job_ids") or [],
        result=result,
        error=outcome.get("error"),
        api_calls=float(row.get("api_calls") or 0.0),
        credits=row.get("credits"),
        received_at=float(row["received_at"]),
        finished_at=now,
    )


def fix_reply(row: dict[str, Any], now: float) -> dict[str, Any]:
    """Fix a finished row's reply; drop the payload and extra it was built from (they only fed it)."""
    row["reply"] = build_reply(row, now)
    row["payload"] = None
    row["extra"] = None
    return row


def deliver(
    registry: Registry,
    publisher: Publisher,
    key: str,
    max_reply_bytes: int,
    *,
    sent: Sequence[dict[str, Any]] = (),
) -> dict[str, Any] | None:
    """Publish the reply of a FINISHING (or DONE) row to every target not yet served; mark it done.

    `sent`: targets this caller has published to already, whose `done` write lost to a sender joining
    meanwhile; they are recorded, not published again (as is every target a lost round here reached).
    """
    reached = list(sent)
    for _ in range(10):
        current = registry.get(key)
        if current is None:
            return None
        row = current.value
        if not _servable(row):
            return row
        if row.get("reply") is None:
            fix_reply(row, time.time())
            version = registry.save(key, row, current.version)
            if version is None:
                continue
        else:
            version = current.version
        first_reply = _serve(registry, publisher, row, max_reply_bytes, reached)
        if registry.save(key, row, version) is not None:
            if first_reply:
                metrics().request_finished(row["kind"], float(row["received_at"]))
            return row
    log.warning("reply of %s not marked done after 10 rounds; the next tick retries", key)
    return None


def deliver_many(
    registry: Registry,
    publisher: Publisher,
    keys: list[str],
    max_reply_bytes: int,
    *,
    known: Mapping[str, Versioned] | None = None,
) -> None:
    """`deliver` for several finished rows with two batched writes (fix the replies, mark them done)
    instead of two per row; a row that changed meanwhile goes through `deliver` on its own.

    `known`: rows the caller has just read, used instead of reading them again (and changed in
    place); a stale one loses its write and goes through `deliver`, which reads it afresh."""
    now = time.time()
    fixed: list[tuple[str, dict[str, Any], int]] = []
    unfixed: list[tuple[str, dict[str, Any], int]] = []
    for key, current in zip(keys, registry.read_many(keys, known or {}), strict=True):
        if current is None:
            continue
        row = current.value
        if not _servable(row):
            continue
        if row.get("reply") is None:
            unfixed.append((key, fix_reply(row, now), current.version))
        else:
            fixed.append((key, row, current.version))
    alone: list[str] = []
    for (key, row, _), version in zip(unfixed, registry.save_many(unfixed), strict=True):
        if version is None:
            alone.append(key)
        else:
            fixed.append((key, row, version))
    finished: list[tuple[str, dict[str, Any], int]] = []
    first: dict[str, bool] = {}
    reached: dict[str, list[dict[str, Any]]] = {}
    for key, row, version in fixed:
        reached[key] = []
        first[key] = _serve(registry, publisher, row, max_reply_bytes, reached[key])
        finished.append((key, row, version))
    for (key, row, _), version in zip(finished, registry.save_many(finished), strict=True):
        if version is None:
            alone.append(key)  # a sender joined meanwhile: `deliver` serves it (the reply is fixed)
        elif first[key]:
            metrics().request_finished(row["kind"], float(row["received_at"]))
    for key in alone:
        deliver(registry, publisher, key, max_reply_bytes, sent=reached.get(key, ()))


def _servable(row: dict[str, Any]) -> bool:
    """A row with a reply to publish: finishing or done, with an outcome or a fixed reply."""
    finished: bool = row["state"] in (FINISHING, DONE)
    return finished and (row.get("outcome") is not None or row.get("reply") is not None)


def _serve(
    registry: Registry, publisher: Publisher, row: dict[str, Any], max_reply_bytes: int, reached: list[dict[str, Any]]
) -> bool:
    """Serve a row whose reply is fixed: answer the cancel waiting on it, publish the reply to every
    target not yet published to, and mark the row done in memory (the caller saves it).

    `reached`: targets this caller has published to already (not published again); the ones served
    here are added. Returns whether this is the row's first reply (it was still finishing)."""
    answer_cancel_of(registry, publisher, row, max_reply_bytes)
    body, status = replies.encode(row["reply"], max_reply_bytes)
    first_reply: bool = row["state"] == FINISHING
    served = [t for t in row["targets"] if t not in row["published"]]
    for target in served:
        if target not in reached:
            publish_to(publisher, Target.from_dict(target), row["reply"], body, status)
            reached.append(target)
    row["published"] = row["published"] + served
    row["state"] = DONE
    return first_reply


def answer_cancel(
    registry: Registry,
    publisher: Publisher,
    cancel_key: str,
    max_reply_bytes: int,
    *,
    result: dict[str, Any] | None,
    error: dict[str, Any] | None = None,
) -> None:
    """Finish a cancel request that waits on its target (`pending_cancel`) and publish its reply.

    Safe to repeat: a cancel request finished before is left as it is, and its reply is published
    again only if it never went out (a failed publish leaves the row finishing).
    """

    def resolve(r: dict[str, Any]) -> dict[str, Any] | None:
        if r["state"] != PENDING_CANCEL:
            return None
        status = Status.SUCCEEDED if error is None else Status.ERROR
        return to_finishing(r, status, error, time.time(), result=result)

    row = registry.update(cancel_key, resolve)
    if row is not None and row["state"] == FINISHING:
        deliver(registry, publisher, cancel_key, max_reply_bytes)


def answer_cancel_of(registry: Registry, publisher: Publisher, row: dict[str, Any], max_reply_bytes: int) -> None:
    """Answer the cancel request that waits on a finishing row (see `rows.cancel_result`), if any."""
    if row.get("cancel") and row["state"] == FINISHING:
        answer_cancel(registry, publisher, row["cancel"], max_reply_bytes, result=cancel_result(row))


def publish_to(publisher: Publisher, target: Target, reply: dict[str, Any], body: bytes, status: str) -> None:
    """One copy of a reply, with this sender's correlation id and trace context."""
    message_id = replies.reply_message_id(reply["request_id"])
    props = replies.properties(message_id, target.correlation_id, status, target.traceparent)
    outcome = publisher.publish_reply(target.queue, body, props)
    metrics().reply_published(reply["kind"], status, outcome)
    log.info(
        "reply published",
        extra={
            "request_id": reply["request_id"],
            "kind": reply["kind"],
            "status": status,
            "queue": target.queue,
            "outcome": str(outcome),
        },
    )
