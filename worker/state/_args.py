"""Argument checks and document encoding shared by both stores, so they reject and store alike."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

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
    """Strict, compact JSON (no NaN): the same text in both stores."""
    return json.dumps(value, separators=(",", ":"), allow_nan=False)
