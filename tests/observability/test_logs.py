"""Log lines: one JSON object per line, request fields where known, no secret."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from worker.logs import configure_logging
from worker.observability.tagging import request_context

from .helpers import CANARY_KEY


@pytest.fixture
def capture() -> Iterator[io.StringIO]:
    """configure_logging replaces the root handlers; put pytest's back afterwards."""
    root = logging.getLogger()
    saved_handlers, saved_level = list(root.handlers), root.level
    stream = io.StringIO()
    yield stream
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in saved_handlers:
        root.addHandler(handler)
    root.setLevel(saved_level)


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_json_lines_carry_bound_and_passed_request_fields(capture: io.StringIO) -> None:
    configure_logging("json", "INFO", [CANARY_KEY], stream=capture)
    log = logging.getLogger("obs.test")
    with request_context(request_id="r-1", kind="enrichment", job_id=None):
        log.info("inside")
        with request_context(job_id="job-9"):
            log.warning("nested")
        log.info("explicit wins", extra={"request_id": "r-2"})
    log.info("outside")
    inside, nested, explicit, outside = lines(capture)
    assert (inside["request_id"], inside["kind"], "job_id" in inside) == ("r-1", "enrichment", False)
    assert (nested["request_id"], nested["job_id"], nested["level"]) == ("r-1", "job-9", "warning")
    assert explicit["request_id"] == "r-2"
    assert "request_id" not in outside
    assert {"ts", "level", "logger", "msg", "process", "thread"} <= set(outside)


def test_no_secret_or_bearer_value_reaches_a_line(capture: io.StringIO) -> None:
    quoted = 'tk_live_"quoted\\secret'  # JSON escaping would hide it from a scrub of the encoded line
    configure_logging("json", "DEBUG", [CANARY_KEY, quoted], stream=capture)
    log = logging.getLogger("obs.test")
    log.info("key %s in the message", CANARY_KEY)
    log.info("header", extra={"headers": {"Authorization": f"Bearer {CANARY_KEY}"}, "value": quoted})
    log.info("someone else's token: Authorization: Bearer abc.def-ghi")
    try:
        raise RuntimeError(f"failed with {CANARY_KEY}")
    except RuntimeError:
        log.exception("boom")
    text = capture.getvalue()
    assert CANARY_KEY not in text
    assert "quoted" not in text
    assert "abc.def-ghi" not in text
    assert len(lines(capture)) == 4  # still one object per line, exception included


def test_console_format_is_readable_and_scrubbed(capture: io.StringIO) -> None:
    configure_logging("console", "INFO", [CANARY_KEY], stream=capture)
    with request_context(request_id="r-3"):
        logging.getLogger("obs.test").info("using %s", CANARY_KEY)
    line = capture.getvalue().strip()
    assert line.endswith("obs.test: using [redacted] request_id=r-3")
    assert "INFO" in line
