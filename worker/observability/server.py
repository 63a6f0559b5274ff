"""`/metrics`, `/healthz` and `/readyz` on METRICS_PORT, served by the supervisor of `toksta-worker run`.

Why the supervisor: every worker process binding METRICS_PORT would fail (or, with SO_REUSEPORT,
have each scrape answered by a random process that knows only itself). The supervisor is one per
host, lives exactly as long as the group (dramatiq's CLI exits when a worker process dies), and
touches neither RabbitMQ nor the state store, so it stays answerable when they are down. It
aggregates the processes' value files (prometheus-client multiprocess mode) per scrape and reads
their readiness reports from the same directory.

The socket is bound before the workers are forked, so a taken port fails `run` at once. A forked
child must not keep the listening socket (it would hold the port after the supervisor died):
an at-fork hook closes the child's copy. The serving thread takes no lock a child could need, and
writes nothing to stderr (request logging is off), so forking beside it is safe.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

from worker.observability.health import readiness

log = logging.getLogger(__name__)

_listening: list[ThreadingHTTPServer] = []


def _close_inherited_sockets() -> None:
    """In a freshly forked child: close its copy of every listening socket (the parent keeps its own)."""
    for server in _listening:
        server.socket.close()
    _listening.clear()


os.register_at_fork(after_in_child=_close_inherited_sockets)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True  # a restart right after a stop rebinds despite TIME_WAIT

    def __init__(self, address: tuple[str, int], directory: Path, expected_processes: int) -> None:
        self.directory = directory
        self.expected_processes = expected_processes
        self.registry = CollectorRegistry()
        MultiProcessCollector(self.registry, path=str(directory))  # type: ignore[no-untyped-call]
        super().__init__(address, _Handler)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    timeout = 10  # a client that stalls mid-request is dropped

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        try:
            if path == "/metrics":
                self._send(200, generate_latest(self.server.registry), CONTENT_TYPE_LATEST)
            elif path == "/healthz":
                self._json(200, {"alive": True, "pid": os.getpid()})
            elif path == "/readyz":
                ready, body = readiness(self.server.directory, self.server.expected_processes)
                self._json(200 if ready else 503, body)
            else:
                self._json(404, {"error": "not found", "paths": ["/metrics", "/healthz", "/readyz"]})
        except Exception as exc:  # noqa: BLE001 (a scrape must get an answer, not a dropped connection)
            self._json(500, {"error": f"{type(exc).__name__}: {exc}"})

    def _json(self, status: int, body: dict[str, Any]) -> None:
        self._send(status, json.dumps(body).encode("utf-8"), "application/json")

    def _send(self, status: int, data: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        """Probes every few seconds are not worth a log line (and stderr is shared with the forks)."""


class ObservabilityServer:
    """The supervisor's HTTP endpoint. `start()` binds and serves; `close()` stops."""

    def __init__(self, port: int, directory: Path, expected_processes: int, *, host: str = "0.0.0.0") -> None:
        self._address = (host, port)
        self._directory = directory
        self._expected = expected_processes
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The bound port (useful when 0 asked for any free one)."""
        if self._server is None:
            raise RuntimeError("server not started")
        return int(self._server.server_address[1])

    def start(self) -> ObservabilityServer:
        """Bind (OSError when the port is taken) and serve on a daemon thread."""
        server = _Server(self._address, self._directory, self._expected)
        self._server = server
        _listening.append(server)
        self._thread = threading.Thread(target=server.serve_forever, name="toksta-metrics-http", daemon=True)
        self._thread.start()
        log.info("serving /metrics, /healthz, /readyz on port %d", self.port)
        return self

    def close(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if server in _listening:
            _listening.remove(server)
        if self._thread is not None:
            self._thread.join(5)
