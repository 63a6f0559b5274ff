"""Thousands of malformed messages, interleaved with valid requests, published to a real worker.

The corpus is drawn by hypothesis (derandomized: the same corpus every run) and published as one
batch from three connections (guest and two throw-away RabbitMQ users). Afterwards every probe must
have exactly the contract's answer: an INVALID_REQUEST reply in the usable reply queue (or kept in
`.unroutable` when that queue does not exist), a dead letter in `.dlq` with the right
`x-reject-reason`, or, for a valid request, its reply. Nothing else may appear anywhere we can see,
the worker processes must be the same ones, and no tick message may have been disturbed.
"""

from __future__ import annotations

import subprocess
import time
import uuid
from collections import Counter
from collections.abc import Iterator

import pika
import pytest

from worker.contract.validation import MessageLimits, ValidRequest
from worker.ops.harness import Deployment, WorkerGroup
from worker.runtime.registry import namespace

from .conftest import MAX_REQUEST_BYTES, RabbitUser
from .oracle import (
    Expectation,
    Held,
    Outcome,
    dead_letter_outcome,
    drain,
    expect,
    reply_outcome,
    unroutable_queue,
    verdict_of,
)
from .strategies import Probe, Targets, build_corpus, finalize, probes

CORPUS_SIZE = 2500
# Log lines that mean something crashed: a handler, a tick, a thread, dramatiq's decoder.
LOG_ALARMS = (
    "request handler failed",
    "failed; re-arming",
    "Traceback",
    "Exception in thread",
    "Failed to decode",
    "Logging error",
)
SETTLE_SECONDS = 150.0


@pytest.fixture(scope="module")
def targets(fuzz_deployment: Deployment, rabbit_users: tuple[RabbitUser, RabbitUser]) -> Iterator[Targets]:
    """Two real reply queues (deleted afterwards) and one name that never exists."""
    tag = uuid.uuid4().hex[:8]
    replies = (f"fuzz.{tag}.replies.a", f"fuzz.{tag}.replies.b")
    connection = pika.BlockingConnection(pika.URLParameters(fuzz_deployment.amqp_url))
    channel = connection.channel()
    for name in replies:
        channel.queue_declare(name, durable=True)
    yield Targets(
        request_queue=fuzz_deployment.request_queue,
        reply_queues=replies,
        missing_queue=f"fuzz.{tag}.missing",
        users=tuple(u.name for u in rabbit_users),
    )
    for name in replies:
        channel.queue_delete(name)
    connection.close()


def _unique_valid(corpus: list[Probe], limits: MessageLimits) -> list[Probe]:
    """Drop probes that would reuse a valid request's (user, request_id): duplicates are tested elsewhere."""
    seen: set[tuple[str, str]] = set()
    kept: list[Probe] = []
    for probe in corpus:
        verdict = verdict_of(probe, limits)
        if isinstance(verdict, ValidRequest):
            user_id = probe.props.get("user_id")
            key = (namespace(user_id if isinstance(user_id, str) else None), verdict.request_id)
            if key in seen:
                continue
            seen.add(key)
        kept.append(probe)
    return kept


class Publishers:
    """One confirming channel per user (guest and the throw-away users), each also consuming direct
    reply-to: RabbitMQ accepts `reply_to: amq.rabbitmq.reply-to` only on such a channel, and the
    worker must never answer there (the contract has no direct reply-to)."""

    def __init__(self, deployment: Deployment, users: tuple[RabbitUser, RabbitUser]) -> None:
        self.request_queue = deployment.request_queue
        self.connections: dict[str | None, pika.BlockingConnection] = {
            None: pika.BlockingConnection(pika.URLParameters(deployment.amqp_url))
        }
        self.connections.update({u.name: u.connect() for u in users})
        self.channels = {}
        self.direct_replies: list[bytes] = []
        for name, connection in self.connections.items():
            channel = connection.channel()
            channel.confirm_delivery()
            channel.basic_consume("amq.rabbitmq.reply-to", self._on_direct_reply, auto_ack=True)
            self.channels[name] = channel

    def _on_direct_reply(self, _channel: object, _method: object, _props: object, body: bytes) -> None:
        self.direct_replies.append(body)

    def publish(self, corpus: list[Probe]) -> None:
        """Every probe (confirmed, mandatory) over the connection of its user, in corpus order."""
        for probe in corpus:
            properties = pika.BasicProperties(**probe.props)
            self.channels[probe.user].basic_publish("", self.request_queue, probe.body, properties, mandatory=True)

    def service(self) -> None:
        for connection in self.connections.values():
            connection.process_data_events(time_limit=0)

    def close(self) -> None:
        for connection in self.connections.values():
            if connection.is_open:
                connection.close()


def _unsettled(request_queue: str) -> int:
    """Ready plus unacknowledged messages of the request queue (only rabbitmqctl shows the latter)."""
    listing = subprocess.run(
        ["rabbitmqctl", "-q", "list_queues", "name", "messages_ready", "messages_unacknowledged"],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    for line in listing.splitlines():
        parts = line.split("\t")
        if parts and parts[0] == request_queue:
            return int(parts[1]) + int(parts[2])
    raise AssertionError(f"{request_queue} not listed by rabbitmqctl")


class Observed:
    """Everything the worker put where we can see it."""

    def __init__(self, deployment: Deployment, targets: Targets) -> None:
        self.targets = targets
        self.rq = deployment.request_queue
        self.connection = pika.BlockingConnection(pika.URLParameters(deployment.amqp_url))
        self.channel = self.connection.channel()
        self.outcomes: Counter[Outcome] = Counter()
        self.dead_letters: list[Held] = []
        self.unroutable: list[Held] = []

    def collect(self) -> int:
        for queue in self.targets.reply_queues:
            for held in drain(self.channel, queue):
                self.outcomes[reply_outcome("reply", queue, held)] += 1
        for held in drain(self.channel, f"{self.rq}.dlq"):
            self.dead_letters.append(held)
            self.outcomes[dead_letter_outcome(held)] += 1
        for held in drain(self.channel, f"{self.rq}.unroutable"):
            self.unroutable.append(held)
            self.outcomes[reply_outcome("unroutable", unroutable_queue(held), held)] += 1
        return sum(self.outcomes.values())

    def depth(self, queue: str) -> int:
        return int(self.channel.queue_declare(queue, passive=True).method.message_count)

    def close(self) -> None:
        self.connection.close()


def _settle(observed: Observed, expected: Expectation, worker: WorkerGroup, deadline: float) -> None:
    """Wait until every expected outcome arrived and the request queue holds nothing, in flight or not.

    Gives up early when a worker thread died (its ingress would never take another message).
    """
    total = sum(expected.outcomes.values())
    next_log_check = time.monotonic()
    while time.monotonic() < deadline and observed.collect() < total:
        if time.monotonic() >= next_log_check:
            if "Exception in thread" in worker.log_text():
                break
            next_log_check = time.monotonic() + 1.0
        observed.connection.process_data_events(time_limit=0.2)
    while time.monotonic() < deadline and "Exception in thread" not in worker.log_text():
        if _unsettled(observed.rq) == 0:
            break
        observed.connection.process_data_events(time_limit=0.2)
    observed.collect()


def _thread_deaths(log: str, lines: int = 30) -> str:
    """The first uncaught exception that ended a worker thread, if any (say, the ingress)."""
    at = log.find("Exception in thread")
    return "" if at < 0 else "a worker thread died:\n" + "\n".join(log[at:].splitlines()[:lines])


def _describe(outcomes: Counter[Outcome], limit: int = 8) -> str:
    return "\n".join(f"  {count} x {outcome!r:.400}" for outcome, count in list(outcomes.items())[:limit])


def test_fuzz_corpus_gets_exactly_the_contract_answers(
    fuzz_deployment: Deployment,
    fuzz_worker: WorkerGroup,
    targets: Targets,
    rabbit_users: tuple[RabbitUser, RabbitUser],
) -> None:
    limits = MessageLimits(MAX_REQUEST_BYTES, fuzz_deployment.request_queue)
    corpus = finalize(build_corpus(probes(targets, MAX_REQUEST_BYTES), CORPUS_SIZE), f"fz{uuid.uuid4().hex[:6]}-")
    corpus = _unique_valid(corpus, limits)
    expected = expect(corpus, limits, targets.reply_queues)
    assert expected.invalid > 1500 and len(expected.valid) > 50, "the corpus lost its mix"
    pids = fuzz_worker.children()

    observed = Observed(fuzz_deployment, targets)
    publishers = Publishers(fuzz_deployment, rabbit_users)
    try:
        publishers.publish(corpus)
        _settle(observed, expected, fuzz_worker, time.monotonic() + SETTLE_SECONDS)
        publishers.service()
        assert publishers.direct_replies == [], "the worker answered through direct reply-to"
        missing = expected.outcomes - observed.outcomes
        unexpected = observed.outcomes - expected.outcomes
        assert not missing and not unexpected, (
            f"{sum(missing.values())} expected outcomes missing:\n{_describe(missing)}\n"
            f"{sum(unexpected.values())} unexpected outcomes:\n{_describe(unexpected)}\n"
            f"{_thread_deaths(fuzz_worker.log_text()) or 'worker log tail:'}\n{fuzz_worker.log_tail(10)}"
        )
        _check_held_properties(observed)
        assert observed.depth(f"{fuzz_deployment.request_queue}.ticks.XQ") == 0, "a tick queue got a foreign message"
    finally:
        observed.close()
        publishers.close()

    assert fuzz_worker.running and fuzz_worker.children() == pids, "a worker process died or was replaced"
    log = fuzz_worker.log_text()
    for marker in LOG_ALARMS:
        assert marker not in log, f"worker log has {marker!r}:\n{fuzz_worker.log_tail(30)}"


def _check_held_properties(observed: Observed) -> None:
    """Dead letters and unroutable replies keep their evidence and cannot expire in the holding queue."""
    for held in observed.dead_letters:
        assert held.properties.delivery_mode == 2
        assert held.properties.user_id is None and held.properties.expiration is None
        assert isinstance(held.headers.get("x-deliveries"), int) and held.headers["x-deliveries"] >= 1
    for held in observed.unroutable:
        assert held.headers.get("x-unroutable-reason") == "no_route"
        assert held.properties.type == "toksta.analysis.reply.v1"
