"""Logging set-up: one JSON object per line (LOG_FORMAT=json) or readable console lines.

Request context travels as `extra=` fields (request_id, kind, job_id, toksta_request_id) and ends
up as keys of the JSON object; code that handles one request can also bind them for everything
logged inside it (`log_context`), so a line logged deep down still says which request it was
about. Values are passed through a scrubber so a secret that slipped into a message (or a
`Bearer ...` header value) never reaches the output.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, TextIO

_STANDARD = set(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime"}

REQUEST_FIELDS = ("request_id", "kind", "job_id", "toksta_request_id")
_BEARER = re.compile(r"Bearer\s+[^\s\"'\\,;]+", re.IGNORECASE)
_context: ContextVar[dict[str, str]] = ContextVar("toksta_log_context", default={})  # noqa: B039 (never mutated)


def current_context() -> dict[str, str]:
    """The request fields bound by the innermost `log_context` of this thread or task."""
    return dict(_context.get())


@contextmanager
def log_context(**fields: object) -> Iterator[dict[str, str]]:
    """Bind request fields (None is skipped) to every record logged inside; nests and restores."""
    merged = {**_context.get(), **{k: str(v) for k, v in fields.items() if v is not None}}
    token = _context.set(merged)
    try:
        yield merged
    finally:
        _context.reset(token)


class ContextFilter(logging.Filter):
    """Adds the bound request fields to a record that did not pass them as `extra=` itself."""

    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in _context.get().items():
            if not hasattr(record, key):
                setattr(record, key, value)
        return True


class Scrubber:
    """Replaces every known secret, and any `Bearer <token>`, with a marker."""

    def __init__(self, secrets: Iterable[str]) -> None:
        self._secrets = sorted({s for s in secrets if s and len(s) >= 6}, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, "[redacted]")
        return _BEARER.sub("[redacted]", text)


class JsonFormatter(logging.Formatter):
    def __init__(self, scrub: Scrubber) -> None:
        super().__init__()
        self._scrub = scrub

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, tz=UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
            "process": record.process,
            "thread": record.threadName,
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                doc[key] = value
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        # Scrub the values before encoding too: JSON escaping could hide a secret from the final pass.
        doc = {k: self._scrub(v) if isinstance(v, str) else v for k, v in doc.items()}
        return self._scrub(json.dumps(doc, default=str, ensure_ascii=False))


class ConsoleFormatter(logging.Formatter):
    def __init__(self, scrub: Scrubber) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s%(context)s")
        self._scrub = scrub

    def format(self, record: logging.LogRecord) -> str:
        extras = {
            k: v for k, v in vars(record).items() if k not in _STANDARD and not k.startswith("_") and k != "context"
        }
        record.context = "".join(f" {k}={v}" for k, v in extras.items())
        return self._scrub(super().format(record))


def configure_logging(fmt: str, level: str, secrets: Iterable[str] = (), stream: TextIO | None = None) -> None:
    """Replace the root handlers with one of ours; quiet pika's chatter."""
    scrub = Scrubber(secrets)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter(scrub) if fmt == "json" else ConsoleFormatter(scrub))
    handler.addFilter(ContextFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    logging.getLogger("pika").setLevel(logging.WARNING)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.WARNING)
