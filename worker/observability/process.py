"""What each worker process adds for observability: metric hooks, Sentry, the observer thread.

Called from `worker.runtime.lifecycle` (the dramatiq middleware that starts and stops a worker
process's own threads).
"""

from __future__ import annotations

import threading

from worker.observability import multiproc
from worker.observability.errors import flush_sentry, init_sentry
from worker.observability.metrics import metrics
from worker.observability.reporter import ProcessReporter
from worker.runtime.context import Runtime


def boot(rt: Runtime) -> None:
    """At process boot, before any API client exists: Sentry (if not inherited) and the call counter."""
    init_sentry(rt.settings)
    observer = metrics().observe_call
    if observer not in rt.call_observers:
        rt.call_observers.append(observer)


def start_reporter(rt: Runtime, consuming: threading.Event) -> ProcessReporter | None:
    """The observer thread, when a supervisor serves what it reports (METRICS_PORT set, a shared dir)."""
    directory = multiproc.current()
    if rt.settings.metrics_port == 0 or directory is None:
        return None
    reporter = ProcessReporter(rt, consuming, directory)
    reporter.start()
    return reporter


def shutdown(reporter: ProcessReporter | None) -> None:
    """Withdraw the readiness report and send queued error events before the process exits."""
    if reporter is not None:
        reporter.stop(2.0)
    flush_sentry()
