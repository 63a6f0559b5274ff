"""One poll tick per family, circulating through broker wait queues, run under a short lease.

The tick's document in the state store (`tick:<kind>`) holds its sequence number, whether it is
armed or running, and `due_by`: the moment by which it must have started (armed) or renewed its
lease (running). A tick message runs only when its sequence number is the current one, so a
redelivered or duplicated tick is dropped; each run re-arms with the next number. A watchdog in
every process re-arms a family whose `due_by` has lapsed (a tick message can be lost: classic
dead-lettering is at most once, and a process can die between steps). Delays live in the broker
(fixed-TTL wait queues dead-lettering into the ticks queue), never in a worker's memory.

New work does not wait out an idle tick's delay on a roomy key: ingress `wake`s the family (on a
counted key calls are scarce and requests gather for the tick's own time). An armed tick due
later is replaced by one sent through the smallest wait queue (the old message is dropped on
arrival, its sequence number being stale); a running tick is marked `woken` and re-arms through
that queue whatever it found due. A tick that re-armed because the rate budget refused it
(`hold`) is left alone: the budget, not the lack of work, is what it waits for. A busy family's
rounds, too, are 50 ms apart at least (the smallest wait queue): the rows that arrive meanwhile
join the next round, where going again at once made more, smaller rounds (more calls, more CPU,
fewer requests per second in bench/pipeline.py).
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass
from typing import Any, Final

import dramatiq
import pika

from worker.runtime.context import Runtime

log = logging.getLogger(__name__)

TICK_ACTOR: Final = "family_tick"
ARMED: Final = "armed"
RUNNING: Final = "running"
# An armed tick due within this many seconds is not worth replacing when new work arrives.
WAKE_SLACK_SECONDS: Final = 0.05


def tick_key(kind: str) -> str:
    return f"tick:{kind}"


@dataclass(frozen=True, slots=True)
class TickClock:
    """The time bounds a tick lives by, in real seconds."""

    lease: float
    grace: float
    max_idle: float


def tick_clock(rt: Runtime) -> TickClock:
    settings = rt.settings
    lease = settings.http_timeout_seconds + settings.scaled(settings.poll_wait_seconds) + 5.0
    return TickClock(lease=lease, grace=settings.tick_grace_seconds, max_idle=settings.tick_max_idle_seconds)


class TickScheduler:
    """Claims, renews and re-arms the ticks of every family."""

    def __init__(self, rt: Runtime) -> None:
        self._rt = rt
        self._clock = tick_clock(rt)

    def claim(self, kind: str, seq: int) -> bool:
        """Start running tick `seq` of `kind` if it is the current, armed one."""

        def take(doc: dict[str, Any], now: float) -> dict[str, Any] | None:
            if doc.get("seq") != seq or doc.get("state") != ARMED:
                return None
            return dict(doc, state=RUNNING, due_by=now + self._clock.lease, started_at=now, hold=False, woken=False)

        return self._change(kind, take)

    def renew(self, kind: str, seq: int) -> bool:
        """Extend the running tick's lease; False when it was superseded (stop working then)."""

        def extend(doc: dict[str, Any], now: float) -> dict[str, Any] | None:
            if doc.get("seq") != seq or doc.get("state") != RUNNING:
                return None
            return dict(doc, due_by=now + self._clock.lease)

        return self._change(kind, extend)

    def rearm(self, kind: str, seq: int, delay: float, *, hold: bool = False) -> None:
        """Hand the family to tick `seq + 1`, delivered after `delay` real seconds.

        `hold`: the delay is the rate budget's, which new work must not cut short. A tick woken
        while it ran (and not held) comes back after the smallest wait queue's delay.
        """
        topology = self._rt.topology
        chosen: list[tuple[str, float]] = []

        def advance(doc: dict[str, Any], now: float) -> dict[str, Any] | None:
            chosen.clear()  # a lost race runs this again
            if doc.get("seq") != seq:
                return None
            wanted = 0.0 if doc.get("woken") and not hold else delay
            queue, actual = topology.pick_wait_queue(max(wanted, 0.0))
            chosen.append((queue, actual))
            return _armed(seq + 1, now, actual, self._clock.grace, hold=hold)

        if self._change(kind, advance):
            self._publish(kind, seq + 1, chosen[-1][0])

    def wake(self, kind: str) -> bool:
        """New work for `kind`: run its tick shortly rather than when its delay ends.

        The woken tick comes through the smallest wait queue, so the requests of a burst that arrive
        within its delay are taken in one round (and can share start calls). Only on a roomy key
        (`RateBudget.roomy`, e.g. unlimited): latency where calls are free, calls where they are not.
        True when the tick changed: an armed one brought forward, or a running one marked `woken`.
        Costs two reads when the tick is due soon anyway, running and already woken, or held by the
        budget (the common cases under load); one write more otherwise.
        """
        if not self._rt.budget.roomy():
            # Calls are what a counted key runs short of: requests gather until the tick's own time
            # (TICK_MAX_IDLE_SECONDS at most) and share start calls, where waking made one call each.
            return False
        queue, soon = self._rt.topology.pick_wait_queue(0.0)
        woken: list[int] = []

        def bring_forward(doc: dict[str, Any], now: float) -> dict[str, Any] | None:
            woken.clear()  # a lost race runs this again
            if not doc or doc.get("hold"):
                return None
            if doc.get("state") == RUNNING:
                return None if doc.get("woken") else dict(doc, woken=True)
            if float(doc.get("runs_at", 0.0)) <= now + soon + WAKE_SLACK_SECONDS:
                return None
            seq = int(doc.get("seq", 0)) + 1
            woken.append(seq)
            return _armed(seq, now, soon, self._clock.grace)

        changed = self._change(kind, bring_forward)
        if woken and changed:
            self._publish(kind, woken[-1], queue)
        return changed

    def watch(self, kind: str) -> bool:
        """Re-arm `kind` now if its tick is missing or its lease lapsed; True when it did."""
        new_seq: list[int] = []

        def restart(doc: dict[str, Any], now: float) -> dict[str, Any] | None:
            if doc and now <= float(doc.get("due_by", 0.0)):
                return None
            seq = int(doc.get("seq", 0)) + 1
            new_seq.append(seq)
            return _armed(seq, now, 0.0, self._clock.grace)

        if self._change(kind, restart):
            log.info("tick of %s re-armed by the watchdog (seq %d)", kind, new_seq[-1])
            self._publish(kind, new_seq[-1], self._rt.topology.ticks)
            return True
        return False

    def _change(self, kind: str, fn: Any) -> bool:
        store = self._rt.store
        for _ in range(10):
            current = store.get(tick_key(kind))
            doc = dict(current.value) if current else {}
            new = fn(doc, time.time())
            if new is None:
                return False
            if store.write(tick_key(kind), new, expect_version=current.version if current else 0) is not None:
                return True
        return False

    def _publish(self, kind: str, seq: int, queue: str) -> None:
        message: dramatiq.Message[Any] = dramatiq.Message(
            queue_name=self._rt.topology.ticks,  # the work queue: acks go through its consumer
            actor_name=TICK_ACTOR,
            args=(kind, seq),
            kwargs={},
            options={},
            message_id=str(uuid.uuid4()),
            message_timestamp=int(time.time() * 1000),
        )
        props = pika.BasicProperties(delivery_mode=2, content_type="application/json")
        self._rt.publisher().publish(queue, message.encode(), props, mandatory=True)


def _armed(seq: int, now: float, delay: float, grace: float, *, hold: bool = False) -> dict[str, Any]:
    """The document of tick `seq`, armed to run `delay` seconds from `now`."""
    return {
        "seq": seq,
        "state": ARMED,
        "due_by": now + delay + grace,
        "armed_at": now,
        "runs_at": now + delay,
        "hold": hold,
    }
