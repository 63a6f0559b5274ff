"""A worker process's observer against the real RabbitMQ and an embedded state store, in this process.

The ingress is represented by its `consuming` event alone (what the reporter reads): starting a
real ingress here would consume a queue for nothing.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from worker.amqp.connection import open_connection
from worker.observability.health import readiness, status_path
from worker.observability.reporter import BrokerProbe, ProcessReporter
from worker.runtime.context import Runtime
from worker.settings import Settings

from .helpers import CANARY_KEY


@pytest.fixture
def rt(tmp_path: Path) -> Iterator[Runtime]:
    settings = Settings(
        _env_file=None,
        request_queue=f"obs.{uuid.uuid4().hex[:10]}.requests",
        state_dir=str(tmp_path / "state"),
        toksta_api_key=CANARY_KEY,
    )
    runtime = Runtime(settings)
    connection = open_connection(settings.amqp_url, name="obs-test")
    try:
        runtime.topology.declare(connection.channel())
        yield runtime
    finally:
        channel = connection.channel()
        for name in (settings.request_queue, runtime.topology.dlq, runtime.topology.unroutable):
            channel.queue_delete(name)
        for delay in (50, 200, 1000, 5000):
            channel.queue_delete(runtime.topology.wait_queue(delay))
        connection.close()
        runtime.store.close()


def test_report_follows_the_ingress_and_readiness_reads_it(rt: Runtime, tmp_path: Path) -> None:
    directory = tmp_path / "metrics"
    directory.mkdir()
    consuming = threading.Event()
    reporter = ProcessReporter(rt, consuming, directory)
    try:
        first = reporter.report_once()
        assert (first.state_store, first.rabbitmq, first.ingress) == (True, True, False)
        ready, body = readiness(directory, 1)
        assert not ready
        assert body["missing"] == [f"process {first.pid}: ingress consumer not connected"]

        consuming.set()
        reporter.report_once()
        assert readiness(directory, 1)[0] is True
    finally:
        reporter.stop(1.0)
    assert not status_path(directory, first.pid).exists()  # a stopping process withdraws its report


def test_a_missing_request_queue_is_reported(rt: Runtime, tmp_path: Path) -> None:
    settings = rt.settings.model_copy(update={"request_queue": f"obs.{uuid.uuid4().hex[:10]}.absent"})
    reporter = ProcessReporter(Runtime(settings), threading.Event(), tmp_path)
    try:
        report = reporter.report_once()
    finally:
        reporter.stop(1.0)
    assert report.rabbitmq is False
    assert any("does not exist" in problem for problem in report.problems)


def test_one_collector_per_directory(rt: Runtime, tmp_path: Path) -> None:
    first = ProcessReporter(rt, threading.Event(), tmp_path)
    second = ProcessReporter(rt, threading.Event(), tmp_path)
    try:
        assert first._collector() is True
        assert second._collector() is False  # the flock is taken (it is per open file, even in one process)
    finally:
        first.stop(1.0)
        second.stop(1.0)


def test_probe_reads_depths_and_none_for_a_missing_queue(rt: Runtime) -> None:
    probe = BrokerProbe(rt.settings.amqp_url)
    try:
        assert probe.depth(rt.topology.dlq) == 0
        assert probe.depth(f"obs.{uuid.uuid4().hex}.nothing") is None
        assert probe.depth(rt.topology.dlq) == 0  # the channel closed by the 404 is replaced
    finally:
        probe.close()
