"""`before_send` / `before_breadcrumb`: nothing secret leaves, request fields become tags."""

from __future__ import annotations

import json
from typing import Any

import pytest

from worker.observability.errors import EventScrubber, known_secrets
from worker.settings import Settings

from .helpers import CANARY_KEY

DSN = "http://public@127.0.0.1:9/1"


def event() -> dict[str, Any]:
    return {
        "message": f"call failed with key {CANARY_KEY}",
        "extra": {"request_id": "r-1", "kind": "enrichment", "toksta_request_id": "req_abc", "other": 1},
        "request": {"headers": {"Authorization": f"Bearer {CANARY_KEY}", "Accept": "application/json"}},
        "exception": {"values": [{"type": "ApiError", "value": f"sent Authorization: Bearer {CANARY_KEY[:12]}"}]},
        "breadcrumbs": {
            "values": [
                {"category": "httpx", "data": {"url": "http://sim/v1/x", "headers": [["authorization", "Bearer x"]]}},
                {"category": "log", "message": f"token={CANARY_KEY}"},
            ]
        },
        "tags": {"kind": "scope-kind"},
        "level": "error",
    }


def test_events_lose_every_secret_and_gain_request_tags() -> None:
    settings = Settings(_env_file=None, toksta_api_key=CANARY_KEY, sentry_dsn=DSN)
    scrubber = EventScrubber(known_secrets(settings))
    cleaned = scrubber.event(event(), {})
    text = json.dumps(cleaned)
    assert CANARY_KEY not in text
    assert CANARY_KEY[:12] not in text  # a truncated key after "Bearer" goes too
    assert "Bearer" not in text
    assert cleaned["request"]["headers"] == {"Authorization": "[redacted]", "Accept": "application/json"}
    assert cleaned["tags"] == {"kind": "scope-kind", "request_id": "r-1", "toksta_request_id": "req_abc"}
    assert cleaned["level"] == "error"


def test_breadcrumbs_are_scrubbed_on_their_own() -> None:
    scrubber = EventScrubber([CANARY_KEY])
    crumb = scrubber.breadcrumb({"message": f"GET with Bearer {CANARY_KEY}", "data": {"Cookie": "s=1"}}, {})
    assert crumb == {"message": "GET with [redacted]", "data": {"Cookie": "[redacted]"}}


def test_known_secrets_are_the_key_and_the_dsn(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TOKSTA_API_KEY", raising=False)
    monkeypatch.delenv("SENTRY_DSN", raising=False)
    settings = Settings(_env_file=None, toksta_api_key=CANARY_KEY, sentry_dsn=DSN)
    assert known_secrets(settings) == [CANARY_KEY, DSN]
    assert known_secrets(Settings(_env_file=None)) == []
