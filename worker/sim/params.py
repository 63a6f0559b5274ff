"""Request-body checks shared by the routes, and creator selection (ids or result sets)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from worker.sim import discovery
from worker.sim.envelope import validation_error
from worker.sim.fakedata import derived_uuid
from worker.sim.jobs import THOUGHT_LEADERS
from worker.sim.state import SimState

RESULT_SET_SIZE = 10


def opt_int(body: dict[str, Any], name: str, default: int, low: int, high: int) -> int:
    value = body.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise validation_error(f"`{name}` must be an integer between {low} and {high}.", field=name)
    return value


def opt_choice(body: dict[str, Any], name: str, default: Any, choices: Sequence[Any]) -> Any:
    value = body.get(name, default)
    if isinstance(value, bool) or value not in choices:
        allowed = ", ".join(str(choice) for choice in choices)
        raise validation_error(f"`{name}` must be one of {allowed}.", field=name)
    return value


def opt_str(body: dict[str, Any], name: str) -> str | None:
    value = body.get(name)
    if value is not None and not isinstance(value, str):
        raise validation_error(f"`{name}` must be a string.", field=name)
    return value or None


def opt_str_list(body: dict[str, Any], name: str) -> list[str] | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise validation_error(f"`{name}` must be an array of strings.", field=name)
    return value


def wait_seconds(body: dict[str, Any]) -> int:
    return opt_int(body, "wait_seconds", 0, 0, 30)


def results_limit(body: dict[str, Any]) -> int:
    name = "limit" if "limit" in body else "results_limit"
    return opt_int(body, name, 50, 1, 200)


@dataclass(frozen=True)
class Selection:
    source: str
    creator_ids: list[str]

    def to_json(self) -> dict[str, Any]:
        return {"source": self.source, "selected_count": len(self.creator_ids)}


def _creator_ids(value: object) -> list[str]:
    if not isinstance(value, list) or not value:
        raise validation_error("`creator_ids` must be a non-empty array of UUIDs.", field="creator_ids")
    result: list[str] = []
    for item in value:
        try:
            canonical = str(uuid.UUID(str(item)))
        except ValueError as exc:
            raise validation_error("`creator_ids` must contain UUIDs.", field="creator_ids", invalid=str(item)) from exc
        if not isinstance(item, str):
            raise validation_error("`creator_ids` must contain UUID strings.", field="creator_ids")
        if canonical not in result:
            result.append(canonical)
    return result


def _result_set(state: SimState, result_set_id: str) -> list[str]:
    """A result set's ranked creators: a discovery job's rows, else a stable made-up set."""
    job = state.jobs.get(result_set_id)
    if job is not None and job.kind == THOUGHT_LEADERS:
        return discovery.row_creator_ids(job)
    creators = [derived_uuid("result_set", result_set_id, str(rank)) for rank in range(1, RESULT_SET_SIZE + 1)]
    state.seen.update(creators)
    return creators


def _ranked(body: dict[str, Any], ranked: list[str], single: bool) -> list[str]:
    ranks = body.get("ranks")
    if single and ranks is not None:
        if not isinstance(ranks, list) or not all(isinstance(r, int) and r >= 1 for r in ranks):
            raise validation_error("`ranks` must be an array of integers >= 1.", field="ranks")
        ranked = [ranked[r - 1] for r in ranks if r <= len(ranked)]
    if "top_n" in body:
        ranked = ranked[: opt_int(body, "top_n", 1, 1, 10_000)]
    return ranked


def select_creators(state: SimState, body: dict[str, Any]) -> Selection | None:
    """`creator_ids` (wins), else `result_set_id`, else `result_set_ids`; None when none is given."""
    if body.get("creator_ids") is not None:
        return Selection("creator_ids", _creator_ids(body["creator_ids"]))
    if body.get("result_set_id") is not None:
        value = body["result_set_id"]
        if not isinstance(value, str) or not value:
            raise validation_error("`result_set_id` must be a string.", field="result_set_id")
        return Selection("result_set_id", _ranked(body, _result_set(state, value), single=True))
    if body.get("result_set_ids") is not None:
        values = body["result_set_ids"]
        if not isinstance(values, list) or not values or not all(isinstance(v, str) and v for v in values):
            raise validation_error("`result_set_ids` must be a non-empty array of strings.", field="result_set_ids")
        merged: list[str] = []
        for value in values:
            merged.extend(c for c in _result_set(state, value) if c not in merged)
        return Selection("result_set_ids", _ranked(body, merged, single=False))
    return None


def require_selection(state: SimState, body: dict[str, Any]) -> Selection:
    selection = select_creators(state, body)
    if selection is None:
        raise validation_error(
            "Provide exactly one selection: `creator_ids`, `result_set_id` or `result_set_ids`.",
            field="creator_ids",
        )
    return selection
