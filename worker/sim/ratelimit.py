"""Per-key fixed-window rate limiting, in simulated seconds, with the API's headers.

A window opens with the first counted call of a key and lasts 60 simulated seconds.
429 answers do not count. The limiter also remembers, per key, until when its last
429 told the client to stay away, so the simulator can count calls made too early.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from worker.sim.clock import SimClock

WINDOW_SECONDS = 60.0
UNLIMITED_DISPLAY = 1_000_000
# Real seconds of slack when judging "arrived during Retry-After" (timer and clock jitter).
_RETRY_AFTER_SLACK_REAL = 0.001


@dataclass
class _Window:
    start: float
    count: int


@dataclass(frozen=True)
class RateDecision:
    allowed: bool
    limit: int
    remaining: int
    reset_epoch: float
    retry_after: int | None


class RateLimiter:
    def __init__(self, clock: SimClock) -> None:
        self._clock = clock
        self._windows: dict[str, _Window] = {}
        self._retry_until: dict[str, float] = {}

    def clear(self) -> None:
        self._windows.clear()
        self._retry_until.clear()

    def _window(self, key: str, now: float) -> _Window:
        window = self._windows.get(key)
        if window is None or now >= window.start + WINDOW_SECONDS:
            window = _Window(start=now, count=0)
            self._windows[key] = window
        return window

    def check(self, key: str, limit: int) -> RateDecision:
        """Count one call of `key` if the window allows it; otherwise a 429 decision (not counted)."""
        now = self._clock.now()
        window = self._window(key, now)
        end = window.start + WINDOW_SECONDS
        shown = limit if limit > 0 else UNLIMITED_DISPLAY
        if limit > 0 and window.count >= limit:
            retry_after = max(1, math.ceil(end - now))
            self._retry_until[key] = max(self._retry_until.get(key, 0.0), now + retry_after)
            return RateDecision(False, shown, 0, self._clock.real_epoch(end), retry_after)
        window.count += 1
        return RateDecision(True, shown, max(0, shown - window.count), self._clock.real_epoch(end), None)

    def peek(self, key: str, limit: int) -> RateDecision:
        """The current window's state without counting a call (for answers that bypass the limiter)."""
        now = self._clock.now()
        window = self._windows.get(key)
        if window is None or now >= window.start + WINDOW_SECONDS:
            window = _Window(start=now, count=0)
        shown = limit if limit > 0 else UNLIMITED_DISPLAY
        end = window.start + WINDOW_SECONDS
        return RateDecision(True, shown, max(0, shown - window.count), self._clock.real_epoch(end), None)

    def note_retry_after(self, key: str, seconds: int) -> None:
        """Records a Retry-After announced outside the limiter (an injected 429)."""
        until = self._clock.now() + seconds
        self._retry_until[key] = max(self._retry_until.get(key, 0.0), until)

    def in_retry_after(self, key: str) -> bool:
        """True while `key` is inside the Retry-After its last 429 announced."""
        until = self._retry_until.get(key)
        if until is None:
            return False
        slack = _RETRY_AFTER_SLACK_REAL / self._clock.scale
        return self._clock.now() < until - slack

    def headers(self, decision: RateDecision) -> dict[str, str]:
        """X-RateLimit-* (and Retry-After on a 429). Reset is real epoch seconds; Retry-After simulated."""
        headers = {
            "X-RateLimit-Limit": str(decision.limit),
            "X-RateLimit-Remaining": str(decision.remaining),
            "X-RateLimit-Reset": _reset_header(decision.reset_epoch, self._clock.scale),
        }
        if decision.retry_after is not None:
            headers["Retry-After"] = str(decision.retry_after)
        return headers


def _reset_header(epoch: float, scale: float) -> str:
    """Whole seconds (rounded up) in real time; milliseconds when time is scaled, where a second is long."""
    if scale == 1.0:
        return str(math.ceil(epoch))
    return f"{epoch:.3f}"
