"""One simulated job and its lifecycle, computed lazily from the clock.

A job is created with a duration and an outcome. Its status at any instant follows from
them: initial (`queued` or `pending`) for the first tenth of the duration (2 s at most), `running` until
the end, then the outcome. Forcing (admin) or canceling pins a status from a given instant.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

THOUGHT_LEADERS = "thought_leaders"
ENRICHMENT = "enrichment"
CONTENT_MATCH = "content_match"
AUDIENCE_MATCH = "audience_match"
KINDS = (THOUGHT_LEADERS, ENRICHMENT, CONTENT_MATCH, AUDIENCE_MATCH)

TERMINAL = frozenset({"succeeded", "failed", "canceled", "expired"})
NON_TERMINAL = frozenset({"queued", "pending", "running"})
PREFIXES = {CONTENT_MATCH: "content-fit:", AUDIENCE_MATCH: "audience-fit:", ENRICHMENT: "enrichment:"}
INITIAL_STATUS = {
    THOUGHT_LEADERS: "queued",
    ENRICHMENT: "queued",
    CONTENT_MATCH: "pending",
    AUDIENCE_MATCH: "pending",
}
SOURCE_STATUS = {
    "queued": "queued",
    "pending": "pending",
    "running": "processing",
    "succeeded": "completed",
    "failed": "failed",
    "canceled": "cancelled",
    "expired": "expired",
}
# A job sits in its initial status for a tenth of its duration, at most this many simulated seconds.
QUEUED_FRACTION = 0.1
QUEUED_MAX_SECONDS = 2.0
FAILURE_MESSAGE = "Simulated failure: the analysis could not be completed."


def is_plain_uuid(value: object) -> bool:
    """True for a canonical (hyphenated, unprefixed) UUID string."""
    if not isinstance(value, str) or len(value) != 36:
        return False
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


@dataclass
class Job:
    uid: str
    kind: str
    public_id: str
    created: float
    duration: float
    outcome: str
    created_epoch: float
    body_sha256: str
    creator_id: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    reserved: int = 0
    charged: int | None = None
    forced: tuple[str, float] | None = None

    def status_at(self, now: float) -> str:
        if self.forced is not None:
            return self.forced[0]
        elapsed = now - self.created
        if elapsed >= self.duration:
            return self.outcome
        if elapsed >= min(self.duration * QUEUED_FRACTION, QUEUED_MAX_SECONDS):
            return "running"
        return INITIAL_STATUS[self.kind]

    def terminal_since(self, now: float) -> float | None:
        """Simulated instant the job became terminal, or None while it is not."""
        if self.forced is not None:
            return self.forced[1] if self.forced[0] in TERMINAL else None
        end = self.created + self.duration
        return end if now >= end else None

    def next_change(self) -> float | None:
        """When the status will next become terminal on its own (None if pinned)."""
        return None if self.forced is not None else self.created + self.duration

    def fraction_at(self, now: float) -> float:
        """Share of the work done at `now` (0..1); a canceled job stops where it was."""
        until = now
        if self.forced is not None:
            until = min(now, self.forced[1])
        if self.duration <= 0:
            return 1.0
        return max(0.0, min(1.0, (until - self.created) / self.duration))

    def force(self, status: str, now: float) -> None:
        self.forced = (status, now)
