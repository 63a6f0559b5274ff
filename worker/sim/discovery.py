"""What a thought-leaders (creator discovery) job finds, and how far it got at a given instant."""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

from worker.sim.fakedata import derived_uuid, rng_for
from worker.sim.jobs import Job

MODE_RATES = {"broad": 1, "balanced": 2, "strict": 3}


@dataclass(frozen=True)
class Plan:
    total: int
    approved: int
    rows: int


@dataclass(frozen=True)
class Progress:
    total_items: int
    completed_items: int
    approved_items: int
    failed_items: int

    def to_json(self) -> dict[str, int]:
        return {
            "total_items": self.total_items,
            "completed_items": self.completed_items,
            "approved_items": self.approved_items,
            "failed_items": self.failed_items,
        }


def plan(job: Job) -> Plan:
    """Candidates analyzed, approved and returned when the job runs to completion."""
    return _plan(job.uid, int(job.params.get("max_candidates_to_analyze", 100)), int(job.params.get("count", 10)))


@functools.lru_cache(maxsize=65536)
def _plan(uid: str, cap: int, count: int) -> Plan:
    """Cached: a job's status, credits and rows each ask for its plan, and each plan seeds an RNG
    (about 10% of the simulator's CPU in bench/pipeline.py, whose cores it shares with the worker)."""
    rng = rng_for("discovery", uid)
    total = rng.randint(max(1, cap // 2), cap)
    approved = max(1, round(total * rng.uniform(0.2, 0.45)))
    return Plan(total=total, approved=approved, rows=min(count, approved))


def progress(job: Job, status: str, now: float) -> Progress:
    full = plan(job)
    if status in ("succeeded", "expired"):
        share = 1.0
    elif status == "failed":
        share = min(job.fraction_at(now), 0.5)
    else:
        share = job.fraction_at(now)
    completed = math.floor(full.total * share)
    approved = min(completed, math.floor(full.approved * share))
    return Progress(full.total, completed, approved, completed - approved)


def credits_used(job: Job, status: str, now: float) -> int:
    """Credits kept from the reservation once the job is terminal (the rest is refunded)."""
    if status == "failed":
        return 0
    rate = MODE_RATES[str(job.params.get("mode", "balanced"))]
    return min(job.reserved, progress(job, status, now).completed_items * rate)


def row_creator_ids(job: Job) -> list[str]:
    """The creators a finished job returns, best first."""
    return list(_row_creator_ids(job.uid, plan(job).rows))


@functools.lru_cache(maxsize=4096)
def _row_creator_ids(uid: str, rows: int) -> tuple[str, ...]:
    """Cached: a job's rows are named when it is created (the creators the simulator has seen) and
    again on every poll that returns them, a uuid5 each."""
    return tuple(derived_uuid("row", uid, str(rank)) for rank in range(1, rows + 1))
