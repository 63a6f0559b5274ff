"""Strict JSON Schemas of the simulator's answers, derived from the OpenAPI examples.

The published document gives every response the same generic envelope (`data` is any
object); only its examples carry the real shapes. Each success schema here is built from
the example of its route and status: JSON types from the example values, every example key
required, no other keys allowed, ids and timestamps held to the example's format. Then the
documented additions are applied (per-item `status`, `not_found_ids`, `expired_ids`,
`results` with detail_level=full, meta counters, ...), and fields that are null until an
item has finished are made nullable. `check_response` validates one answer.

Needs the `jsonschema` package (a dev dependency), imported only when validating.
"""

from __future__ import annotations

import copy
import json
import re
from functools import cache
from importlib import resources
from typing import Any

Schema = dict[str, Any]

UUID_RE = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
DATETIME_RE = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$"
DATE_RE = r"^\d{4}-\d{2}-\d{2}$"
_PREFIXED = re.compile(rf"^([a-z-]+):{UUID_RE}$")

# Null until the item (job, creator) has finished, or null by nature in the examples.
NULLABLE = frozenset(
    {
        "campaign_id",
        "created_list_id",
        "error_message",
        "completed_at",
        "result_expires_at",
        "match_score",
        "matching_posts_count",
        "total_posts_analyzed",
        "content_fit_label",
        "matched_posts_status",
        "recommended_next_endpoint",
        "followers_count",
        "median_posts_per_month",
        "engagement_rate",
        "enriched_at",
        "matching_engagers_count",
        "total_engagers_analyzed",
        "unique_companies",
        "audience_summary",
        "headline",
        "location",
    }
)
ERROR_CODES = {
    400: ["BAD_REQUEST", "VALIDATION_ERROR"],
    401: ["UNAUTHORIZED"],
    402: ["INSUFFICIENT_CREDITS"],
    403: ["FORBIDDEN"],
    404: ["NOT_FOUND"],
    429: ["RATE_LIMITED"],
    500: ["INTERNAL_ERROR"],
    501: ["NOT_IMPLEMENTED"],
}
_STR: Schema = {"type": "string"}
_STR_LIST: Schema = {"type": "array", "items": _STR}
_INT: Schema = {"type": "integer"}


class SchemaMismatchError(AssertionError):
    """An answer does not match the strict schema of its route and status."""


@cache
def openapi() -> dict[str, Any]:
    """The vendored OpenAPI document (bulk route patched to `/v1/jobs/results:bulk`)."""
    text = resources.files("worker.sim").joinpath("openapi.json").read_text(encoding="utf-8")
    document: dict[str, Any] = json.loads(text)
    return document


def example(route_key: str, status: int) -> dict[str, Any]:
    method, path = route_key.split(" ", 1)
    response = openapi()["paths"][path][method.lower()]["responses"][str(status)]
    found: dict[str, Any] = response["content"]["application/json"]["schema"]["example"]
    return found


def from_example(value: Any, name: str = "") -> Schema:
    """Schema of an example value: its JSON type, keys required and closed, formats kept."""
    if isinstance(value, dict):
        return {
            "type": "object",
            "properties": {key: from_example(item, key) for key, item in value.items()},
            "required": list(value),
            "additionalProperties": False,
        }
    if isinstance(value, list):
        return {"type": "array", "items": from_example(value[0], name)} if value else {"type": "array"}
    schema = _scalar(value)
    if name in NULLABLE:
        kind = schema["type"] if value is not None else "string"
        schema["type"] = [kind, "null"] if isinstance(kind, str) else [*kind, "null"]
    return schema


def _scalar(value: Any) -> Schema:
    if value is None:
        return {"type": "null"}
    if isinstance(value, bool):
        return {"type": "boolean"}
    if isinstance(value, int):
        return {"type": "integer"}
    if isinstance(value, float):
        return {"type": "number"}
    schema: Schema = {"type": "string"}
    if re.fullmatch(UUID_RE, value):
        schema["pattern"] = f"^{UUID_RE}$"
    elif match := _PREFIXED.match(value):
        schema["pattern"] = f"^{re.escape(match.group(1))}:{UUID_RE}$"
    elif re.fullmatch(DATETIME_RE, value):
        schema["pattern"] = DATETIME_RE
    elif re.fullmatch(DATE_RE, value):
        schema["pattern"] = DATE_RE
    return schema


def _at(schema: Schema, path: str) -> Schema:
    """The sub-schema at a dotted path; `name[]` steps into an array's items."""
    node = schema
    for step in path.split("."):
        name, items = (step[:-2], True) if step.endswith("[]") else (step, False)
        if name:
            node = node["properties"][name]
        if items:
            node = node["items"]
    return node


def _add(schema: Schema, path: str, props: dict[str, Schema], required: bool = False) -> None:
    node = _at(schema, path)
    for name, sub in props.items():
        node["properties"][name] = copy.deepcopy(sub)
        if required and name not in node["required"]:
            node["required"].append(name)


def _meta(extra: dict[str, Schema] | None = None) -> Schema:
    return {
        "type": "object",
        "properties": {
            "request_id": {"type": "string", "pattern": "^req_"},
            "trace_id": _STR,
            **(extra or {}),
        },
        "required": ["request_id", "trace_id"],
        "additionalProperties": False,
    }


def _success(route_key: str, status: int, meta: dict[str, Schema] | None = None) -> Schema:
    schema = from_example(example(route_key, status))
    schema["properties"]["success"] = {"const": True}
    schema["properties"]["meta"] = _meta(meta)
    return schema


def error_schema(status: int) -> Schema:
    codes = ERROR_CODES.get(status, ["INTERNAL_ERROR"])
    return {
        "type": "object",
        "properties": {
            "success": {"const": False},
            "error": {
                "type": "object",
                "properties": {"code": {"enum": codes}, "message": _STR, "details": {"type": "object"}},
                "required": ["code", "message"],
                "additionalProperties": False,
            },
            "meta": _meta(),
        },
        "required": ["success", "error", "meta"],
        "additionalProperties": False,
    }


def _plain(properties: dict[str, Schema]) -> Schema:
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties),
        "additionalProperties": False,
    }


def _enveloped(data: Schema) -> Schema:
    return {
        "type": "object",
        "properties": {"success": {"const": True}, "data": data, "meta": _meta()},
        "required": ["success", "data", "meta"],
        "additionalProperties": False,
    }


_RESULTS_META = {"detail_level": {"enum": ["summary", "full"]}, "wait_seconds": _INT}
_CREATOR_MODE = {"creators_requested": _INT, "missing_creator_ids": _STR_LIST}


def _failure_item() -> Schema:
    return {
        "type": "object",
        "properties": {"creator_id": _STR, "error_code": _STR, "message": _STR},
        "required": ["creator_id", "message"],
        "additionalProperties": False,
    }


def _discovery_schemas() -> dict[tuple[str, int], Schema]:
    results = _success("POST /v1/jobs/results", 200, {"wait_seconds": _INT})
    _add(results, "data.job", {"error_message": {"type": ["string", "null"]}})
    row = _at(results, "data.job.results[]")
    bulk = _success(
        "POST /v1/jobs/results:bulk",
        200,
        {"requested_count": _INT, "found_count": _INT, "not_found_count": _INT},
    )
    found_example, missing_example = example("POST /v1/jobs/results:bulk", 200)["data"]["jobs"]
    found = from_example(found_example)
    found["properties"]["found"] = {"const": True}
    found["properties"]["results"]["items"] = row
    found["properties"]["error_message"] = {"type": ["string", "null"]}
    missing = from_example(missing_example)
    missing["properties"]["found"] = {"const": False}
    _at(bulk, "data")["properties"]["jobs"] = {"type": "array", "items": {"oneOf": [found, missing]}}
    return {
        ("POST /v1/creators/thought-leaders", 202): _success("POST /v1/creators/thought-leaders", 202),
        ("GET /v1/jobs/{id}", 200): _success("GET /v1/jobs/{id}", 200),
        ("POST /v1/jobs/results", 200): results,
        ("POST /v1/jobs/results:bulk", 200): bulk,
        ("POST /v1/jobs/{id}/cancel", 200): _success("POST /v1/jobs/{id}/cancel", 200),
    }


def _start_schemas() -> dict[tuple[str, int], Schema]:
    sync = _success("POST /v1/creators/enrich", 200)
    _add(sync, "data", {"missing_linkedin_profiles": _STR_LIST, "jobs": {"type": "array", "maxItems": 0}})
    queued = _success("POST /v1/creators/enrich", 202)
    _add(queued, "data", {"missing_linkedin_profiles": _STR_LIST})
    schemas = {("POST /v1/creators/enrich", 200): sync, ("POST /v1/creators/enrich", 202): queued}
    for route in ("POST /v1/creators/content-match", "POST /v1/creators/audience-match"):
        schema = _success(route, 202)
        _add(schema, "data", {"failures": {"type": "array", "items": _failure_item()}})
        _add(schema, "data.jobs[]", {"status": {"enum": ["pending", "succeeded"]}})
        schemas[(route, 202)] = schema
    return schemas


def _enrichment_results() -> Schema:
    schema = _success("POST /v1/enrichments/results", 200, _RESULTS_META)
    _add(schema, "data.results_summary[]", {"status": _STR}, required=True)
    _add(schema, "data.results_summary[]", {"error_message": {"type": ["string", "null"]}})
    _add(schema, "data", {"not_found_ids": _STR_LIST, "expired_ids": _STR_LIST}, required=True)
    full = copy.deepcopy(_at(schema, "data.results_summary[]"))
    extra = {
        "headline": {"type": ["string", "null"]},
        "location": {"type": ["string", "null"]},
        "platform": _STR,
    }
    full["properties"].update(extra)
    full["required"] = [*full["required"], *extra]
    _add(schema, "data", {"results": {"type": "array", "items": full}})
    return schema


def _match_results(route: str, extra_full: dict[str, Schema]) -> Schema:
    schema = _success(route, 200, _RESULTS_META)
    _add(schema, "data", {"not_found_ids": _STR_LIST, "expired_ids": _STR_LIST}, required=True)
    _add(schema, "data", _CREATOR_MODE)
    item = _at(schema, "data.results_summary[]")
    if "error_message" not in item["properties"]:
        _add(schema, "data.results_summary[]", {"error_message": {"type": ["string", "null"]}})
    full = copy.deepcopy(item)
    full["properties"].update(copy.deepcopy(extra_full))
    full["required"] = [*full["required"], *extra_full]
    _add(schema, "data", {"results": {"type": "array", "items": full}})
    return schema


def _evidence(route: str) -> Schema:
    schema = _success(route, 200, _RESULTS_META)
    _add(schema, "data", {"not_found_ids": _STR_LIST, "expired_ids": _STR_LIST}, required=True)
    _add(schema, "data", _CREATOR_MODE)
    _at(schema, "data.detail_level")["enum"] = ["summary", "full"]
    return schema


def _results_schemas() -> dict[tuple[str, int], Schema]:
    nullable_str = {"type": ["string", "null"]}
    details = _evidence("POST /v1/audience-match/details")
    for name in ("top_companies", "job_title_breakdown", "top_matching_engagers"):
        _at(details, f"data.results[].{name}")  # must exist in the example
    return {
        ("POST /v1/enrichments/results", 200): _enrichment_results(),
        ("POST /v1/content-match/results", 200): _match_results(
            "POST /v1/content-match/results",
            {
                "campaign_id": nullable_str,
                "topic_keywords": _STR_LIST,
                "posts_to_analyze": {"enum": [10, 20, 30]},
            },
        ),
        ("POST /v1/audience-match/results", 200): _match_results(
            "POST /v1/audience-match/results",
            {
                "campaign_id": nullable_str,
                "analysis_depth": {"enum": ["quick_scan", "deep_dive", "comprehensive"]},
            },
        ),
        ("POST /v1/content-match/posts", 200): _evidence("POST /v1/content-match/posts"),
        ("POST /v1/audience-match/details", 200): details,
    }


def _misc_schemas() -> dict[tuple[str, int], Schema]:
    usage = _success("GET /v1/account/usage", 200)
    operation = next(iter(_at(usage, "data.operations")["properties"].values()))
    _at(usage, "data")["properties"]["operations"] = {"type": "object", "additionalProperties": operation}
    root = _plain(
        {
            "name": _STR,
            "api_version": _STR,
            "spec_version": _STR,
            "docs_url": _STR,
            "simulator": {"type": "boolean"},
        }
    )
    return {
        ("GET /v1/account/usage", 200): usage,
        ("GET /v1/", 200): _enveloped(root),
        ("GET /health", 200): _plain({"status": {"const": "ok"}}),
        ("GET /ready", 200): _plain({"status": {"const": "ready"}}),
        ("GET /version", 200): _plain({"version": _STR}),
    }


@cache
def all_schemas() -> dict[tuple[str, int], Schema]:
    """Every success schema by (route key, status)."""
    return {**_discovery_schemas(), **_start_schemas(), **_results_schemas(), **_misc_schemas()}


def schema_for(route_key: str, status: int) -> Schema:
    if status >= 400:
        return error_schema(status)
    try:
        return all_schemas()[(route_key, status)]
    except KeyError:
        raise SchemaMismatchError(f"no documented {status} answer for {route_key}") from None


def check_response(route_key: str, status: int, body: Any) -> None:
    """Raises SchemaMismatchError listing every violation when `body` breaks the strict schema."""
    from jsonschema import Draft202012Validator  # noqa: PLC0415 (dev dependency, lazy on purpose)

    validator = Draft202012Validator(schema_for(route_key, status))
    errors = sorted(validator.iter_errors(body), key=lambda e: list(e.absolute_path))
    if errors:
        lines = [f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}" for e in errors[:10]]
        raise SchemaMismatchError(f"{route_key} {status}: " + "; ".join(lines))
