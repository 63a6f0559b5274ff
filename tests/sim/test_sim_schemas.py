"""The strict schemas themselves: derived from the vendored document, and strict."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from worker.sim import schemas
from worker.sim.app import V1_ROUTES
from worker.sim.schemas import SchemaMismatchError, check_response, example

START = "POST /v1/creators/thought-leaders"


def test_vendored_document_has_the_literal_bulk_route() -> None:
    paths = schemas.openapi()["paths"]
    assert "/v1/jobs/results:bulk" in paths and "/v1/jobs/results{bulk}" not in paths


def test_every_route_has_a_schema() -> None:
    keyed = {route for route, _ in schemas.all_schemas()}
    business = {f"{m} {p}" for m, p, _ in V1_ROUTES if "/campaigns" not in p and "/creator-lists" not in p}
    assert business <= keyed


def test_examples_that_need_no_additions_validate() -> None:
    for route, status in [(START, 202), ("GET /v1/jobs/{id}", 200), ("POST /v1/jobs/results:bulk", 200)]:
        check_response(route, status, example(route, status))


def _start_body() -> dict[str, Any]:
    return copy.deepcopy(example(START, 202))


@pytest.mark.parametrize(
    "breakage",
    [
        lambda b: b["data"].update(extra=1),
        lambda b: b["data"].pop("status"),
        lambda b: b["data"].update(job_id="content-fit:a1b2c3d4-e5f6-4789-a012-3456789abcde"),
        lambda b: b["data"].update(status=1),
        lambda b: b["meta"].update(request_id="nope"),
        lambda b: b.update(success=False),
    ],
)
def test_strictness(breakage: Any) -> None:
    body = _start_body()
    breakage(body)
    with pytest.raises(SchemaMismatchError):
        check_response(START, 202, body)


def test_error_schema_ties_codes_to_statuses() -> None:
    meta = {"request_id": "req_1", "trace_id": "ab"}
    check_response(
        START, 402, {"success": False, "error": {"code": "INSUFFICIENT_CREDITS", "message": "x"}, "meta": meta}
    )
    with pytest.raises(SchemaMismatchError):
        check_response(START, 402, {"success": False, "error": {"code": "NOT_FOUND", "message": "x"}, "meta": meta})
    with pytest.raises(SchemaMismatchError):
        check_response(START, 200, _start_body())  # undocumented status for this route
