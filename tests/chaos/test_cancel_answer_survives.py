"""A cancel request that waits on its target is answered even when the answer's first try dies.

Found by the chaos run (a cancel request without a reply): the cancel request's row waits
(`pending_cancel`) until its target's tick answers it, and only the target's row leads back to it.
The tick used to let go of the cancel before answering it (stopping the polls cleared the target's
`cancel` in the same write; a finished target was marked done before its cancel was answered), so
a worker that died in between, or a broker that refused the answer's publish, left the cancel
request unanswered for good. Here the answer's publish fails once, as it does while RabbitMQ
restarts; the next tick must answer. Real RabbitMQ and an embedded state store; only the failing
publish is staged (a wrapper raises where the broker would), because a crash at that exact point
cannot be produced on demand.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pika
import pytest

from worker.amqp.connection import AmqpError
from worker.amqp.publisher import Publisher, PublishOutcome
from worker.contract.validation import MessageLimits, ValidRequest, validate_message
from worker.ops.requester import Requester
from worker.runtime import deliver as delivery
from worker.runtime.context import Runtime
from worker.runtime.family_tick import FamilyTick
from worker.runtime.intake import Delivery, Intake
from worker.runtime.registry import request_key
from worker.runtime.rows import to_finishing
from worker.settings import Settings


class RefusingPublisher:
    """A publisher whose publishes of one request's reply fail (`times` of them), as while the broker restarts."""

    def __init__(self, inner: Publisher, request_id: str, times: int = 1) -> None:
        self._inner = inner
        self._request_id = request_id
        self.left = times

    def publish_reply(self, routing_key: str, body: bytes, properties: pika.BasicProperties) -> PublishOutcome:
        if self.left > 0 and json.loads(body)["request_id"] == self._request_id:
            self.left -= 1
            raise AmqpError("connection lost while publishing (staged)")
        return self._inner.publish_reply(routing_key, body, properties)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class StagedRuntime(Runtime):
    """A runtime whose publisher can be swapped for a refusing one."""

    staged: Any = None

    def publisher(self) -> Publisher:
        return self.staged if self.staged is not None else super().publisher()


@pytest.fixture
def rt(tmp_path: Path) -> Iterator[StagedRuntime]:
    queue = f"cancelans.{uuid.uuid4().hex[:10]}.requests"
    runtime = StagedRuntime(Settings(_env_file=None, request_queue=queue, state_dir=str(tmp_path)))
    yield runtime
    runtime.close_thread_resources()
    runtime.store.close()


@pytest.fixture
def client(rt: StagedRuntime) -> Iterator[Requester]:
    with Requester(rt.settings.amqp_url, rt.settings.request_queue) as requester:
        yield requester


def _accept(rt: Runtime, body: dict[str, Any], reply_to: str) -> None:
    raw = json.dumps(body).encode()
    limits = MessageLimits(rt.settings.max_request_bytes, rt.settings.request_queue)
    verdict = validate_message(raw, reply_to, limits)
    assert isinstance(verdict, ValidRequest)
    Intake(rt.settings, rt.registry, rt.publisher()).accept(
        Delivery(raw, pika.BasicProperties(reply_to=reply_to)), verdict
    )


def _running_enrichment_with_its_cancel(rt: Runtime, client: Requester, tag: str) -> tuple[str, str]:
    """An enrichment request polling its job, and a cancel request that waits on it (as the ingress leaves them)."""
    target, cancel = f"t-{tag}", f"c-{tag}"
    creator = str(uuid.uuid4())
    _accept(rt, {"request_id": target, "kind": "enrichment", "params": {"creator_ids": [creator]}}, client.reply_queue)
    rt.registry.update(
        request_key(None, target),
        lambda r: dict(
            r,
            state="running",
            job_ids=[f"enrichment:{creator}"],
            items={f"enrichment:{creator}": {"status": "pending", "error_message": None}},
            next_poll_at=r["received_at"] + 3600,
            poll_interval=2.0,
        ),
    )
    _accept(rt, {"request_id": cancel, "kind": "cancel", "params": {"request_id": target}}, client.reply_queue)
    row = rt.registry.get(request_key(None, target))
    assert row is not None and row.value["cancel"] == request_key(None, cancel)
    waiting = rt.registry.get(request_key(None, cancel))
    assert waiting is not None and waiting.value["state"] == "pending_cancel"
    return target, cancel


def _state(rt: Runtime, request_id: str) -> str:
    row = rt.registry.get(request_key(None, request_id))
    assert row is not None
    return str(row.value["state"])


def test_stopped_polls_answer_their_cancel_after_a_failed_first_answer(rt: StagedRuntime, client: Requester) -> None:
    target, cancel = _running_enrichment_with_its_cancel(rt, client, "stop")
    rt.staged = RefusingPublisher(super(StagedRuntime, rt).publisher(), cancel)

    with pytest.raises(AmqpError):
        FamilyTick(rt, "enrichment", renew=lambda: True, token="tick-1").cancel_phase()

    assert (_state(rt, target), _state(rt, cancel)) == ("finishing", "finishing")
    rt.staged = None
    FamilyTick(rt, "enrichment", renew=lambda: True, token="tick-2").finish_phase()

    replies = {r.body["request_id"]: r.body for r in client.collect(2, timeout=10)}
    assert replies[cancel]["result"] == {"canceled": True, "reason": "polling_stopped"}
    assert replies[target]["status"] == "canceled"
    assert replies[target]["error"]["details"] == {"api_job_continues": True, "canceled_by": cancel}
    assert (_state(rt, target), _state(rt, cancel)) == ("done", "done")


def test_a_finished_target_is_not_done_before_its_waiting_cancel_is_answered(
    rt: StagedRuntime, client: Requester
) -> None:
    """The job ended on its own while the cancel waited for the tick: the cancel came too late."""
    target, cancel = _running_enrichment_with_its_cancel(rt, client, "fin")
    key = request_key(None, target)
    rt.registry.update(key, lambda r: to_finishing(r, "succeeded", None, r["received_at"]))
    refusing = RefusingPublisher(super(StagedRuntime, rt).publisher(), cancel)

    with pytest.raises(AmqpError):
        delivery.deliver_many(rt.registry, refusing, [key], rt.settings.max_reply_bytes)  # type: ignore[arg-type]

    assert _state(rt, target) == "finishing"  # still found by the next tick's finishing phase
    FamilyTick(rt, "enrichment", renew=lambda: True, token="tick-2").finish_phase()

    replies = {r.body["request_id"]: r.body for r in client.collect(2, timeout=10)}
    assert replies[cancel]["result"] == {"canceled": False, "reason": "already_terminal"}
    assert replies[target]["status"] == "succeeded"
    assert (_state(rt, target), _state(rt, cancel)) == ("done", "done")
