"""The per-process observer thread: readiness reports, and (in one process per host) the shared gauges.

Every second it checks the state store (ping), RabbitMQ (a passive declare of the request queue on
a connection of its own) and the ingress (`consuming`), and writes the process's report. The
process that holds `collector.lock` in the multiprocess directory (an flock, released by the
kernel when the process dies) also reads the shared state: queue depths and index counts every
`GAUGE_PERIOD_SECONDS`, the oldest in-flight request every `OLDEST_PERIOD_SECONDS`. One reader
per host, however many processes and scrapes.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import threading
import time
from pathlib import Path
from typing import IO

import pika
import pika.exceptions
from pika.adapters.blocking_connection import BlockingChannel

from worker.amqp.connection import AmqpError, open_connection
from worker.observability.health import ProcessStatus, remove_status, write_status
from worker.observability.metrics import SharedState, metrics, refresh_depths, refresh_oldest
from worker.runtime.context import Runtime

log = logging.getLogger(__name__)

REPORT_PERIOD_SECONDS = 1.0
GAUGE_PERIOD_SECONDS = 2.0
OLDEST_PERIOD_SECONDS = 10.0
LOCK_NAME = "collector.lock"
NOT_FOUND = 404


class BrokerProbe:
    """One AMQP connection owned by the observer thread: liveness checks and passive queue depths."""

    def __init__(self, amqp_url: str) -> None:
        self._amqp_url = amqp_url
        self._connection: pika.BlockingConnection | None = None
        self._channel: BlockingChannel | None = None

    def depth(self, queue: str) -> int | None:
        """Messages ready in `queue`, None when it does not exist. Raises AmqpError when unreachable."""
        try:
            ok = self._ready_channel().queue_declare(queue, passive=True)
        except pika.exceptions.ChannelClosedByBroker as exc:
            self._channel = None
            if exc.reply_code == NOT_FOUND:
                return None
            raise AmqpError(f"passive declare of {queue!r}: ({exc.reply_code}) {exc.reply_text}") from None
        except (pika.exceptions.AMQPError, OSError) as exc:
            self.close()
            raise AmqpError(f"RabbitMQ: {type(exc).__name__}: {exc}") from None
        return int(ok.method.message_count)

    def _ready_channel(self) -> BlockingChannel:
        if self._connection is None or not self._connection.is_open:
            self._connection = open_connection(self._amqp_url, name="toksta-worker:observer")
            self._channel = None
        self._connection.process_data_events(time_limit=0)  # heartbeats; surfaces a closed connection
        if self._channel is None or not self._channel.is_open:
            self._channel = self._connection.channel()
        return self._channel

    def close(self) -> None:
        connection, self._connection, self._channel = self._connection, None, None
        if connection is not None and connection.is_open:
            with contextlib.suppress(pika.exceptions.AMQPError, OSError):
                connection.close()


class ProcessReporter:
    """Runs on its own thread in every worker process, beside the ingress and the watchdog."""

    def __init__(self, rt: Runtime, consuming: threading.Event, directory: Path) -> None:
        self._rt = rt
        self._consuming = consuming
        self._directory = directory
        self._pid = os.getpid()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="toksta-observer", daemon=True)
        self._probe = BrokerProbe(rt.settings.amqp_url)
        self._lock_file: IO[bytes] | None = None
        self._next_depths = 0.0
        self._next_oldest = 0.0

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float) -> None:
        """Stop reporting and withdraw the report: a draining process is no longer ready."""
        self._stop.set()
        if self._thread.ident is not None:
            self._thread.join(timeout)
        remove_status(self._directory, self._pid)
        if not self._thread.is_alive():  # else the thread still uses them; the process exit frees them
            self._probe.close()
            if self._lock_file is not None:
                self._lock_file.close()  # hands the collector role to another process
                self._lock_file = None

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.report_once()
            except Exception:
                log.warning("observer round failed", exc_info=True)
            self._stop.wait(REPORT_PERIOD_SECONDS)

    def report_once(self) -> ProcessStatus:
        """Check, write the report, and refresh the shared gauges when this process collects them."""
        problems: list[str] = []
        state_ok = self._check_store(problems)
        amqp_ok = self._check_broker(problems)
        status = ProcessStatus(
            pid=self._pid,
            at=time.time(),
            state_store=state_ok,
            rabbitmq=amqp_ok,
            ingress=self._consuming.is_set(),
            problems=problems,
        )
        if not self._stop.is_set():
            write_status(self._directory, status)
        if state_ok and amqp_ok and self._collector():
            self._refresh_shared(status.at)
        return status

    def _check_store(self, problems: list[str]) -> bool:
        try:
            self._rt.store.ping()
        except Exception as exc:  # noqa: BLE001 (any failure means "not connected"; the text says which)
            problems.append(f"state store: {type(exc).__name__}: {exc}")
            return False
        return True

    def _check_broker(self, problems: list[str]) -> bool:
        try:
            if self._probe.depth(self._rt.settings.request_queue) is None:
                problems.append(f"RabbitMQ: request queue {self._rt.settings.request_queue!r} does not exist")
                return False
        except AmqpError as exc:
            problems.append(str(exc))
            return False
        return True

    def _collector(self) -> bool:
        """Whether this process holds the host's collector lock (taking it when it is free)."""
        if self._lock_file is not None:
            return True
        handle = (self._directory / LOCK_NAME).open("ab")
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            return False
        self._lock_file = handle
        return True

    def _refresh_shared(self, now: float) -> None:
        state = SharedState(
            store=self._rt.store,
            registry=self._rt.registry,
            budget_snapshot=self._rt.budget.snapshot,
            queue_depth=self._probe.depth,
            dlq=self._rt.topology.dlq,
            unroutable=self._rt.topology.unroutable,
        )
        if now >= self._next_depths:
            refresh_depths(metrics(), state, now)
            self._next_depths = now + GAUGE_PERIOD_SECONDS
        if now >= self._next_oldest:
            refresh_oldest(metrics(), state, now)
            self._next_oldest = now + OLDEST_PERIOD_SECONDS
