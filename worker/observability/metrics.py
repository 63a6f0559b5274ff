"""The worker's Prometheus metrics, and the hooks the runtime calls to move them.

Counters and the histogram are moved where things happen (an API attempt, a published reply, a
dead letter) by whichever process did it; the supervisor adds the processes up per scrape.
Gauges describing shared state (queue depths, the fleet's rate budget, the registry's indexes)
are set by one elected process per host (`refresh_shared`), not computed per scrape by every
process; their multiprocess mode is `mostrecent`, so the latest reading wins.

Label values are kept to small fixed sets: a kind the contract does not know becomes `invalid`.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from worker.api.client import CallRecord
from worker.contract.models import ANALYSIS_KINDS, Kind
from worker.observability import multiproc
from worker.runtime.registry import Registry, index_name
from worker.state.base import StateStore

_KINDS = frozenset(k.value for k in Kind)
TIME_TO_TERMINAL_BUCKETS = (1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, float("inf"))
OLDEST_SCAN_LIMIT = 1000  # rows read per index when looking for the oldest in-flight request
_FETCH_CHUNK = 100


def kind_label(kind: object) -> str:
    """A bounded label value: the contract's kinds, `invalid` for anything else, `unknown` for none."""
    if kind is None:
        return "unknown"
    text = str(kind)
    return text if text in _KINDS else "invalid"


class Metrics:
    """Every metric the worker exports. One instance per process (see `metrics()`)."""

    def __init__(self, registry: CollectorRegistry | None) -> None:
        # Counters and the histogram: moved by the process that did the work, summed at scrape.
        self.api_calls = Counter(
            "toksta_api_calls",
            "Toksta API attempts by endpoint and HTTP status ('transport' when no response came).",
            ["endpoint", "status"],
            registry=registry,
        )
        self.rate_limited = Counter("toksta_rate_limited", "API attempts answered 429.", registry=registry)
        self.requests = Counter(
            "toksta_requests",
            "Replies published (every copy), by request kind and reply status.",
            ["kind", "status"],
            registry=registry,
        )
        self.dead_letters = Counter(
            "toksta_dead_letters", "Requests put into the dead-letter queue, by reason.", ["reason"], registry=registry
        )
        self.unroutable = Counter(
            "toksta_unroutable",
            "Replies the broker refused (no such reply queue) and that were parked in .unroutable.",
            ["reason"],
            registry=registry,
        )
        self.time_to_terminal = Histogram(
            "toksta_time_to_terminal_seconds",
            "Real seconds from a request's arrival to its reply.",
            ["kind"],
            buckets=TIME_TO_TERMINAL_BUCKETS,
            registry=registry,
        )
        # Shared state, read periodically by one process per host.
        self.dlq_depth = self._shared("toksta_dlq_depth", "Messages in the dead-letter queue.", registry)
        self.unroutable_depth = self._shared(
            "toksta_unroutable_depth", "Replies parked in the unroutable queue.", registry
        )
        self.budget_remaining = self._shared(
            "toksta_rate_budget_remaining",
            "API calls left in the current rate window, fleet-wide (NaN until the API told the limit).",
            registry,
        )
        self.oldest_inflight_age = self._shared(
            "toksta_oldest_inflight_age_seconds",
            "Age of the oldest waiting or running request (0 when there is none).",
            registry,
        )
        self.inflight = self._shared(
            "toksta_requests_inflight", "Requests started or being started, by kind.", registry, ["kind"]
        )
        self.waiting = self._shared(
            "toksta_requests_waiting",
            "Requests admitted and waiting for their start call, by kind.",
            registry,
            ["kind"],
        )

    @staticmethod
    def _shared(
        name: str, documentation: str, registry: CollectorRegistry | None, labels: list[str] | None = None
    ) -> Gauge:
        return Gauge(name, documentation, labels or [], registry=registry, multiprocess_mode="mostrecent")

    # -- hooks ----------------------------------------------------------------------------------

    def observe_call(self, record: CallRecord) -> None:
        """A `Runtime.call_observers` entry: one API attempt, success or failure."""
        status = "transport" if record.http_status is None else str(record.http_status)
        self.api_calls.labels(endpoint=record.route, status=status).inc()
        if record.http_status == 429:
            self.rate_limited.inc()

    def reply_published(self, kind: object, status: str, outcome: object) -> None:
        """One copy of a reply went out (or was parked in .unroutable when the broker refused it)."""
        self.requests.labels(kind=kind_label(kind), status=str(status)).inc()
        if str(outcome) != "delivered":
            self.unroutable.labels(reason=str(outcome)).inc()  # no_route / nacked (PublishOutcome)

    def request_finished(self, kind: object, received_at: float, now: float | None = None) -> None:
        """A request's reply was published for the first time."""
        moment = time.time() if now is None else now
        self.time_to_terminal.labels(kind=kind_label(kind)).observe(max(0.0, moment - float(received_at)))

    def dead_lettered(self, reason: str) -> None:
        self.dead_letters.labels(reason=str(reason)).inc()


_instance: Metrics | None = None
_lock = threading.Lock()


def metrics() -> Metrics:
    """This process's metrics, created on first use (after the fork, in the multiprocess dir if set).

    In multiprocess mode nothing is registered in a registry: the value files are what the
    supervisor exports. Without a multiprocess dir they go to prometheus-client's default registry.
    """
    global _instance  # noqa: PLW0603 (one set of metrics per process)
    with _lock:
        if _instance is None:
            multiproc.use_multiprocess_values()
            from prometheus_client import REGISTRY  # noqa: PLC0415 (only the single-process case needs it)

            _instance = Metrics(None if multiproc.current() is not None else REGISTRY)
        return _instance


# -- the shared gauges ------------------------------------------------------------------------------


@dataclass(frozen=True)
class SharedState:
    """Where the shared gauges are read from."""

    store: StateStore
    registry: Registry
    budget_snapshot: Callable[[], Mapping[str, Any]]
    queue_depth: Callable[[str], int | None]  # None when the queue does not exist (yet)
    dlq: str
    unroutable: str


def refresh_depths(m: Metrics, state: SharedState, now: float | None = None) -> None:
    """The cheap readings: queue depths, the budget, index counts."""
    moment = time.time() if now is None else now
    for gauge, queue in ((m.dlq_depth, state.dlq), (m.unroutable_depth, state.unroutable)):
        depth = state.queue_depth(queue)
        if depth is not None:
            gauge.set(depth)
    remaining = budget_remaining(state.budget_snapshot(), moment)
    m.budget_remaining.set(math.nan if remaining is None else remaining)
    for kind in ANALYSIS_KINDS:
        m.waiting.labels(kind=kind.value).set(state.store.index_count(index_name("waiting", kind)))
        m.inflight.labels(kind=kind.value).set(state.store.index_count(index_name("running", kind)))


def refresh_oldest(m: Metrics, state: SharedState, now: float | None = None) -> None:
    """The oldest waiting or running request's age: reads rows, so it runs less often."""
    moment = time.time() if now is None else now
    oldest = oldest_received_at(state.store, state.registry)
    m.oldest_inflight_age.set(0.0 if oldest is None else max(0.0, moment - oldest))


def budget_remaining(doc: Mapping[str, Any], now: float) -> float | None:
    """Calls left in the current window as the shared budget document says, None before a limit is known."""
    limit = doc.get("limit")
    if limit is None:
        return None
    if float(doc.get("blocked_until") or 0.0) > now:
        return 0.0  # a Retry-After is pending: nothing may be called
    reset_at = doc.get("reset_at")
    if reset_at is not None and now >= float(reset_at):
        return float(limit)  # the window rolled over; the next grant starts a fresh count
    return float(doc.get("remaining", limit))


def oldest_received_at(store: StateStore, registry: Registry) -> float | None:
    """The smallest `received_at` among rows in the waiting and running indexes (scored by due time,
    not age, so the rows are read: at most OLDEST_SCAN_LIMIT per index)."""
    oldest: float | None = None
    for kind in ANALYSIS_KINDS:
        for index in ("waiting", "running"):
            keys = [
                k for k, _ in store.index_range(index_name(index, kind), max_score=math.inf, limit=OLDEST_SCAN_LIMIT)
            ]
            for start in range(0, len(keys), _FETCH_CHUNK):
                for row in registry.get_many(keys[start : start + _FETCH_CHUNK]):
                    received = row.value.get("received_at") if row is not None else None
                    if isinstance(received, (int, float)) and (oldest is None or received < oldest):
                        oldest = float(received)
    return oldest
