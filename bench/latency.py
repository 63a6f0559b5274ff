"""Reply latency: from the simulator marking a request's last job terminal to the reply's publication.

Latency of a request = its reply's `finished_at` (stamped by the worker as it publishes) minus the
latest `terminal_at` of its jobs (the simulator's admin view), in simulated seconds.

1. The economy workload (200 requests at t=0, jobs 10-600 s, 60/minute key):
   targets p50 <= 15 s, p99 <= 35 s.
2. At most 10 requests in flight on an unlimited key (rate_limit 0), jobs 10-60 s:
   target p50 <= 2 s for match and enrichment.

    python -m bench.latency [--time-scale 0.1] [--light-time-scale 0.2] [--light-requests 120]
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from bench._common import (
    KINDS,
    OursRun,
    ReplyCollector,
    Section,
    configure,
    deployment,
    one_request,
    percentile,
    reply_latencies,
    run_batch,
    simulator,
    worker_env,
    worker_group,
    workload,
)

RATE_LIMIT = 60
JOB_SECONDS = (10.0, 600.0)
LIGHT_JOB_SECONDS = (10.0, 60.0)
IN_FLIGHT = 10
TARGET_P50, TARGET_P99, TARGET_LIGHT_P50 = 15.0, 35.0, 2.0


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--time-scale", type=float, default=0.1, help="time scale of the economy workload")
    parser.add_argument("--light-time-scale", type=float, default=0.2, help="time scale of the light workload")
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--light-requests", type=int, default=120)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--skip-heavy", action="store_true")
    parser.add_argument("--skip-light", action="store_true")
    return parser.parse_args()


def heavy(args: argparse.Namespace) -> OursRun:
    scale = args.time_scale
    sim = simulator(scale, rate_limit=RATE_LIMIT, job_seconds=JOB_SECONDS)
    try:
        with deployment(sim, scale) as dep:
            return run_batch(
                sim,
                dep,
                workload(args.requests),
                processes=args.processes,
                threads=args.threads,
                env=worker_env(scale),
                timeout=3600 * scale + 120,
            )
    finally:
        sim.stop()


def light(args: argparse.Namespace) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A closed loop: a new request goes out whenever a reply comes back, at most IN_FLIGHT at once."""
    scale = args.light_time_scale
    sim = simulator(scale, rate_limit=0, job_seconds=LIGHT_JOB_SECONDS)
    try:
        configure(sim, rate_limit=0, job_seconds=LIGHT_JOB_SECONDS)
        with (
            deployment(sim, scale) as dep,
            worker_group(dep, processes=args.processes, threads=args.threads, env=worker_env(scale)),
        ):
            collector = ReplyCollector(dep)
            try:
                pending = [one_request(KINDS[i % len(KINDS)], f"light-{i}") for i in range(args.light_requests)]
                sent = 0
                deadline = time.monotonic() + 600
                while len(collector.replies) < len(pending) and time.monotonic() < deadline:
                    room = IN_FLIGHT - (sent - len(collector.replies))
                    if room > 0 and sent < len(pending):
                        collector.publish(pending[sent : sent + room])
                        sent += min(room, len(pending) - sent)
                    collector.pump(0.01)
                replies = dict(collector.replies)
                jobs = sim.admin.jobs()
            finally:
                collector.close()
        return replies, jobs
    finally:
        sim.stop()


def summarize(section: Section, latencies: dict[str, list[float]]) -> list[list[Any]]:
    rows: list[list[Any]] = []
    every = [v for values in latencies.values() for v in values]
    for kind in (*KINDS, "all"):
        values = every if kind == "all" else latencies.get(kind, [])
        rows.append([kind, len(values), percentile(values, 0.5), percentile(values, 0.99), max(values, default=0.0)])
    section.table(["kind", "requests", "p50 s", "p99 s", "max s"], rows)
    return rows


def main() -> None:
    args = parse()
    section = Section("latency", "latency: job terminal -> reply published (simulated seconds)")
    verdicts: list[str] = []
    if not args.skip_heavy:
        run = heavy(args)
        lat = reply_latencies(run.replies, run.jobs, args.time_scale)
        section.add(
            f"1. Economy workload: {args.requests} requests at t=0, jobs {JOB_SECONDS[0]:.0f}-{JOB_SECONDS[1]:.0f} s, "
            f"{RATE_LIMIT}/min key, time scale {args.time_scale}, {args.processes} processes x {args.threads} threads "
            f"({run.calls / len(run.replies):.2f} calls/request in this run)."
        )
        section.add()
        every = [v for values in lat.values() for v in values]
        summarize(section, lat)
        p50, p99 = percentile(every, 0.5), percentile(every, 0.99)
        verdicts.append(f"economy workload p50 {p50:.1f} s (target <= {TARGET_P50}): {_ok(p50 <= TARGET_P50)}")
        verdicts.append(f"economy workload p99 {p99:.1f} s (target <= {TARGET_P99}): {_ok(p99 <= TARGET_P99)}")
        section.add()
    if not args.skip_light:
        replies, jobs = light(args)
        lat = reply_latencies(replies, jobs, args.light_time_scale)
        section.add(
            f"2. Light load: {args.light_requests} requests, at most {IN_FLIGHT} in flight, unlimited key, jobs "
            f"{LIGHT_JOB_SECONDS[0]:.0f}-{LIGHT_JOB_SECONDS[1]:.0f} s, time scale {args.light_time_scale}."
        )
        section.add()
        summarize(section, lat)
        for kind in ("enrichment", "content_match", "audience_match"):
            p50 = percentile(lat.get(kind, []), 0.5)
            verdicts.append(
                f"light load {kind} p50 {p50:.2f} s (target <= {TARGET_LIGHT_P50}): {_ok(p50 <= TARGET_LIGHT_P50)}"
            )
        section.add()
    for line in verdicts:
        section.add(f"- {line}")
    section.write()


def _ok(met: bool) -> str:
    return "met" if met else "MISSED"


if __name__ == "__main__":
    main()
