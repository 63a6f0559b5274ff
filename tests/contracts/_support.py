"""Reading contracts/: example files, the schemas, and the bytes an example stands for.

Examples describe messages in JSON so that odd bodies (not UTF-8, not JSON, 256 KiB) can be
committed as small files: `body` is a JSON value sent as compact JSON, `body_text` an exact UTF-8
text, `body_base64` exact bytes, and `generate` a padded request of an exact size.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from referencing import Registry, Resource

REPO = Path(__file__).resolve().parents[2]
CONTRACTS = REPO / "contracts"
EXAMPLES = CONTRACTS / "examples"
DATA = Path(__file__).resolve().parent / "data"
REQUEST_QUEUE = "toksta.requests"
MAX_REQUEST_BYTES = 262144

# The contract's error-code table (wire-contract.md): code -> (status, retryable).
WORKER_CODES: dict[str, tuple[str, bool]] = {
    "INVALID_REQUEST": ("error", False),
    "REQUEST_ID_CONFLICT": ("error", False),
    "JOB_FAILED": ("failed", False),
    "JOB_EXPIRED": ("expired", False),
    "JOB_CANCELED": ("canceled", False),
    "CANCELED_BY_REQUEST": ("canceled", False),
    "DEADLINE_EXCEEDED": ("error", True),
    "POISON_MESSAGE": ("error", False),
    "UPSTREAM_UNAVAILABLE": ("error", True),
    "REPLY_TOO_LARGE": ("error", False),
    "START_UNCONFIRMED": ("error", False),
}
# The API's own codes that reach a reply: status error, their http_status, never retryable.
API_CODES = frozenset(
    {
        "BAD_REQUEST",
        "VALIDATION_ERROR",
        "UNAUTHORIZED",
        "INSUFFICIENT_CREDITS",
        "FORBIDDEN",
        "NOT_FOUND",
        "NOT_IMPLEMENTED",
    }
)


@dataclass(frozen=True)
class Example:
    path: Path
    doc: dict[str, Any]

    @property
    def id(self) -> str:
        return self.path.stem

    @property
    def expect(self) -> dict[str, Any]:
        value: dict[str, Any] = self.doc["expect"]
        return value

    @property
    def properties(self) -> dict[str, Any]:
        value: dict[str, Any] = self.doc.get("properties") or {}
        return value

    def body_bytes(self) -> bytes:
        return message_bytes(self.doc)

    def json_body(self) -> tuple[bool, Any]:
        """(True, value) when the body is a JSON document (strictly parsed), else (False, None)."""
        return parse_json(self.body_bytes())


def examples(folder: str) -> list[Example]:
    """The example files of one folder, sorted by name (names carry the validation order)."""
    paths = sorted((EXAMPLES / folder).glob("*.json"))
    return [Example(p, json.loads(p.read_text(encoding="utf-8"))) for p in paths]


def message_bytes(doc: dict[str, Any]) -> bytes:
    """The exact message body an example (or a reply example's `request`) stands for."""
    forms = [key for key in ("body", "body_text", "body_base64", "generate") if key in doc]
    assert len(forms) == 1, f"exactly one of body, body_text, body_base64, generate; got {forms}"
    if "body" in doc:
        return compact(doc["body"])
    if "body_text" in doc:
        text: str = doc["body_text"]
        return text.encode("utf-8")
    if "body_base64" in doc:
        return base64.b64decode(doc["body_base64"], validate=True)
    return generated(doc["generate"])


def compact(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def generated(spec: dict[str, Any]) -> bytes:
    """`template` with the string at dotted `pad` filled with `char` up to exactly `total_bytes`."""
    template = json.loads(json.dumps(spec["template"]))
    *parents, leaf = spec["pad"].split(".")
    holder = template
    for key in parents:
        holder = holder[key]
    char: str = spec["char"]
    assert len(char.encode("utf-8")) == 1, "the pad character must be one byte"
    holder[leaf] = ""
    missing = spec["total_bytes"] - len(compact(template))
    assert missing >= 0, "template is larger than total_bytes"
    holder[leaf] = char * missing
    body = compact(template)
    assert len(body) == spec["total_bytes"]
    return body


def parse_json(body: bytes) -> tuple[bool, Any]:
    def reject(name: str) -> Any:
        raise ValueError(name)

    try:
        return True, json.loads(body.decode("utf-8"), parse_constant=reject)
    except ValueError:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        return False, None


@cache
def schema(name: str) -> dict[str, Any]:
    value: dict[str, Any] = json.loads((CONTRACTS / name).read_text(encoding="utf-8"))
    return value


@cache
def registry() -> Registry:
    """The committed schema files under their $id, so cross-file references resolve offline."""
    resources = [
        (schema(n)["$id"], Resource.from_contents(schema(n)))
        for n in ("request.schema.json", "reply.schema.json", "error.schema.json")
    ]
    return Registry().with_resources(resources)


def validator(schema_doc: dict[str, Any]) -> Draft202012Validator:
    """A draft 2020-12 validator that checks formats (date-time needs rfc3339-validator)."""
    return Draft202012Validator(schema_doc, registry=registry(), format_checker=Draft202012Validator.FORMAT_CHECKER)


def schema_errors(schema_doc: dict[str, Any], instance: Any) -> list[str]:
    return [f"{e.json_path}: {e.message}" for e in validator(schema_doc).iter_errors(instance)]
