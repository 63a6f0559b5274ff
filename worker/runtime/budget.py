"""One rate budget per API key for the whole fleet, kept in the state store.

The API allows 20-150 calls a minute per key, fleet-wide, in fixed 60-second windows. Every
response's `X-RateLimit-*` headers teach the budget the limit, what is left and when the window
resets; a 429's `Retry-After` blocks every call of every process until it has passed. Calls are
taken by priority: fetches, cancels and replies of finished work first, then starts, then polls,
and paced across the window instead of burst-then-429. A caller that is refused is told how long
to wait and re-arms its tick for then: nothing waits in a blocked thread.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, Final

from worker.api.client import CallRecord
from worker.state.base import StateStore

BUDGET_KEY: Final = "budget"
WINDOW_SECONDS: Final = 60.0


class Priority(IntEnum):
    """Lower is more urgent."""

    FINISH = 0  # follow-up fetches, cancels: finished work waiting for its reply
    START = 1  # starts of admitted work
    POLL = 2  # polls of running work


@dataclass(frozen=True, slots=True)
class Grant:
    """Whether a call may go now, and if not, how many real seconds until it might."""

    granted: bool
    wait: float = 0.0


class RateBudget:
    """Fleet-wide call budget for one key.

    The document holds: `limit`, `remaining` (as last learned, minus calls granted since),
    `reset_at` (real epoch of the window end), `blocked_until` (a pending Retry-After),
    `window_start`, `granted` (calls granted in this window).
    """

    def __init__(self, store: StateStore, *, time_scale: float, reserve: float = 0.1, key: str = BUDGET_KEY) -> None:
        self._store = store
        self._scale = time_scale
        self._reserve = reserve
        self._key = key

    @property
    def window(self) -> float:
        return WINDOW_SECONDS * self._scale

    def acquire(self, priority: Priority, *, now: float | None = None) -> Grant:
        """Take one call of budget, or say how long to wait."""
        for _ in range(50):
            current = self._store.get(self._key)
            moment = time.time() if now is None else now
            doc = dict(current.value) if current else {}
            grant, doc = self._decide(doc, priority, moment)
            if not grant.granted:
                return grant
            if self._store.write(self._key, doc, expect_version=current.version if current else 0) is not None:
                return grant
        return Grant(False, 0.05)

    def observe(self, record: CallRecord) -> None:
        """Learn from one response's headers (the API's word beats our own count)."""
        rate = record.rate
        if rate is None:
            return
        retry_after = rate.retry_after if record.http_status == 429 else None
        if rate.limit is None and retry_after is None:
            return
        for _ in range(50):
            current = self._store.get(self._key)
            doc = dict(current.value) if current else {}
            self._learn(doc, rate.limit, rate.remaining, rate.reset_at, retry_after, time.time())
            if self._store.write(self._key, doc, expect_version=current.version if current else 0) is not None:
                return

    def snapshot(self) -> dict[str, Any]:
        current = self._store.get(self._key)
        return dict(current.value) if current else {}

    def blocked_until(self) -> float:
        return float(self.snapshot().get("blocked_until") or 0.0)

    # -- decisions ------------------------------------------------------------------------------

    def _decide(self, doc: dict[str, Any], priority: Priority, now: float) -> tuple[Grant, dict[str, Any]]:
        blocked = float(doc.get("blocked_until") or 0.0)
        if now < blocked:
            return Grant(False, blocked - now), doc
        self._roll_window(doc, now)
        limit = doc.get("limit")
        if limit is None:
            return Grant(True), doc  # nothing learned yet: the first response teaches us
        remaining = int(doc.get("remaining", limit))
        reserve = self._reserved_for(priority, int(limit))
        if remaining - reserve <= 0:
            return Grant(False, max(float(doc["reset_at"]) - now, 0.01)), doc
        paced_wait = self._pacing_wait(doc, int(limit), priority, now)
        if paced_wait > 0:
            return Grant(False, paced_wait), doc
        doc["remaining"] = remaining - 1
        doc["granted"] = int(doc.get("granted", 0)) + 1
        return Grant(True), doc

    def _reserved_for(self, priority: Priority, limit: int) -> int:
        """Calls kept back from lower priorities so finished work is never starved by polls."""
        per_level = max(1, math.ceil(limit * self._reserve / 2))
        return int(priority) * per_level

    def _pacing_wait(self, doc: dict[str, Any], limit: int, priority: Priority, now: float) -> float:
        """Spread calls over the window: at most a burst plus the share of the window elapsed."""
        start = float(doc.get("window_start", now))
        elapsed = max(0.0, now - start)
        burst = max(2, limit // 6) + (2 - int(priority))
        allowed = burst + limit * (elapsed / self.window)
        granted = int(doc.get("granted", 0))
        if granted < allowed:
            return 0.0
        return (granted + 1 - burst) / limit * self.window - elapsed

    def _roll_window(self, doc: dict[str, Any], now: float) -> None:
        reset_at = doc.get("reset_at")
        if reset_at is not None and now >= float(reset_at) and doc.get("limit") is not None:
            doc["remaining"] = int(doc["limit"])
            doc["window_start"] = float(reset_at)
            doc["reset_at"] = float(reset_at) + self.window
            doc["granted"] = 0

    def _learn(
        self,
        doc: dict[str, Any],
        limit: int | None,
        remaining: int | None,
        reset_at: float | None,
        retry_after: float | None,
        now: float,
    ) -> None:
        if retry_after is not None:
            doc["blocked_until"] = max(float(doc.get("blocked_until") or 0.0), now + retry_after * self._scale)
        if limit is None:
            return
        same_window = (
            reset_at is not None
            and doc.get("reset_at") is not None
            and abs(float(doc["reset_at"]) - reset_at) < 0.5 * self._scale
        )
        doc["limit"] = limit
        if reset_at is not None and not same_window:
            doc["reset_at"] = reset_at
            doc["window_start"] = reset_at - self.window
            doc["granted"] = max(0, limit - (remaining if remaining is not None else limit))
            if remaining is not None:
                doc["remaining"] = remaining
        elif remaining is not None:
            doc["remaining"] = min(int(doc.get("remaining", remaining)), remaining)
