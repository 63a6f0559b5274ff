"""Rate-limit and credit headers of one Toksta response, parsed tolerantly.

The fleet-wide rate budget learns from these headers on every response, errors included, so a
malformed value must never break a call: it simply reads as unknown (`None`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

LIMIT = "x-ratelimit-limit"
REMAINING = "x-ratelimit-remaining"
RESET = "x-ratelimit-reset"
RETRY_AFTER = "retry-after"
CREDIT_COST = "x-toksta-credit-cost"


def _finite_float(raw: str | None) -> float | None:
    """A finite float from a header value, else None (empty, garbage, NaN, inf)."""
    if raw is None:
        return None
    try:
        value = float(raw.strip())
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _count(raw: str | None) -> int | None:
    """A non-negative whole number ("20" or "20.0"); anything else is unknown."""
    value = _finite_float(raw)
    if value is None or value < 0 or not value.is_integer():
        return None
    return int(value)


def _retry_after(raw: str | None, now: float) -> float | None:
    """Seconds to wait: delta-seconds as sent, or an HTTP-date turned into seconds from `now`."""
    if raw is None or not raw.strip():
        return None
    seconds = _finite_float(raw)
    if seconds is not None:
        return seconds if seconds >= 0 else None
    try:
        when = parsedate_to_datetime(raw.strip())
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:  # RFC 9110 dates are GMT; a naive parse means "-0000"
        return None
    return max(0.0, when.timestamp() - now)


@dataclass(frozen=True, slots=True)
class RateInfo:
    """What one response said about the key's rate window and the call's credit cost."""

    limit: int | None = None
    remaining: int | None = None
    reset_at: float | None = None
    retry_after: float | None = None
    credit_cost: float | None = None

    @classmethod
    def from_headers(cls, headers: Mapping[str, str], *, now: float | None = None) -> RateInfo:
        """Parse the headers (any letter case); every bad or missing value becomes None.

        `now` (unix seconds) only matters for a Retry-After given as an HTTP-date.
        """
        lowered = {name.lower(): value for name, value in headers.items()}
        reset_at = _finite_float(lowered.get(RESET))
        cost = _finite_float(lowered.get(CREDIT_COST))
        return cls(
            limit=_count(lowered.get(LIMIT)),
            remaining=_count(lowered.get(REMAINING)),
            reset_at=reset_at if reset_at is not None and reset_at >= 0 else None,
            retry_after=_retry_after(lowered.get(RETRY_AFTER), time.time() if now is None else now),
            credit_cost=cost if cost is not None and cost >= 0 else None,
        )

    @property
    def empty(self) -> bool:
        """True when the response carried none of these headers (probes, transport-level errors)."""
        return all(
            value is None for value in (self.limit, self.remaining, self.reset_at, self.retry_after, self.credit_cost)
        )
