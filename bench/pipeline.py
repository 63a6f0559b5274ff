"""Pipeline throughput: requests per second end to end against a no-op dramatiq actor's drain rate.

1. Drain rate: a queue pre-loaded with N messages of a no-op actor on the worker's broker
   (`make_broker`: confirm_delivery=True), drained by `dramatiq` with the same processes and threads;
   measured before and after each round of worker runs, and the mean of the two taken (this
   machine's speed drifts by tens of percent within minutes: one measurement apart from the
   worker's skewed the ratio).
2. The worker: requests end to end (ingress, start, poll, reply) with an unlimited, zero-latency
   simulator whose jobs are terminal at once (job_seconds [0, 0]): with the bench publishing the
   requests while the workers run (from a thread and connection of its own, so that replies are
   stamped as they arrive), then from a request queue pre-loaded before the workers start (as the
   no-op's is).
Target: the worker's rate >= 1/8 of the drain rate (both measured in this run).

The ratio also varies by +-15% from one round to the next, so one round decides nothing: the bench
runs `--rounds` rounds (drain, worker live, worker pre-loaded, drain, ...), each worker figure against
the mean of the drains either side of it, and judges the median of the rounds.

    python -m bench.pipeline [--rounds 3] [--messages 20000] [--requests 2000] [--processes 2] [--threads 4]
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import statistics
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import dramatiq
import pika

from bench._common import (
    ReplyCollector,
    Section,
    deployment,
    percentile,
    publish_requests,
    simulator,
    worker_env,
    worker_group,
    workload,
)
from worker.amqp.connection import open_connection
from worker.ops.harness import DEFAULT_AMQP_URL

TARGET_SHARE = 1 / 8
ROOT = Path(__file__).resolve().parent.parent


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3, help="rounds of worker runs, each between two drains")
    parser.add_argument("--messages", type=int, default=20000, help="messages pre-loaded for the no-op drain")
    parser.add_argument("--requests", type=int, default=2000, help="requests through the worker")
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--time-scale", type=float, default=1.0)
    return parser.parse_args()


def drain_rate(args: argparse.Namespace) -> tuple[float, float]:
    """Messages per second a no-op actor drains from a pre-loaded queue (and the seconds it took)."""
    queue = f"bench.noop.{uuid.uuid4().hex[:8]}"
    env = dict(os.environ, BENCH_NOOP_QUEUE=queue, AMQP_URL=DEFAULT_AMQP_URL, PYTHONPATH=str(ROOT))
    os.environ.update(BENCH_NOOP_QUEUE=queue, AMQP_URL=DEFAULT_AMQP_URL)
    # Imported only now: the module builds its broker and actor from these environment variables.
    _noop_actor = importlib.import_module("bench._noop_actor")
    _noop_actor.broker.declare_queue(queue, ensure=True)
    connection = open_connection(DEFAULT_AMQP_URL, name="toksta-bench-preload")
    channel = connection.channel()
    try:
        props = pika.BasicProperties(delivery_mode=2, content_type="application/json")
        for _ in range(args.messages):
            message: dramatiq.Message[None] = dramatiq.Message(
                queue_name=queue, actor_name=_noop_actor.ACTOR, args=(), kwargs={}, options={}
            )
            channel.basic_publish("", queue, message.encode(), props)
        while _depth(channel, queue) < args.messages:
            connection.process_data_events(time_limit=0.05)
        command = [sys.executable, "-m", "dramatiq", "bench._noop_actor", "--processes", str(args.processes)]
        command += ["--threads", str(args.threads)]
        proc = subprocess.Popen(command, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            started = None
            while True:
                depth = _depth(channel, queue)
                now = time.monotonic()
                if started is None and depth < args.messages:
                    started, first = now, args.messages - depth
                if depth == 0 and started is not None:
                    seconds = now - started
                    return (args.messages - first) / max(seconds, 1e-6), seconds
                if proc.poll() is not None:
                    raise RuntimeError("dramatiq exited early")
                time.sleep(0.005)  # sampling the queue depth, not waiting for an event
        finally:
            proc.terminate()
            proc.wait(30)
    finally:
        channel.queue_delete(queue)
        for suffix in (".DQ", ".XQ"):
            channel.queue_delete(queue + suffix)
        connection.close()


def _depth(channel: object, queue: str) -> int:
    return int(channel.queue_declare(queue, passive=True).method.message_count)  # type: ignore[attr-defined]


def worker_rate(args: argparse.Namespace, *, preload: bool) -> dict[str, float]:
    """Requests per second through the worker. With `preload` the requests are in the request queue
    before the workers start, as the no-op's messages are; without it the bench publishes them
    (confirmed, one by one) while the workers run, so its publishing shares the CPU with them."""
    scale = args.time_scale
    sim = simulator(scale, rate_limit=0, job_seconds=(0.0, 0.0))
    try:
        env = worker_env(scale, ADMISSION_WINDOW="256")
        with deployment(sim, scale) as dep:
            collector = ReplyCollector(dep)
            try:
                bodies = workload(args.requests, include_share=0.0)
                if preload:
                    dep.declare_queues()
                    collector.publish(bodies)
                with worker_group(dep, processes=args.processes, threads=args.threads, env=env):
                    started = time.time()
                    publisher = None if preload else _publish_beside(dep.amqp_url, collector, bodies)
                    collector.wait(len(bodies), timeout=600)
                    if publisher is not None:
                        publisher.join()
                stamps = sorted(r.received for r in collector.replies.values())
                stats = sim.admin.stats()
                ok = sum(1 for r in collector.replies.values() if r.body.get("status") == "succeeded")
            finally:
                collector.close()
    finally:
        sim.stop()
    low, high = percentile(stamps, 0.1), percentile(stamps, 0.9)
    return {
        "overall": len(stamps) / (stamps[-1] - started),
        "steady": 0.8 * len(stamps) / max(high - low, 1e-6),
        "seconds": stamps[-1] - started,
        "calls": float(stats["calls_total"]),
        "succeeded": float(ok),
    }


def _publish_beside(amqp_url: str, collector: ReplyCollector, bodies: list[dict[str, Any]]) -> threading.Thread:
    """Publish `bodies` (confirmed, one by one) from a thread with its own connection.

    Not on the collector's connection: pika hands a consumer its deliveries only between the
    caller's own calls, so replies that arrived while the requests were still being published
    were all stamped once publishing ended, and the replies' spread (the steady rate) came out
    several times too fast.
    """

    def run() -> None:
        connection = open_connection(amqp_url, name="toksta-bench-publisher")
        try:
            channel = connection.channel()
            channel.confirm_delivery()
            publish_requests(channel, collector.request_queue, collector.reply_queue, bodies)
        finally:
            connection.close()

    thread = threading.Thread(target=run, name="bench-publisher", daemon=True)
    thread.start()
    return thread


def main() -> None:
    args = parse()
    if args.rounds < 1:
        raise SystemExit("--rounds must be at least 1")
    section = Section("pipeline", "pipeline: requests/second end to end vs a no-op actor's drain rate")
    drains = [drain_rate(args)]
    rounds: list[tuple[dict[str, float], dict[str, float]]] = []
    for _ in range(args.rounds):
        rounds.append((worker_rate(args, preload=False), worker_rate(args, preload=True)))
        drains.append(drain_rate(args))
    section.add(
        f"{args.processes} processes x {args.threads} threads for both; {os.cpu_count()} CPU cores shared with "
        "RabbitMQ, Redis and the simulator. Worker: unlimited key, zero latency, jobs terminal at once, "
        f"embedded (SQLite) state store, time scale {args.time_scale}, {args.requests} requests (no include). "
        "Live: the bench publishes the requests (confirmed, one by one, on a connection of its own) while the "
        "workers run; pre-loaded: the request queue is filled before the workers start, as the no-op's queue is. "
        f"{args.rounds} rounds, each between two no-op drains of {args.messages} messages; a round's baseline is "
        "the mean of those two drains, and the verdict is on the median round."
    )
    section.add()
    rows: list[list[Any]] = []
    shares: dict[str, list[float]] = {"live": [], "pre-loaded": []}
    for i, (live, preloaded) in enumerate(rounds):
        before, after = drains[i][0], drains[i + 1][0]
        noop = (before + after) / 2
        for name, figures, since in (
            ("live", live, "from the first publish"),
            ("pre-loaded", preloaded, "from the workers' start"),
        ):
            share = figures["steady"] / noop
            shares[name].append(share)
            rows.append([i + 1, name, noop, figures["steady"], f"1/{1 / share:.1f}", _detail(figures, since)])
    section.table(["round", "worker", "no-op drain /s (mean)", "worker steady /s", "ratio", "detail"], rows)
    section.add()
    drained = ", ".join(f"{rate:.0f}/s ({seconds:.1f} s)" for rate, seconds in drains)
    section.add(f"No-op drains in order: {drained}. Worker steady: the 10th to 90th percentile reply.")
    section.add()
    for name, values in shares.items():
        median = statistics.median(values)
        verdict = "met" if median >= TARGET_SHARE else "MISSED"
        each = ", ".join(f"1/{1 / v:.1f}" for v in values)
        section.add(
            f"- {name} worker/no-op, median of {len(values)} = 1/{1 / median:.1f} (target >= 1/8): {verdict} ({each})"
        )
    section.write()
    print(json.dumps({"drains": drains, "rounds": rounds}))


def _detail(figures: dict[str, float], since: str) -> str:
    done, calls = int(figures["succeeded"]), int(figures["calls"])
    return f"{done} succeeded in {figures['seconds']:.1f} s {since}, {calls} API calls"


if __name__ == "__main__":
    main()
