"""RateInfo.from_headers is pure: every header, every letter case, every bad value."""

from __future__ import annotations

from email.utils import formatdate

import httpx
import pytest

from worker.api import RateInfo


def test_all_headers_parsed() -> None:
    info = RateInfo.from_headers(
        {
            "X-RateLimit-Limit": "30",
            "X-RateLimit-Remaining": "12",
            "X-RateLimit-Reset": "1780000000.25",
            "Retry-After": "7",
            "X-Toksta-Credit-Cost": "2.5",
        }
    )
    assert info == RateInfo(limit=30, remaining=12, reset_at=1780000000.25, retry_after=7.0, credit_cost=2.5)
    assert not info.empty


def test_header_names_are_case_insensitive_for_plain_dicts() -> None:
    info = RateInfo.from_headers({"x-ratelimit-limit": "60", "RETRY-AFTER": "1.5"})
    assert info.limit == 60
    assert info.retry_after == 1.5


def test_httpx_headers_accepted() -> None:
    headers = httpx.Headers([("X-RateLimit-Remaining", "0"), ("x-toksta-credit-cost", "10")])
    info = RateInfo.from_headers(headers)
    assert info.remaining == 0
    assert info.credit_cost == 10.0


def test_missing_headers_are_none() -> None:
    info = RateInfo.from_headers({"content-type": "application/json"})
    assert info == RateInfo()
    assert info.empty


def test_whole_number_written_as_float_is_a_count() -> None:
    assert RateInfo.from_headers({"X-RateLimit-Limit": " 20.0 "}).limit == 20


@pytest.mark.parametrize("raw", ["", "abc", "1.5", "-1", "nan", "inf", "20 req", "0x10"])
def test_bad_counts_become_none(raw: str) -> None:
    info = RateInfo.from_headers({"X-RateLimit-Limit": raw, "X-RateLimit-Remaining": raw})
    assert info.limit is None
    assert info.remaining is None


@pytest.mark.parametrize("raw", ["", "soon", "-5", "nan", "-inf", "inf"])
def test_bad_reset_and_cost_become_none(raw: str) -> None:
    info = RateInfo.from_headers({"X-RateLimit-Reset": raw, "X-Toksta-Credit-Cost": raw})
    assert info.reset_at is None
    assert info.credit_cost is None


@pytest.mark.parametrize("raw", ["", "  ", "later", "-3", "nan", "Mon, 99 Foo 2026 00:00:00 GMT"])
def test_bad_retry_after_becomes_none(raw: str) -> None:
    assert RateInfo.from_headers({"Retry-After": raw}).retry_after is None


def test_retry_after_zero_and_fraction_kept_as_sent() -> None:
    assert RateInfo.from_headers({"Retry-After": "0"}).retry_after == 0.0
    assert RateInfo.from_headers({"Retry-After": "0.25"}).retry_after == 0.25


def test_retry_after_http_date_is_seconds_from_now() -> None:
    now = 1_780_000_000.0
    header = formatdate(now + 42, usegmt=True)
    assert RateInfo.from_headers({"Retry-After": header}, now=now).retry_after == pytest.approx(42.0)


def test_retry_after_http_date_in_the_past_is_zero() -> None:
    now = 1_780_000_000.0
    header = formatdate(now - 600, usegmt=True)
    assert RateInfo.from_headers({"Retry-After": header}, now=now).retry_after == 0.0


def test_one_bad_header_does_not_spoil_the_others() -> None:
    info = RateInfo.from_headers({"X-RateLimit-Limit": "oops", "X-RateLimit-Remaining": "3"})
    assert info.limit is None
    assert info.remaining == 3
