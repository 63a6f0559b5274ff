"""Support for the secrets canary: canary API keys and a local endpoint that captures Sentry events.

The capture endpoint is a tiny HTTP server on 127.0.0.1 (port 0) that records every POST the
Sentry SDK sends (envelopes, decompressed) and answers 200, so `SENTRY_DSN=http://publickey@
127.0.0.1:<port>/1` makes a worker report to it exactly as it would to sentry.io.
"""

from __future__ import annotations

import gzip
import secrets
import threading
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass(frozen=True)
class Canaries:
    """Two live-looking keys: the one the worker holds, and another the API may switch to."""

    worker_key: str
    other_key: str

    def needles(self) -> list[str]:
        """What must appear nowhere: each key, its random part, and the start of that part (a
        truncated key in a repr or a log line is a leak too)."""
        found: list[str] = []
        for key in (self.worker_key, self.other_key):
            random_part = key.removeprefix("tk_live_CANARY_")
            found += [key, random_part, random_part[:12], "CANARY_" + random_part[:4]]
        return found


def new_canaries() -> Canaries:
    return Canaries(f"tk_live_CANARY_{secrets.token_hex(16)}", f"tk_live_CANARY_{secrets.token_hex(16)}")


@dataclass
class Captured:
    path: str
    headers: dict[str, str]
    body: bytes  # decompressed

    @property
    def readable(self) -> bool:
        return (self.headers.get("Content-Encoding") or "").lower() in ("", "identity", "gzip", "deflate")


@dataclass
class SentryCapture:
    """Records the POSTs of a Sentry SDK; thread-safe reads."""

    server: ThreadingHTTPServer
    posts: list[Captured] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def dsn(self) -> str:
        return f"http://publickey@127.0.0.1:{self.server.server_address[1]}/1"

    def captured(self) -> list[Captured]:
        with self.lock:
            return list(self.posts)

    def events(self) -> list[Captured]:
        """Envelopes that carry an event (errors), not only sessions or client reports."""
        return [p for p in self.captured() if b'"type":"event"' in p.body.replace(b" ", b"")]


def _decompress(body: bytes, encoding: str) -> bytes:
    """The SDK compresses with gzip (or brotli when that package is installed, which it is not here:
    `Captured.readable` then says the body could not be searched)."""
    if encoding == "gzip":
        return gzip.decompress(body)
    if encoding == "deflate":
        return zlib.decompress(body)
    return body


def _handler(capture: SentryCapture) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            body = _decompress(raw, (self.headers.get("Content-Encoding") or "").lower())
            with capture.lock:
                capture.posts.append(Captured(self.path, dict(self.headers.items()), body))
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, format: str, *args: object) -> None:
            return

    return Handler


@contextmanager
def sentry_endpoint() -> Iterator[SentryCapture]:
    """A capture endpoint on a free port, serving on a thread until the block ends."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    capture = SentryCapture(server)
    server.RequestHandlerClass = _handler(capture)
    thread = threading.Thread(target=server.serve_forever, name="sentry-capture", daemon=True)
    thread.start()
    try:
        yield capture
    finally:
        server.shutdown()
        server.server_close()
