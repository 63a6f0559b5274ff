"""Validation of an incoming request message, in the contract's order, stopping at the first failure.

Order: size, UTF-8, JSON object, reply queue, request_id, kind, top-level keys, options, params.
The result says either what the valid request is, or why the message is invalid and where its
answer can go (a usable reply queue), so the ingress can reply or dead-letter it unchanged.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ValidationError

from worker.contract.canonical import request_content, sha256_hex
from worker.contract.models import (
    INCLUDE_BY_KIND,
    OPTIONS_BY_KIND,
    PARAMS_MODELS,
    REQUEST_ID_PATTERN,
    Kind,
    RequestOptions,
)

TOP_LEVEL_KEYS = frozenset({"request_id", "kind", "params", "reply_to", "options"})
# Deeper JSON is refused whatever the parser could manage: its recursion limit depends on the
# calling thread's stack, and the answer to a message must not.
MAX_JSON_DEPTH = 64
_TOO_DEEP = f"body is nested deeper than {MAX_JSON_DEPTH} levels"
_REQUEST_ID = re.compile(REQUEST_ID_PATTERN)


class RejectReason(StrEnum):
    """`x-reject-reason` of a dead letter (and why a message was invalid)."""

    TOO_LARGE = "too_large"
    INVALID_JSON = "invalid_json"
    INVALID_REPLY_TO = "invalid_reply_to"
    NO_REPLY_TO = "no_reply_to"
    INVALID_REQUEST = "invalid_request"
    POISON = "poison"


@dataclass(frozen=True, slots=True)
class FieldError:
    path: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"path": self.path, "message": self.message}


@dataclass(frozen=True, slots=True)
class InvalidMessage:
    """Why a message breaks the contract, and where (if anywhere) its answer can go."""

    reason: RejectReason
    errors: tuple[FieldError, ...]
    reply_to: str | None
    request_id: str | None = None
    kind: str | None = None

    @property
    def summary(self) -> str:
        return "; ".join(f"{e.path or '<body>'}: {e.message}" for e in self.errors)


@dataclass(frozen=True, slots=True)
class ValidRequest:
    """A request that passed every check. `body` is the parsed JSON, forwarded as given."""

    request_id: str
    kind: Kind
    params: dict[str, Any]
    options: RequestOptions
    reply_to: str
    body: dict[str, Any] = field(repr=False)
    content_sha256: str


@dataclass(frozen=True, slots=True)
class MessageLimits:
    max_bytes: int
    request_queue: str


def is_valid_reply_queue(name: object, request_queue: str) -> bool:
    """1-255 bytes, not amq.*, not the request queue nor any `<request queue>.` name."""
    if not isinstance(name, str) or not name:
        return False
    if len(name.encode("utf-8")) > 255 or name.startswith("amq."):
        return False
    return name != request_queue and not name.startswith(request_queue + ".")


def validate_message(
    body: bytes, reply_to_property: str | None, limits: MessageLimits
) -> ValidRequest | InvalidMessage:
    """Check one message in the contract's order and say what it is."""
    fallback = reply_to_property if is_valid_reply_queue(reply_to_property, limits.request_queue) else None
    if len(body) > limits.max_bytes:
        return _invalid(
            RejectReason.TOO_LARGE,
            "",
            f"body is {len(body)} bytes; the limit is {limits.max_bytes}",
            fallback,
        )
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        return _invalid(
            RejectReason.INVALID_JSON, "", f"body is not UTF-8 ({exc.reason} at byte {exc.start})", fallback
        )
    try:
        doc = json.loads(text, parse_constant=_reject_constant)
    except ValueError as exc:
        return _invalid(RejectReason.INVALID_JSON, "", f"body is not JSON: {exc}", fallback)
    except RecursionError:  # deeper than the parser goes, so deeper than MAX_JSON_DEPTH too
        return _invalid(RejectReason.INVALID_JSON, "", _TOO_DEEP, fallback)
    if _deeper_than(doc, MAX_JSON_DEPTH):
        return _invalid(RejectReason.INVALID_JSON, "", _TOO_DEEP, fallback)
    if not isinstance(doc, dict):
        return _invalid(RejectReason.INVALID_JSON, "", f"body is a JSON {type(doc).__name__}, not an object", fallback)
    return _validate_document(doc, reply_to_property, limits)


def _validate_document(
    doc: dict[str, Any], reply_to_property: str | None, limits: MessageLimits
) -> ValidRequest | InvalidMessage:
    reply_to, problem = _reply_queue(doc, reply_to_property, limits.request_queue)
    readable_id = doc.get("request_id") if _is_request_id(doc.get("request_id")) else None
    raw_kind = doc.get("kind")
    readable_kind = raw_kind if isinstance(raw_kind, str) and raw_kind in set(Kind) else None
    if problem is not None:
        return InvalidMessage(problem[0], (problem[1],), reply_to, readable_id, readable_kind)
    assert reply_to is not None

    def invalid(path: str, message: str) -> InvalidMessage:
        return InvalidMessage(
            RejectReason.INVALID_REQUEST, (FieldError(path, message),), reply_to, readable_id, readable_kind
        )

    if "request_id" not in doc:
        return invalid("request_id", "is required")
    if not _is_request_id(doc["request_id"]):
        return invalid("request_id", "must be 1-128 characters of A-Z a-z 0-9 . _ : -")
    if "kind" not in doc:
        return invalid("kind", "is required")
    if readable_kind is None:
        return invalid("kind", f"must be one of {', '.join(k.value for k in Kind)}")
    kind = Kind(readable_kind)
    unknown = sorted(set(doc) - TOP_LEVEL_KEYS)
    if unknown:
        return invalid(unknown[0], f"unknown top-level key (allowed: {', '.join(sorted(TOP_LEVEL_KEYS))})")
    if "params" not in doc:
        return invalid("params", "is required")
    options_or_error = _options(doc.get("options"), kind)
    if isinstance(options_or_error, FieldError):
        return invalid(options_or_error.path, options_or_error.message)
    params_error = _params_error(doc["params"], kind)
    if params_error is not None:
        return invalid(params_error.path, params_error.message)
    try:
        content = request_content(kind.value, doc["params"], doc.get("options"))
    except (ValueError, UnicodeError) as exc:
        # RFC 8785 needs I-JSON: no integer beyond 2**53, no overflowing float, no lone surrogate.
        return invalid("params", f"is not I-JSON, so it cannot be compared as canonical JSON: {exc}")
    return ValidRequest(
        request_id=doc["request_id"],
        kind=kind,
        params=doc["params"],
        options=options_or_error,
        reply_to=reply_to,
        body=doc,
        content_sha256=sha256_hex(content),
    )


def _reply_queue(
    doc: dict[str, Any], reply_to_property: str | None, request_queue: str
) -> tuple[str | None, tuple[RejectReason, FieldError] | None]:
    """The usable reply queue and, if the reply-queue check fails, why.

    The body's `reply_to` wins; when it is unusable the property (if valid) still receives the
    INVALID_REQUEST answer, so a hostile body cannot make the worker reply into its own queues.
    """
    property_ok = is_valid_reply_queue(reply_to_property, request_queue)
    fallback = reply_to_property if property_ok else None
    rule = "must be 1-255 bytes, not amq.*, and not the request queue or one of its '<queue>.' names"
    if "reply_to" in doc and doc["reply_to"] is not None:
        if not is_valid_reply_queue(doc["reply_to"], request_queue):
            return fallback, (RejectReason.INVALID_REPLY_TO, FieldError("reply_to", rule))
        return doc["reply_to"], None
    if reply_to_property is None or reply_to_property == "":
        return None, (
            RejectReason.NO_REPLY_TO,
            FieldError("reply_to", "no reply queue: set the body's reply_to or the reply_to property"),
        )
    if not property_ok:
        return None, (RejectReason.INVALID_REPLY_TO, FieldError("properties.reply_to", rule))
    return reply_to_property, None


def _options(raw: Any, kind: Kind) -> RequestOptions | FieldError:
    if raw is None:
        return RequestOptions()
    if not isinstance(raw, dict):
        return FieldError("options", "must be an object")
    try:
        options = RequestOptions.model_validate(raw)
    except ValidationError as exc:
        return _first_error(exc, "options")
    allowed = OPTIONS_BY_KIND[kind]
    for key in sorted(raw):
        if key not in allowed:
            return FieldError(f"options.{key}", f"does not apply to kind {kind.value}")
    for index, item in enumerate(options.include or ()):
        if item not in INCLUDE_BY_KIND.get(kind, frozenset()):
            return FieldError(f"options.include.{index}", f"{item!r} does not apply to kind {kind.value}")
    return options


def _params_error(raw: Any, kind: Kind) -> FieldError | None:
    if not isinstance(raw, dict):
        return FieldError("params", "must be an object")
    model: type[BaseModel] = PARAMS_MODELS[kind]
    try:
        model.model_validate(raw)
    except ValidationError as exc:
        return _first_error(exc, "params")
    return None


def _first_error(exc: ValidationError, prefix: str) -> FieldError:
    first = exc.errors(include_url=False)[0]
    path = ".".join([prefix, *(str(part) for part in first["loc"])])
    message = first["msg"].removeprefix("Value error, ")
    return FieldError(path, message)


def _invalid(reason: RejectReason, path: str, message: str, reply_to: str | None) -> InvalidMessage:
    return InvalidMessage(reason, (FieldError(path, message),), reply_to)


def _is_request_id(value: object) -> bool:
    return isinstance(value, str) and _REQUEST_ID.fullmatch(value) is not None


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _deeper_than(doc: Any, limit: int) -> bool:
    """Whether arrays and objects nest more than `limit` levels (iterative: no recursion limit)."""
    stack: list[tuple[Any, int]] = [(doc, 1)]
    while stack:
        value, depth = stack.pop()
        children = value.values() if isinstance(value, dict) else value if isinstance(value, list) else None
        if children is None:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False
