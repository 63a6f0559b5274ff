"""Fixtures for the secrets canary: fresh canary keys and a Sentry capture endpoint per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.secrets.canary_support import Canaries, SentryCapture, new_canaries, sentry_endpoint


@pytest.fixture
def canaries() -> Canaries:
    return new_canaries()


@pytest.fixture
def sentry_capture() -> Iterator[SentryCapture]:
    with sentry_endpoint() as capture:
        yield capture
