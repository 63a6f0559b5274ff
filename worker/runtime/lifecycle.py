"""Process life cycle as a dramatiq middleware: what starts and stops beside the worker threads.

After a worker process boots: logging, the topology (declared idempotently), the ingress consumer
and the tick watchdog. Before it shuts down: the ingress stops taking messages first, so what is
in flight finishes or goes back to the queue within DRAIN_SECONDS.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import dramatiq
from dramatiq.brokers.rabbitmq import RabbitmqBroker

from worker.amqp.connection import open_connection
from worker.contract.models import ANALYSIS_KINDS
from worker.logs import configure_logging
from worker.observability import process as observability
from worker.observability.reporter import ProcessReporter
from worker.observability.tagging import TaggedIngress
from worker.runtime.context import Runtime, runtime
from worker.runtime.ingress import Ingress
from worker.runtime.ticks import TickScheduler

log = logging.getLogger(__name__)

WATCHDOG_PERIOD_SECONDS = 1.0


def secrets_of(rt: Runtime) -> list[str]:
    out = []
    if rt.settings.toksta_api_key is not None:
        out.append(rt.settings.toksta_api_key.get_secret_value())
    if rt.settings.sentry_dsn is not None:
        out.append(rt.settings.sentry_dsn.get_secret_value())
    return out


def declare_topology(rt: Runtime) -> None:
    connection = open_connection(rt.settings.amqp_url, name="toksta-worker:topology")
    try:
        rt.topology.declare(connection.channel())
    finally:
        connection.close()


class Watchdog:
    """Re-arms every family's tick whose lease lapsed (a tick message can be lost)."""

    def __init__(self, rt: Runtime) -> None:
        self._rt = rt
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="toksta-watchdog", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float) -> None:
        self._stop.set()
        self._thread.join(timeout)

    def _run(self) -> None:
        scheduler = TickScheduler(self._rt)
        while not self._stop.wait(WATCHDOG_PERIOD_SECONDS):
            for kind in ANALYSIS_KINDS:
                try:
                    scheduler.watch(kind.value)
                except Exception:
                    log.warning("watchdog could not check the %s tick", kind.value, exc_info=True)
            try:
                self._rt.publisher().process_events()
            except Exception:
                log.debug("watchdog publisher heartbeat failed", exc_info=True)
        self._rt.close_thread_resources()


class Lifecycle(dramatiq.Middleware):
    """Starts and stops the ingress and the watchdog with each worker process."""

    def __init__(self) -> None:
        self.ingress: Ingress | None = None
        self.watchdog: Watchdog | None = None
        self.reporter: ProcessReporter | None = None

    def after_process_boot(self, broker: dramatiq.Broker) -> None:
        rt = runtime()
        configure_logging(rt.settings.log_format.value, rt.settings.log_level, secrets_of(rt))
        observability.boot(rt)

    def after_worker_boot(self, broker: dramatiq.Broker, worker: Any) -> None:
        rt = runtime()
        declare_topology(rt)
        if isinstance(broker, RabbitmqBroker):
            broker.declare_queue(rt.topology.ticks, ensure=True)  # wait queues dead-letter into it
        self.ingress = TaggedIngress(rt)
        self.ingress.start()
        self.reporter = observability.start_reporter(rt, self.ingress.consuming)
        self.watchdog = Watchdog(rt)
        self.watchdog.start()
        log.info("worker process ready")

    def before_worker_shutdown(self, broker: dramatiq.Broker, worker: Any) -> None:
        runtime().draining.set()  # a running tick makes no further API call; it re-arms at once
        drain = runtime().settings.drain_seconds
        if self.ingress is not None:
            self.ingress.stop(drain / 2)
        if self.watchdog is not None:
            self.watchdog.stop(2.0)
        log.info("worker process draining")

    def after_worker_shutdown(self, broker: dramatiq.Broker, worker: Any) -> None:
        observability.shutdown(self.reporter)
