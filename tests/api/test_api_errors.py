"""ApiError's retry answers, checked against the contract's rules (pure, no HTTP)."""

from __future__ import annotations

import pickle

import pytest

from worker.api import MALFORMED_RESPONSE, TIMEOUT, TRANSPORT_ERROR, ApiError, RateInfo


def _status(status: int, *, envelope: bool, code: str | None = None) -> ApiError:
    return ApiError(
        code=code or (f"HTTP_{status}" if not envelope else "X"),
        message="m",
        http_status=status,
        envelope=envelope,
    )


@pytest.mark.parametrize(
    ("status", "envelope", "retryable", "unknown", "resend"),
    [
        (400, True, False, False, False),
        (401, True, False, False, False),
        (402, True, False, False, False),
        (403, True, False, False, False),
        (404, True, False, False, False),
        (404, False, False, False, False),
        (429, True, True, False, True),
        (429, False, True, False, True),
        (500, True, True, False, True),
        (503, True, True, False, True),
        (500, False, True, True, False),
        (502, False, True, True, False),
        (501, True, False, False, False),
        (501, False, False, True, False),
    ],
)
def test_status_rules(status: int, envelope: bool, retryable: bool, unknown: bool, resend: bool) -> None:
    error = _status(status, envelope=envelope)
    assert error.retryable is retryable
    assert error.outcome_unknown is unknown
    assert error.safe_to_resend is resend


def test_not_sent_is_safe_and_known() -> None:
    error = ApiError(code=TRANSPORT_ERROR, message="refused", sent=False)
    assert error.retryable
    assert error.safe_to_resend
    assert not error.outcome_unknown


@pytest.mark.parametrize("code", [TRANSPORT_ERROR, TIMEOUT])
def test_sent_transport_failure_is_unknown(code: str) -> None:
    error = ApiError(code=code, message="lost", sent=True)
    assert error.retryable
    assert error.outcome_unknown
    assert not error.safe_to_resend


def test_malformed_2xx_is_unknown_and_retryable() -> None:
    error = ApiError(code=MALFORMED_RESPONSE, message="bad", http_status=202)
    assert error.retryable
    assert error.outcome_unknown
    assert not error.safe_to_resend


def test_to_dict_has_exactly_the_public_fields() -> None:
    error = ApiError(
        code="NOT_FOUND",
        message="no such job",
        http_status=404,
        toksta_request_id="req_1",
        envelope=True,
        details={"id": "x"},
        rate=RateInfo(limit=5),
    )
    assert error.to_dict() == {
        "code": "NOT_FOUND",
        "message": "no such job",
        "http_status": 404,
        "retryable": False,
        "toksta_request_id": "req_1",
        "details": {"id": "x"},
    }


def test_str_names_code_status_and_request_id() -> None:
    error = ApiError(code="RATE_LIMITED", message="slow down", http_status=429, toksta_request_id="req_9")
    assert str(error) == "RATE_LIMITED (HTTP 429): slow down [request_id=req_9]"


def test_pickle_round_trip_keeps_fields() -> None:
    error = ApiError(code="INTERNAL_ERROR", message="boom", http_status=500, envelope=True, retry_after=2.0)
    copy = pickle.loads(pickle.dumps(error))
    assert isinstance(copy, ApiError)
    assert copy.to_dict() == error.to_dict()
    assert copy.safe_to_resend and copy.retry_after == 2.0
    assert str(copy) == str(error)
