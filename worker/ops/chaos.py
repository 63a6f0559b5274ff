"""The chaos run: real worker groups serve real requests while processes die and services restart.

It checks the two promises of issue "Nothing lost, nothing charged twice":

- every request ends with exactly one logical reply (copies share a `message_id`, `<request_id>:reply`);
- the simulator created at most one job per request: every request has a unique start body, so the
  simulator's `starts_by_body` counts each request's start calls (a shared start call per creator,
  that is per one-creator request), and `duplicate_starts` must be 0.

Everything it breaks is its own: a private RabbitMQ node on free ports (restarting it never disturbs
other users of the machine's broker on 5672), a private Redis with AOF persistence as `STATE_URL`, the
simulator, and two or more `toksta-worker run` groups (`WorkerGroup`, one subprocess each, the way a
supervisor runs them). While the main thread publishes requests (all four kinds, cancels and duplicate
publishes) and collects replies, a chaos thread

- SIGKILLs a dramatiq child of a group (its `run` must then exit non-zero) or a whole group, at random
  moments, and restarts every group whose `run` exited, as a supervisor would;
- restarts the RabbitMQ node once and Redis once;
- injects simulator faults: 5xx bursts with and without the error envelope, connection resets before
  and after the request was read, malformed bodies, answers slower than the worker's HTTP timeout.

    python -m worker.ops.chaos            # the short run (tests/chaos runs it in the normal suite)
    python -m worker.ops.chaos --full     # >= 300 requests, 6 kills (docs/chaos.md has its figures)

It prints its figures and exits 0 only when every check passed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pika
import pika.exceptions
import redis

from worker.amqp.connection import AmqpError, open_connection
from worker.ops.harness import Deployment, WorkerGroup
from worker.sim.stats import body_sha256
from worker.sim.testing import SimAdmin, SimulatorProcess

TIME_SCALE = 0.05  # real seconds per simulated second (worker and simulator)
HTTP_TIMEOUT_SECONDS = 1.0  # the worker's; the `slow` faults answer later than this
DRAIN_SECONDS = 5.0
BASE_KEYWORDS = ["B2B SaaS", "demand generation", "marketing analytics", "growth"]
_AMQP_DOWN = (AmqpError, pika.exceptions.AMQPError, OSError)


# -- configuration --------------------------------------------------------------------------------


@dataclass(frozen=True)
class ChaosConfig:
    """The size of one run. `publish_seconds` spreads the requests; the chaos happens meanwhile."""

    requests: int
    child_kills: int
    group_kills: int
    fault_bursts: int
    publish_seconds: float
    groups: int = 2
    processes: int = 2
    threads: int = 3
    cancel_ratio: float = 0.08
    duplicate_ratio: float = 0.08
    answer_seconds: float = 180.0  # after the last publish, the longest wait for the last reply
    seed: int = 0


SHORT = ChaosConfig(requests=72, child_kills=1, group_kills=1, fault_bursts=8, publish_seconds=24.0)
FULL = ChaosConfig(requests=320, child_kills=4, group_kills=2, fault_bursts=16, publish_seconds=90.0)

# Every fault kind the simulator has, with and without the envelope; `route` "*" hits starts and polls.
FAULTS: list[dict[str, Any]] = [
    {"kind": "error", "status": 503, "code": "SERVICE_UNAVAILABLE", "count": 4},
    {"kind": "error", "status": 500, "count": 3},
    {"kind": "plain_5xx", "status": 502, "processed": False, "count": 3},
    {"kind": "plain_5xx", "status": 504, "processed": True, "count": 2},
    {"kind": "reset_before_read", "count": 2},
    {"kind": "reset_after_read", "count": 2},
    {"kind": "malformed", "count": 2},
    # Simulated seconds: 4x the worker's (real) HTTP timeout.
    {"kind": "slow", "count": 2, "delay_seconds": 4 * HTTP_TIMEOUT_SECONDS / TIME_SCALE},
]


# Ports for the services the run restarts are drawn from here up to the kernel's ephemeral range.
PRIVATE_PORT_MIN = 20000
_PORTS = random.SystemRandom()  # not the run's seeded generator: its plan must not depend on ports


def free_port() -> int:
    """A free TCP port on 127.0.0.1 below the kernel's ephemeral range.

    A service the run restarts must get its port back. A port from the ephemeral range (what binding
    port 0 hands out) can meanwhile become the local end of any outgoing connection on the machine,
    and the restarted service then cannot listen on it.
    """
    high = _ephemeral_low() - 1
    for _ in range(500):
        port = _PORTS.randint(PRIVATE_PORT_MIN, high)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {PRIVATE_PORT_MIN}-{high}")


def _ephemeral_low() -> int:
    """The first port of the kernel's ephemeral range (Linux's default when it cannot be read)."""
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    return max(low, PRIVATE_PORT_MIN + 1000)


def wait_until(condition: Callable[[], bool], timeout: float, what: str, step: float = 0.1) -> None:
    """Poll `condition` until it holds; TimeoutError naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(step)
    raise TimeoutError(f"{what}: not within {timeout} s")


# -- services the run owns ------------------------------------------------------------------------


class PrivateRabbit:
    """A RabbitMQ node of its own (name, ports, data and log dirs), started detached.

    The Debian scripts run the node as the `rabbitmq` user (so the temp dir is world-writable) and
    share the system node's Erlang cookie and epmd; a config file of its own keeps it off 5672.
    """

    def __init__(self) -> None:
        self.node = f"chaos-{uuid.uuid4().hex[:8]}@localhost"
        self.port = free_port()
        self.dist_port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="toksta-chaos-rmq-"))
        self.dir.chmod(0o777)
        (self.dir / "rabbitmq.conf").write_text(f"listeners.tcp.local = 127.0.0.1:{self.port}\n")
        (self.dir / "enabled_plugins").write_text("")
        for name in ("rabbitmq.conf", "enabled_plugins"):
            (self.dir / name).chmod(0o666)
        self.restarts = 0

    @property
    def amqp_url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/%2F"

    @property
    def pid_file(self) -> Path:
        return self.dir / "node.pid"

    def _env(self) -> dict[str, str]:
        return dict(
            os.environ,
            RABBITMQ_NODENAME=self.node,
            RABBITMQ_NODE_IP_ADDRESS="127.0.0.1",
            RABBITMQ_NODE_PORT=str(self.port),
            RABBITMQ_DIST_PORT=str(self.dist_port),
            RABBITMQ_CONFIG_FILE=str(self.dir / "rabbitmq.conf"),
            RABBITMQ_MNESIA_BASE=str(self.dir / "mnesia"),
            RABBITMQ_LOG_BASE=str(self.dir / "log"),
            RABBITMQ_ENABLED_PLUGINS_FILE=str(self.dir / "enabled_plugins"),
            RABBITMQ_PID_FILE=str(self.pid_file),
        )

    def _ctl(self, *args: str, timeout: float = 90.0) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["rabbitmqctl", "-n", self.node, *args],
            check=False,
            env=self._env(),
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def start(self, timeout: float = 90.0) -> None:
        subprocess.run(["rabbitmq-server", "-detached"], env=self._env(), check=True, capture_output=True, timeout=60)
        try:
            wait_until(self._accepts, timeout, f"RabbitMQ node {self.node} on port {self.port}", step=0.25)
        except TimeoutError as exc:
            raise TimeoutError(f"{exc}; from its log:\n{self.log_excerpt()}") from None
        done = self._ctl("await_startup", "--timeout", str(int(timeout)))
        if done.returncode != 0:
            raise RuntimeError(f"rabbitmqctl await_startup failed: {done.stdout}{done.stderr}")

    def log_excerpt(self, lines: int = 15) -> str:
        """The node's first errors (its last lines if none), for a failure's message: the log's
        directory goes with `close`, and a failed boot logs its cause first, then pages of fallout."""
        try:
            text = (self.dir / "log" / f"{self.node}.log").read_text(errors="replace")
        except OSError as exc:
            return f"(no log: {exc})"
        every = text.splitlines()
        errors = [line for line in every if "[error]" in line or "[critical]" in line]
        chosen = errors[:lines] if errors else every[-lines:]
        return "\n".join(line[:300] for line in chosen)

    def _accepts(self) -> bool:
        try:
            open_connection(self.amqp_url, name="toksta-chaos-probe").close()
        except _AMQP_DOWN:
            return False
        return True

    def stop(self) -> None:
        """`rabbitmqctl stop <pid file>`: returns once the node's OS process has exited."""
        done = self._ctl("stop", str(self.pid_file))
        if done.returncode != 0:
            raise RuntimeError(f"rabbitmqctl stop failed: {done.stdout}{done.stderr}")

    def restart(self) -> None:
        self.stop()
        self.start()
        self.restarts += 1

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


class PrivateRedis:
    """A Redis of its own with AOF persistence (`appendfsync everysec`), daemonized."""

    def __init__(self) -> None:
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="toksta-chaos-redis-"))
        self.restarts = 0

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def _client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=2, socket_connect_timeout=1)

    def _pid(self) -> int | None:
        try:
            return int((self.dir / "redis.pid").read_text().strip())
        except (OSError, ValueError):
            return None

    def start(self, timeout: float = 30.0) -> None:
        command = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--appendonly", "yes"]
        command += ["--appendfsync", "everysec", "--dir", str(self.dir), "--daemonize", "yes", "--save", ""]
        command += ["--pidfile", str(self.dir / "redis.pid"), "--logfile", str(self.dir / "redis.log")]
        subprocess.run(command, check=True, capture_output=True, timeout=30)
        wait_until(self._pings, timeout, f"Redis on port {self.port}")

    def _pings(self) -> bool:
        try:
            with self._client() as client:
                return bool(client.ping())
        except redis.RedisError:
            return False

    def stop(self) -> None:
        """SHUTDOWN (the AOF is flushed), then wait for the process to exit."""
        pid = self._pid()
        subprocess.run(["redis-cli", "-p", str(self.port), "shutdown"], check=False, capture_output=True, timeout=30)
        if pid is not None:
            wait_until(lambda: not Path(f"/proc/{pid}").exists(), 30, f"Redis pid {pid} to exit")

    def restart(self) -> None:
        self.stop()
        self.start()
        self.restarts += 1

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


# -- the workload ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Outgoing:
    """One publish: a request, or a duplicate copy of one (same id and body)."""

    at: float  # seconds after the run started
    request_id: str
    body: dict[str, Any]
    correlation_id: str
    duplicate: bool = False


@dataclass
class Plan:
    messages: list[Outgoing]
    start_sha: dict[str, str]  # analysis request id -> sha256 of its start body, as the simulator counts it
    kinds: dict[str, str]  # request id -> kind (cancel included)

    @property
    def request_ids(self) -> list[str]:
        return list(self.kinds)


def _analysis(kind: str, request_id: str, tag: str, rng: random.Random, long_job: bool) -> dict[str, Any]:
    creator = str(uuid.UUID(int=rng.getrandbits(128), version=4))
    options: dict[str, Any] = {}
    if kind == "thought_leaders":
        keywords = [*BASE_KEYWORDS, tag]
        if long_job:
            keywords.append("sim:duration=60")  # still running when its cancel arrives
        params: dict[str, Any] = {"keywords": keywords, "count": 5}
        options["results_limit"] = 5
    elif kind == "enrichment":
        params = {"creator_ids": [creator]}
    elif kind == "content_match":
        params = {"creator_ids": [creator], "topic_keywords": [tag]}
        if rng.random() < 0.3:
            options["include"] = ["posts"]
    else:
        params = {"creator_ids": [creator], "audience_keywords": [tag]}
        if rng.random() < 0.3:
            options["include"] = ["details"]
    body: dict[str, Any] = {"request_id": request_id, "kind": kind, "params": params}
    if options:
        body["options"] = options
    return body


def plan_requests(config: ChaosConfig, run_id: str, rng: random.Random) -> Plan:
    """`config.requests` logical requests (analysis and cancel), plus duplicate publishes."""
    kinds_cycle = ["thought_leaders", "enrichment", "content_match", "audience_match"]
    cancels = max(2, round(config.requests * config.cancel_ratio))
    analyses = config.requests - cancels
    plan = Plan([], {}, {})
    targets = set(rng.sample(range(analyses), cancels))
    for index in range(analyses):
        kind = kinds_cycle[index % len(kinds_cycle)]
        request_id = f"chaos-{run_id}-{index:04d}"
        at = rng.uniform(0.0, config.publish_seconds)
        body = _analysis(kind, request_id, f"kw-{run_id}-{index}", rng, long_job=index in targets)
        plan.messages.append(Outgoing(at, request_id, body, f"corr-{request_id}"))
        plan.start_sha[request_id] = body_sha256(body["params"])
        plan.kinds[request_id] = kind
        if index in targets:
            cancel_id = f"{request_id}-cancel"
            cancel = {"request_id": cancel_id, "kind": "cancel", "params": {"request_id": request_id}}
            plan.messages.append(Outgoing(at + rng.uniform(0.1, 1.5), cancel_id, cancel, f"corr-{cancel_id}"))
            plan.kinds[cancel_id] = "cancel"
        if rng.random() < config.duplicate_ratio:
            again = at + rng.uniform(0.2, 6.0)
            plan.messages.append(Outgoing(again, request_id, body, f"corr-{request_id}-dup", duplicate=True))
    plan.messages.sort(key=lambda message: message.at)
    return plan


# -- the client: publish requests, consume replies, survive a broker restart ----------------------


@dataclass(frozen=True)
class Received:
    message_id: str | None
    correlation_id: str | None
    body: dict[str, Any]


class ChaosClient:
    """Publishes with confirms and consumes the durable reply queue with manual acks, reconnecting.

    A publish whose confirm was lost is published again (the worker answers a duplicate by the same
    reply), and a reply whose ack was lost is delivered again (a copy with the same `message_id`).
    """

    def __init__(self, amqp_url: str, request_queue: str, reply_queue: str) -> None:
        self.amqp_url = amqp_url
        self.request_queue = request_queue
        self.reply_queue = reply_queue
        self.received: list[Received] = []
        self.reconnects = 0
        self.publish_failures = 0
        self._connection: pika.BlockingConnection | None = None
        self._channel: Any = None
        self._retry_at = 0.0

    def _ready(self) -> Any:
        if self._channel is not None and self._channel.is_open:
            return self._channel
        if time.monotonic() < self._retry_at:
            return None
        try:
            self._connection = open_connection(self.amqp_url, name="toksta-chaos-client")
            channel = self._connection.channel()
            channel.confirm_delivery()
            channel.queue_declare(self.reply_queue, durable=True, auto_delete=False)
            channel.basic_qos(prefetch_count=200)
            channel.basic_consume(self.reply_queue, self._on_reply, auto_ack=False)
        except _AMQP_DOWN:
            self._drop()
            return None
        self._channel = channel
        self.reconnects += 1
        return channel

    def _drop(self) -> None:
        connection, self._connection, self._channel = self._connection, None, None
        self._retry_at = time.monotonic() + 0.5
        if connection is not None:
            with contextlib.suppress(Exception):
                connection.close()

    def _on_reply(self, channel: Any, method: Any, properties: pika.BasicProperties, raw: bytes) -> None:
        self.received.append(Received(properties.message_id, properties.correlation_id, json.loads(raw)))
        channel.basic_ack(method.delivery_tag)

    def publish(self, message: Outgoing) -> bool:
        """True when the broker confirmed it; False means publish it again later."""
        channel = self._ready()
        if channel is None:
            return False
        props = pika.BasicProperties(
            content_type="application/json",
            delivery_mode=2,
            reply_to=self.reply_queue,
            correlation_id=message.correlation_id,
            message_id=f"msg-{uuid.uuid4().hex}",
        )
        try:
            channel.basic_publish("", self.request_queue, json.dumps(message.body).encode(), props, mandatory=True)
        except (pika.exceptions.UnroutableError, pika.exceptions.NackError):
            self.publish_failures += 1
            return False
        except _AMQP_DOWN:
            self.publish_failures += 1
            self._drop()
            return False
        return True

    def pump(self, seconds: float) -> None:
        """Deliver replies for up to `seconds`; a lost connection is re-opened on the next call."""
        if self._ready() is None or self._connection is None:
            time.sleep(seconds)
            return
        try:
            self._connection.process_data_events(time_limit=seconds)
        except _AMQP_DOWN:
            self._drop()

    def close(self) -> None:
        self._drop()


# -- chaos: kills, restarts, faults, and a supervisor ---------------------------------------------


@dataclass(frozen=True)
class Event:
    at: float
    action: str  # kill_child, kill_group, restart_rabbitmq, restart_redis, fault
    fault: dict[str, Any] | None = None


def plan_chaos(config: ChaosConfig, rng: random.Random) -> list[Event]:
    window = config.publish_seconds

    def moment() -> float:
        return rng.uniform(0.1 * window, 0.95 * window)

    events = [Event(moment(), "kill_child") for _ in range(config.child_kills)]
    events += [Event(moment(), "kill_group") for _ in range(config.group_kills)]
    events.append(Event(rng.uniform(0.35, 0.55) * window, "restart_rabbitmq"))
    events.append(Event(rng.uniform(0.6, 0.8) * window, "restart_redis"))
    for index in range(config.fault_bursts):
        at = (index + 0.5) * window / config.fault_bursts
        events.append(Event(at, "fault", FAULTS[index % len(FAULTS)]))
    return sorted(events, key=lambda event: event.at)


@dataclass
class ChaosLog:
    """What the chaos thread did, and what it saw."""

    child_kills: int = 0
    group_kills: int = 0
    child_kill_exit_codes: list[int] = field(default_factory=list)
    child_kill_exits_preempted: int = 0  # a group kill came before the group's run had exited
    group_restarts: int = 0
    exit_codes: Counter[int] = field(default_factory=Counter)
    rabbitmq_restarts: int = 0
    redis_restarts: int = 0
    faults: Counter[str] = field(default_factory=Counter)
    notes: list[str] = field(default_factory=list)


class Chaos(threading.Thread):
    """Runs the chaos events on time, and restarts every group whose `run` exited (a supervisor)."""

    def __init__(
        self,
        events: list[Event],
        groups: list[WorkerGroup],
        rabbit: PrivateRabbit,
        store: PrivateRedis,
        admin: SimAdmin,
        rng: random.Random,
        started: float,
    ) -> None:
        super().__init__(name="toksta-chaos", daemon=True)
        self.events = deque(events)
        self.groups = groups
        self.rabbit = rabbit
        self.store = store
        self.admin = admin
        self.rng = rng
        self.started = started
        self.log = ChaosLog()
        self.schedule_done = threading.Event()
        self.error: BaseException | None = None
        self._halt = threading.Event()
        self._awaiting_exit: dict[int, float] = {}  # group index -> when its child was killed

    def stop(self) -> None:
        self._halt.set()
        if self.is_alive():
            self.join(60)

    def run(self) -> None:
        try:
            while not self._halt.is_set():
                self.supervise()
                if self.events and time.monotonic() - self.started >= self.events[0].at:
                    self.act(self.events.popleft())
                elif not self.events:
                    self.schedule_done.set()
                self._halt.wait(0.1)
        except BaseException as exc:  # noqa: BLE001 (reported by the main thread)
            self.error = exc
            self.schedule_done.set()

    def supervise(self) -> None:
        for index, group in enumerate(self.groups):
            if group.proc is None or group.proc.poll() is None:
                continue
            code = int(group.proc.returncode)
            self.log.exit_codes[code] += 1
            if index in self._awaiting_exit:
                del self._awaiting_exit[index]
                self.log.child_kill_exit_codes.append(code)
            group.start(wait=0)
            self.log.group_restarts += 1

    def act(self, event: Event) -> None:
        if event.action == "kill_child":
            self.kill_child()
        elif event.action == "kill_group":
            self.kill_group()
        elif event.action == "restart_rabbitmq":
            self.rabbit.restart()
            self.log.rabbitmq_restarts += 1
        elif event.action == "restart_redis":
            self.store.restart()
            self.log.redis_restarts += 1
        elif event.fault is not None:
            self.admin.add_faults(event.fault)
            self.log.faults[f"{event.fault['kind']}/{event.fault.get('status', '-')}"] += int(event.fault["count"])

    def kill_group(self) -> None:
        """SIGKILL a whole group (supervisor and children), preferring one not already dying of a child kill."""
        calm = [i for i in range(len(self.groups)) if i not in self._awaiting_exit]
        index = self.rng.choice(calm or list(range(len(self.groups))))
        if self._awaiting_exit.pop(index, None) is not None:
            self.log.child_kill_exits_preempted += 1
        self.groups[index].kill()
        self.log.group_kills += 1

    def kill_child(self) -> None:
        """SIGKILL one dramatiq child of a running group (waits, bounded, for a group with children)."""
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not self._halt.is_set():
            self.supervise()
            ready = [
                i
                for i, g in enumerate(self.groups)
                if g.running and i not in self._awaiting_exit and len(g.children()) >= g.processes
            ]
            if ready:
                index = self.rng.choice(ready)
                pid = self.rng.choice(self.groups[index].children())
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                    self._awaiting_exit[index] = time.monotonic()
                    self.log.child_kills += 1
                return
            self._halt.wait(0.2)
        self.log.notes.append("a child kill found no group with all its children up within 30 s")

    @property
    def awaiting_exit(self) -> bool:
        return bool(self._awaiting_exit)


# -- the report -----------------------------------------------------------------------------------


@dataclass
class ChaosReport:
    """The figures of one run, and the checks they must pass."""

    config: ChaosConfig
    requests: int = 0
    analysis_requests: int = 0
    cancel_requests: int = 0
    duplicate_publishes: int = 0
    publish_retries: int = 0
    client_reconnects: int = 0
    answered: int = 0
    lost: list[str] = field(default_factory=list)
    extra_logical: dict[str, list[str]] = field(default_factory=dict)
    differing_copies: list[str] = field(default_factory=list)
    cancel_mismatches: list[str] = field(default_factory=list)
    cancel_reasons: Counter[str] = field(default_factory=Counter)
    reply_copies: int = 0
    duplicate_reply_copies: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    start_unconfirmed: Counter[str] = field(default_factory=Counter)
    start_unconfirmed_started: int = 0  # of those, how many did create their job at the simulator
    duplicate_starts: int = 0
    over_started: list[str] = field(default_factory=list)
    succeeded_without_start: list[str] = field(default_factory=list)
    jobs_created: int = 0
    api_calls: int = 0
    api_statuses: dict[str, int] = field(default_factory=dict)
    chaos: ChaosLog = field(default_factory=ChaosLog)
    final_exit_codes: list[int | None] = field(default_factory=list)
    leftover_depths: dict[str, int] = field(default_factory=dict)
    elapsed_seconds: float = 0.0
    errors: list[str] = field(default_factory=list)

    def problems(self) -> list[str]:
        out = list(self.errors)
        if self.lost:
            out.append(f"{len(self.lost)} request(s) without a reply: {self.lost[:10]}")
        if self.extra_logical:
            out.append(f"request(s) with more than one logical reply: {dict(list(self.extra_logical.items())[:5])}")
        if self.differing_copies:
            out.append(f"reply copies that differ: {self.differing_copies[:10]}")
        if self.cancel_mismatches:
            out.append(f"cancel replies that contradict their target's reply: {self.cancel_mismatches[:10]}")
        if self.duplicate_starts or self.over_started:
            out.append(f"duplicate starts: {self.duplicate_starts} ({self.over_started[:10]})")
        if self.succeeded_without_start:
            out.append(f"succeeded without a start call: {self.succeeded_without_start[:10]}")
        seen = len(self.chaos.child_kill_exit_codes) + self.chaos.child_kill_exits_preempted
        if seen < self.chaos.child_kills:
            out.append(f"{self.chaos.child_kills - seen} child kill(s) without the group's run exiting")
        if any(code == 0 for code in self.chaos.child_kill_exit_codes):
            out.append(f"a group's run exited 0 after a child was killed: {self.chaos.child_kill_exit_codes}")
        if self.chaos.child_kills < self.config.child_kills or self.chaos.group_kills < self.config.group_kills:
            out.append(f"fewer kills than planned: {self.chaos.child_kills} child, {self.chaos.group_kills} group")
        if self.chaos.rabbitmq_restarts != 1 or self.chaos.redis_restarts != 1:
            out.append("RabbitMQ and Redis were not restarted exactly once each")
        if any(code != 0 for code in self.final_exit_codes):
            out.append(f"a group did not drain and exit 0 on SIGTERM at the end: {self.final_exit_codes}")
        leftovers = {name: depth for name, depth in self.leftover_depths.items() if depth}
        if leftovers:
            out.append(f"messages left in queues: {leftovers}")
        return out

    def figures(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "analysis_requests": self.analysis_requests,
            "cancel_requests": self.cancel_requests,
            "duplicate_publishes": self.duplicate_publishes,
            "replies_logical": self.answered,
            "replies_received": self.reply_copies,
            "duplicate_reply_copies": self.duplicate_reply_copies,
            "lost": len(self.lost),
            "more_than_one_logical_reply": len(self.extra_logical),
            "duplicate_starts": self.duplicate_starts,
            "jobs_created": self.jobs_created,
            "statuses": dict(sorted(self.statuses.items())),
            "cancel_outcomes": dict(sorted(self.cancel_reasons.items())),
            "start_unconfirmed": sum(self.start_unconfirmed.values()),
            "start_unconfirmed_causes": dict(sorted(self.start_unconfirmed.items())),
            "start_unconfirmed_job_created": self.start_unconfirmed_started,
            "child_kills": self.chaos.child_kills,
            "run_exit_codes_after_child_kill": self.chaos.child_kill_exit_codes,
            "group_kills": self.chaos.group_kills,
            "group_restarts": self.chaos.group_restarts,
            "run_exit_codes": dict(sorted(self.chaos.exit_codes.items())),
            "rabbitmq_restarts": self.chaos.rabbitmq_restarts,
            "redis_restarts": self.chaos.redis_restarts,
            "faults_injected": dict(sorted(self.chaos.faults.items())),
            "api_calls": self.api_calls,
            "api_statuses": dict(sorted(self.api_statuses.items())),
            "client_publish_retries": self.publish_retries,
            "client_reconnects": self.client_reconnects,
            "final_sigterm_exit_codes": self.final_exit_codes,
            "leftover_queue_depths": self.leftover_depths,
            "elapsed_seconds": round(self.elapsed_seconds, 1),
            "notes": self.chaos.notes,
            "seed": self.config.seed,
        }

    def render(self) -> str:
        lines = [f"{name:34} {value}" for name, value in self.figures().items()]
        problems = self.problems()
        lines.append("PASS" if not problems else "FAIL:\n  " + "\n  ".join(problems))
        return "\n".join(lines)


def tally(report: ChaosReport, plan: Plan, received: list[Received], stats: dict[str, Any]) -> None:
    """Fill the reply and start figures from what the client received and the simulator counted."""
    by_request: dict[str, list[Received]] = {}
    for reply in received:
        by_request.setdefault(str(reply.body.get("request_id")), []).append(reply)
    starts: dict[str, int] = stats.get("starts_by_body", {})
    report.reply_copies = len(received)
    for request_id, kind in plan.kinds.items():
        copies = by_request.get(request_id, [])
        ids = sorted({str(c.message_id) for c in copies})
        if not copies:
            report.lost.append(request_id)
            continue
        if ids != [f"{request_id}:reply"]:
            report.extra_logical[request_id] = ids
        report.answered += 1
        report.duplicate_reply_copies += len(copies) - 1
        first = copies[0].body
        if any(c.body != first for c in copies[1:]):
            report.differing_copies.append(request_id)
        error = first.get("error") or {}
        report.statuses[f"{kind}:{first.get('status')}" + (f":{error.get('code')}" if error else "")] += 1
        if error.get("code") == "START_UNCONFIRMED":
            details = error.get("details") or {}
            report.start_unconfirmed[str(details.get("cause") or "UNREADABLE_START_RESPONSE")] += 1
        if kind == "cancel":
            continue
        count = int(starts.get(plan.start_sha[request_id], 0))
        if count > 1:
            report.over_started.append(f"{request_id}x{count}")
        if error.get("code") == "START_UNCONFIRMED" and count == 1:
            report.start_unconfirmed_started += 1
        if first.get("status") == "succeeded" and count == 0:
            report.succeeded_without_start.append(request_id)
    _check_cancels(report, plan, {rid: copies[0].body for rid, copies in by_request.items()})
    strays = set(by_request) - set(plan.kinds)
    if strays:
        report.errors.append(f"replies for unknown request ids: {sorted(strays)[:10]}")
    report.duplicate_starts = int(stats.get("duplicate_starts", 0))
    report.jobs_created = int(stats.get("jobs_created", 0))
    report.api_calls = int(stats.get("calls_total", 0))
    report.api_statuses = dict(stats.get("status_counts", {}))


def _check_cancels(report: ChaosReport, plan: Plan, firsts: dict[str, dict[str, Any]]) -> None:
    """A cancel's reply and its target's reply must tell the same story (canceled by it, or not at all)."""
    for cancel_id, kind in plan.kinds.items():
        if kind != "cancel" or cancel_id not in firsts:
            continue
        target = firsts.get(cancel_id.removesuffix("-cancel")) or {}
        result = firsts[cancel_id].get("result") or {}
        report.cancel_reasons[f"{result.get('canceled')}:{result.get('reason')}"] += 1
        target_canceled = target.get("status") == "canceled"
        by_request = (target.get("error") or {}).get("code") == "CANCELED_BY_REQUEST"
        if result.get("canceled") is not target_canceled or target_canceled is not by_request:
            report.cancel_mismatches.append(f"{cancel_id}: {result} / {target.get('status')}")


# -- the run --------------------------------------------------------------------------------------


@contextlib.contextmanager
def services() -> Iterator[tuple[PrivateRabbit, PrivateRedis, SimulatorProcess]]:
    """The private RabbitMQ node, Redis and simulator of one run; all stopped afterwards."""
    rabbit, store = PrivateRabbit(), PrivateRedis()
    sim = SimulatorProcess(
        "--job-seconds", "2,8", "--rate-limit", "1000", "--outcomes", "succeeded=9,failed=1",
        env={"TOKSTA_TIME_SCALE": str(TIME_SCALE)},
    )  # fmt: skip
    try:
        rabbit.start()
        store.start()
        sim.start()
        yield rabbit, store, sim
    finally:
        sim.stop()
        store.close()
        rabbit.close()


def run_chaos(config: ChaosConfig, *, log_dir: Path | None = None) -> ChaosReport:
    """One full chaos run on private services; the report says what happened and what failed."""
    rng = random.Random(config.seed)
    run_id = uuid.uuid4().hex[:6]
    plan = plan_requests(config, run_id, rng)
    report = ChaosReport(config=config)
    report.requests = len(plan.kinds)
    report.cancel_requests = sum(1 for kind in plan.kinds.values() if kind == "cancel")
    report.analysis_requests = report.requests - report.cancel_requests
    report.duplicate_publishes = sum(1 for message in plan.messages if message.duplicate)
    if log_dir is not None:
        log_dir.mkdir(parents=True, exist_ok=True)
    workdir = log_dir or Path(tempfile.mkdtemp(prefix="toksta-chaos-"))
    with services() as (rabbit, store, sim):
        deployment = Deployment(
            base_url=sim.base_url,
            api_key=sim.key,
            amqp_url=rabbit.amqp_url,
            request_queue=f"chaos.{run_id}.requests",
            state_url=store.url,
            time_scale=TIME_SCALE,
            extra_env={
                "HTTP_TIMEOUT_SECONDS": str(HTTP_TIMEOUT_SECONDS),
                "DRAIN_SECONDS": str(DRAIN_SECONDS),
                "TICK_GRACE_SECONDS": "1",
            },
            workdir=workdir,
        )
        groups = [
            WorkerGroup(deployment, processes=config.processes, threads=config.threads) for _ in range(config.groups)
        ]
        for group in groups:
            group.start(wait=0)
        for group in groups:
            group.wait_ready(90)
        started = time.monotonic()
        chaos = Chaos(plan_chaos(config, rng), groups, rabbit, store, sim.admin, rng, started)
        client = ChaosClient(rabbit.amqp_url, deployment.request_queue, f"chaos.{run_id}.replies")
        try:
            chaos.start()
            drive(client, plan, chaos, started, config)
            chaos.stop()
            report.chaos = chaos.log
            if chaos.error is not None:
                report.errors.append(f"the chaos thread failed: {type(chaos.error).__name__}: {chaos.error}")
            report.final_exit_codes = [_terminate(group) for group in groups]
            report.leftover_depths = _depths(deployment, client)
            tally(report, plan, client.received, sim.admin.stats())
            report.publish_retries = client.publish_failures
            report.client_reconnects = client.reconnects - 1
        finally:
            for group in groups:
                group.kill()
            chaos.stop()
            client.close()
        report.elapsed_seconds = time.monotonic() - started
    if log_dir is None and not report.problems():
        shutil.rmtree(workdir, ignore_errors=True)  # worker logs are kept only when a check failed
    elif log_dir is None:
        report.chaos.notes.append(f"worker logs kept in {workdir}")
    return report


def drive(client: ChaosClient, plan: Plan, chaos: Chaos, started: float, config: ChaosConfig) -> None:
    """Publish on schedule and collect replies until every request is answered (or time is up)."""
    pending = deque(plan.messages)
    wanted = set(plan.kinds)
    answered: set[str] = set()
    seen = 0
    deadline = started + config.publish_seconds + config.answer_seconds
    while time.monotonic() < deadline:
        now = time.monotonic() - started
        while pending and pending[0].at <= now and client.publish(pending[0]):
            pending.popleft()
        client.pump(0.05)
        for reply in client.received[seen:]:
            answered.add(str(reply.body.get("request_id")))
        seen = len(client.received)
        if not pending and wanted <= answered and chaos.schedule_done.is_set() and not chaos.awaiting_exit:
            break
    # Late copies (a duplicate answered twice, a reply re-sent after a crash) show up here.
    settle = time.monotonic() + 3.0
    while time.monotonic() < settle:
        client.pump(0.1)


def _terminate(group: WorkerGroup) -> int | None:
    """SIGTERM a group as an orchestrator stops it: it must drain and exit 0 within DRAIN_SECONDS."""
    if not group.running:
        return None
    try:
        return group.terminate(timeout=DRAIN_SECONDS + 10)
    except subprocess.TimeoutExpired:
        group.kill()
        return -9


def _depths(deployment: Deployment, client: ChaosClient) -> dict[str, int]:
    depths: dict[str, int] = {}
    rq = deployment.request_queue
    for name in (rq, f"{rq}.dlq", f"{rq}.unroutable", client.reply_queue):
        try:
            depths[name] = deployment.queue_depth(name)
        except _AMQP_DOWN:
            depths[name] = -1
    return depths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m worker.ops.chaos", description=__doc__.splitlines()[0] if __doc__ else None
    )
    parser.add_argument("--full", action="store_true", help=f"the full run ({FULL.requests} requests)")
    parser.add_argument("--requests", type=int, help="override the number of requests")
    parser.add_argument("--seed", type=int, default=None, help="random seed (default: random, printed)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--log-dir", type=Path, default=None, help="keep the worker logs here")
    args = parser.parse_args(argv)
    config = FULL if args.full else SHORT
    config = replace(config, seed=args.seed if args.seed is not None else random.randrange(1 << 30))
    if args.requests:
        config = replace(config, requests=args.requests)
    report = run_chaos(config, log_dir=args.log_dir)
    print(json.dumps(report.figures(), indent=2) if args.json else report.render())
    if report.problems() and args.json:
        print("FAIL:\n  " + "\n  ".join(report.problems()), file=sys.stderr)
    return 1 if report.problems() else 0


if __name__ == "__main__":
    sys.exit(main())
