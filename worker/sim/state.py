"""The simulator's memory: jobs, creators, credits, and a broadcast for "something changed".

Job states are never advanced by a timer: they are computed from the clock when read.
The only eager work is settling thought-leaders reservations (refunds), done from a heap
of due instants at the start of every request and every stats read.
"""

from __future__ import annotations

import asyncio
import heapq
import random
import uuid
from dataclasses import dataclass
from typing import Any

from worker.sim import discovery
from worker.sim.clock import SimClock
from worker.sim.config import OUTCOMES, CreatorKnobs, SimConfig
from worker.sim.jobs import ENRICHMENT, PREFIXES, TERMINAL, THOUGHT_LEADERS, Job
from worker.sim.stats import Stats

OPERATIONS = {
    THOUGHT_LEADERS: "thought_leaders",
    ENRICHMENT: "profile_enrichment",
    "content_match": "content_match",
    "audience_match": "audience_match",
}


@dataclass(frozen=True)
class Overrides:
    """Outcome and duration forced by `sim:` magic strings in a start body."""

    outcome: str | None = None
    duration: float | None = None


def parse_overrides(body: dict[str, Any]) -> Overrides:
    """Reads `sim:outcome=<status>` and `sim:duration=<seconds>` from the body's string lists."""
    outcome: str | None = None
    duration: float | None = None
    for value in body.values():
        if not isinstance(value, list):
            continue
        for item in value:
            if not isinstance(item, str) or not item.startswith("sim:"):
                continue
            name, _, arg = item[4:].partition("=")
            if name == "outcome" and arg in OUTCOMES:
                outcome = arg
            elif name == "duration":
                try:
                    duration = max(0.0, float(arg))
                except ValueError:
                    continue
    return Overrides(outcome, duration)


class SimState:
    def __init__(self, config: SimConfig, clock: SimClock, seed: int | None = None) -> None:
        self.clock = clock
        self.stats = Stats()
        self._seed = seed
        self.reset(config)

    def reset(self, config: SimConfig) -> None:
        self.config = config
        self.rng = random.Random(self._seed)
        self.stats = Stats()
        self.jobs: dict[str, Job] = {}
        self.by_public: dict[str, list[str]] = {}
        self.seen: set[str] = set()
        self.enrich_jobs: dict[str, list[str]] = {}
        self.analyses: dict[tuple[str, str], list[str]] = {}
        self.cache: dict[tuple[str, str, str], str] = {}
        self.balance = config.credits
        self.usage: dict[str, dict[str, int]] = {}
        self._settle_heap: list[tuple[float, str]] = []
        self._changed = asyncio.Event()

    # --- configuration -------------------------------------------------------------------
    def apply_config(self, config: SimConfig, credits_given: bool) -> None:
        self.config = config
        if credits_given:
            self.balance = config.credits
        self.notify()

    def knobs(self, creator_id: str | None) -> CreatorKnobs:
        if creator_id is None:
            return CreatorKnobs()
        return self.config.creators.get(creator_id, CreatorKnobs())

    # --- jobs ----------------------------------------------------------------------------
    def now(self) -> float:
        return self.clock.now()

    def create_job(
        self,
        kind: str,
        *,
        body_sha: str,
        overrides: Overrides,
        creator_id: str | None = None,
        params: dict[str, Any] | None = None,
        reserved: int = 0,
    ) -> Job:
        """A new job; creator knobs beat the body's magic strings, which beat the global draw."""
        knobs = self.knobs(creator_id)
        uid = str(uuid.UUID(int=self.rng.getrandbits(128), version=4))
        now = self.now()
        duration = knobs.duration if knobs.duration is not None else overrides.duration
        if duration is None:
            low, high = self.config.job_seconds
            duration = self.rng.uniform(low, high)
        outcome = knobs.outcome or overrides.outcome or self._draw_outcome()
        prefix = PREFIXES.get(kind, "")
        public_id = f"{prefix}{creator_id}" if kind == ENRICHMENT else f"{prefix}{uid}"
        job = Job(
            uid=uid,
            kind=kind,
            public_id=public_id,
            created=now,
            duration=duration,
            outcome=outcome,
            created_epoch=self.clock.real_epoch(now),
            body_sha256=body_sha,
            creator_id=creator_id,
            params=dict(params or {}),
            reserved=reserved,
        )
        self.jobs[uid] = job
        self.by_public.setdefault(public_id, []).append(uid)
        self.stats.jobs_created += 1
        if kind == THOUGHT_LEADERS:
            heapq.heappush(self._settle_heap, (job.created + job.duration, uid))
            self.seen.update(discovery.row_creator_ids(job))
        if creator_id is not None:
            self.seen.add(creator_id)
            target = self.enrich_jobs if kind == ENRICHMENT else None
            if target is not None:
                target.setdefault(creator_id, []).append(uid)
            else:
                self.analyses.setdefault((kind, creator_id), []).append(uid)
        self.notify()
        return job

    def _draw_outcome(self) -> str:
        names = list(self.config.outcomes)
        weights = [self.config.outcomes[name] for name in names]
        return self.rng.choices(names, weights=weights, k=1)[0]

    def status(self, job: Job) -> str:
        return job.status_at(self.now())

    def find_public(self, public_id: str) -> Job | None:
        """The latest job returned under `public_id` (enrichment ids repeat per creator)."""
        uids = self.by_public.get(public_id)
        return self.jobs[uids[-1]] if uids else None

    def force(self, job: Job, status: str) -> None:
        job.force(status, self.now())
        if status in TERMINAL:
            self._settle(job)
        self.notify()

    def cancel(self, job: Job) -> bool:
        """Cancels a non-terminal job (refunding what it did not use); False if already terminal."""
        if self.status(job) in TERMINAL:
            return False
        self.force(job, "canceled")
        return True

    # --- credits -------------------------------------------------------------------------
    def charge(self, kind: str, amount: int) -> None:
        self.balance -= amount
        entry = self.usage.setdefault(OPERATIONS[kind], {"calls": 0, "credits_charged": 0})
        entry["calls"] += 1
        entry["credits_charged"] += amount

    def refund(self, kind: str, amount: int) -> None:
        if amount <= 0:
            return
        self.balance += amount
        self.usage.setdefault(OPERATIONS[kind], {"calls": 0, "credits_charged": 0})["credits_charged"] -= amount

    def settle_due(self) -> None:
        """Refunds the unused reservation of every thought-leaders job that has become terminal."""
        now = self.now()
        while self._settle_heap and self._settle_heap[0][0] <= now:
            _, uid = heapq.heappop(self._settle_heap)
            job = self.jobs.get(uid)
            if job is not None and self.status(job) in TERMINAL:
                self._settle(job)

    def _settle(self, job: Job) -> None:
        if job.kind != THOUGHT_LEADERS or job.charged is not None:
            return
        now = self.now()
        job.charged = discovery.credits_used(job, self.status(job), now)
        self.refund(job.kind, job.reserved - job.charged)

    # --- creators ------------------------------------------------------------------------
    def enrichment_jobs(self, creator_id: str) -> list[Job]:
        return [self.jobs[uid] for uid in self.enrich_jobs.get(creator_id, [])]

    def enriched_at(self, creator_id: str) -> float | None:
        """Simulated instant the creator became enriched (0 when configured so), else None."""
        if self.knobs(creator_id).enriched:
            return 0.0
        now = self.now()
        moments = [
            job.terminal_since(now) for job in self.enrichment_jobs(creator_id) if self.status(job) == "succeeded"
        ]
        done = [moment for moment in moments if moment is not None]
        return min(done) if done else None

    def is_known_creator(self, creator_id: str) -> bool:
        return creator_id in self.seen or creator_id in self.config.creators

    def latest_analysis(self, kind: str, creator_id: str, campaign_id: str | None) -> Job | None:
        for uid in reversed(self.analyses.get((kind, creator_id), [])):
            job = self.jobs[uid]
            if campaign_id is None or job.params.get("campaign_id") == campaign_id:
                return job
        return None

    # --- change broadcast ----------------------------------------------------------------
    def notify(self) -> None:
        """Wakes every held request so it re-checks its jobs."""
        self._changed.set()
        self._changed = asyncio.Event()

    async def wait_changed(self, timeout_real: float) -> None:
        event = self._changed
        try:
            await asyncio.wait_for(event.wait(), timeout=max(0.0, timeout_real))
        except TimeoutError:
            return
