"""The validator in-process: whatever the bytes, it answers (never raises), and its answer is safe.

The same strategies as the broker corpus, run directly against `validate_message` and the reply
encoder: fast, and the first place a crash class shows up (a crash in the real worker costs
POISON_DELIVERY_LIMIT redeliveries, or worse, the ingress thread).
"""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from worker.contract.models import Kind
from worker.contract.validation import (
    MAX_JSON_DEPTH,
    InvalidMessage,
    MessageLimits,
    RejectReason,
    ValidRequest,
    is_valid_reply_queue,
    validate_message,
)
from worker.runtime import replies

from .strategies import Targets, bodies

LIMIT = 4096
TARGETS = Targets("fuzz.inproc.requests", ("fuzz.inproc.a", "fuzz.inproc.b"), "fuzz.inproc.missing", ("u1", "u2"))
LIMITS = MessageLimits(LIMIT, TARGETS.request_queue)
FAST = settings(
    max_examples=300, derandomize=True, database=None, deadline=None, suppress_health_check=list(HealthCheck)
)
reply_properties = st.sampled_from(TARGETS.property_reply_queues()) | st.text(max_size=30)


@FAST
@given(
    body=st.binary(max_size=LIMIT + 64) | bodies(TARGETS, LIMIT).map(lambda labelled: labelled[1]),
    reply_to=reply_properties,
)
def test_validator_always_answers_and_never_points_at_the_worker_itself(body: bytes, reply_to: str | None) -> None:
    verdict = validate_message(body, reply_to, LIMITS)
    assert isinstance(verdict, (ValidRequest, InvalidMessage))
    if verdict.reply_to is not None:
        assert is_valid_reply_queue(verdict.reply_to, TARGETS.request_queue)
        assert not verdict.reply_to.startswith(TARGETS.request_queue)
    if len(body) > LIMIT:
        assert isinstance(verdict, InvalidMessage) and verdict.reason is RejectReason.TOO_LARGE
    if isinstance(verdict, InvalidMessage):
        assert verdict.errors and verdict.kind in (None, *Kind)
        _invalid_reply_encodes(verdict)
    else:
        assert len(verdict.content_sha256) == 64


def _invalid_reply_encodes(verdict: InvalidMessage) -> None:
    """The INVALID_REQUEST reply for any verdict is JSON that reads back to the same errors."""
    body = replies.reply_body(
        request_id=verdict.request_id,
        kind=verdict.kind,
        status="error",
        error=replies.error_object(
            "INVALID_REQUEST", verdict.summary, details={"errors": [e.as_dict() for e in verdict.errors]}
        ),
        received_at=0.0,
        finished_at=0.0,
    )
    data, status = replies.encode(body, 16 * 1024 * 1024)
    assert status == "error"
    assert json.loads(data)["error"]["details"]["errors"] == [e.as_dict() for e in verdict.errors]


@FAST
@given(depth=st.integers(58, 68) | st.integers(1, 3000), where=st.sampled_from(["top", "params", "options"]))
def test_deep_nesting_is_an_answer_not_a_crash(depth: int, where: str) -> None:
    nested = "[" * depth + "]" * depth
    request = '{"request_id":"d","kind":"thought_leaders","params":{"keywords":["a","b","c","d","e"]'
    texts = {
        "top": nested,
        "params": request + ',"x":' + nested + "}}",
        "options": request + '},"options":' + nested + "}",
    }
    text = texts[where]
    verdict = validate_message(text.encode(), "fuzz.inproc.a", MessageLimits(10**6, TARGETS.request_queue))
    assert isinstance(verdict, (ValidRequest, InvalidMessage))
    levels = depth + {"top": 0, "params": 2, "options": 1}[where]
    too_deep = isinstance(verdict, InvalidMessage) and "nested deeper than" in verdict.summary
    assert too_deep == (levels > MAX_JSON_DEPTH), (levels, verdict)


@FAST
@given(
    value=st.sampled_from(["1e400", "-1e400", "9007199254740993", "-9007199254740993", '"\\ud800"', '{"\\udfff":1}'])
    | st.integers().filter(lambda n: abs(n) > 2**53).map(str)
)
def test_params_that_are_not_i_json_are_invalid_requests(value: str) -> None:
    """RFC 8785 (the duplicate check's canonical form) cannot represent them: INVALID_REQUEST, not a crash."""
    text = '{"request_id":"n","kind":"thought_leaders","params":{"keywords":["a","b","c","d","e"],"n":' + value + "}}"
    verdict = validate_message(text.encode(), "fuzz.inproc.a", LIMITS)
    assert isinstance(verdict, InvalidMessage), verdict
    assert verdict.reason is RejectReason.INVALID_REQUEST and verdict.errors[0].path.startswith("params")
