"""Calls per request: the worker against the naive baseline, on the same workload, in the same run.

Workload: 200 requests published at t=0, a quarter of each kind, 2 fresh creators per enrichment and
match request, `include` on 20% of the match requests, jobs of 10-600 simulated seconds, all
succeeding, a 60/minute key. Metric: calls the simulator served / requests that got a reply.
Targets: the worker <= 1.6 calls per request and >= 8x fewer than the naive baseline.

    python -m bench.economy [--time-scale 0.05] [--requests 200] [--skip-naive]
"""

from __future__ import annotations

import argparse
from typing import Any

from bench._common import OursRun, Section, configure, deployment, run_batch, simulator, worker_env, workload
from bench.naive import NaiveClient

RATE_LIMIT = 60
JOB_SECONDS = (10.0, 600.0)
TARGET_CALLS = 1.6
TARGET_RATIO = 8.0


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--time-scale", type=float, default=0.05, help="real seconds per simulated second")
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--skip-naive", action="store_true", help="only the worker (for quick tuning)")
    return parser.parse_args()


def run_ours(args: argparse.Namespace, sim: Any, bodies: list[dict[str, Any]]) -> OursRun:
    configure(sim, rate_limit=RATE_LIMIT, job_seconds=JOB_SECONDS)
    with deployment(sim, args.time_scale) as dep:
        return run_batch(
            sim,
            dep,
            bodies,
            processes=args.processes,
            threads=args.threads,
            env=worker_env(args.time_scale),
            timeout=3600 * args.time_scale + 120,
        )


def run_naive(args: argparse.Namespace, sim: Any, bodies: list[dict[str, Any]]) -> dict[str, Any]:
    configure(sim, rate_limit=RATE_LIMIT, job_seconds=JOB_SECONDS)
    naive = NaiveClient(sim.base_url, sim.key, args.time_scale)
    try:
        run = naive.run(bodies, timeout=7200 * args.time_scale + 120)
    finally:
        naive.close()
    stats = sim.admin.stats()
    return {"completed": run.completed, "failed": run.failed, "stats": stats}


def main() -> None:
    args = parse()
    section = Section("economy", "economy: calls per request, worker vs naive")
    sim = simulator(args.time_scale, rate_limit=RATE_LIMIT, job_seconds=JOB_SECONDS)
    try:
        ours = run_ours(args, sim, workload(args.requests))
        naive = None if args.skip_naive else run_naive(args, sim, workload(args.requests))
    finally:
        sim.stop()
    replies = len(ours.replies)
    ours_per = ours.calls / replies
    minutes = (ours.ended - ours.started) / args.time_scale / 60
    section.add(
        f"Workload: {args.requests} requests at t=0 (25% per kind, 2 creators per enrichment/match request, "
        f"include on 20% of match requests), jobs {JOB_SECONDS[0]:.0f}-{JOB_SECONDS[1]:.0f} s, "
        f"{RATE_LIMIT}/min key, time scale {args.time_scale}, "
        f"worker {args.processes} processes x {args.threads} threads."
    )
    section.add()
    rows: list[list[Any]] = [
        [
            "worker",
            replies,
            ours.calls,
            ours_per,
            ours.stats["rate_limited"],
            ours.stats["calls_during_retry_after"],
            f"{minutes:.1f}",
        ]
    ]
    if naive is not None:
        done = max(1, naive["completed"])
        rows.append(
            [
                "naive",
                naive["completed"],
                naive["stats"]["calls_total"],
                naive["stats"]["calls_total"] / done,
                naive["stats"]["rate_limited"],
                naive["stats"]["calls_during_retry_after"],
                "",
            ]
        )
    section.table(
        ["client", "replies", "calls served", "calls/request", "429s", "calls in Retry-After", "sim min"], rows
    )
    section.add()
    status_ok = sum(1 for r in ours.replies.values() if r.body.get("status") == "succeeded")
    section.add(f"Worker replies succeeded: {status_ok}/{replies}. Calls by route (worker):")
    section.add()
    section.table(["route", "calls"], sorted(ours.stats["calls"].items(), key=lambda kv: -kv[1]))
    section.add()
    verdict = [f"worker {ours_per:.2f} calls/request (target <= {TARGET_CALLS}): {_ok(ours_per <= TARGET_CALLS)}"]
    if naive is not None:
        ratio = (naive["stats"]["calls_total"] / max(1, naive["completed"])) / ours_per
        verdict.append(f"naive/worker = {ratio:.1f}x (target >= {TARGET_RATIO}x): {_ok(ratio >= TARGET_RATIO)}")
    for line in verdict:
        section.add(f"- {line}")
    section.write()


def _ok(met: bool) -> str:
    return "met" if met else "MISSED"


if __name__ == "__main__":
    main()
