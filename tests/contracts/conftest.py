"""Fixtures for the contract tests: the committed schemas, loaded once per session."""

from __future__ import annotations

from typing import Any

import pytest
from jsonschema import Draft202012Validator

from ._support import schema


@pytest.fixture(scope="session", autouse=True)
def _format_checking_is_real() -> None:
    """Without rfc3339-validator, jsonschema skips date-time silently and the tests would lie."""
    if "date-time" not in Draft202012Validator.FORMAT_CHECKER.checkers:
        pytest.fail("install rfc3339-validator: jsonschema checks format date-time only with it")


@pytest.fixture(scope="session")
def request_schema() -> dict[str, Any]:
    return schema("request.schema.json")


@pytest.fixture(scope="session")
def reply_schema() -> dict[str, Any]:
    return schema("reply.schema.json")


@pytest.fixture(scope="session")
def error_schema() -> dict[str, Any]:
    return schema("error.schema.json")
