"""Helpers of the observability suite: free ports, waiting with a deadline, a stand-in for Sentry."""

from __future__ import annotations

import gzip
import json
import socket
import threading
import time
import uuid
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from worker.ops.harness import Deployment
from worker.sim.testing import SimulatorProcess

TIME_SCALE = 0.05
CANARY_KEY = f"tk_live_CANARY_{uuid.uuid4().hex}"
ENRICH_ROUTE = "POST /v1/creators/enrich"
CREATOR = "5b0b6f0e-1d2c-4c39-9d53-2b6b7f7e7a01"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_until(condition: Callable[[], Any], timeout: float, what: str) -> Any:
    """Poll `condition` until it returns something truthy; fail the test at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {timeout} s")
        time.sleep(0.05)


def http_get(port: int, path: str) -> httpx.Response | None:
    try:
        return httpx.get(f"http://127.0.0.1:{port}{path}", timeout=2.0)
    except httpx.TransportError:
        return None


def enrichment(request_id: str) -> dict[str, Any]:
    return {"request_id": request_id, "kind": "enrichment", "params": {"creator_ids": [CREATOR]}}


def make_deployment(sim: SimulatorProcess) -> Deployment:
    return Deployment(base_url=sim.base_url, api_key=sim.key, time_scale=TIME_SCALE)


# -- a stand-in for Sentry's ingest ------------------------------------------------------------------


@dataclass
class Envelope:
    raw: bytes  # decompressed, as sent
    items: list[tuple[dict[str, Any], bytes]]

    def events(self) -> list[dict[str, Any]]:
        return [json.loads(payload) for header, payload in self.items if header.get("type") == "event"]


def parse_envelope(data: bytes) -> Envelope:
    """Sentry's envelope format: a header line, then items (a header line, then `length` bytes or a line)."""
    _, _, rest = data.partition(b"\n")
    items = []
    while rest.strip():
        header_line, _, rest = rest.partition(b"\n")
        header = json.loads(header_line)
        if "length" in header:
            length = int(header["length"])
            payload, rest = rest[:length], rest[length + 1 :]
        else:
            payload, _, rest = rest.partition(b"\n")
        items.append((header, payload))
    return Envelope(data, items)


class SentrySink:
    """Accepts POSTs on /api/<project>/envelope/ and keeps them."""

    def __init__(self) -> None:
        self.envelopes: list[Envelope] = []
        self.paths: list[str] = []
        self._lock = threading.Lock()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                encoding = (self.headers.get("Content-Encoding") or "").lower()
                if encoding == "gzip":
                    body = gzip.decompress(body)
                elif encoding == "deflate":
                    body = zlib.decompress(body)
                with sink._lock:
                    sink.paths.append(self.path)
                    if self.path.endswith("/envelope/"):
                        sink.envelopes.append(parse_envelope(body))
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(b'{"id": "0"}')

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def dsn(self) -> str:
        return f"http://public@127.0.0.1:{self.port}/1"

    def events(self) -> list[dict[str, Any]]:
        with self._lock:
            return [event for envelope in self.envelopes for event in envelope.events()]

    def raw(self) -> list[bytes]:
        with self._lock:
            return [envelope.raw for envelope in self.envelopes]

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def json_lines(path: Path) -> list[dict[str, Any]]:
    """Every line of a worker log as a JSON object (fails on a line that is not one)."""
    lines = []
    for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
        if not line.strip():
            continue
        try:
            lines.append(json.loads(line))
        except ValueError:
            pytest.fail(f"log line {number} is not JSON: {line[:300]}")
    return lines
