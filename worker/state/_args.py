"""Argument checks and document encoding shared by both stores, so they reject and store alike."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

import orjson

from worker.state.base import ANY_VERSION, IndexOp


def check_write_args(value: dict[str, Any] | None, expect_version: int, ttl_seconds: float | None) -> None:
    """Reject arguments the two stores would otherwise treat differently."""
    if value is not None and not isinstance(value, dict):
        raise TypeError(f"a document must be a dict, not {type(value).__name__}")
    if expect_version < ANY_VERSION:
        raise ValueError(f"expect_version must be >= {ANY_VERSION}, got {expect_version}")
    check_ttl(ttl_seconds)


def check_ttl(ttl_seconds: float | None) -> None:
    """A TTL, when given, is a positive finite number of seconds."""
    if ttl_seconds is not None and not (math.isfinite(ttl_seconds) and ttl_seconds > 0):
        raise ValueError(f"ttl_seconds must be a positive number, got {ttl_seconds!r}")


def check_index_ops(index_ops: Sequence[IndexOp]) -> None:
    """NaN has no place in a sorted index (and would fail half-way through a Redis script)."""
    for op in index_ops:
        if op.score is not None and math.isnan(op.score):
            raise ValueError(f"index {op.index!r} member {op.member!r}: score is NaN")


def dump_document(value: dict[str, Any]) -> str:
    """Strict, compact JSON (no NaN, no infinity): the same text in both stores.

    Rows are encoded on every state change, and orjson does it several times faster than `json`,
    even with the check that its text reads back as the same document. orjson writes a non-finite
    float as null, and refuses a lone surrogate (which a request's escapes can make) or an integer
    past 64 bits: when the check fails, `json` decides, refusing non-finite floats as before.
    """
    try:
        text = orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS)
    except TypeError:  # orjson.JSONEncodeError
        text = None
    if text is None or orjson.loads(text) != value:
        return json.dumps(value, separators=(",", ":"), allow_nan=False)
    return text.decode()


def load_document(text: str | bytes) -> dict[str, Any]:
    """A stored document (orjson; `json` for the lone surrogates only it writes and reads)."""
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        value = json.loads(text)
    if not isinstance(value, dict):
        raise TypeError(f"a stored document must be a JSON object, not {type(value).__name__}")
    return value
