"""Every request example against the worker's validator and against contracts/request.schema.json.

The validator is the authority; the schema is what other teams can check before publishing. Each
invalid example says whether the schema can reject it too (`schema_rejects`), and that claim is
tested both ways, so the list of checks only the worker makes stays honest.
"""

from __future__ import annotations

from typing import Any

import pytest

from worker.contract.models import Kind
from worker.contract.validation import (
    InvalidMessage,
    MessageLimits,
    RejectReason,
    ValidRequest,
    validate_message,
)

from ._support import MAX_REQUEST_BYTES, REQUEST_QUEUE, Example, examples, schema_errors, validator

LIMITS = MessageLimits(MAX_REQUEST_BYTES, REQUEST_QUEUE)
VALID = examples("requests/valid")
INVALID = examples("requests/invalid")


def _validate(example: Example) -> ValidRequest | InvalidMessage:
    return validate_message(example.body_bytes(), example.properties.get("reply_to"), LIMITS)


def _ids(items: list[Example]) -> list[str]:
    return [e.id for e in items]


@pytest.mark.parametrize("example", VALID, ids=_ids(VALID))
def test_valid_request_passes_the_validator(example: Example) -> None:
    outcome = _validate(example)
    assert isinstance(outcome, ValidRequest), f"{example.id}: {outcome}"
    assert example.expect == {"valid": True, "reply_to": outcome.reply_to}
    ok, body = example.json_body()
    assert ok
    assert outcome.request_id == body["request_id"]
    assert outcome.kind == Kind(body["kind"])
    assert outcome.params == body["params"], "params are forwarded as given"


@pytest.mark.parametrize("example", VALID, ids=_ids(VALID))
def test_valid_request_passes_the_schema(example: Example, request_schema: dict[str, Any]) -> None:
    _, body = example.json_body()
    assert schema_errors(request_schema, body) == []


@pytest.mark.parametrize("example", INVALID, ids=_ids(INVALID))
def test_invalid_request_fails_the_validator_as_stated(example: Example) -> None:
    expect = example.expect
    outcome = _validate(example)
    assert isinstance(outcome, InvalidMessage), f"{example.id} was accepted"
    assert outcome.reason == RejectReason(expect["reason"]), outcome.summary
    assert outcome.errors, "an invalid message always says why"
    assert outcome.errors[0].path == expect["path"], outcome.summary
    assert outcome.reply_to == expect["reply_to"]
    if "message_contains" in expect:
        assert expect["message_contains"] in outcome.errors[0].message
    if "readable" in expect:
        assert {"request_id": outcome.request_id, "kind": outcome.kind} == expect["readable"]


@pytest.mark.parametrize("example", INVALID, ids=_ids(INVALID))
def test_invalid_request_schema_verdict_is_as_stated(example: Example, request_schema: dict[str, Any]) -> None:
    ok, body = example.json_body()
    rejected = (not ok) or bool(schema_errors(request_schema, body))
    assert rejected is example.doc["schema_rejects"], (
        f"{example.id}: schema_rejects says {example.doc['schema_rejects']}, the schema "
        f"{'rejects' if rejected else 'accepts'} it"
    )
    if not example.doc["schema_rejects"]:
        assert example.doc.get("schema_note"), "say why the schema cannot express this rule"


def test_invalid_examples_follow_the_validation_order() -> None:
    """File names are numbered in the contract's order; their first failing stage never goes back."""
    stage_of_reason = {"too_large": 0, "invalid_json": 1, "invalid_reply_to": 3, "no_reply_to": 3}
    stage_of_path = [("request_id", 4), ("kind", 5), ("options", 7), ("params", 8)]

    def stage(example: Example) -> int:
        expect = example.expect
        if expect["reason"] in stage_of_reason:
            return stage_of_reason[expect["reason"]]
        if expect["path"] == "params" and "params" not in example.json_body()[1]:
            return 6  # a missing required key is a top-level-keys failure
        for prefix, number in stage_of_path:
            if expect["path"] == prefix or expect["path"].startswith(prefix + "."):
                return number
        return 6  # an unknown top-level key

    ordered = [e for e in INVALID if not e.id.split("-", 1)[1].startswith("order-")]
    stages = [stage(e) for e in ordered]
    assert stages == sorted(stages), list(zip(_ids(ordered), stages, strict=True))
    assert len(set(stages)) == 8, "every stage (except the implicit JSON-object one) has an example"


def test_examples_cover_every_kind_and_every_reject_reason() -> None:
    kinds = {e.json_body()[1]["kind"] for e in VALID}
    assert kinds == {k.value for k in Kind}
    reasons = {e.expect["reason"] for e in INVALID}
    assert reasons == {r.value for r in RejectReason} - {"poison"}, "poison needs a crash, not a body"


def test_size_limit_is_exact() -> None:
    at_limit = next(e for e in VALID if "generate" in e.doc)
    over_limit = next(e for e in INVALID if "generate" in e.doc)
    assert len(at_limit.body_bytes()) == MAX_REQUEST_BYTES
    assert len(over_limit.body_bytes()) == MAX_REQUEST_BYTES + 1


@pytest.mark.parametrize("example", VALID + INVALID, ids=_ids(VALID) + _ids(INVALID))
def test_example_file_shape(example: Example) -> None:
    allowed = {"description", "rule", "properties", "body", "body_text", "body_base64", "generate", "expect"}
    if not example.expect["valid"]:
        allowed |= {"schema_rejects", "schema_note"}
        assert isinstance(example.doc["schema_rejects"], bool)
    assert set(example.doc) <= allowed
    assert example.doc["description"].strip()
    assert example.doc["rule"].strip()
    assert example.path.parent.name == ("valid" if example.expect["valid"] else "invalid")


_KIND_DEFS = {
    "thought_leaders": "ThoughtLeadersRequest",
    "enrichment": "EnrichmentRequest",
    "content_match": "ContentMatchRequest",
    "audience_match": "AudienceMatchRequest",
    "cancel": "CancelRequest",
}
_SCHEMA_CHECKED = [
    e
    for e in INVALID
    if e.doc["schema_rejects"]
    and e.json_body()[0]
    and isinstance(e.json_body()[1], dict)
    and e.json_body()[1].get("kind") in _KIND_DEFS
]


@pytest.mark.parametrize("example", _SCHEMA_CHECKED, ids=_ids(_SCHEMA_CHECKED))
def test_schema_rejects_for_the_stated_field(example: Example, request_schema: dict[str, Any]) -> None:
    """Against its kind's own definition, the schema complains about the field the validator names."""
    body = example.json_body()[1]
    kind_schema = {"$ref": f"{request_schema['$id']}#/$defs/{_KIND_DEFS[body['kind']]}"}
    paths = {".".join(str(p) for p in error.absolute_path) for error in validator(kind_schema).iter_errors(body)}
    expected: str = example.expect["path"]

    def names_the_field(path: str) -> bool:
        if path == "":  # required and additionalProperties errors sit on the object itself
            return "." not in expected
        return expected == path or expected.startswith(path + ".")

    assert any(names_the_field(p) for p in paths), f"schema complained about {sorted(paths)}, not {expected}"
