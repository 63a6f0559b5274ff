"""Counters the tests and benchmarks read from `GET /_sim/stats`."""

from __future__ import annotations

import hashlib
import json
import time
from collections import Counter, deque
from typing import Any

# Arrival times kept per route for `GET /_sim/calls` (the newest ones; a test reads a few rounds).
CALL_TIMES_KEPT = 10_000


def body_sha256(body: object) -> str:
    """sha256 hex of the canonical JSON (sort_keys, separators (",", ":"), ASCII) of a body."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


class Stats:
    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.call_times: dict[str, deque[float]] = {}
        self.calls_total = 0
        self.status_counts: Counter[str] = Counter()
        self.rate_limited = 0
        self.calls_during_retry_after = 0
        self.wrong_format_ids = 0
        self.jobs_created = 0
        self.starts_by_body: Counter[str] = Counter()
        self.held_now = 0
        self.held_max = 0

    def record_call(self, route_key: str) -> None:
        self.calls[route_key] += 1
        self.calls_total += 1
        times = self.call_times.setdefault(route_key, deque(maxlen=CALL_TIMES_KEPT))
        times.append(time.monotonic())

    def calls_json(self, route_key: str) -> dict[str, Any]:
        """The route's call count and its calls' arrival times (monotonic seconds, the newest
        CALL_TIMES_KEPT), with the simulator's `now` on the same clock: a test splits calls into
        rounds by the simulator's own clock, which a stalled test process cannot blur."""
        times = list(self.call_times.get(route_key, ()))
        return {"count": self.calls[route_key], "times": times, "now": time.monotonic()}

    def record_status(self, status: int | str) -> None:
        self.status_counts[str(status)] += 1
        if status == 429:
            self.rate_limited += 1

    def record_start(self, sha256: str) -> None:
        self.starts_by_body[sha256] += 1

    def hold_enter(self) -> None:
        self.held_now += 1
        self.held_max = max(self.held_max, self.held_now)

    def hold_exit(self) -> None:
        self.held_now -= 1

    def to_json(self, credits_balance: int) -> dict[str, Any]:
        return {
            "calls": dict(self.calls),
            "calls_total": self.calls_total,
            "status_counts": dict(self.status_counts),
            "rate_limited": self.rate_limited,
            "calls_during_retry_after": self.calls_during_retry_after,
            "wrong_format_ids": self.wrong_format_ids,
            "jobs_created": self.jobs_created,
            "starts_by_body": dict(self.starts_by_body),
            "duplicate_starts": sum(n - 1 for n in self.starts_by_body.values() if n > 1),
            "credits_balance": credits_balance,
            "held_requests_max": self.held_max,
            "held_requests_now": self.held_now,
        }
