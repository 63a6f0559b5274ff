"""One rate budget per API key for the whole fleet, kept in the state store.

The API allows 20-150 calls a minute per key, fleet-wide, in 60-second windows. Every response's
`X-RateLimit-*` headers teach the budget the limit, what is left and when the window resets; a
429's `Retry-After` blocks every call of every process until it has passed. Before the first
response the budget assumes the smallest plan (20 a minute).

Calls are paced across the window (a small burst plus the share of the window elapsed) instead of
burst-then-429 (before the first response a refused caller comes back within COLD_RETRY_SECONDS,
to be paced by what that response teaches), and a hard cap keeps the last calls of a window for
the more urgent priorities:

- FINISH (follow-up fetches and cancels of finished work) goes first: it may use the whole window,
  its pace runs ahead of the others', and while a FINISH caller waits nothing else is granted.
- START before POLL, except that polls of running work are guaranteed `poll_share` of the calls
  while they wait: without it a backlog of starts would starve every poll, and finished jobs would
  sit unnoticed until the backlog is gone.

A refused caller learns how long to wait and re-arms its tick for then, and the refusal is noted
(`demand`) so that the more urgent callers get the next free call: nothing waits in a thread.
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
ASSUMED_LIMIT: Final = 20  # the smallest plan, until the first response says otherwise
# Far from any limit (an unlimited key): grants need not be counted in the shared document.
UNCOUNTED_MARGIN: Final = 1000
CAS_ATTEMPTS: Final = 50
# Poll cadence (API seconds) from the limit: CADENCE_CALLS / limit windows, within [MIN, MAX].
CADENCE_CALLS: Final = 28.0
MIN_CADENCE: Final = 2.0
MAX_CADENCE: Final = 30.0
# Before the first response (no limit learned), a paced-out caller comes back this soon (real
# seconds): the answer to the call already granted will tell the key's limit, and an unlimited key
# must not keep its other families waiting out a pace computed for the assumed one.
COLD_RETRY_SECONDS: Final = 0.1


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
    """Fleet-wide call budget for one key, as one versioned document in the state store.

    Document fields: `limit` (learned; absent until the first response), `reset_at` (real epoch
    of the current window's end), `window_start`, `remaining` (calls left in the window: the
    lower of the API's word and our own count), `granted` and `granted_by` (calls granted in
    this window, all and per priority), `blocked_until` (a pending Retry-After), `demand`
    (priority -> until when a refused caller of it is waiting).
    """

    def __init__(
        self,
        store: StateStore,
        *,
        time_scale: float,
        reserve: float = 0.1,
        poll_share: float = 0.3,
        key: str = BUDGET_KEY,
    ) -> None:
        if not 0 <= reserve < 1 or not 0 <= poll_share <= 1:
            raise ValueError("reserve must be in [0, 1) and poll_share in [0, 1]")
        self._store = store
        self._scale = time_scale
        self._reserve = reserve
        self._poll_share = poll_share
        self._key = key

    @property
    def window(self) -> float:
        """The API's rate window in real seconds."""
        return WINDOW_SECONDS * self._scale

    @property
    def margin(self) -> float:
        """Real seconds kept after a window's announced end (clock skew, rounding, calls in flight)."""
        return 0.02 * self.window

    @property
    def grace(self) -> float:
        """How long a refused caller's demand outlives its wait: the time to come back and ask."""
        return max(0.2, 0.05 * self.window)

    # -- the two operations ---------------------------------------------------------------------

    def acquire(self, priority: Priority, *, now: float | None = None) -> Grant:
        """Take one call of budget, or say how long to wait (and note that this priority waits)."""
        for _ in range(CAS_ATTEMPTS):
            current = self._store.get(self._key)
            moment = time.time() if now is None else now
            doc = _copy(current.value) if current else {}
            grant, changed = self._decide(doc, priority, moment)
            if not changed:
                return grant
            if self._store.write(self._key, doc, expect_version=current.version if current else 0) is not None:
                return grant
        return Grant(False, 0.01 * self.window)

    def observe(self, record: CallRecord, *, now: float | None = None) -> None:
        """Learn from one response's headers (the API's word beats our own count)."""
        rate = record.rate
        limited = record.http_status == 429
        if not limited and (rate is None or rate.limit is None):
            return
        for _ in range(CAS_ATTEMPTS):
            current = self._store.get(self._key)
            moment = time.time() if now is None else now
            doc = _copy(current.value) if current else {}
            if not self._learn(doc, record, moment):
                return
            if self._store.write(self._key, doc, expect_version=current.version if current else 0) is not None:
                return

    # -- read-only views ------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        current = self._store.get(self._key)
        return dict(current.value) if current else {}

    def blocked_until(self) -> float:
        return float(self.snapshot().get("blocked_until") or 0.0)

    def roomy(self) -> bool:
        """The key is far from its limit (an unlimited key): calls may overlap without pacing.

        On a counted key calls go one at a time, each granted just before it is sent, so a 429's
        Retry-After stops the very next one."""
        doc = self.snapshot()
        if doc.get("limit") is None or float(doc.get("blocked_until") or 0.0) > time.time():
            return False
        return int(doc.get("remaining", 0)) > UNCOUNTED_MARGIN

    def limit(self) -> int | None:
        """The key's calls per window as last learned (None before the first response)."""
        value = self.snapshot().get("limit")
        return int(value) if value is not None else None

    def poll_cadence(self) -> float:
        """API seconds between two polls of a running request: what the key's limit affords.

        Polls are coalesced per family, so calls grow with rounds, not with requests: a tight key
        polls every family about every 28 s (a finished job waits 14 s on average, 28 s at worst),
        a generous one down to every 2 s (the API guide's first backoff step).
        """
        limit = self.limit() or ASSUMED_LIMIT
        return min(MAX_CADENCE, max(MIN_CADENCE, CADENCE_CALLS / limit * WINDOW_SECONDS))

    # -- decisions ------------------------------------------------------------------------------

    def _decide(self, doc: dict[str, Any], priority: Priority, now: float) -> tuple[Grant, bool]:
        """The grant for `priority` at `now`, and whether `doc` was changed (and must be written)."""
        pruned = _prune_demand(doc, now)
        blocked = float(doc.get("blocked_until") or 0.0)
        if now < blocked:
            return self._refuse(doc, priority, now, blocked - now)
        rolled = self._roll_window(doc, now) or pruned
        limit = int(doc.get("limit") or ASSUMED_LIMIT)
        remaining = int(doc["remaining"])
        left = remaining - self._reserved_for(priority, limit)
        if left <= 0:
            return self._refuse(doc, priority, now, max(float(doc["reset_at"]) + self.margin - now, 0.01 * self.window))
        if left > UNCOUNTED_MARGIN:
            # An unlimited key: nothing to count, and nobody to yield to, since a waiting caller's
            # own call is granted as soon as it asks (a `demand` noted before the limit was known,
            # under the assumed one, would otherwise make every grant a write until it lapsed).
            return Grant(True), rolled
        wait = max(self._pacing_wait(doc, limit, priority, now), self._yield_wait(doc, priority, now))
        if wait > 0:
            if doc.get("limit") is None:
                wait = min(wait, COLD_RETRY_SECONDS)
            return self._refuse(doc, priority, now, wait)
        doc["remaining"] = remaining - 1
        doc["granted"] = int(doc.get("granted", 0)) + 1
        by = dict(doc.get("granted_by") or {})
        by[str(int(priority))] = int(by.get(str(int(priority)), 0)) + 1
        doc["granted_by"] = by
        return Grant(True), True

    def _refuse(self, doc: dict[str, Any], priority: Priority, now: float, wait: float) -> tuple[Grant, bool]:
        """Refuse, and note that `priority` waits until about `now + wait` (so others yield to it)."""
        pruned = _prune_demand(doc, now)
        demand = dict(doc.get("demand") or {})
        until = now + wait + self.grace
        name = str(int(priority))
        if float(demand.get(name, 0.0)) >= until - 0.5 * self.grace:
            return Grant(False, wait), pruned  # already noted: spare the store a write
        demand[name] = until
        doc["demand"] = demand
        return Grant(False, wait), True

    def _reserved_for(self, priority: Priority, limit: int) -> int:
        """Calls at the end of a window kept back from lower priorities (FINISH keeps none back).

        Never the whole window: with a tiny limit every priority must still get a call per window,
        or polls (and the starts that yield to them) would wait forever.
        """
        per_level = max(1, math.ceil(limit * self._reserve / 2))
        return min(int(priority) * per_level, max(0, limit - 1))

    def _burst(self, limit: int, priority: Priority) -> float:
        """Calls that may go at once at a window's start. FINISH's pace runs two calls ahead; START
        and POLL share one pace (which of them goes first is the demand rule's business)."""
        return max(1, limit // 10) + (2 if priority == Priority.FINISH else 0)

    def _pacing_wait(self, doc: dict[str, Any], limit: int, priority: Priority, now: float) -> float:
        """Real seconds until this priority's pace allows one more call (0 when it does now)."""
        elapsed = max(0.0, now - float(doc["window_start"]))
        burst = self._burst(limit, priority)
        granted = int(doc.get("granted", 0))
        if granted + 1 <= burst + limit * (elapsed / self.window):
            return 0.0
        # One more call needs a whole call of allowance: `burst + limit * elapsed / window >= granted + 1`.
        return (granted + 1 - burst) / limit * self.window - elapsed

    def _yield_wait(self, doc: dict[str, Any], priority: Priority, now: float) -> float:
        """How long to leave the next call to a more urgent waiting caller (0: take it)."""
        demand = {int(k): float(v) for k, v in dict(doc.get("demand") or {}).items()}
        # Only a waiting caller the hard cap would let through can take the call we leave.
        remaining = int(doc["remaining"])
        limit = int(doc.get("limit") or ASSUMED_LIMIT)
        waiting = [p for p in demand if p != int(priority) and remaining - self._reserved_for(Priority(p), limit) > 0]
        if not waiting:
            return 0.0
        ahead = [p for p in waiting if self._ahead(doc, p, int(priority))]
        if not ahead:
            return 0.0
        # Come back soon: the other caller takes its call within about a grace period.
        return min(self.grace, min(demand[p] for p in ahead) - now)

    def _ahead(self, doc: dict[str, Any], waiting: int, asking: int) -> bool:
        """Whether a waiting caller of priority `waiting` goes before one of priority `asking`."""
        if Priority.FINISH in (waiting, asking):
            return waiting == Priority.FINISH
        by = dict(doc.get("granted_by") or {})
        polls = int(by.get(str(int(Priority.POLL)), 0))
        starts = int(by.get(str(int(Priority.START)), 0))
        polls_behind = polls < self._poll_share * (polls + starts + 1)
        return polls_behind if waiting == Priority.POLL else not polls_behind

    def _roll_window(self, doc: dict[str, Any], now: float) -> bool:
        """Open a new window when the known one has ended (or none is known); True when it did.

        The new window is taken to start now: the API starts its window with the first call after
        the last one ended (or at its own boundary, which the next response's headers tell).
        """
        reset_at = doc.get("reset_at")
        if reset_at is not None and now < float(reset_at) + self.margin:
            return False
        limit = int(doc.get("limit") or ASSUMED_LIMIT)
        doc["window_start"] = now
        doc["reset_at"] = now + self.window
        doc["remaining"] = limit
        doc["granted"] = 0
        doc["granted_by"] = {}
        return True

    # -- learning -------------------------------------------------------------------------------

    def _learn(self, doc: dict[str, Any], record: CallRecord, now: float) -> bool:
        """Fold one response into `doc`; False when it teaches nothing new (no write needed)."""
        rate = record.rate
        before = _copy(doc)
        if record.http_status == 429:
            self._learn_refusal(doc, rate.retry_after if rate else None, rate.reset_at if rate else None, now)
        if rate is not None and rate.limit is not None and rate.limit > 0:
            self._learn_window(doc, rate.limit, rate.remaining, rate.reset_at, now)
        return doc != before

    def _learn_refusal(
        self, doc: dict[str, Any], retry_after: float | None, reset_at: float | None, now: float
    ) -> None:
        """A 429: nobody calls until Retry-After has passed (or the window's end, when it gave none)."""
        if retry_after is not None:
            until = now + retry_after * self._scale
        elif reset_at is not None and reset_at > now:
            until = reset_at + self.margin
        else:
            until = now + 0.1 * self.window
        doc["blocked_until"] = max(float(doc.get("blocked_until") or 0.0), until)
        if doc.get("remaining") is not None:
            doc["remaining"] = 0

    def _learn_window(
        self, doc: dict[str, Any], limit: int, remaining: int | None, reset_at: float | None, now: float
    ) -> None:
        known_limit = doc.get("limit")
        doc["limit"] = limit
        if reset_at is None or reset_at <= now:
            # No window, or one that is already over (a slow response): only the limit is news.
            if doc.get("remaining") is not None:
                doc["remaining"] = min(int(doc["remaining"]), limit)
            return
        theirs = remaining if remaining is not None else limit
        ours = doc.get("reset_at")
        same_window = ours is not None and abs(float(ours) - reset_at) < max(self.margin, 0.5 * self._scale)
        if same_window and doc.get("remaining") is not None and known_limit == limit:
            if min(int(doc["remaining"]), theirs) > UNCOUNTED_MARGIN:
                return  # an unlimited key: far from the limit, the exact count is not worth a write
            doc["remaining"] = min(int(doc["remaining"]), theirs)
        elif same_window and doc.get("remaining") is not None:
            # A new limit (the first response, or another plan): the API's count replaces the one
            # kept against the assumed limit, less the calls granted that it has not seen yet.
            in_flight = max(0, int(doc.get("granted", 0)) - (limit - theirs))
            doc["remaining"] = max(0, theirs - in_flight)
        else:
            # Another window than we thought: the API's count replaces ours, one call kept for
            # any still in flight.
            doc["remaining"] = max(0, theirs - 1)
            doc["granted"] = max(0, limit - doc["remaining"])
            doc["granted_by"] = {}
        doc["reset_at"] = reset_at
        doc["window_start"] = reset_at - self.window


def _prune_demand(doc: dict[str, Any], now: float) -> bool:
    """Drop the waits that are over; True when any was dropped."""
    demand = dict(doc.get("demand") or {})
    live = {k: v for k, v in demand.items() if float(v) > now}
    if live == demand:
        return False
    doc["demand"] = live
    return True


def _copy(doc: dict[str, Any]) -> dict[str, Any]:
    """A copy deep enough for the nested dicts the budget changes."""
    out = dict(doc)
    for name in ("granted_by", "demand"):
        if isinstance(out.get(name), dict):
            out[name] = dict(out[name])
    return out
