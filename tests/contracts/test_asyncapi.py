"""contracts/asyncapi.yaml: a valid AsyncAPI 3.0.0 document whose references all resolve, that says
what the worker does (queue names and arguments, properties, headers), and agrees with the
examples and the JSON Schema files it points to.

The AsyncAPI 3.0.0 JSON Schema is vendored in tests/contracts/data (from the npm package
@asyncapi/specs, see data/README.md) so the check runs offline.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest
import yaml
from jsonschema import Draft7Validator, Draft202012Validator

from worker.amqp.publisher import (
    H_DEAD_LETTERED_AT,
    H_DELIVERIES,
    H_DLQ_ID,
    H_ERROR,
    H_ORIGINAL_EXPIRATION,
    H_ORIGINAL_ROUTING_KEY,
    H_ORIGINAL_USER_ID,
    H_REJECT_REASON,
    H_UNROUTABLE_REASON,
    MAX_ERROR_CHARS,
    dead_letter_stamp,
)
from worker.contract.models import REPLY_TYPE, Status
from worker.contract.validation import RejectReason
from worker.settings import QueueType, Settings

from ._support import CONTRACTS, DATA, Example, examples, schema, schema_errors

ASYNCAPI = CONTRACTS / "asyncapi.yaml"
PAYLOAD_FORMAT = "application/schema+json;version=draft-2020-12"


@cache
def document() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(ASYNCAPI.read_text(encoding="utf-8"))
    return doc


def _refs(node: Any, pointer: str = "") -> Iterator[tuple[str, str]]:
    """(location, $ref) for every reference in the document."""
    if isinstance(node, dict):
        if isinstance(node.get("$ref"), str):
            yield pointer, node["$ref"]
        for key, value in node.items():
            yield from _refs(value, f"{pointer}/{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _refs(value, f"{pointer}/{index}")


def _resolve_pointer(root: Any, pointer: str) -> Any:
    node = root
    for raw in pointer.lstrip("/").split("/") if pointer.strip("/") else []:
        token = unquote(raw).replace("~1", "/").replace("~0", "~")
        node = node[int(token)] if isinstance(node, list) else node[token]
    return node


def _resolve(ref: str) -> Any:
    target, _, pointer = ref.partition("#")
    if target:
        path = (ASYNCAPI.parent / target).resolve()
        assert path.is_file(), f"{ref}: no file {path}"
        root = (
            json.loads(path.read_text(encoding="utf-8")) if path.suffix == ".json" else yaml.safe_load(path.read_text())
        )
    else:
        root = document()
    return _resolve_pointer(root, pointer)


@cache
def _inline(node_ref: str) -> Any:
    """A document node with its internal references replaced by their targets (for validation)."""
    return _expand(_resolve(node_ref))


def _expand(node: Any) -> Any:
    if isinstance(node, dict):
        if isinstance(node.get("$ref"), str) and node["$ref"].startswith("#"):
            merged = {k: v for k, v in node.items() if k != "$ref"}
            target = _expand(_resolve(node["$ref"]))
            return {**target, **merged} if isinstance(target, dict) and merged else target
        if isinstance(node.get("$ref"), str):
            # A file reference: point at the committed schema by its $id, so the registry resolves it.
            target, _, pointer = node["$ref"].partition("#")
            file_id = schema(Path(target).name)["$id"]
            return {"$ref": file_id + (f"#{pointer}" if pointer else "")}
        return {k: _expand(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_expand(v) for v in node]
    return node


def _message_schema(message: str, part: str) -> dict[str, Any]:
    node = _inline(f"#/components/messages/{message}")[part]
    if part == "payload":
        assert node["schemaFormat"] == PAYLOAD_FORMAT
        node = node["schema"]
    value: dict[str, Any] = node
    return value


def test_document_is_valid_asyncapi_3() -> None:
    spec = json.loads((DATA / "asyncapi-3.0.0.schema.json").read_text(encoding="utf-8"))
    errors = [f"{e.json_path}: {e.message[:300]}" for e in Draft7Validator(spec).iter_errors(document())]
    assert errors == []


def test_vendored_asyncapi_schema_catches_mistakes() -> None:
    """Guard against a vendored schema that accepts anything (e.g. unresolved references)."""
    spec = json.loads((DATA / "asyncapi-3.0.0.schema.json").read_text(encoding="utf-8"))
    broken = json.loads(json.dumps(document()))
    broken["operations"]["sendReplies"]["action"] = "publish"
    broken["channels"]["requests"]["bindings"]["amqp"]["is"] = "exchange"
    assert len(list(Draft7Validator(spec).iter_errors(broken))) >= 2


def test_required_fields() -> None:
    doc = document()
    assert doc["asyncapi"] == "3.0.0"
    assert doc["info"]["title"] and doc["info"]["version"]
    assert set(doc["channels"]) == {"requests", "replies", "dlq", "unroutable"}
    for name, operation in doc["operations"].items():
        assert operation["action"] in ("send", "receive"), name
        assert operation["channel"]["$ref"].startswith("#/channels/"), name


def test_every_reference_resolves() -> None:
    refs = list(_refs(document()))
    assert any(ref.startswith("./") for _, ref in refs), "payloads point to the schema files"
    for location, ref in refs:
        try:
            _resolve(ref)
        except (KeyError, IndexError, AssertionError) as exc:
            pytest.fail(f"{location}: $ref {ref} does not resolve ({exc})")


def test_operation_messages_belong_to_the_operation_channel() -> None:
    """AsyncAPI 3: an operation's messages must be a subset of its channel's messages."""
    for name, operation in document()["operations"].items():
        channel_ref = operation["channel"]["$ref"]
        for message in operation["messages"]:
            assert message["$ref"].startswith(channel_ref + "/messages/"), name
        if "reply" in operation:
            reply_channel = operation["reply"]["channel"]["$ref"]
            for message in operation["reply"]["messages"]:
                assert message["$ref"].startswith(reply_channel + "/messages/"), name


def test_channel_address_parameters_are_declared() -> None:
    for name, channel in document()["channels"].items():
        used = set(re.findall(r"{([^}]+)}", channel["address"]))
        assert used == set(channel.get("parameters", {})), name


def test_queue_names_and_arguments_match_the_worker_settings() -> None:
    # The defaults, whatever the environment of the test run says: model_construct reads no env vars.
    settings = Settings.model_construct()
    channels = document()["channels"]
    expected = {
        "requests": settings.request_queue,
        "dlq": settings.dlq_queue,
        "unroutable": settings.unroutable_queue,
    }
    for name, queue in expected.items():
        binding = channels[name]["bindings"]["amqp"]
        assert channels[name]["address"] == queue
        assert binding["is"] == "queue"
        assert binding["queue"]["name"] == queue
        assert binding["queue"]["durable"] is True
    queue_type = channels["requests"]["bindings"]["amqp"]["x-queue-arguments"]["x-queue-type"]
    assert set(queue_type["enum"]) == {t.value for t in QueueType}
    assert queue_type["default"] == settings.queue_type.value
    for name in ("dlq", "unroutable"):
        assert channels[name]["bindings"]["amqp"]["x-queue-arguments"]["x-queue-type"]["const"] == "classic"
    replies = channels["replies"]["bindings"]["amqp"]
    assert replies["is"] == "routingKey"
    assert replies["exchange"]["name"] == ""


def test_payloads_point_to_the_schema_files() -> None:
    messages = document()["components"]["messages"]
    assert messages["request"]["payload"]["schema"] == {"$ref": "./request.schema.json"}
    assert messages["reply"]["payload"]["schema"] == {"$ref": "./reply.schema.json"}
    assert messages["unroutableReply"]["payload"]["schema"] == {"$ref": "./reply.schema.json"}
    for name in ("reply", "unroutableReply"):
        assert messages[name]["bindings"]["amqp"]["messageType"] == REPLY_TYPE


def test_header_enums_match_the_worker() -> None:
    dead = _message_schema("deadLetter", "headers")
    assert set(dead["properties"]["x-reject-reason"]["enum"]) == {r.value for r in RejectReason}
    assert {"x-reject-reason", "x-error", "x-deliveries", "x-dlq-id", "x-dead-lettered-at"} <= set(dead["required"])
    unroutable = _message_schema("unroutableReply", "headers")
    extra = unroutable["allOf"][1]
    assert set(extra["properties"]["x-unroutable-reason"]["enum"]) == {"no_route", "nacked"}
    assert set(extra["required"]) == {"x-original-routing-key", "x-unroutable-reason", "x-dlq-id", "x-dead-lettered-at"}
    reply_headers = _message_schema("reply", "headers")
    assert set(reply_headers["properties"]["x-status"]["enum"]) == {s.value for s in Status}


@pytest.mark.parametrize("message", ["request", "reply", "deadLetter", "unroutableReply"])
def test_message_schemas_are_valid_json_schema(message: str) -> None:
    for part in ("headers", "payload", "x-amqp-properties"):
        node = _inline(f"#/components/messages/{message}")
        if part in node:
            Draft202012Validator.check_schema(_message_schema(message, part))


@pytest.mark.parametrize("message", ["request", "reply"])
def test_inline_examples_match_their_schemas(message: str) -> None:
    for example in _resolve(f"#/components/messages/{message}")["examples"]:
        assert schema_errors(_message_schema(message, "payload"), example["payload"]) == [], example["name"]
        assert schema_errors(_message_schema(message, "headers"), example.get("headers", {})) == []


def _split(properties: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    return {k: v for k, v in properties.items() if k != "headers"}, properties.get("headers", {})


REPLIES = examples("replies/valid")
REQUESTS = examples("requests/valid") + examples("requests/invalid")


@pytest.mark.parametrize("example", REPLIES, ids=[e.id for e in REPLIES])
def test_reply_examples_match_the_message_definition(example: Example) -> None:
    props, headers = _split(example.properties)
    assert schema_errors(_message_schema("reply", "x-amqp-properties"), props) == []
    assert schema_errors(_message_schema("reply", "headers"), headers) == []
    assert schema_errors(_message_schema("reply", "payload"), example.doc["body"]) == []


@pytest.mark.parametrize("example", REQUESTS, ids=[e.id for e in REQUESTS])
def test_request_example_properties_match_the_message_definition(example: Example) -> None:
    props, headers = _split(example.properties)
    assert schema_errors(_message_schema("request", "x-amqp-properties"), props) == []
    assert schema_errors(_message_schema("request", "headers"), headers) == []


def test_an_unroutable_copy_of_a_reply_matches_its_definition() -> None:
    reply = REPLIES[0]
    props, headers = _split(reply.properties)
    headers = {
        **headers,
        "x-original-routing-key": "crm.toksta.replies",
        "x-unroutable-reason": "no_route",
        **dead_letter_stamp(),
    }
    assert schema_errors(_message_schema("unroutableReply", "headers"), headers) == []
    assert schema_errors(_message_schema("unroutableReply", "headers"), {**headers, "x-unroutable-reason": "x"})
    assert schema_errors(_message_schema("unroutableReply", "x-amqp-properties"), props) == []


def test_dead_letter_headers_definition_accepts_a_worker_dead_letter() -> None:
    """The header names and the stamp come from the worker's publisher, so the document cannot drift."""
    headers = {
        "x-reject-reason": "no_reply_to",
        "x-error": "reply_to: no reply queue",
        "x-deliveries": 1,
        "x-original-user-id": "crm",
        **dead_letter_stamp(),
    }
    dead = _message_schema("deadLetter", "headers")
    assert schema_errors(dead, headers) == []
    assert schema_errors(dead, {**headers, "x-dead-lettered-at": "2026-11-28T09:00:00Z"})
    assert schema_errors(dead, {**headers, "x-reject-reason": "unknown"})


def test_worker_header_names_are_documented() -> None:
    dead = _message_schema("deadLetter", "headers")["properties"]
    unroutable = _message_schema("unroutableReply", "headers")["allOf"][1]["properties"]
    for name in (H_REJECT_REASON, H_ERROR, H_DELIVERIES, H_DLQ_ID, H_DEAD_LETTERED_AT):
        assert name in dead
    for name in (H_ORIGINAL_USER_ID, H_ORIGINAL_EXPIRATION):
        assert name in dead and name in unroutable
    for name in (H_ORIGINAL_ROUTING_KEY, H_UNROUTABLE_REASON, H_DLQ_ID, H_DEAD_LETTERED_AT):
        assert name in unroutable
    assert dead[H_ERROR]["maxLength"] == MAX_ERROR_CHARS
