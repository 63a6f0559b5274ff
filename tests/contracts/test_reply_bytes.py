"""Reply bytes: compact UTF-8 JSON, byte for byte what `json` wrote before orjson did.

Replies are encoded by orjson; what it refuses (a lone surrogate, an integer past 64 bits, nesting
past 255 levels) `json` writes. Each case must read back as the body it came from.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from worker.runtime import replies


def _body(result: Any) -> dict[str, Any]:
    return replies.reply_body(
        request_id="r-1", kind="enrichment", status="succeeded", result=result, received_at=0.0, finished_at=1.5
    )


@pytest.mark.parametrize(
    "result",
    [
        {"creators": [{"name": "Zoë Ångström", "score": 0.1, "rank": 3, "tags": ["b2b", "é"]}]},
        {"note": 'line\nbreak\ttab \u0001 "quoted" back\\slash'},
        {"big": 2**64, "negative": -(2**70)},  # past 64 bits: `json` writes them
        {"nested": json.loads("[" * 300 + "]" * 300)},  # past orjson's depth
    ],
    ids=["unicode", "escapes", "big-integers", "deep"],
)
def test_reply_bytes_read_back_as_the_body(result: Any) -> None:
    body = _body(result)
    data, status = replies.encode(body, 16 * 1024 * 1024)
    assert status == "succeeded"
    assert json.loads(data) == body
    assert data == json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()  # byte for byte


def test_non_ascii_is_written_as_utf8_not_escaped() -> None:
    data, _ = replies.encode(_body({"name": "Zoë"}), 1024)
    assert "Zoë".encode() in data


def test_a_lone_surrogate_is_escaped_and_reads_back() -> None:
    body = _body({"unknown key \ud800": "Zoë"})
    data, _ = replies.encode(body, 1024)
    data.decode("ascii")  # every non-ASCII character escaped
    assert json.loads(data) == body
