"""A poll response the family's reader cannot use counts against each row of the call, and a row
that keeps failing ends as POISON_MESSAGE instead of being polled forever.

A real simulator over HTTP (unlimited key, jobs that outlast the test) and an embedded state store,
in this process. The reader is replaced by one that raises as it is built: the simulator only
answers in the API's documented shapes, which the real readers accept, and the path under test is
the one taken when they meet a shape they cannot index (b9d1a8a builds the reader inside each
row's guard, so such a response is a row error, not a crash of the round).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pika
import pytest

from worker.contract.validation import MessageLimits, ValidRequest, validate_message
from worker.runtime.context import Runtime
from worker.runtime.family_tick import ROW_ERROR_LIMIT, FamilyTick
from worker.runtime.intake import Delivery, Intake
from worker.runtime.registry import request_key
from worker.settings import Settings
from worker.sim.testing import SimulatorProcess

KIND = "enrichment"
CREATORS = ["5b0b6f0e-1d2c-4c39-9d53-2b6b7f7e7a01", "5b0b6f0e-1d2c-4c39-9d53-2b6b7f7e7a02"]


@pytest.fixture(scope="module")
def sim() -> Iterator[SimulatorProcess]:
    with SimulatorProcess("--rate-limit", "0", "--job-seconds", "600,600") as process:
        yield process


@pytest.fixture
def rt(sim: SimulatorProcess, tmp_path: Path) -> Iterator[Runtime]:
    settings = Settings(
        _env_file=None,
        request_queue=f"rowerr.{uuid.uuid4().hex[:10]}.requests",
        state_dir=str(tmp_path / "state"),
        toksta_base_url=sim.base_url,
        toksta_api_key=sim.key,
        toksta_time_scale=0.001,  # every backoff and cadence is a few milliseconds
    )
    runtime = Runtime(settings)
    yield runtime
    runtime.close_thread_resources()
    runtime.store.close()


def _running(rt: Runtime) -> list[str]:
    """One enrichment request per creator, started in one shared call; their registry keys."""
    limits = MessageLimits(rt.settings.max_request_bytes, rt.settings.request_queue)
    intake = Intake(rt.settings, rt.registry, rt.publisher())
    keys = []
    for index, creator in enumerate(CREATORS):
        request_id = f"rowerr-{index}"
        raw = json.dumps({"request_id": request_id, "kind": KIND, "params": {"creator_ids": [creator]}}).encode()
        verdict = validate_message(raw, "rowerr.replies", limits)
        assert isinstance(verdict, ValidRequest)
        intake.accept(Delivery(raw, pika.BasicProperties(reply_to="rowerr.replies")), verdict)
        keys.append(request_key(None, request_id))
    FamilyTick(rt, KIND, renew=lambda: True, token="tick-start").start_phase()
    assert [row["state"] for row in _rows(rt, keys)] == ["running", "running"]
    return keys


def _rows(rt: Runtime, keys: list[str]) -> list[dict[str, Any]]:
    found = rt.registry.get_many(keys)
    assert all(current is not None for current in found)
    return [current.value for current in found if current is not None]


def _poll_when_due(rt: Runtime, keys: list[str], token: str) -> None:
    """One poll round, once every row is due again (their backoff is milliseconds at this scale)."""
    deadline = time.monotonic() + 10
    while max(float(row["next_poll_at"] or 0.0) for row in _rows(rt, keys)) > time.time():
        assert time.monotonic() < deadline, "rows never came due"
        time.sleep(0.005)  # waiting out a backoff of a few milliseconds, not for another thread
    FamilyTick(rt, KIND, renew=lambda: True, token=token).poll_phase()


def test_an_unreadable_shared_response_is_a_row_error_for_each_request_then_poison(
    rt: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    keys = _running(rt)
    built: list[Mapping[str, Any]] = []

    def unreadable(data: Mapping[str, Any]) -> Any:
        built.append(data)
        raise TypeError("results_summary is not a list")

    monkeypatch.setattr(FamilyTick(rt, KIND, renew=lambda: True, token="t").rules, "poll_reader", unreadable)

    _poll_when_due(rt, keys, "tick-1")
    rows = _rows(rt, keys)
    assert len(built) == len(keys), "one shared call; its reader, never built, is tried in each row's guard"
    assert [row["state"] for row in rows] == ["running", "running"]
    assert [row["row_errors"] for row in rows] == [1, 1]
    assert [row["api_calls"] for row in rows] == [1.0, 1.0]  # half the shared start, half the failed poll

    for round_number in range(2, ROW_ERROR_LIMIT + 1):
        _poll_when_due(rt, keys, f"tick-{round_number}")

    rows = _rows(rt, keys)
    assert [row["state"] for row in rows] == ["finishing", "finishing"]
    assert [row["outcome"]["error"]["code"] for row in rows] == ["POISON_MESSAGE", "POISON_MESSAGE"]
    assert [row["row_errors"] for row in rows] == [ROW_ERROR_LIMIT, ROW_ERROR_LIMIT]
