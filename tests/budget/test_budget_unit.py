"""RateBudget on real state stores (SQLite file and Redis): learning, pacing, Retry-After, priorities.

Times are passed explicitly (`now=`) at time scale 1 (a 60 s window), so the cases are exact; the
concurrency case runs real threads on two store instances against the real clock.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.store_fixtures import REDIS_URL
from worker.api.client import CallRecord
from worker.api.rate import RateInfo
from worker.runtime.budget import COLD_RETRY_SECONDS, Priority, RateBudget
from worker.state.base import StateStore
from worker.state.redis_store import RedisStateStore
from worker.state.sqlite_store import SqliteStateStore

T = 1_800_000_000.0  # a fixed "now" (epoch seconds)


def response(
    *, limit: int, remaining: int, reset_at: float, status: int = 200, retry_after: float | None = None
) -> CallRecord:
    rate = RateInfo(limit=limit, remaining=remaining, reset_at=reset_at, retry_after=retry_after)
    return CallRecord(route="POST /v1/x", http_status=status, rate=rate, error=None, elapsed=0.01)


def drain(budget: RateBudget, priority: Priority, now: float, most: int = 1000) -> int:
    """Acquire until refused; how many were granted."""
    for granted in range(most):
        if not budget.acquire(priority, now=now).granted:
            return granted
    return most


@pytest.fixture
def twin(store: StateStore, tmp_path: Path, namespace: str) -> Iterator[StateStore]:
    """A second connection to the same store: what another worker process sees."""
    other: StateStore
    if isinstance(store, SqliteStateStore):
        other = SqliteStateStore(store.path)
    else:
        assert isinstance(store, RedisStateStore)
        other = RedisStateStore(REDIS_URL, namespace)
    yield other
    other.close()


def test_learns_limit_and_window_from_headers(store: StateStore) -> None:
    budget = RateBudget(store, time_scale=1.0)
    budget.observe(response(limit=30, remaining=25, reset_at=T + 40), now=T)
    doc = budget.snapshot()
    assert doc["limit"] == 30
    assert doc["reset_at"] == T + 40
    assert doc["window_start"] == T - 20
    assert doc["remaining"] <= 25
    assert budget.limit() == 30


def test_calls_are_paced_across_the_window_not_burst(store: StateStore) -> None:
    budget = RateBudget(store, time_scale=1.0)
    budget.observe(response(limit=60, remaining=59, reset_at=T + 60), now=T)
    first = drain(budget, Priority.POLL, T)
    assert 1 <= first <= 10  # a small burst, far from the 59 the window still allows
    refused = budget.acquire(Priority.POLL, now=T)
    assert not refused.granted
    assert 0 < refused.wait <= 1.5  # one call a second at 60 a minute
    grants = [first]
    step = 0.25
    moment = T
    while moment < T + 60:
        moment += step
        grants.append(drain(budget, Priority.POLL, moment))
    assert sum(grants) <= 59
    assert sum(grants[: int(30 / step) + 1]) <= first + 31  # half the window: about half the calls


def test_first_response_replaces_the_assumed_limit(store: StateStore) -> None:
    budget = RateBudget(store, time_scale=1.0)
    assert budget.acquire(Priority.START, now=T).granted  # nothing known yet: the smallest plan is assumed
    budget.observe(response(limit=1_000_000, remaining=999_999, reset_at=T + 60), now=T + 0.1)
    assert drain(budget, Priority.POLL, T + 0.2, most=300) == 300


def test_before_the_first_response_a_paced_out_caller_comes_back_soon(store: StateStore) -> None:
    """Under the assumed smallest plan the pace would send a refused caller away for seconds (3 s
    per call at 20/min), and a cold fleet's other families then sat out a whole idle tick while the
    first call's answer showed an unlimited key. Until a limit is learned the wait is short; once
    it is, the pace decides again."""
    budget = RateBudget(store, time_scale=1.0)
    granted = drain(budget, Priority.START, T)
    assert 1 <= granted < 20
    cold = budget.acquire(Priority.POLL, now=T)
    assert not cold.granted
    assert 0 < cold.wait <= COLD_RETRY_SECONDS
    budget.observe(response(limit=20, remaining=20 - granted, reset_at=T + 60), now=T + 0.05)
    known = budget.acquire(Priority.POLL, now=T + 0.05)
    assert not known.granted
    assert known.wait > 1.0  # a real 20/min key: the pace, not the cold retry


def test_an_unlimited_key_costs_no_write_per_call(store: StateStore) -> None:
    budget = RateBudget(store, time_scale=1.0)
    budget.observe(response(limit=1_000_000, remaining=999_999, reset_at=T + 60), now=T)
    before = store.get("budget")
    assert drain(budget, Priority.POLL, T + 1, most=50) == 50
    after = store.get("budget")
    assert before is not None and after is not None
    assert after.version == before.version


def test_a_wait_noted_under_the_assumed_limit_does_not_make_an_unlimited_key_count(store: StateStore) -> None:
    """Before the first response the smallest plan is assumed, so a burst of starts is refused and
    their wait noted; once the key shows itself unlimited, that note must not make every grant a
    write (it did, for the seconds the note lived: the pipeline bench's whole run)."""
    budget = RateBudget(store, time_scale=1.0)
    assert drain(budget, Priority.START, T) < 20  # paced under the assumed 20/min: refused soon
    assert budget.snapshot().get("demand")  # the refused starts' wait is noted
    budget.observe(response(limit=1_000_000, remaining=999_990, reset_at=T + 60), now=T + 0.1)
    before = store.get("budget")
    assert drain(budget, Priority.POLL, T + 0.2, most=50) == 50
    assert drain(budget, Priority.START, T + 0.2, most=50) == 50
    after = store.get("budget")
    assert before is not None and after is not None
    assert after.version == before.version


def test_retry_after_stops_every_priority_in_every_process(store: StateStore, twin: StateStore) -> None:
    mine, theirs = RateBudget(store, time_scale=1.0), RateBudget(twin, time_scale=1.0)
    mine.observe(response(limit=60, remaining=40, reset_at=T + 30), now=T)
    assert theirs.acquire(Priority.FINISH, now=T).granted
    mine.observe(response(limit=60, remaining=0, reset_at=T + 30, status=429, retry_after=20), now=T + 1)
    for priority in Priority:
        grant = theirs.acquire(priority, now=T + 2)
        assert not grant.granted
        assert grant.wait == pytest.approx(19, abs=0.01)
    assert theirs.blocked_until() == pytest.approx(T + 21)
    assert not theirs.acquire(Priority.FINISH, now=T + 30).granted  # the window itself is spent
    assert theirs.acquire(Priority.FINISH, now=T + 30 + theirs.margin + 0.01).granted  # a fresh window


def test_a_429_without_retry_after_waits_for_the_window(store: StateStore) -> None:
    budget = RateBudget(store, time_scale=1.0)
    budget.observe(response(limit=60, remaining=0, reset_at=T + 10, status=429), now=T)
    grant = budget.acquire(Priority.FINISH, now=T + 1)
    assert not grant.granted
    assert grant.wait >= 9


def test_finished_work_goes_before_polls(store: StateStore) -> None:
    budget = RateBudget(store, time_scale=1.0)
    budget.observe(response(limit=60, remaining=59, reset_at=T + 60), now=T)
    drain(budget, Priority.POLL, T)
    assert not budget.acquire(Priority.POLL, now=T).granted
    assert budget.acquire(Priority.FINISH, now=T).granted  # its pace runs ahead of the polls'
    drain(budget, Priority.FINISH, T)
    assert not budget.acquire(Priority.FINISH, now=T).granted  # noted: FINISH waits
    # The next call frees up; a poll asking first must leave it to the waiting FINISH caller.
    later = T + 1.5
    assert not budget.acquire(Priority.POLL, now=later).granted
    assert not budget.acquire(Priority.START, now=later).granted
    assert budget.acquire(Priority.FINISH, now=later).granted


def test_starts_go_before_polls_but_polls_keep_their_share(store: StateStore) -> None:
    budget = RateBudget(store, time_scale=1.0, poll_share=0.3)
    budget.observe(response(limit=60, remaining=59, reset_at=T + 60), now=T)
    assert budget.acquire(Priority.POLL, now=T).granted
    drain(budget, Priority.START, T)
    assert not budget.acquire(Priority.POLL, now=T).granted  # the pace is spent: both wait
    moment = T
    for _ in range(10):  # both wait, one call a second: the starts have had far more than their share
        moment += 1.0
        assert not budget.acquire(Priority.START, now=moment).granted
        assert budget.acquire(Priority.POLL, now=moment).granted
        polls = budget.snapshot()["granted_by"]
        if polls["2"] >= 0.3 * (polls["2"] + polls["1"]):
            break
    # Now the polls have their share: a waiting start goes first.
    moment += 1.0
    assert not budget.acquire(Priority.START, now=moment - 0.9).granted  # noted: START waits
    assert not budget.acquire(Priority.POLL, now=moment).granted
    assert budget.acquire(Priority.START, now=moment).granted


def test_the_end_of_a_window_is_kept_for_finished_work(store: StateStore) -> None:
    budget = RateBudget(store, time_scale=1.0, reserve=0.1)  # 20/min: one call kept per priority level
    budget.observe(response(limit=20, remaining=3, reset_at=T + 5), now=T)  # remaining 2 (one in flight)
    assert not budget.acquire(Priority.POLL, now=T).granted
    assert budget.acquire(Priority.START, now=T).granted
    assert not budget.acquire(Priority.START, now=T).granted
    assert budget.acquire(Priority.FINISH, now=T).granted
    refused = budget.acquire(Priority.FINISH, now=T)
    assert not refused.granted
    assert refused.wait == pytest.approx(5 + budget.margin)
    fresh = T + 5 + budget.margin + 0.01  # a fresh window: the waiting FINISH caller first
    assert not budget.acquire(Priority.POLL, now=fresh).granted
    assert budget.acquire(Priority.FINISH, now=fresh).granted
    assert budget.acquire(Priority.POLL, now=fresh + budget.grace).granted


def test_a_late_response_from_an_old_window_changes_nothing(store: StateStore) -> None:
    budget = RateBudget(store, time_scale=1.0)
    budget.observe(response(limit=60, remaining=50, reset_at=T + 10), now=T)
    assert budget.acquire(Priority.POLL, now=T + 11).granted  # rolls into a new window
    remaining = budget.snapshot()["remaining"]
    budget.observe(response(limit=60, remaining=0, reset_at=T + 10), now=T + 11.5)
    assert budget.snapshot()["remaining"] == remaining


def test_concurrent_processes_never_grant_more_than_the_window_allows(store: StateStore, twin: StateStore) -> None:
    scale = 0.02  # a 1.2 s window
    limit = 30
    seed = RateBudget(store, time_scale=scale)
    start = time.time()
    seed.observe(response(limit=limit, remaining=limit, reset_at=start + 1.2), now=start)  # a window opens
    granted: list[float] = []
    lock = threading.Lock()
    deadline = start + 0.6  # the window ends here; the next one opens after the margin

    def hammer(which: StateStore, priority: Priority) -> None:
        budget = RateBudget(which, time_scale=scale)
        while time.time() < deadline:
            if budget.acquire(priority).granted:
                with lock:
                    granted.append(time.time())

    threads = [
        threading.Thread(target=hammer, args=(s, p)) for s in (store, twin) for p in (Priority.START, Priority.POLL)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(5)
    assert 1 <= len(granted) <= limit
    # Half the window passed: the pace allows half the limit plus a small burst, not all of it.
    assert len(granted) <= limit // 2 + 3 + 1
