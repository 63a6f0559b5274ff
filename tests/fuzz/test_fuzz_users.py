"""`user_id` games: forged user ids never reach the worker, and users' request ids never meet.

RabbitMQ itself refuses a `user_id` property that is not the publishing connection's user; the
worker then namespaces requests by `user_id`, so the same `request_id` from different users gives
each user its own request, reply and jobs, and one user's cancel or tombstone never touches another's.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pika
import pika.exceptions
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from worker.ops.harness import Deployment, WorkerGroup

from .conftest import RabbitUser
from .oracle import Held, drain

KEYWORDS = ["B2B SaaS", "demand generation", "marketing analytics", "growth", "ABM"]
LONG = "sim:duration=400"  # 20 s real at time scale 0.05: still running when its cancel arrives
SHORT = "sim:duration=1"


@dataclass(frozen=True)
class Actor:
    """A publisher identity: a connection's user and the `user_id` property it sets (or not)."""

    label: str
    user: RabbitUser | None  # None: guest
    user_id: str | None
    reply_queue: str


@pytest.fixture(scope="module")
def actors(fuzz_deployment: Deployment, rabbit_users: tuple[RabbitUser, RabbitUser]) -> Iterator[list[Actor]]:
    tag = uuid.uuid4().hex[:8]
    a, b = rabbit_users
    actors = [
        Actor("guest-anonymous", None, None, f"fuzz.{tag}.anon"),
        Actor("guest-named", None, "guest", f"fuzz.{tag}.guest"),
        Actor("user-a", a, a.name, f"fuzz.{tag}.a"),
        Actor("user-b", b, b.name, f"fuzz.{tag}.b"),
    ]
    connection = pika.BlockingConnection(pika.URLParameters(fuzz_deployment.amqp_url))
    channel = connection.channel()
    for actor in actors:
        channel.queue_declare(actor.reply_queue, durable=True)
    yield actors
    for actor in actors:
        channel.queue_delete(actor.reply_queue)
    connection.close()


class Client:
    """One actor's confirming channel on its own connection."""

    def __init__(self, actor: Actor, deployment: Deployment) -> None:
        self.actor = actor
        self.request_queue = deployment.request_queue
        url = deployment.amqp_url if actor.user is None else actor.user.url()
        self.connection = pika.BlockingConnection(pika.URLParameters(url))
        self.channel = self.connection.channel()
        self.channel.confirm_delivery()

    def send(self, body: dict[str, Any]) -> None:
        props = pika.BasicProperties(
            reply_to=self.actor.reply_queue, user_id=self.actor.user_id, content_type="application/json"
        )
        self.channel.basic_publish("", self.request_queue, json.dumps(body).encode(), props, mandatory=True)

    def close(self) -> None:
        self.connection.close()


def _collect(channel: Any, queue: str, count: int, timeout: float) -> list[Held]:
    got: list[Held] = []
    deadline = time.monotonic() + timeout
    while len(got) < count and time.monotonic() < deadline:
        got.extend(drain(channel, queue))
        channel.connection.process_data_events(time_limit=0.1)
    return got


def test_forged_user_id_is_refused_by_rabbitmq(
    fuzz_deployment: Deployment, fuzz_worker: WorkerGroup, rabbit_users: tuple[RabbitUser, RabbitUser]
) -> None:
    """A `user_id` other than the connection's own closes the channel (406); the worker never sees it."""
    a, b = rabbit_users
    reply_queue = f"fuzz.{uuid.uuid4().hex[:8]}.forged"
    connection = a.connect()
    admin = pika.BlockingConnection(pika.URLParameters(fuzz_deployment.amqp_url))
    reads = admin.channel()
    reads.queue_declare(reply_queue, durable=True)
    refused: list[str] = []

    @settings(max_examples=25, derandomize=True, database=None, deadline=None, suppress_health_check=list(HealthCheck))
    @given(forged=st.sampled_from([b.name, "guest", a.name.upper(), a.name + " ", ""]) | st.text(max_size=40))
    def publish_forged(forged: str) -> None:
        if forged == a.name or len(forged.encode()) > 255:
            return
        channel = connection.channel()
        channel.confirm_delivery()
        body = {"request_id": f"forged-{len(refused)}", "kind": "cancel", "params": {"request_id": "x"}}
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as closed:
            props = pika.BasicProperties(reply_to=reply_queue, user_id=forged)
            channel.basic_publish("", fuzz_deployment.request_queue, json.dumps(body).encode(), props, mandatory=True)
        assert closed.value.reply_code == 406 and "user_id property set to" in closed.value.reply_text
        refused.append(forged)

    try:
        publish_forged()
        assert len(refused) >= 10
        # A legitimate message after the forged ones: once it is answered, nothing else may be.
        channel = connection.channel()
        channel.confirm_delivery()
        barrier = {"request_id": "barrier", "kind": "cancel", "params": {"request_id": "x"}}
        props = pika.BasicProperties(reply_to=reply_queue, user_id=a.name)
        channel.basic_publish("", fuzz_deployment.request_queue, json.dumps(barrier).encode(), props, mandatory=True)
        replies = _collect(reads, reply_queue, 1, timeout=30)
        assert [json.loads(r.body)["request_id"] for r in replies] == ["barrier"]
        assert fuzz_deployment.queue_depth(f"{fuzz_deployment.request_queue}.dlq") == 0
        assert drain(reads, reply_queue) == []
    finally:
        reads.queue_delete(reply_queue)
        admin.close()
        connection.close()


def _pattern(actor_index: int, rid_index: int) -> tuple[bool, bool]:
    """(submits, cancels) for an actor and a request id: a Latin square, so every request id sees all
    four patterns across actors and every actor uses all four across request ids."""
    return [(True, False), (True, True), (False, True), (False, False)][(actor_index + rid_index) % 4]


def _request(rid: str, duration: str) -> dict[str, Any]:
    return {"request_id": rid, "kind": "thought_leaders", "params": {"keywords": [*KEYWORDS, duration]}}


def test_same_request_ids_under_different_users_never_meet(
    fuzz_deployment: Deployment, fuzz_worker: WorkerGroup, actors: list[Actor]
) -> None:
    tag = uuid.uuid4().hex[:6]
    rids = [f"shared-{tag}-{i}" for i in range(4)]
    clients = [Client(actor, fuzz_deployment) for actor in actors]
    plan = {(i, j): _pattern(i, j) for i in range(len(actors)) for j in range(len(rids))}
    try:
        # Tombstones first (cancel of a request this user never sent), then every submit with the
        # same content for the same id whoever sends it, then cancels of the user's own requests.
        for (i, j), (submits, cancels) in plan.items():
            if cancels and not submits:
                clients[i].send({"request_id": f"c-{rids[j]}", "kind": "cancel", "params": {"request_id": rids[j]}})
        for (i, j), (submits, cancels) in plan.items():
            if submits:
                clients[i].send(_request(rids[j], LONG if cancels else SHORT))
        for (i, j), (submits, cancels) in plan.items():
            if cancels and submits:
                clients[i].send({"request_id": f"c-{rids[j]}", "kind": "cancel", "params": {"request_id": rids[j]}})

        reader = clients[0].channel
        replies: dict[str, dict[str, dict[str, Any]]] = {}
        for i, actor in enumerate(actors):
            expected = sum(s for (k, _), (s, _) in plan.items() if k == i)
            expected += sum(c for (k, _), (_, c) in plan.items() if k == i)
            got = _collect(reader, actor.reply_queue, expected, timeout=60)
            bodies = [json.loads(h.body) for h in got]
            replies[actor.label] = {b["request_id"]: b for b in bodies}
            assert len(bodies) == expected == len(replies[actor.label]), (actor.label, bodies)

        job_owner: dict[str, str] = {}
        for (i, j), (submits, cancels) in plan.items():
            mine = replies[actors[i].label]
            rid = rids[j]
            if submits:
                reply = mine[rid]
                want = "canceled" if cancels else "succeeded"
                assert reply["status"] == want, (actors[i].label, reply)
                if cancels:
                    assert reply["error"]["code"] == "CANCELED_BY_REQUEST"
                for job_id in reply["job_ids"]:
                    assert job_owner.setdefault(job_id, actors[i].label) == actors[i].label, "a job shared across users"
            else:
                assert rid not in mine
            if cancels:
                cancel = mine[f"c-{rid}"]
                assert cancel["status"] == "succeeded" and cancel["result"]["canceled"] is True, cancel
                if not submits:
                    assert cancel["result"]["reason"] == "before_start"
        _duplicates_stay_in_their_namespace(clients, rids, plan, reader)
    finally:
        for client in clients:
            client.close()


def _duplicates_stay_in_their_namespace(
    clients: list[Client], rids: list[str], plan: dict[tuple[int, int], tuple[bool, bool]], reader: Any
) -> None:
    """A user re-sending its finished request gets its own stored reply again; a user that only sent a
    cancel (tombstone) and now sends the request gets it canceled, whoever else used that id."""
    for (i, j), (submits, cancels) in plan.items():
        if submits and not cancels:
            clients[i].send(_request(rids[j], SHORT))
        if cancels and not submits:
            clients[i].send(_request(rids[j], SHORT))
    for i, client in enumerate(clients):
        expected = sum(1 for (k, _), (s, c) in plan.items() if k == i and s != c)
        got = [json.loads(h.body) for h in _collect(reader, client.actor.reply_queue, expected, timeout=60)]
        assert len(got) == expected, (client.actor.label, got)
        for body in got:
            j = rids.index(body["request_id"])
            submits, _ = plan[(i, j)]
            want = "succeeded" if submits else "canceled"
            assert body["status"] == want, (client.actor.label, body)
