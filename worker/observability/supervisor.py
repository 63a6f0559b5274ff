"""What `toksta-worker run` sets up before dramatiq forks the worker processes.

The multiprocess directory (exported so the children inherit it) and the HTTP server on
METRICS_PORT. Nothing when METRICS_PORT is 0.
"""

from __future__ import annotations

from dataclasses import dataclass

from worker.observability import multiproc
from worker.observability.server import ObservabilityServer
from worker.settings import Settings


class ExpositionError(RuntimeError):
    """METRICS_PORT cannot be bound, or PROMETHEUS_MULTIPROC_DIR cannot be used; the text says which."""


@dataclass
class Exposition:
    directory: multiproc.MultiprocDir
    server: ObservabilityServer

    def close(self) -> None:
        self.server.close()
        self.directory.cleanup()


def start_exposition(settings: Settings, processes: int) -> Exposition | None:
    """Prepare the directory and serve it; None when METRICS_PORT=0 turns this off."""
    if settings.metrics_port == 0:
        return None
    try:
        directory = multiproc.prepare()
    except OSError as exc:
        raise ExpositionError(f"{multiproc.ENV}: {exc}") from exc
    server = ObservabilityServer(settings.metrics_port, directory.path, processes)
    try:
        server.start()
    except OSError as exc:
        directory.cleanup()
        raise ExpositionError(f"METRICS_PORT {settings.metrics_port}: {exc.strerror or exc}") from exc
    return Exposition(directory, server)
