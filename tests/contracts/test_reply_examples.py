"""Every reply example against contracts/reply.schema.json, the Reply model and the contract's rules.

The schema and the model check the shape; the rules the schema cannot state (which status goes
with which code, retryable, the details each code carries, message_id and correlation_id
derivation, the x-status header) are checked here against the contract's tables.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest
from pydantic import ValidationError

from worker.contract.canonical import request_content, sha256_hex
from worker.contract.models import REPLY_TYPE, ErrorCode, Kind, Reply, Status
from worker.contract.validation import InvalidMessage, MessageLimits, validate_message

from ._support import (
    API_CODES,
    MAX_REQUEST_BYTES,
    REQUEST_QUEUE,
    WORKER_CODES,
    Example,
    examples,
    message_bytes,
    schema_errors,
)

VALID = examples("replies/valid")
INVALID = examples("replies/invalid")
ITEM_COUNTS = {"succeeded", "failed", "expired", "canceled"}
CANCEL_REASONS = {"before_start", "cancel_applied", "polling_stopped", "already_terminal"}


def _ids(items: list[Example]) -> list[str]:
    return [e.id for e in items]


@pytest.mark.parametrize("example", VALID, ids=_ids(VALID))
def test_valid_reply_passes_schema_and_model(example: Example, reply_schema: dict[str, Any]) -> None:
    body = example.doc["body"]
    assert schema_errors(reply_schema, body) == []
    Reply.model_validate(body)
    Reply.model_validate_json(json.dumps(body))


@pytest.mark.parametrize("example", INVALID, ids=_ids(INVALID))
def test_invalid_reply_is_rejected_as_stated(example: Example, reply_schema: dict[str, Any]) -> None:
    body = example.doc["body"]
    assert example.expect["valid"] is False
    assert bool(schema_errors(reply_schema, body)) is example.expect["schema_rejects"]
    try:
        Reply.model_validate(body)
    except ValidationError:
        model_rejected = True
    else:
        model_rejected = False
    assert model_rejected is example.expect["model_rejects"]
    if not example.expect["model_rejects"]:
        assert example.doc.get("note"), "say why the model accepts what the schema rejects"


@pytest.mark.parametrize("example", VALID, ids=_ids(VALID))
def test_status_code_and_retryable_follow_the_code_table(example: Example) -> None:
    body = example.doc["body"]
    error = body["error"]
    if body["status"] == "succeeded":
        assert error is None
        return
    code = error["code"]
    if code in API_CODES:
        assert body["status"] == "error"
        assert error["retryable"] is False
        assert isinstance(error["http_status"], int)
        assert error["toksta_request_id"], "the API's meta.request_id"
        return
    assert code in WORKER_CODES, f"{code} is neither the worker's nor the API's"
    status, retryable = WORKER_CODES[code]
    assert (body["status"], error["retryable"]) == (status, retryable)


@pytest.mark.parametrize("example", VALID, ids=_ids(VALID))
def test_details_carry_what_the_contract_promises(example: Example) -> None:
    body = example.doc["body"]
    error = body["error"] or {}
    details = error.get("details") or {}
    code = error.get("code")
    if code == "INVALID_REQUEST":
        assert details["errors"], "details.errors lists the failures"
        for item in details["errors"]:
            assert set(item) == {"path", "message"}
            assert isinstance(item["path"], str)
    if code in ("JOB_FAILED", "JOB_EXPIRED", "JOB_CANCELED"):
        assert set(details) == ITEM_COUNTS
        assert details[body["status"]] >= 1, "the status is one of the items' states"
    if code == "START_UNCONFIRMED":
        assert details["may_have_started"] is True
    if code == "REPLY_TOO_LARGE":
        assert body["job_ids"], "job_ids let the client fetch the data itself"
    if body["kind"] == "cancel":
        assert body["status"] == "succeeded"
        assert set(body["result"]) == {"canceled", "reason"}
        assert body["result"]["reason"] in CANCEL_REASONS
    if body["api_calls"] != round(body["api_calls"], 3):
        pytest.fail("api_calls has 3 decimals at most")


@pytest.mark.parametrize("example", VALID, ids=_ids(VALID))
def test_reply_properties_follow_the_contract(example: Example) -> None:
    body = example.doc["body"]
    props = example.properties
    assert props["content_type"] == "application/json"
    assert props["type"] == REPLY_TYPE
    assert props["delivery_mode"] == 2
    assert props["headers"]["x-status"] == body["status"]
    request = example.doc.get("request")
    code = (body["error"] or {}).get("code")
    if code == "INVALID_REQUEST":
        assert props["message_id"].startswith("invalid:")
    elif code == "REQUEST_ID_CONFLICT":
        assert props["message_id"].startswith(f"{body['request_id']}:conflict:")
    else:
        assert props["message_id"] == f"{body['request_id']}:reply"
    if request is None:
        assert props["correlation_id"] in (body["request_id"], None) or code == "INVALID_REQUEST"
        return
    req_props = request.get("properties") or {}
    raw = message_bytes(request)
    if code == "INVALID_REQUEST":
        assert props["message_id"] == "invalid:" + hashlib.sha256(raw).hexdigest()[:32]
        expected_correlation = req_props.get("correlation_id") or req_props.get("message_id")
    else:
        expected_correlation = req_props.get("correlation_id") or body["request_id"]
    if code == "REQUEST_ID_CONFLICT":
        sent = json.loads(raw)
        content = request_content(sent["kind"], sent["params"], sent.get("options"))
        assert props["message_id"] == f"{sent['request_id']}:conflict:{sha256_hex(content)[:16]}"
        assert body["error"]["details"]["content_sha256"] == sha256_hex(content)
    assert props["correlation_id"] == expected_correlation
    if "traceparent" in (req_props.get("headers") or {}):
        assert props["headers"]["traceparent"] == req_props["headers"]["traceparent"]
    else:
        assert "traceparent" not in props["headers"]


def test_invalid_request_reply_agrees_with_the_validator() -> None:
    """The INVALID_REQUEST example's details are what validate_message says about its request."""
    example = next(e for e in VALID if (e.doc["body"]["error"] or {}).get("code") == "INVALID_REQUEST")
    request = example.doc["request"]
    outcome = validate_message(
        message_bytes(request),
        request["properties"].get("reply_to"),
        MessageLimits(MAX_REQUEST_BYTES, REQUEST_QUEUE),
    )
    assert isinstance(outcome, InvalidMessage)
    body = example.doc["body"]
    assert (body["request_id"], body["kind"]) == (outcome.request_id, outcome.kind)
    assert [e["path"] for e in body["error"]["details"]["errors"]] == [e.path for e in outcome.errors]


def test_examples_cover_every_status_code_and_cancel_reason() -> None:
    bodies = [e.doc["body"] for e in VALID]
    assert {b["status"] for b in bodies} == {s.value for s in Status}
    codes = {b["error"]["code"] for b in bodies if b["error"]}
    assert {c.value for c in ErrorCode} <= codes
    assert codes - {c.value for c in ErrorCode} <= API_CODES
    assert {b["kind"] for b in bodies} - {None} == {k.value for k in Kind}
    reasons = {b["result"]["reason"] for b in bodies if b["kind"] == "cancel"}
    assert {"before_start", "already_terminal"} <= reasons


def test_worker_code_table_matches_error_code_enum() -> None:
    assert set(WORKER_CODES) == {c.value for c in ErrorCode}


@pytest.mark.parametrize("example", VALID + INVALID, ids=_ids(VALID) + _ids(INVALID))
def test_reply_example_file_shape(example: Example) -> None:
    allowed = {"description", "rule", "properties", "request", "body", "expect", "note"}
    assert set(example.doc) <= allowed
    assert example.doc["description"].strip()
    assert example.doc["rule"].strip()
    assert example.path.parent.name == ("valid" if example.expect["valid"] else "invalid")
