"""The per-process runtime: settings, state store, registry, API client, budget, publishers.

Built lazily once per worker process (after the fork), shared by the ingress, the tick actors
and the watchdog. Publishers are per thread because pika connections are not thread-safe.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cached_property

from worker.amqp.publisher import Publisher
from worker.amqp.topology import Topology
from worker.api.client import CallRecord, TokstaClient
from worker.runtime.budget import RateBudget
from worker.runtime.registry import Registry
from worker.settings import Settings
from worker.state.base import StateStore
from worker.state.factory import open_state_store

log = logging.getLogger(__name__)

# API calls one tick may have in flight at once (the client's connection pool is larger).
CALL_CONCURRENCY = 8


@dataclass
class Runtime:
    """Everything a worker process shares between its threads."""

    settings: Settings
    call_observers: list[Callable[[CallRecord], None]] = field(default_factory=list)
    # Set when the process starts its graceful shutdown: ticks stop between API calls and hand over.
    draining: threading.Event = field(default_factory=threading.Event, repr=False)
    _local: threading.local = field(default_factory=threading.local, repr=False)

    @cached_property
    def store(self) -> StateStore:
        return open_state_store(
            self.settings.state_url, state_dir=self.settings.state_dir, namespace=self.settings.request_queue
        )

    @cached_property
    def registry(self) -> Registry:
        return Registry(
            self.store,
            done_ttl_seconds=self.settings.idempotency_ttl_seconds,
            tombstone_ttl_seconds=self.settings.tombstone_ttl_seconds,
        )

    @cached_property
    def topology(self) -> Topology:
        return Topology.from_settings(self.settings)

    @cached_property
    def budget(self) -> RateBudget:
        return RateBudget(self.store, time_scale=self.settings.toksta_time_scale)

    @cached_property
    def client(self) -> TokstaClient:
        key = self.settings.toksta_api_key
        if key is None:
            raise RuntimeError("TOKSTA_API_KEY is not set")
        return TokstaClient(
            self.settings.toksta_base_url,
            key,
            timeout=self.settings.http_timeout_seconds,
            time_scale=self.settings.toksta_time_scale,
            observers=[self.budget.observe, *self.call_observers],
        )

    @cached_property
    def call_pool(self) -> ThreadPoolExecutor:
        """Threads on which a tick overlaps independent API calls (the start calls of one round)."""
        return ThreadPoolExecutor(max_workers=CALL_CONCURRENCY, thread_name_prefix="toksta-call")

    def publisher(self) -> Publisher:
        """This thread's confirmed publisher (pika connections are not thread-safe)."""
        publisher: Publisher | None = getattr(self._local, "publisher", None)
        if publisher is None:
            name = f"toksta-worker:{threading.current_thread().name}"
            publisher = Publisher(self.settings.amqp_url, self.topology, name=name)
            self._local.publisher = publisher
        return publisher

    def close_thread_resources(self) -> None:
        publisher: Publisher | None = getattr(self._local, "publisher", None)
        if publisher is not None:
            publisher.close()
            self._local.publisher = None


_runtime: Runtime | None = None
_lock = threading.Lock()


def runtime() -> Runtime:
    """The process's runtime, created on first use from the environment."""
    global _runtime  # noqa: PLW0603 (one runtime per process, created after fork)
    with _lock:
        if _runtime is None:
            _runtime = Runtime(Settings())
        return _runtime


def install_runtime(value: Runtime | None) -> None:
    """For tests and the process boot: replace the process's runtime."""
    global _runtime  # noqa: PLW0603
    with _lock:
        _runtime = value
