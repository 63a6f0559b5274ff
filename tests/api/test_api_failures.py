"""Every failure class normalized to ApiError, with the retry answers the contract needs."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

import pytest

from worker.api import MALFORMED_RESPONSE, TIMEOUT, TRANSPORT_ERROR, ApiError, CallRecord, TokstaClient
from worker.sim.testing import SimAdmin

TL = "POST /v1/creators/thought-leaders"


def _fails(call: Callable[[], object]) -> ApiError:
    with pytest.raises(ApiError) as info:
        call()
    return info.value


def _assert_plain_rejection(error: ApiError) -> None:
    """A 4xx the API answered itself: nothing happened, and trying again will not help."""
    assert error.envelope
    assert error.sent
    assert not error.retryable
    assert not error.outcome_unknown
    assert not error.safe_to_resend
    assert error.toksta_request_id and error.toksta_request_id.startswith("req_")


def test_400_validation_error(client: TokstaClient, admin: SimAdmin) -> None:
    error = _fails(lambda: client.start_thought_leaders({"keywords": ["only", "three", "words"]}))
    assert error.http_status == 400
    assert error.code == "VALIDATION_ERROR"
    assert error.details == {"field": "keywords"}
    assert "keywords" in error.message
    _assert_plain_rejection(error)
    assert admin.stats()["jobs_created"] == 0


def test_401_wrong_key(make_client: Callable[..., TokstaClient]) -> None:
    client = make_client(api_key="tk_live_not_the_right_one")
    error = _fails(client.account_usage)
    assert (error.http_status, error.code) == (401, "UNAUTHORIZED")
    _assert_plain_rejection(error)


def test_402_insufficient_credits(client: TokstaClient, admin: SimAdmin, keywords: list[str]) -> None:
    admin.configure(credits=5)
    error = _fails(lambda: client.start_thought_leaders({"keywords": keywords, "max_candidates_to_analyze": 10}))
    assert (error.http_status, error.code) == (402, "INSUFFICIENT_CREDITS")
    assert error.details == {"required": 20, "remaining": 5}
    _assert_plain_rejection(error)


def test_403_injected(client: TokstaClient, admin: SimAdmin, keywords: list[str]) -> None:
    admin.add_faults({"kind": "error", "route": TL, "status": 403, "code": "FORBIDDEN"})
    error = _fails(lambda: client.start_thought_leaders({"keywords": keywords}))
    assert (error.http_status, error.code) == (403, "FORBIDDEN")
    _assert_plain_rejection(error)


def test_404_unknown_job(client: TokstaClient) -> None:
    missing = str(uuid.uuid4())
    error = _fails(lambda: client.get_job(missing))
    assert (error.http_status, error.code) == (404, "NOT_FOUND")
    assert error.details == {"job_id": missing}
    _assert_plain_rejection(error)
    assert error.to_dict()["toksta_request_id"] == error.toksta_request_id


def test_429_after_the_limit_with_retry_after(client: TokstaClient, admin: SimAdmin) -> None:
    admin.configure(rate_limit=2)
    first, second = client.account_usage(), client.account_usage()
    assert (first.rate.limit, first.rate.remaining) == (2, 1)
    assert (second.rate.limit, second.rate.remaining) == (2, 0)
    error = _fails(client.account_usage)
    assert (error.http_status, error.code) == (429, "RATE_LIMITED")
    assert error.envelope and error.retryable and error.safe_to_resend
    assert not error.outcome_unknown
    assert error.retry_after is not None and 0 < error.retry_after <= 60
    assert error.rate is not None
    assert error.rate.retry_after == error.retry_after
    assert (error.rate.limit, error.rate.remaining) == (2, 0)
    assert error.rate.reset_at is not None and error.rate.reset_at > time.time() - 1


def test_500_with_envelope_is_safe_to_resend(client: TokstaClient, admin: SimAdmin, keywords: list[str]) -> None:
    admin.add_faults({"kind": "error", "route": TL, "status": 500})
    error = _fails(lambda: client.start_thought_leaders({"keywords": keywords}))
    assert (error.http_status, error.code) == (500, "INTERNAL_ERROR")
    assert error.envelope and error.retryable and error.safe_to_resend
    assert not error.outcome_unknown
    assert admin.stats()["jobs_created"] == 0


def test_plain_5xx_without_envelope_is_outcome_unknown(
    client: TokstaClient, admin: SimAdmin, keywords: list[str]
) -> None:
    admin.add_faults({"kind": "plain_5xx", "route": TL, "status": 502, "processed": True})
    error = _fails(lambda: client.start_thought_leaders({"keywords": keywords}))
    assert (error.http_status, error.code) == (502, "HTTP_502")
    assert not error.envelope
    assert error.retryable and error.outcome_unknown
    assert not error.safe_to_resend
    assert admin.stats()["jobs_created"] == 1  # why it is unknown: the gateway hid a started job


def test_501_disabled_route_is_never_retryable(client: TokstaClient, admin: SimAdmin) -> None:
    admin.configure(disabled_routes=["POST /v1/creators/audience-match"])
    body = {"creator_ids": [str(uuid.uuid4())], "campaign_brief": "B2B marketers"}
    error = _fails(lambda: client.start_audience_match(body))
    assert (error.http_status, error.code) == (501, "NOT_IMPLEMENTED")
    assert error.envelope
    assert not error.retryable and not error.safe_to_resend and not error.outcome_unknown


def test_malformed_2xx_body(client: TokstaClient, admin: SimAdmin, keywords: list[str]) -> None:
    admin.add_faults({"kind": "malformed", "route": TL})
    error = _fails(lambda: client.start_thought_leaders({"keywords": keywords}))
    assert error.code == MALFORMED_RESPONSE
    assert error.http_status == 200
    assert error.sent and error.retryable and error.outcome_unknown
    assert not error.safe_to_resend
    assert error.rate is not None and error.rate.limit == 60  # headers still read
    assert admin.stats()["jobs_created"] == 1


@pytest.mark.parametrize(("kind", "jobs_created"), [("reset_before_read", 0), ("reset_after_read", 1)])
def test_connection_reset_is_outcome_unknown(
    client: TokstaClient, admin: SimAdmin, keywords: list[str], kind: str, jobs_created: int
) -> None:
    admin.add_faults({"kind": kind, "route": TL})
    error = _fails(lambda: client.start_thought_leaders({"keywords": keywords}))
    assert error.code == TRANSPORT_ERROR
    assert error.http_status is None and error.rate is None
    assert error.sent and error.retryable and error.outcome_unknown
    assert not error.safe_to_resend
    # The client cannot tell these two apart; only the simulator knows whether a job started.
    assert admin.stats()["jobs_created"] == jobs_created
    assert client.account_usage().status == 200  # the pool recovers with a fresh connection


def test_connect_failure_is_not_sent(
    make_client: Callable[..., TokstaClient], closed_port: int, calls: list[CallRecord]
) -> None:
    client = make_client(base_url=f"http://127.0.0.1:{closed_port}")
    error = _fails(lambda: client.start_thought_leaders({"keywords": ["a", "b", "c", "d", "e"]}))
    assert error.code == TRANSPORT_ERROR
    assert error.http_status is None
    assert not error.sent
    assert error.retryable and error.safe_to_resend
    assert not error.outcome_unknown
    [record] = calls
    assert record.error is error and record.http_status is None


def test_slow_response_beyond_the_timeout(
    make_client: Callable[..., TokstaClient], admin: SimAdmin, keywords: list[str]
) -> None:
    client = make_client(timeout=0.5)
    admin.add_faults({"kind": "slow", "route": TL, "delay_seconds": 1.5})
    started = time.monotonic()
    error = _fails(lambda: client.start_thought_leaders({"keywords": keywords}))
    assert time.monotonic() - started < 1.4
    assert error.code == TIMEOUT
    assert error.sent and error.retryable and error.outcome_unknown
    assert not error.safe_to_resend
    assert admin.stats()["jobs_created"] == 1  # handled, only the answer was late


def test_rate_headers_on_success_and_error(client: TokstaClient, admin: SimAdmin) -> None:
    admin.configure(rate_limit=10)
    ok = client.account_usage()
    error = _fails(lambda: client.get_job(str(uuid.uuid4())))
    assert ok.rate.limit == 10 and ok.rate.remaining == 9
    assert error.rate is not None and error.rate.limit == 10 and error.rate.remaining == 8
    assert ok.rate.reset_at is not None and time.time() - 1 <= ok.rate.reset_at <= time.time() + 61
    assert error.rate.reset_at == ok.rate.reset_at  # same 60 s window
    assert ok.rate.retry_after is None and error.retry_after is None


@pytest.mark.parametrize(
    "call",
    [
        lambda c: c.get_job("content-fit:56232ac2-8068-4dcb-9d1a-1f2e3a4b5c6d"),
        lambda c: c.get_job("56232ac280684dcb9d1a1f2e3a4b5c6d"),
        lambda c: c.job_results("enrichment:56232ac2-8068-4dcb-9d1a-1f2e3a4b5c6d"),
        lambda c: c.cancel_job("{56232ac2-8068-4dcb-9d1a-1f2e3a4b5c6d}"),
        lambda c: c.cancel_job("56232ac2-8068-4dcb-9d1a-1f2e3a4b5c6d/../x"),
        lambda c: c.job_results_bulk(["56232ac2-8068-4dcb-9d1a-1f2e3a4b5c6d", "audience-fit:x"]),
        lambda c: c.job_results_bulk([]),
        lambda c: c.job_results_bulk([str(uuid.uuid4()) for _ in range(21)]),
        lambda c: c.job_results_bulk("56232ac2-8068-4dcb-9d1a-1f2e3a4b5c6d"),
    ],
)
def test_bad_job_ids_raise_before_any_call(
    client: TokstaClient, admin: SimAdmin, calls: list[CallRecord], call: Callable[[TokstaClient], object]
) -> None:
    with pytest.raises(ValueError):
        call(client)
    stats = admin.stats()
    assert stats["calls_total"] == 0
    assert stats["wrong_format_ids"] == 0
    assert calls == []


def test_bulk_accepts_twenty_ids(client: TokstaClient) -> None:
    ids = [str(uuid.uuid4()) for _ in range(20)]
    response = client.job_results_bulk(ids)
    assert response.meta["requested_count"] == 20
