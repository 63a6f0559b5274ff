"""Graceful shutdown: SIGTERM under load drains within DRAIN_SECONDS and loses nothing; a dead child fails `run`.

Real `toksta-worker run` groups on the machine's RabbitMQ (queues of unique names), a private Redis as
the fleet's state and a simulator with jobs of 1-2 s real time, so work is in flight when SIGTERM comes.
"""

from __future__ import annotations

import os
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from worker.amqp.connection import open_connection
from worker.ops.chaos import TIME_SCALE, PrivateRedis, wait_until
from worker.ops.harness import Deployment, WorkerGroup
from worker.ops.requester import ReceivedReply
from worker.runtime.registry import request_key
from worker.sim.stats import body_sha256
from worker.sim.testing import SimulatorProcess
from worker.state.factory import open_state_store

pytestmark = pytest.mark.serial

DRAIN_SECONDS = 5.0
# A process notices SIGTERM within its 1 s sleep loop, and the interpreter needs a moment to exit.
EXIT_MARGIN_SECONDS = 2.0
KINDS = ("thought_leaders", "enrichment", "content_match", "audience_match")


@pytest.fixture
def deployment(slow_jobs_sim: SimulatorProcess, private_redis: PrivateRedis) -> Iterator[Deployment]:
    slow_jobs_sim.admin.reset()
    deployment = Deployment(
        base_url=slow_jobs_sim.base_url,
        api_key=slow_jobs_sim.key,
        request_queue=f"shutdown.{uuid.uuid4().hex[:10]}.requests",
        state_url=private_redis.url,
        time_scale=TIME_SCALE,
        # A small admission window keeps a backlog in the request queue (and deliveries held unacked).
        extra_env={"DRAIN_SECONDS": str(DRAIN_SECONDS), "ADMISSION_WINDOW": "4", "TICK_GRACE_SECONDS": "1"},
    )
    yield deployment
    deployment.delete_queues()


def _request(index: int, tag: str) -> dict[str, Any]:
    kind = KINDS[index % len(KINDS)]
    creator = str(uuid.uuid4())
    keyword = f"shutdown-{tag}-{index}"
    params_by_kind: dict[str, dict[str, Any]] = {
        "thought_leaders": {"keywords": ["B2B SaaS", "growth", "ABM", "demand generation", keyword], "count": 5},
        "enrichment": {"creator_ids": [creator]},
        "content_match": {"creator_ids": [creator], "topic_keywords": [keyword]},
        "audience_match": {"creator_ids": [creator], "audience_keywords": [keyword]},
    }
    params = params_by_kind[kind]
    return {"request_id": f"sd-{tag}-{index:03d}", "kind": kind, "params": params}


def _states(deployment: Deployment, request_ids: list[str]) -> dict[str, str | None]:
    """Each request's registry state (None: not registered) as the fleet's state store has it."""
    store = open_state_store(deployment.state_url, state_dir="", namespace=deployment.request_queue)
    try:
        rows = store.get_many([request_key(None, rid) for rid in request_ids])
        return {rid: (row.value["state"] if row else None) for rid, row in zip(request_ids, rows, strict=True)}
    finally:
        store.close()


def _by_request(replies: list[ReceivedReply]) -> dict[str, list[ReceivedReply]]:
    out: dict[str, list[ReceivedReply]] = {}
    for reply in replies:
        out.setdefault(str(reply.body["request_id"]), []).append(reply)
    return out


def test_sigterm_under_load_drains_and_a_second_group_answers_everything(
    deployment: Deployment, slow_jobs_sim: SimulatorProcess
) -> None:
    tag = uuid.uuid4().hex[:6]
    bodies = [_request(i, tag) for i in range(40)]
    request_ids = [str(b["request_id"]) for b in bodies]
    first = WorkerGroup(deployment, processes=2, threads=2).start()
    second = WorkerGroup(deployment, processes=1, threads=4)
    try:
        with deployment.requester(reply_queue=f"shutdown.{tag}.replies") as client:
            for body in bodies:
                client.publish(body, correlation_id=f"corr-{body['request_id']}")
            # Under load: jobs running at the API and a backlog still in the request queue.
            wait_until(
                lambda: slow_jobs_sim.admin.stats()["jobs_created"] >= 6,
                30,
                "six jobs started",
            )
            assert deployment.queue_depth(deployment.request_queue) > 0

            began = time.monotonic()
            code = first.terminate(timeout=DRAIN_SECONDS + 20)
            took = time.monotonic() - began
            assert code == 0, first.log_tail()
            assert took <= DRAIN_SECONDS + EXIT_MARGIN_SECONDS, f"drained in {took:.1f} s\n{first.log_tail()}"

            # What the group held is either a registry row or back in the request queue, never both or neither.
            states = _states(deployment, request_ids)
            registered = [rid for rid, state in states.items() if state is not None]
            in_queue = deployment.queue_depth(deployment.request_queue)
            assert len(registered) + in_queue == len(bodies), (len(registered), in_queue)
            assert in_queue > 0
            in_flight = [rid for rid, state in states.items() if state in ("waiting", "starting", "running")]
            assert in_flight, states  # rows the stopped group left for the next one
            print(
                f"drained in {took:.2f} s; {len(registered)} registered ({len(in_flight)} in flight), {in_queue} queued"
            )

            second.start()
            replies = client.collect(len(bodies), timeout=120)
            time_for_copies = client.collect(1, timeout=1.0)  # a stray second reply would show up here
    finally:
        first.stop()
        second.stop()

    by_request = _by_request(replies + time_for_copies)
    assert sorted(by_request) == sorted(request_ids), "every request answered"
    for request_id, copies in by_request.items():
        assert {c.properties.message_id for c in copies} == {f"{request_id}:reply"}
        body = copies[0].body
        # A graceful stop finishes its start calls: none may end unconfirmed.
        assert body["status"] == "succeeded", body
    stats = slow_jobs_sim.admin.stats()
    assert stats["duplicate_starts"] == 0
    for body in bodies:
        assert stats["starts_by_body"].get(body_sha256(body["params"])) == 1, body["request_id"]
    assert "draining" in first.log_text()


def test_sigterm_when_idle_exits_zero_quickly(deployment: Deployment) -> None:
    group = WorkerGroup(deployment, processes=2, threads=2).start()
    began = time.monotonic()
    code = group.terminate(timeout=DRAIN_SECONDS + 20)
    assert code == 0, group.log_tail()
    assert time.monotonic() - began <= DRAIN_SECONDS + EXIT_MARGIN_SECONDS
    connection = open_connection(deployment.amqp_url, name="shutdown-test")
    try:
        declared = connection.channel().queue_declare(deployment.request_queue, passive=True)
    finally:
        connection.close()
    assert declared.method.consumer_count == 0  # nothing consumes the request queue any more


def test_a_dying_child_makes_run_exit_nonzero(deployment: Deployment) -> None:
    """The operator interface: if one of its processes dies, `run` exits non-zero (and takes the others down)."""
    group = WorkerGroup(deployment, processes=2, threads=2).start()
    try:
        children = group.children()
        assert len(children) == 2
        os.kill(children[0], signal.SIGKILL)
        assert group.proc is not None
        code = group.proc.wait(timeout=DRAIN_SECONDS + 20)
        assert code != 0, group.log_tail()
        assert not Path(f"/proc/{children[1]}").exists(), "the surviving child was stopped too"
        assert "exited unexpectedly" in group.log_text()
    finally:
        group.kill()


def test_sigterm_while_the_api_is_slow_stops_between_calls(
    deployment: Deployment, slow_jobs_sim: SimulatorProcess
) -> None:
    """A tick with many calls to make must not outlive DRAIN_SECONDS: it stops between calls and hands over."""
    slow_jobs_sim.admin.configure(latency_ms=1500)  # every call takes 1.5 s: 16 starts take 24 s
    tag = uuid.uuid4().hex[:6]
    bodies = [_request(i, tag) for i in range(32)]
    first = WorkerGroup(deployment, processes=1, threads=2, env={"ADMISSION_WINDOW": "16"}).start()
    second = WorkerGroup(deployment, processes=1, threads=4)
    try:
        with deployment.requester(reply_queue=f"shutdown.{tag}.replies") as client:
            for body in bodies:
                client.publish(body)
            wait_until(lambda: slow_jobs_sim.admin.stats()["jobs_created"] >= 2, 30, "starts under way")
            began = time.monotonic()
            code = first.terminate(timeout=DRAIN_SECONDS + 30)
            took = time.monotonic() - began
            assert code == 0, first.log_tail()
            assert took <= DRAIN_SECONDS + EXIT_MARGIN_SECONDS, f"drained in {took:.1f} s\n{first.log_tail()}"
            print(f"drained in {took:.2f} s")
            slow_jobs_sim.admin.configure(latency_ms=0)
            second.start()
            replies = client.collect(len(bodies), timeout=120)
            replies += client.collect(1, timeout=1.0)
    finally:
        first.stop()
        second.stop()
    by_request = _by_request(replies)
    assert len(by_request) == len(bodies)
    for request_id, copies in by_request.items():
        assert {c.properties.message_id for c in copies} == {f"{request_id}:reply"}
        assert copies[0].body["status"] == "succeeded", copies[0].body
    assert slow_jobs_sim.admin.stats()["duplicate_starts"] == 0
