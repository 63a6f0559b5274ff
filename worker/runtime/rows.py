"""The shape of a request's registry row, and the few pure transitions every module shares."""

from __future__ import annotations

from typing import Any

from worker.contract.models import ErrorCode
from worker.contract.validation import ValidRequest
from worker.families import Item, Work, rules_for
from worker.runtime.registry import FINISHING, WAITING
from worker.runtime.replies import Target

FIRST_POLL_SECONDS = 2.0
MAX_POLL_SECONDS = 30.0
# Real seconds a row that the intake finished itself (a request canceled before its start) is left
# to the intake's own delivery, which follows at once, before its family's tick may deliver it too:
# both publishing made two replies. The tick still takes it afterwards if the intake never did.
INTAKE_DELIVERS_SECONDS = 10.0


def new_row(
    request: ValidRequest, user_id: str | None, target: Target, now: float, deadline_real_seconds: float
) -> dict[str, Any]:
    """A freshly registered request, waiting for its start."""
    return {
        "user_id": user_id,
        "request_id": request.request_id,
        "kind": request.kind.value,
        "params": request.params,
        "options": request.body.get("options") or {},
        "content_sha256": request.content_sha256,
        "state": WAITING,
        "received_at": now,
        "deadline_at": now + deadline_real_seconds,
        "next_start_at": now,
        "start_attempts": 0,
        "last_start_error": None,
        "targets": [target.as_dict()],
        "published": [],
        "job_ids": [],
        "items": {},
        "selector": {},
        "credits": None,
        "next_poll_at": None,
        "poll_interval": None,
        "api_calls": 0.0,
        "payload": None,
        "extra": None,
        "needs_followup": False,
        "cancel": None,
        "outcome": None,
        "reply": None,
        "row_errors": 0,
    }


def add_target(row: dict[str, Any], target: Target) -> bool:
    """Add a sender's reply target unless the same one is already there; True when added."""
    entry = target.as_dict()
    if entry in row["targets"]:
        return False
    row["targets"].append(entry)
    return True


def to_finishing(
    row: dict[str, Any], status: str, error: dict[str, Any] | None, now: float, *, result: Any = ...
) -> dict[str, Any]:
    """Record the request's outcome; the reply goes out from FINISHING."""
    row["state"] = FINISHING
    row["finishing_since"] = now
    row["outcome"] = {"status": status, "error": error}
    if result is not ...:
        row["outcome"]["result"] = result
    return row


def finished_by_intake(row: dict[str, Any], status: str, error: dict[str, Any] | None, now: float) -> dict[str, Any]:
    """`to_finishing` for a row the intake finishes and delivers itself (see INTAKE_DELIVERS_SECONDS)."""
    to_finishing(row, status, error, now, result=None)
    row["tick_after"] = now + INTAKE_DELIVERS_SECONDS
    return row


def cancel_result(row: dict[str, Any]) -> dict[str, Any]:
    """What the cancel request a finished row carries (`cancel`) is told.

    The code that ended the row for the cancel records the answer with it (`cancel_result`), so
    whoever delivers the row later (after a crash, say) tells the same story; a row that ended on
    its own tells the cancel it came too late.
    """
    recorded = row.get("cancel_result")
    if recorded:
        return dict(recorded)
    error = (row.get("outcome") or {}).get("error") or {}
    applied = error.get("code") == ErrorCode.CANCELED_BY_REQUEST
    return {"canceled": applied, "reason": "cancel_applied" if applied else "already_terminal"}


def work_of(key: str, row: dict[str, Any]) -> Work:
    """The family rules' view of a row."""
    return Work(
        key=key,
        kind=rules_for(row["kind"]).kind,
        params=row["params"],
        options=row.get("options") or {},
        job_ids=list(row.get("job_ids") or []),
        items={k: Item.from_dict(v) for k, v in (row.get("items") or {}).items()},
        selector=dict(row.get("selector") or {}),
    )


def next_interval(previous: float | None) -> float:
    """Poll backoff in API seconds: 2, 4, 8, 16, then 30."""
    if previous is None:
        return FIRST_POLL_SECONDS
    return min(previous * 2, MAX_POLL_SECONDS)
