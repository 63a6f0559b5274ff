"""Steady state: 30 requests a minute for 30 simulated minutes on a 60/minute key, 4 worker processes.

Reports the backlog over time (request queue depth + registry rows waiting for their start, and the
rows running), requests completed per minute over the last 20 minutes (target >= 29), 429s as a
share of calls (target < 1%) and calls made during a Retry-After (target 0).

    python -m bench.steady_state [--time-scale 0.05] [--minutes 30] [--per-minute 30]
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from bench._common import (
    ReplyCollector,
    Section,
    deployment,
    registry_of,
    simulator,
    worker_env,
    worker_group,
    workload,
)
from worker.runtime.registry import index_name

RATE_LIMIT = 60
JOB_SECONDS = (10.0, 600.0)
TARGET_PER_MINUTE, TARGET_429_SHARE = 29.0, 0.01


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--time-scale", type=float, default=0.05)
    parser.add_argument("--minutes", type=int, default=30)
    parser.add_argument("--per-minute", type=int, default=30)
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--threads", type=int, default=4)
    return parser.parse_args()


def main() -> None:
    args = parse()
    scale = args.time_scale
    section = Section("steady_state", "steady state: 30 requests/minute on a 60/minute key")
    bodies = workload(args.per_minute * args.minutes)
    every = 60.0 / args.per_minute * scale  # real seconds between two requests
    sim = simulator(scale, rate_limit=RATE_LIMIT, job_seconds=JOB_SECONDS)
    samples: list[list[Any]] = []
    try:
        with (
            deployment(sim, scale) as dep,
            worker_group(dep, processes=args.processes, threads=args.threads, env=worker_env(scale)),
        ):
            registry = registry_of(dep)
            collector = ReplyCollector(dep)
            try:
                start = time.time()
                sent = 0
                next_sample = 0
                while sent < len(bodies):
                    now = time.time()
                    due = min(len(bodies), int((now - start) / every) + 1)
                    if due > sent:
                        collector.publish(bodies[sent:due])
                        sent = due
                    minute = (now - start) / scale / 60
                    if minute >= next_sample:
                        samples.append(_sample(next_sample, dep, registry, collector, sent))
                        next_sample += 1
                    collector.pump(min(every, 0.02))
                end = time.time()
                samples.append(_sample(args.minutes, dep, registry, collector, sent))
                stats = sim.admin.stats()
                replies = dict(collector.replies)
            finally:
                collector.close()
    finally:
        sim.stop()
    finished = [(r.finished - start) / scale / 60 for r in replies.values()]
    window = (args.minutes - 20, args.minutes)
    in_window = sum(1 for m in finished if window[0] <= m < window[1])
    per_minute = in_window / (window[1] - window[0])
    share = stats["rate_limited"] / max(1, stats["calls_total"])
    section.add(
        f"{args.per_minute} requests/minute for {args.minutes} simulated minutes ({len(bodies)} requests, the economy "
        f"mix), jobs {JOB_SECONDS[0]:.0f}-{JOB_SECONDS[1]:.0f} s, {RATE_LIMIT}/min key, time scale {scale}, "
        f"{args.processes} processes x {args.threads} threads; {(end - start):.0f} s real."
    )
    section.add()
    section.add("Backlog over time (request queue depth + rows waiting for a start; rows running):")
    section.add()
    section.table(["sim minute", "published", "queue depth", "waiting rows", "backlog", "running", "replies"], samples)
    section.add()
    section.table(
        ["figure", "value", "target"],
        [
            [f"completed/minute, minutes {window[0]}-{window[1]}", f"{per_minute:.1f}", f">= {TARGET_PER_MINUTE:.0f}"],
            ["calls served", stats["calls_total"], ""],
            ["calls/minute", f"{stats['calls_total'] / args.minutes:.1f}", f"<= {RATE_LIMIT}"],
            ["429s", f"{stats['rate_limited']} ({100 * share:.2f}% of calls)", "< 1%"],
            ["calls during Retry-After", stats["calls_during_retry_after"], "0"],
            ["calls/reply", f"{stats['calls_total'] / max(1, len(replies)):.2f}", ""],
        ],
    )
    section.add()
    section.add(f"- completed/minute {per_minute:.1f}: {_ok(per_minute >= TARGET_PER_MINUTE)}")
    section.add(f"- 429 share {100 * share:.2f}%: {_ok(share < TARGET_429_SHARE)}")
    section.add(
        f"- calls during Retry-After {stats['calls_during_retry_after']}: {_ok(stats['calls_during_retry_after'] == 0)}"
    )
    section.write()


def _sample(minute: int, dep: Any, registry: Any, collector: ReplyCollector, sent: int) -> list[Any]:
    depth = dep.queue_depth(dep.request_queue)
    waiting = registry.count_waiting()
    running = sum(registry.store.index_count(index_name("running", kind)) for kind in _KINDS)
    return [minute, sent, depth, waiting, depth + waiting, running, len(collector.replies)]


_KINDS = ("thought_leaders", "enrichment", "content_match", "audience_match")


def _ok(met: bool) -> str:
    return "met" if met else "MISSED"


if __name__ == "__main__":
    main()
