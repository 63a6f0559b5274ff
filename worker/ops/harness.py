"""Real `toksta-worker run` process groups for the end-to-end tests, the chaos suite and the benches.

A `WorkerGroup` runs the console script as a subprocess (the way a supervisor would), with its own
request queue and state, pointed at a simulator; `Deployment` bundles the settings a group and a
requester share, and cleans the group's queues afterwards.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pika
import pika.exceptions

from worker.amqp.connection import open_connection
from worker.amqp.topology import WAIT_DELAYS_MS, Topology
from worker.ops.requester import Requester
from worker.settings import QueueType

DEFAULT_AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/%2F"


@dataclass
class Deployment:
    """One isolated deployment: its queue names, state and API endpoint."""

    base_url: str
    api_key: str
    amqp_url: str = DEFAULT_AMQP_URL
    request_queue: str = field(default_factory=lambda: f"e2e.{uuid.uuid4().hex[:10]}.requests")
    state_url: str | None = None
    time_scale: float = 0.05
    extra_env: dict[str, str] = field(default_factory=dict)
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="toksta-e2e-")))

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("TOKSTA_", "SIM_"))}
        env.update(
            TOKSTA_API_KEY=self.api_key,
            TOKSTA_BASE_URL=self.base_url,
            AMQP_URL=self.amqp_url,
            REQUEST_QUEUE=self.request_queue,
            STATE_DIR=str(self.workdir / "state"),
            TOKSTA_TIME_SCALE=str(self.time_scale),
            LOG_FORMAT="json",
            LOG_LEVEL="INFO",
            METRICS_PORT="0",
            DRAIN_SECONDS="10",
        )
        if self.state_url:
            env["STATE_URL"] = self.state_url
        env.update(self.extra_env)
        return env

    def requester(self, **kwargs: object) -> Requester:
        return Requester(self.amqp_url, self.request_queue, **kwargs)  # type: ignore[arg-type]

    def queue_names(self) -> list[str]:
        rq = self.request_queue
        names = [rq, f"{rq}.dlq", f"{rq}.unroutable", f"{rq}.ticks", f"{rq}.ticks.DQ", f"{rq}.ticks.XQ"]
        return names + [f"{rq}.wait.{ms}ms" for ms in WAIT_DELAYS_MS]

    def declare_queues(self) -> None:
        """Declare the request queue and its companions as the workers will (their QUEUE_TYPE), so
        requests can wait in it before any worker runs; clients never declare it."""
        queue_type = QueueType(self.env().get("QUEUE_TYPE", QueueType.CLASSIC.value))
        connection = open_connection(self.amqp_url, name="toksta-e2e-declare")
        try:
            Topology(request_queue=self.request_queue, queue_type=queue_type).declare(connection.channel())
        finally:
            connection.close()

    def delete_queues(self) -> None:
        try:
            connection = open_connection(self.amqp_url, name="toksta-e2e-cleanup")
        except Exception:  # noqa: BLE001 (cleanup is best effort)
            return
        try:
            for name in self.queue_names():
                channel = connection.channel()
                try:
                    channel.queue_delete(name)
                    channel.close()
                except pika.exceptions.AMQPError:
                    pass
        finally:
            if connection.is_open:
                connection.close()

    def queue_depth(self, name: str) -> int:
        connection = open_connection(self.amqp_url, name="toksta-e2e-depth")
        try:
            return int(connection.channel().queue_declare(name, passive=True).method.message_count)
        finally:
            connection.close()


class WorkerGroup:
    """`toksta-worker run` as a real subprocess; its log goes to a file for assertions."""

    def __init__(
        self, deployment: Deployment, *, processes: int = 1, threads: int = 4, env: Mapping[str, str] | None = None
    ) -> None:
        self.deployment = deployment
        self.processes = processes
        self.threads = threads
        self._env = dict(env or {})
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.log_path = deployment.workdir / f"worker-{uuid.uuid4().hex[:6]}.log"

    def start(self, *, wait: float = 60.0) -> WorkerGroup:
        env = dict(self.deployment.env(), **self._env)
        command = [
            sys.executable,
            "-m",
            "worker",
            "run",
            "--processes",
            str(self.processes),
            "--threads",
            str(self.threads),
        ]
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        self.starts += 1
        if wait:
            self.wait_ready(wait)
        return self

    def wait_ready(self, timeout: float) -> None:
        """Until every process consumes the request queue (or the group died)."""
        deadline = time.monotonic() + timeout
        connection = open_connection(self.deployment.amqp_url, name="toksta-e2e-ready")
        try:
            while time.monotonic() < deadline:
                if self.proc is not None and self.proc.poll() is not None:
                    raise RuntimeError(f"worker exited with {self.proc.returncode}:\n{self.log_tail()}")
                channel = connection.channel()
                try:
                    ok = channel.queue_declare(self.deployment.request_queue, passive=True)
                    channel.close()
                    if ok.method.consumer_count >= self.processes:
                        return
                except pika.exceptions.ChannelClosedByBroker:
                    pass
                connection.process_data_events(time_limit=0.1)
        finally:
            connection.close()
        raise TimeoutError(f"worker not consuming after {timeout} s:\n{self.log_tail()}")

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def children(self) -> list[int]:
        """PIDs of the group's worker processes (dramatiq's forks)."""
        if self.proc is None:
            return []
        path = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children")
        try:
            return [int(pid) for pid in path.read_text().split()]
        except OSError:
            return []

    def terminate(self, timeout: float = 30.0) -> int:
        """SIGTERM and wait: the exit code (0 after a clean drain)."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def kill(self) -> None:
        """SIGKILL the whole process group (supervisor and workers)."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            self.terminate(timeout=20)
        except subprocess.TimeoutExpired:
            self.kill()

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def __enter__(self) -> WorkerGroup:
        return self.start() if self.proc is None else self

    def __exit__(self, *exc: object) -> None:
        self.stop()
