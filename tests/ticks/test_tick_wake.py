"""Waking a family's tick when new work arrives: it runs after the smallest wait queue's delay.

Real RabbitMQ and an embedded state store, in this process: the scheduler's documents are read
back from the store and its tick messages from the queues they were published to.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from worker.amqp.connection import open_connection
from worker.amqp.topology import WAIT_DELAYS_MS, declare_queue
from worker.api.client import CallRecord
from worker.api.rate import RateInfo
from worker.runtime.context import Runtime
from worker.runtime.ticks import ARMED, RUNNING, TickScheduler, tick_key
from worker.settings import Settings

KIND = "thought_leaders"
UNLIMITED = 1_000_000  # what the simulator's unlimited key announces, far beyond budget.UNCOUNTED_MARGIN


def learn_limit(rt: Runtime, limit: int) -> None:
    """The rate budget learns the key's limit as from a response's X-RateLimit-* headers."""
    rate = RateInfo(limit=limit, remaining=limit - 1, reset_at=time.time() + 60)
    rt.budget.observe(CallRecord(route="POST /v1/x", http_status=200, rate=rate, error=None, elapsed=0.01))


@pytest.fixture
def rt(tmp_path: Path) -> Iterator[Runtime]:
    settings = Settings(
        _env_file=None,
        request_queue=f"ticks.{uuid.uuid4().hex[:10]}.requests",
        state_dir=str(tmp_path / "state"),
    )
    runtime = Runtime(settings)
    connection = open_connection(settings.amqp_url, name="tick-wake-test")
    try:
        channel = connection.channel()
        runtime.topology.declare(channel)
        # In a worker the dramatiq broker declares the ticks queue; here it is only read from.
        declare_queue(channel, runtime.topology.ticks, {})
        learn_limit(runtime, UNLIMITED)
        yield runtime
    finally:
        runtime.close_thread_resources()
        channel = connection.channel()
        names = [settings.request_queue, runtime.topology.ticks, runtime.topology.dlq, runtime.topology.unroutable]
        names += [runtime.topology.wait_queue(delay) for delay in WAIT_DELAYS_MS]
        for name in names:
            channel.queue_delete(name)
        connection.close()
        runtime.store.close()


def tick_doc(rt: Runtime) -> dict[str, Any]:
    current = rt.store.get(tick_key(KIND))
    assert current is not None
    return dict(current.value)


def seqs_in(rt: Runtime, queue: str) -> list[int]:
    """The sequence numbers of the tick messages in `queue` (taken off it)."""
    connection = open_connection(rt.settings.amqp_url, name="tick-wake-reader")
    try:
        channel = connection.channel()
        found: list[int] = []
        while True:
            method, _props, body = channel.basic_get(queue, auto_ack=True)
            if method is None:
                return found
            kind, seq = json.loads(body)["args"]
            assert kind == KIND
            found.append(int(seq))
    finally:
        connection.close()


def long_wait_queue(rt: Runtime) -> str:
    return rt.topology.wait_queue(max(WAIT_DELAYS_MS))


def short_wait_queue(rt: Runtime) -> str:
    return rt.topology.wait_queue(min(WAIT_DELAYS_MS))


def armed_for(doc: dict[str, Any]) -> float:
    return float(doc["runs_at"] - doc["armed_at"])


def take_tick(rt: Runtime, queue: str) -> list[int]:
    """The tick messages published to `queue`; the smallest wait queue may have passed them on to
    the ticks queue already (its delay is 50 ms), so both are read."""
    found = seqs_in(rt, queue)
    return found + seqs_in(rt, rt.topology.ticks) if queue == short_wait_queue(rt) else found


def idle_tick(rt: Runtime, scheduler: TickScheduler) -> int:
    """A tick that ran and re-armed for the longest wait queue; returns its armed sequence number."""
    assert scheduler.watch(KIND)
    seq = int(tick_doc(rt)["seq"])
    assert scheduler.claim(KIND, seq)
    scheduler.rearm(KIND, seq, max(WAIT_DELAYS_MS) / 1000)
    assert seqs_in(rt, rt.topology.ticks) == [seq]  # the watchdog's message
    return seq + 1


def test_wake_replaces_an_idle_tick_with_one_that_runs_shortly(rt: Runtime) -> None:
    scheduler = TickScheduler(rt)
    armed = idle_tick(rt, scheduler)
    assert tick_doc(rt)["runs_at"] > time.time() + 1

    assert scheduler.wake(KIND)
    doc = tick_doc(rt)
    assert (doc["seq"], doc["state"]) == (armed + 1, ARMED)
    assert armed_for(doc) == pytest.approx(min(WAIT_DELAYS_MS) / 1000)
    assert take_tick(rt, short_wait_queue(rt)) == [armed + 1]
    # The tick it replaced is still in its wait queue; when it arrives it is stale and does not run.
    assert seqs_in(rt, long_wait_queue(rt)) == [armed]
    assert not scheduler.claim(KIND, armed)
    assert scheduler.claim(KIND, armed + 1)


def test_wake_does_nothing_when_the_tick_runs_soon_anyway(rt: Runtime) -> None:
    scheduler = TickScheduler(rt)
    idle_tick(rt, scheduler)
    assert scheduler.wake(KIND)
    before = tick_doc(rt)
    assert not scheduler.wake(KIND)  # the tick it just armed is due shortly
    assert tick_doc(rt) == before
    assert len(take_tick(rt, short_wait_queue(rt))) == 1


def test_a_tick_woken_while_running_rearms_shortly_whatever_it_found_due(rt: Runtime) -> None:
    scheduler = TickScheduler(rt)
    assert scheduler.watch(KIND)
    seq = int(tick_doc(rt)["seq"])
    assert scheduler.claim(KIND, seq)
    assert scheduler.wake(KIND)
    assert tick_doc(rt)["state"] == RUNNING and tick_doc(rt)["woken"] is True
    assert not scheduler.wake(KIND)  # marked once

    assert seqs_in(rt, rt.topology.ticks) == [seq]  # the watchdog's message
    scheduler.rearm(KIND, seq, max(WAIT_DELAYS_MS) / 1000)  # the tick itself saw nothing more to do
    assert armed_for(tick_doc(rt)) == pytest.approx(min(WAIT_DELAYS_MS) / 1000)
    assert take_tick(rt, short_wait_queue(rt)) == [seq + 1]
    assert seqs_in(rt, long_wait_queue(rt)) == []
    assert scheduler.claim(KIND, seq + 1)
    assert "woken" in tick_doc(rt) and tick_doc(rt)["woken"] is False


def test_wake_leaves_a_counted_key_s_ticks_to_their_own_time(rt: Runtime) -> None:
    """On a key with a real limit the requests gather until the tick comes, to share start calls."""
    learn_limit(rt, 60)
    scheduler = TickScheduler(rt)
    armed = idle_tick(rt, scheduler)
    before = tick_doc(rt)
    assert not scheduler.wake(KIND)
    assert tick_doc(rt) == before
    assert seqs_in(rt, long_wait_queue(rt)) == [armed]


def test_wake_leaves_a_tick_held_by_the_rate_budget(rt: Runtime) -> None:
    scheduler = TickScheduler(rt)
    assert scheduler.watch(KIND)
    seq = int(tick_doc(rt)["seq"])
    assert scheduler.claim(KIND, seq)
    scheduler.rearm(KIND, seq, max(WAIT_DELAYS_MS) / 1000, hold=True)
    before = tick_doc(rt)
    assert before["hold"] is True

    assert not scheduler.wake(KIND)
    assert tick_doc(rt) == before
    assert seqs_in(rt, long_wait_queue(rt)) == [seq + 1]
