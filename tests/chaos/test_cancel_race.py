"""A cancel handled while its target is being registered: exactly one of them cancels the target.

Found by the chaos run (two ingress processes, a RabbitMQ restart redelivering both at once): the
target checked for a tombstone, the cancel found no target row and wrote its tombstone and answered
`before_start`, then the target's row was created and started. The interleavings are forced here by
running the cancel from inside the target's registration (real state store, real RabbitMQ), for
a request registered alone (`Intake.accept`) and for one registered with its batch (`accept_new`).
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pika
import pytest

from worker.amqp.publisher import Publisher
from worker.amqp.topology import Topology
from worker.contract.validation import MessageLimits, ValidRequest, validate_message
from worker.ops.requester import Requester
from worker.runtime import deliver as delivery
from worker.runtime.family_tick import FamilyTick
from worker.runtime.intake import Delivery, Intake
from worker.runtime.registry import Registry, request_key, tombstone_key
from worker.runtime.replies import Target
from worker.runtime.rows import add_target, to_finishing
from worker.settings import Settings
from worker.state.factory import open_state_store


class RacingRegistry:
    """A Registry that runs `hook` once, just before the first write of `key` of the given kind."""

    def __init__(self, inner: Registry, key: str, when: str) -> None:
        self._inner = inner
        self._key = key
        self._when = when  # "create": between the target's tombstone check and its create
        self.hook: Callable[[], None] | None = None

    def create(self, key: str, row: dict[str, Any]) -> bool:
        if key == self._key and self._when == "create" and self.hook is not None:
            hook, self.hook = self.hook, None
            hook()
        return self._inner.create(key, row)

    def create_many(self, rows: list[tuple[str, dict[str, Any]]]) -> list[bool]:
        if any(key == self._key for key, _ in rows) and self._when == "create" and self.hook is not None:
            hook, self.hook = self.hook, None
            hook()
        return self._inner.create_many(rows)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[tuple[Settings, Registry, Publisher, Requester]]:
    queue = f"race.{uuid.uuid4().hex[:10]}.requests"
    settings = Settings(request_queue=queue, state_dir=str(tmp_path))
    store = open_state_store(None, state_dir=str(tmp_path), namespace=queue)
    registry = Registry(store, done_ttl_seconds=3600, tombstone_ttl_seconds=3600)
    publisher = Publisher(settings.amqp_url, Topology.from_settings(settings), name="race-test")
    with Requester(settings.amqp_url, queue) as client:
        yield settings, registry, publisher, client
    publisher.close()
    store.close()


def _valid(body: dict[str, Any], reply_to: str, settings: Settings) -> tuple[Delivery, ValidRequest]:
    raw = json.dumps(body).encode()
    verdict = validate_message(raw, reply_to, MessageLimits(settings.max_request_bytes, settings.request_queue))
    assert isinstance(verdict, ValidRequest)
    return Delivery(raw, pika.BasicProperties(reply_to=reply_to)), verdict


def _accept(intake: Intake, body: dict[str, Any], reply_to: str, settings: Settings) -> None:
    intake.accept(*_valid(body, reply_to, settings))


def _enrichment(request_id: str) -> dict[str, Any]:
    return {"request_id": request_id, "kind": "enrichment", "params": {"creator_ids": [str(uuid.uuid4())]}}


def test_cancel_between_tombstone_check_and_create_still_cancels_the_target(
    setup: tuple[Settings, Registry, Publisher, Requester],
) -> None:
    settings, registry, publisher, client = setup
    target = {"request_id": "t-1", "kind": "enrichment", "params": {"creator_ids": [str(uuid.uuid4())]}}
    cancel = {"request_id": "c-1", "kind": "cancel", "params": {"request_id": "t-1"}}
    racing = RacingRegistry(registry, request_key(None, "t-1"), "create")
    plain = Intake(settings, registry, publisher)
    racing.hook = lambda: _accept(plain, cancel, client.reply_queue, settings)

    _accept(Intake(settings, racing, publisher), target, client.reply_queue, settings)  # type: ignore[arg-type]

    replies = {r.body["request_id"]: r.body for r in client.collect(2, timeout=10)}
    assert replies["c-1"]["result"] == {"canceled": True, "reason": "before_start"}
    assert replies["t-1"]["status"] == "canceled"
    assert replies["t-1"]["error"]["details"] == {"canceled_by": "c-1"}
    row = registry.get(request_key(None, "t-1"))
    assert row is not None and row.value["state"] == "done"  # never left for a start call


def test_cancel_between_a_batch_s_read_and_its_create_still_cancels_the_target(
    setup: tuple[Settings, Registry, Publisher, Requester],
) -> None:
    settings, registry, publisher, client = setup
    cancel = {"request_id": "c-3", "kind": "cancel", "params": {"request_id": "t-3"}}
    racing = RacingRegistry(registry, request_key(None, "t-3"), "create")
    racing.hook = lambda: _accept(Intake(settings, registry, publisher), cancel, client.reply_queue, settings)
    batch = [_valid(_enrichment(rid), client.reply_queue, settings) for rid in ("t-3", "other-3")]

    taken = Intake(settings, racing, publisher).accept_new(batch)  # type: ignore[arg-type]

    assert taken == [True, True]
    replies = {r.body["request_id"]: r.body for r in client.collect(2, timeout=10)}
    assert replies["c-3"]["result"] == {"canceled": True, "reason": "before_start"}
    assert replies["t-3"]["status"] == "canceled"
    assert replies["t-3"]["error"]["details"] == {"canceled_by": "c-3"}
    other = registry.get(request_key(None, "other-3"))
    assert other is not None and other.value["state"] == "waiting"


def test_a_batch_takes_only_new_requests_and_wakes_each_family_once(
    setup: tuple[Settings, Registry, Publisher, Requester],
) -> None:
    """What `accept_new` leaves (a cancel, an id seen before, a tombstoned id, a repeat within the
    batch) goes to `accept` one by one, which knows what to answer."""
    settings, registry, publisher, client = setup
    plain = Intake(settings, registry, publisher)
    _accept(plain, _enrichment("known"), client.reply_queue, settings)
    _accept(
        plain, {"request_id": "c-4", "kind": "cancel", "params": {"request_id": "gone"}}, client.reply_queue, settings
    )
    client.collect(1, timeout=10)  # the cancel's answer: `gone` is tombstoned
    woken: list[str] = []
    new_a, new_b = (
        _enrichment("new-a"),
        {
            "request_id": "new-b",
            "kind": "thought_leaders",
            "params": {"keywords": ["b2b", "saas", "sales", "growth", "abm"]},
        },
    )
    bodies = [
        new_a,
        new_b,
        _enrichment("known"),
        _enrichment("gone"),
        new_a,
        {"request_id": "c-5", "kind": "cancel", "params": {"request_id": "new-a"}},
        _enrichment("new-c"),
    ]

    taken = Intake(settings, registry, publisher, woken.append).accept_new(
        [_valid(body, client.reply_queue, settings) for body in bodies]
    )

    assert taken == [True, True, False, False, False, False, True]
    assert sorted(woken) == ["enrichment", "thought_leaders"]
    for request_id in ("new-a", "new-b", "new-c"):
        row = registry.get(request_key(None, request_id))
        assert row is not None and row.value["state"] == "waiting"
    assert registry.get(request_key(None, "gone")) is None


def test_a_redelivered_cancel_that_already_canceled_its_target_says_so(
    setup: tuple[Settings, Registry, Publisher, Requester],
) -> None:
    """A crash after canceling the target but before answering: the cancel's retry must not say `already_terminal`."""
    settings, registry, publisher, client = setup
    intake = Intake(settings, registry, publisher)
    target = {"request_id": "t-2", "kind": "enrichment", "params": {"creator_ids": [str(uuid.uuid4())]}}
    cancel = {"request_id": "c-2", "kind": "cancel", "params": {"request_id": "t-2"}}
    _accept(intake, target, client.reply_queue, settings)
    _accept(intake, cancel, client.reply_queue, settings)
    first = {r.body["request_id"]: r.body for r in client.collect(2, timeout=10)}
    # Put the cancel back where a crash would have left it: registered, target canceled, not answered.
    key = request_key(None, "c-2")
    current = registry.get(key)
    assert current is not None
    pending = dict(current.value, state="pending_cancel", outcome=None, reply=None, published=[])
    assert registry.save(key, pending, current.version) is not None

    _accept(intake, cancel, client.reply_queue, settings)  # the redelivery

    again = client.collect(1, timeout=10)
    assert first["c-2"]["result"] == {"canceled": True, "reason": "before_start"}
    assert again[0].body["result"] == {"canceled": True, "reason": "before_start"}


class HookedPublisher:
    """A Publisher that runs `hook` once, just before the first reply it publishes, and counts replies."""

    def __init__(self, inner: Publisher, hook: Callable[[], object]) -> None:
        self._inner = inner
        self.hook: Callable[[], object] | None = hook
        self.message_ids: list[str] = []
        self.correlation_ids: list[str] = []

    def publish_reply(self, routing_key: str, body: bytes, properties: pika.BasicProperties) -> Any:
        if self.hook is not None:
            hook, self.hook = self.hook, None
            hook()
        self.message_ids.append(str(properties.message_id))
        self.correlation_ids.append(str(properties.correlation_id))
        return self._inner.publish_reply(routing_key, body, properties)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def test_a_target_the_intake_cancels_before_its_start_is_answered_once(
    setup: tuple[Settings, Registry, Publisher, Requester],
) -> None:
    """The intake finishes a waiting target canceled before its start and publishes its reply itself.
    Its family's tick, running a finish phase in that moment, must leave the row alone: it published
    the reply too, two replies for one request (found by tests/fuzz/test_fuzz_users.py)."""
    settings, registry, publisher, client = setup
    _accept(Intake(settings, registry, publisher), _enrichment("t-6"), client.reply_queue, settings)
    counting: list[HookedPublisher] = []
    runtime = SimpleNamespace(settings=settings, registry=registry, publisher=lambda: counting[0], call_pool=None)
    tick = FamilyTick(runtime, "enrichment", renew=lambda: True, token="race-test")  # type: ignore[arg-type]
    counting.append(HookedPublisher(publisher, tick.finish_phase))
    cancel = {"request_id": "c-6", "kind": "cancel", "params": {"request_id": "t-6"}}

    _accept(Intake(settings, registry, counting[0]), cancel, client.reply_queue, settings)  # type: ignore[arg-type]

    assert sorted(counting[0].message_ids) == ["c-6:reply", "t-6:reply"]
    replies = {r.body["request_id"]: r.body for r in client.collect(2, timeout=10)}
    assert replies["t-6"]["status"] == "canceled"
    assert replies["c-6"]["result"] == {"canceled": True, "reason": "before_start"}
    row = registry.get(request_key(None, "t-6"))
    assert row is not None and row.value["state"] == "done"


@pytest.mark.parametrize("how", ["deliver", "deliver_many"])
def test_a_sender_joining_during_a_delivery_does_not_make_the_first_get_it_twice(
    setup: tuple[Settings, Registry, Publisher, Requester], how: str
) -> None:
    """A duplicate sender joins (the intake adds its target) after the reply went to the first sender
    and before the row is marked done: the `done` write loses to it, and the next round published to
    the first sender again."""
    settings, registry, publisher, client = setup
    request_id = f"t-7-{how}"
    _accept(Intake(settings, registry, publisher), _enrichment(request_id), client.reply_queue, settings)
    key = request_key(None, request_id)
    error = {"code": "CANCELED_BY_REQUEST", "message": "test", "details": None}
    assert registry.update(key, lambda r: to_finishing(r, "canceled", error, time.time(), result=None)) is not None
    joining = Target(client.reply_queue, "the-second-sender")
    hooked = HookedPublisher(publisher, lambda: registry.update(key, lambda r: r if add_target(r, joining) else None))

    if how == "deliver":
        delivery.deliver(registry, hooked, key, settings.max_reply_bytes)  # type: ignore[arg-type]
    else:
        delivery.deliver_many(registry, hooked, [key], settings.max_reply_bytes)  # type: ignore[arg-type]

    assert sorted(hooked.correlation_ids) == sorted([request_id, "the-second-sender"])
    row = registry.get(key)
    assert row is not None and row.value["state"] == "done" and len(row.value["published"]) == 2
    assert sorted(r.properties.correlation_id for r in client.collect(2, timeout=10)) == sorted(hooked.correlation_ids)


class LateTombstoneRegistry:
    """A Registry on which the cancel's first look at its target comes before the target's create
    (it finds no row), and `hook` runs just after the cancel writes its tombstone."""

    def __init__(self, inner: Registry, target_key: str) -> None:
        self._inner = inner
        self._target_key = target_key
        self._looked = False
        self.hook: Callable[[], object] | None = None

    def update(self, key: str, mutate: Callable[[dict[str, Any]], dict[str, Any] | None]) -> dict[str, Any] | None:
        if key == self._target_key and not self._looked:
            self._looked = True
            return None  # the first look: the target's row is not there yet
        return self._inner.update(key, mutate)

    def tombstone(self, user_id: str | None, request_id: str, cancel_request_id: str) -> None:
        self._inner.tombstone(user_id, request_id, cancel_request_id)
        if self.hook is not None:
            hook, self.hook = self.hook, None
            hook()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class LateCheckRegistry:
    """A Registry that runs `hook` once, just before the target's second tombstone check (the one
    after its create)."""

    def __init__(self, inner: Registry, tombstone: str) -> None:
        self._inner = inner
        self._tombstone = tombstone
        self._checks = 0
        self.hook: Callable[[], object] | None = None

    def get(self, key: str) -> Any:
        if key == self._tombstone:
            self._checks += 1
            if self._checks == 2 and self.hook is not None:
                hook, self.hook = self.hook, None
                hook()
        return self._inner.get(key)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class PausingPublisher:
    """A Publisher (its own connection: pika's are not thread-safe) that records the message ids it
    publishes in a shared list and holds the reply `pause_on` until released: a delivery in progress."""

    def __init__(self, settings: Settings, published: list[str], pause_on: str) -> None:
        self._inner = Publisher(settings.amqp_url, Topology.from_settings(settings), name="race-test-paused")
        self._published = published
        self._pause_on = pause_on
        self.reached = threading.Event()
        self.release = threading.Event()

    def publish_reply(self, routing_key: str, body: bytes, properties: pika.BasicProperties) -> Any:
        if properties.message_id == self._pause_on:
            self.reached.set()
            self.release.wait(timeout=30)
        self._published.append(str(properties.message_id))
        return self._inner.publish_reply(routing_key, body, properties)

    def close(self) -> None:
        self._inner.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class RecordingPublisher:
    """The test's own Publisher, recording the message ids it publishes in the shared list."""

    def __init__(self, inner: Publisher, published: list[str]) -> None:
        self._inner = inner
        self._published = published

    def publish_reply(self, routing_key: str, body: bytes, properties: pika.BasicProperties) -> Any:
        self._published.append(str(properties.message_id))
        return self._inner.publish_reply(routing_key, body, properties)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class InFlight:
    """`accept` run in a thread until its publisher holds the reply it pauses on."""

    def __init__(self, publisher: PausingPublisher, run: Callable[[], object]) -> None:
        self.publisher = publisher
        self.thread = threading.Thread(target=run, daemon=True)

    def start_and_hold(self) -> None:
        self.thread.start()
        assert self.publisher.reached.wait(timeout=10), "the first delivery never reached its publish"

    def finish(self) -> None:
        self.publisher.release.set()
        self.thread.join(timeout=10)
        assert not self.thread.is_alive()
        self.publisher.close()


def _replied_once_each(published: list[str], client: Requester, target_id: str, cancel_id: str) -> None:
    assert sorted(published) == sorted([f"{cancel_id}:reply", f"{target_id}:reply"])
    replies = [r.body for r in client.collect(3, timeout=3)]  # a third would be a duplicate
    assert sorted(r["request_id"] for r in replies) == sorted([cancel_id, target_id])
    by_id = {r["request_id"]: r for r in replies}
    assert by_id[target_id]["status"] == "canceled"
    assert by_id[target_id]["error"]["details"] == {"canceled_by": cancel_id}
    assert by_id[cancel_id]["result"] == {"canceled": True, "reason": "before_start"}


def test_a_target_that_finds_the_tombstone_first_is_answered_once(
    setup: tuple[Settings, Registry, Publisher, Requester],
) -> None:
    """The cancel finds no target and writes its tombstone; the target registers, finds the tombstone,
    cancels itself and is publishing its reply when the cancel looks again and finds it canceled by
    it. Only the target's registration answers the target: the cancel published its reply a second
    time (found by tests/fuzz/test_fuzz_users.py)."""
    settings, registry, publisher, client = setup
    published: list[str] = []
    paused = PausingPublisher(settings, published, "t-8:reply")
    target = InFlight(
        paused,
        lambda: _accept(Intake(settings, registry, paused), _enrichment("t-8"), client.reply_queue, settings),  # type: ignore[arg-type]
    )
    racing = LateTombstoneRegistry(registry, request_key(None, "t-8"))
    racing.hook = target.start_and_hold
    cancel = {"request_id": "c-8", "kind": "cancel", "params": {"request_id": "t-8"}}

    mine = RecordingPublisher(publisher, published)
    _accept(Intake(settings, racing, mine), cancel, client.reply_queue, settings)  # type: ignore[arg-type]
    target.finish()

    _replied_once_each(published, client, "t-8", "c-8")


def test_a_cancel_that_finds_the_new_target_first_is_the_only_one_to_answer_it(
    setup: tuple[Settings, Registry, Publisher, Requester],
) -> None:
    """The cancel finds no target and writes its tombstone; the target registers; the cancel's second
    look finds it waiting, cancels it and is publishing its reply when the target's check after its
    create finds the tombstone. Only the cancel answers the target: the registration published its
    reply a second time."""
    settings, registry, publisher, client = setup
    published: list[str] = []
    paused = PausingPublisher(settings, published, "t-9:reply")
    missing_first = LateTombstoneRegistry(registry, request_key(None, "t-9"))
    cancel = {"request_id": "c-9", "kind": "cancel", "params": {"request_id": "t-9"}}
    canceling = InFlight(
        paused,
        lambda: _accept(Intake(settings, missing_first, paused), cancel, client.reply_queue, settings),  # type: ignore[arg-type]
    )
    late_check = LateCheckRegistry(registry, tombstone_key(None, "t-9"))
    late_check.hook = canceling.start_and_hold

    mine = RecordingPublisher(publisher, published)
    _accept(Intake(settings, late_check, mine), _enrichment("t-9"), client.reply_queue, settings)  # type: ignore[arg-type]
    canceling.finish()

    _replied_once_each(published, client, "t-9", "c-9")
