"""What every bench shares: the workload, the simulator, a worker deployment, replies, RESULTS.md.

Figures are in simulated time: the simulator and the worker both run with TOKSTA_TIME_SCALE, so a
simulated minute passes in `60 * scale` real seconds; bench code converts with `sim_seconds()`.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import statistics
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pika

from worker.amqp.connection import open_connection
from worker.ops.harness import Deployment, WorkerGroup
from worker.runtime.registry import Registry
from worker.sim.testing import SimulatorProcess
from worker.state.factory import open_state_store

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
KINDS = ("thought_leaders", "enrichment", "content_match", "audience_match")
KEYWORDS = ["B2B SaaS", "demand generation", "marketing analytics", "growth", "ABM"]


def command_line() -> str:
    """The exact command that produced the figures (as typed from the repository root)."""
    module = Path(sys.argv[0]).resolve()
    root = RESULTS.parent.parent
    if module.is_relative_to(root):
        name = ".".join(module.relative_to(root).with_suffix("").parts)
        return shlex.join([sys.executable, "-m", name, *sys.argv[1:]])
    return shlex.join([sys.executable, *sys.argv])


# -- the workload ---------------------------------------------------------------------------------


def workload(count: int, *, include_share: float = 0.2, tag: str | None = None) -> list[dict[str, Any]]:
    """`count` requests, a quarter of each kind, 2 fresh creators per enrichment and match request.

    Fresh random creator UUIDs keep enrichments asynchronous (no creator is enriched already) and
    match analyses uncached; `include` goes on `include_share` of the match requests.
    """
    tag = tag or uuid.uuid4().hex[:8]
    bodies: list[dict[str, Any]] = []
    match_seen = 0
    every = round(1 / include_share) if include_share > 0 else 0
    for index in range(count):
        kind = KINDS[index % len(KINDS)]
        body = one_request(kind, f"{tag}-{index}")
        if kind in ("content_match", "audience_match"):
            if every and match_seen % every == 0:
                body["options"] = {"include": ["posts" if kind == "content_match" else "details"]}
            match_seen += 1
        bodies.append(body)
    return bodies


def one_request(kind: str, request_id: str) -> dict[str, Any]:
    creators = [str(uuid.uuid4()), str(uuid.uuid4())]
    if kind == "thought_leaders":
        params: dict[str, Any] = {"keywords": [*KEYWORDS, request_id], "max_candidates_to_analyze": 20}
        return {"request_id": request_id, "kind": kind, "params": params, "options": {"results_limit": 5}}
    if kind == "enrichment":
        return {"request_id": request_id, "kind": kind, "params": {"creator_ids": creators}}
    if kind == "content_match":
        return {
            "request_id": request_id,
            "kind": kind,
            "params": {"creator_ids": creators, "topic_keywords": ["devex"]},
        }
    return {"request_id": request_id, "kind": kind, "params": {"creator_ids": creators, "audience_keywords": ["cmo"]}}


# -- processes ------------------------------------------------------------------------------------


def simulator(
    scale: float, *, rate_limit: int, job_seconds: tuple[float, float], latency_ms: float = 0
) -> SimulatorProcess:
    args = [
        "--time-scale",
        str(scale),
        "--rate-limit",
        str(rate_limit),
        "--job-seconds",
        f"{job_seconds[0]},{job_seconds[1]}",
    ]
    sim = SimulatorProcess(*args, "--log-level", "WARNING", env={"TOKSTA_TIME_SCALE": str(scale)})
    sim.start()
    configure(sim, rate_limit=rate_limit, job_seconds=job_seconds, latency_ms=latency_ms)
    return sim


def configure(
    sim: SimulatorProcess, *, rate_limit: int, job_seconds: tuple[float, float], latency_ms: float = 0
) -> None:
    """Reset the simulator (jobs, counters, windows) and set the bench's knobs."""
    sim.admin.reset()
    sim.admin.configure(
        rate_limit=rate_limit,
        job_seconds=list(job_seconds),
        outcomes={"succeeded": 1},
        latency_ms=latency_ms,
        credits=10_000_000,
    )


def worker_env(scale: float, **extra: str) -> dict[str, str]:
    """The worker's settings for a bench: quiet logs, ticks that keep up with the time scale."""
    env = {"LOG_LEVEL": "WARNING", "TICK_MAX_IDLE_SECONDS": str(max(0.05, min(1.0, 5 * scale)))}
    env.update(extra)
    return env


@contextmanager
def deployment(sim: SimulatorProcess, scale: float, *, state_url: str | None = None) -> Iterator[Deployment]:
    dep = Deployment(
        base_url=sim.base_url,
        api_key=sim.key,
        time_scale=scale,
        request_queue=f"bench.{uuid.uuid4().hex[:10]}.requests",
        state_url=state_url,
    )
    try:
        yield dep
    finally:
        dep.delete_queues()


@contextmanager
def worker_group(dep: Deployment, *, processes: int, threads: int, env: dict[str, str]) -> Iterator[WorkerGroup]:
    group = WorkerGroup(dep, processes=processes, threads=threads, env=env)
    group.start(wait=120)
    try:
        yield group
    finally:
        group.stop()


def registry_of(dep: Deployment) -> Registry:
    """A read-mostly view of the deployment's registry, for backlog figures."""
    store = open_state_store(dep.state_url, state_dir=str(dep.workdir / "state"), namespace=dep.request_queue)
    return Registry(store, done_ttl_seconds=3600, tombstone_ttl_seconds=3600)


# -- replies --------------------------------------------------------------------------------------


@dataclass
class Reply:
    body: dict[str, Any]
    received: float  # real epoch on receipt

    @property
    def finished(self) -> float:
        """The worker's own `finished_at` stamp (real epoch): when the reply was published."""
        stamp = str(self.body.get("finished_at") or "")
        try:
            return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
        except ValueError:
            return self.received


def publish_requests(channel: Any, request_queue: str, reply_queue: str, bodies: Sequence[dict[str, Any]]) -> None:
    """Publish `bodies` as requests replying to `reply_queue`, one by one (confirmed on a confirming channel)."""
    props = pika.BasicProperties(reply_to=reply_queue, content_type="application/json", delivery_mode=2)
    for body in bodies:
        channel.basic_publish("", request_queue, json.dumps(body).encode(), props, mandatory=True)


class ReplyCollector:
    """Publishes requests and consumes replies on its own connection, stamping each on receipt."""

    def __init__(self, dep: Deployment) -> None:
        self.request_queue = dep.request_queue
        self.reply_queue = f"bench.client.{uuid.uuid4().hex[:10]}"
        self._connection = open_connection(dep.amqp_url, name="toksta-bench")
        self._channel = self._connection.channel()
        self._channel.confirm_delivery()
        self._channel.queue_declare(self.reply_queue, durable=False, auto_delete=True)
        self._channel.basic_qos(prefetch_count=1000)
        self.replies: dict[str, Reply] = {}
        self._channel.basic_consume(self.reply_queue, self._on_reply, auto_ack=True)

    def _on_reply(self, _ch: Any, _method: Any, _props: Any, body: bytes) -> None:
        reply = json.loads(body)
        self.replies[str(reply.get("request_id"))] = Reply(reply, time.time())

    def publish(self, bodies: Sequence[dict[str, Any]]) -> None:
        publish_requests(self._channel, self.request_queue, self.reply_queue, bodies)

    def pump(self, seconds: float) -> None:
        """Take deliveries for `seconds` real seconds."""
        self._connection.process_data_events(time_limit=seconds)

    def wait(self, count: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while len(self.replies) < count and time.monotonic() < deadline:
            self.pump(0.05)
        if len(self.replies) < count:
            raise TimeoutError(f"{len(self.replies)} of {count} replies after {timeout} s")

    def close(self) -> None:
        try:
            self._channel.queue_delete(self.reply_queue)
        finally:
            if self._connection.is_open:
                self._connection.close()


# -- figures --------------------------------------------------------------------------------------


def percentile(values: Sequence[float], share: float) -> float:
    """Nearest-rank percentile (`share` in 0..1); NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(share * len(ordered) + 0.5)))
    return ordered[rank - 1]


def mean(values: Sequence[float]) -> float:
    return statistics.fmean(values) if values else float("nan")


@dataclass
class Section:
    """One script's part of RESULTS.md."""

    name: str
    title: str
    lines: list[str] = field(default_factory=list)

    def add(self, line: str = "") -> None:
        print(line, flush=True)
        self.lines.append(line)

    def table(self, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        self.add("| " + " | ".join(header) + " |")
        self.add("|" + "|".join("---" for _ in header) + "|")
        for row in rows:
            self.add("| " + " | ".join(_cell(v) for v in row) + " |")

    def write(self) -> None:
        """Replace this script's section of RESULTS.md (other sections stay as they are)."""
        begin, end = f"<!-- bench:{self.name} -->", f"<!-- /bench:{self.name} -->"
        stamp = time.strftime("%Y-%m-%d %H:%M:%S %Z")
        block = "\n".join(
            [begin, f"## {self.title}", "", f"Command: `{command_line()}`", f"Run at {stamp}.", "", *self.lines, end]
        )
        text = RESULTS.read_text() if RESULTS.exists() else _HEADER
        pattern = re.compile(re.escape(begin) + ".*?" + re.escape(end), re.DOTALL)
        text = pattern.sub(lambda _m: block, text) if pattern.search(text) else text.rstrip("\n") + "\n\n" + block
        RESULTS.write_text(text.rstrip("\n") + "\n")


_HEADER = """# Bench results

Written by the scripts in bench/ (each replaces its own section when re-run). All durations are in
simulated seconds unless marked real: the simulator and the worker run with TOKSTA_TIME_SCALE.
"""


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.2f}"
    return str(value)


def sim_seconds(real: float, scale: float) -> float:
    return real / scale


def cpu_count() -> int:
    return os.cpu_count() or 1


# -- one run of the worker on a fixed workload ------------------------------------------------------


@dataclass
class OursRun:
    """The figures of one run of the worker on a batch of requests published at t=0."""

    replies: dict[str, Reply]
    stats: dict[str, Any]
    jobs: list[dict[str, Any]]
    started: float  # real epoch of the publish
    ended: float  # real epoch of the last reply

    @property
    def calls(self) -> int:
        return int(self.stats["calls_total"])


def run_batch(
    sim: SimulatorProcess,
    dep: Deployment,
    bodies: Sequence[dict[str, Any]],
    *,
    processes: int,
    threads: int,
    env: dict[str, str],
    timeout: float,
) -> OursRun:
    """Start a worker group, publish every request at once, wait for every reply, read the counters."""
    with worker_group(dep, processes=processes, threads=threads, env=env):
        collector = ReplyCollector(dep)
        try:
            started = time.time()
            collector.publish(bodies)
            collector.wait(len(bodies), timeout)
            ended = max(r.received for r in collector.replies.values())
            stats = sim.admin.stats()
            jobs = sim.admin.jobs()
        finally:
            collector.close()
    return OursRun(collector.replies, stats, jobs, started, ended)


def terminal_times(jobs: Sequence[dict[str, Any]]) -> dict[str, float]:
    """Public job id (and bare analysis id) -> real epoch the simulator made it terminal."""
    out: dict[str, float] = {}
    for job in jobs:
        if job.get("terminal_at") is not None:
            for name in ("id", "uid", "analysis_id"):
                if job.get(name):
                    out[str(job[name])] = float(job["terminal_at"])
    return out


def reply_latencies(replies: dict[str, Reply], jobs: Sequence[dict[str, Any]], scale: float) -> dict[str, list[float]]:
    """Per kind: simulated seconds from the request's last job turning terminal to its reply."""
    ends = terminal_times(jobs)
    out: dict[str, list[float]] = {}
    for reply in replies.values():
        job_ids = [str(j) for j in reply.body.get("job_ids") or []]
        known = [ends[j] for j in job_ids if j in ends]
        if not known or len(known) != len(job_ids):
            continue
        out.setdefault(str(reply.body["kind"]), []).append((reply.finished - max(known)) / scale)
    return out
