"""Worker memory with 50 vs 5,000 requests in flight: in-flight work lives in the state store, not in RAM.

One worker group; first 50 long-running requests, then 4,950 more. At each level, once every request
is running (started, being polled), RSS is sampled over several poll rounds: the sum of VmRSS over
the group's worker processes (dramatiq's forks; the supervisor is reported apart). Target: the
5,000 figure within 20% of the 50 one. Unlimited key (so 5,000 starts take seconds), jobs that never
end within the run.

    python -m bench.memory [--small 50] [--large 5000] [--time-scale 2]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

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
from worker.ops.harness import WorkerGroup
from worker.runtime.registry import Registry, index_name

KINDS = ("thought_leaders", "enrichment", "content_match", "audience_match")
TARGET = 0.20


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--small", type=int, default=50)
    parser.add_argument("--large", type=int, default=5000)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--time-scale", type=float, default=2.0, help="real seconds per simulated second")
    parser.add_argument("--rounds", type=int, default=4, help="poll rounds sampled at each level")
    return parser.parse_args()


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def running(registry: Registry) -> int:
    return sum(registry.store.index_count(index_name("running", kind)) for kind in KINDS)


def settle(group: WorkerGroup, registry: Registry, target: int, seconds: float) -> tuple[int, int, float]:
    """Wait until `target` rows run, then sample RSS for `seconds`: (max workers KiB, supervisor KiB, waited s)."""
    began = time.monotonic()
    while running(registry) < target:
        if time.monotonic() - began > 600:
            raise TimeoutError(f"{running(registry)} of {target} requests running after 600 s")
        time.sleep(0.2)  # sampling the registry, not synchronizing with it
    waited = time.monotonic() - began
    peak = 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        peak = max(peak, sum(rss_kib(pid) for pid in group.children()))
        time.sleep(0.25)  # sampling interval
    assert group.proc is not None
    return peak, rss_kib(group.proc.pid), waited


def main() -> None:
    args = parse()
    scale = args.time_scale
    section = Section("memory", "memory: worker RSS with 50 vs 5,000 requests in flight")
    sim = simulator(scale, rate_limit=0, job_seconds=(1e7, 1e7))
    try:
        env = worker_env(scale, ADMISSION_WINDOW="1000", TICK_MAX_IDLE_SECONDS="1")
        with (
            deployment(sim, scale) as dep,
            worker_group(dep, processes=args.processes, threads=args.threads, env=env) as group,
        ):
            registry = registry_of(dep)
            collector = ReplyCollector(dep)
            try:
                cadence = 2.0 * scale  # an unlimited key polls every 2 simulated seconds
                bodies = workload(args.large)
                collector.publish(bodies[: args.small])
                small, small_sup, _ = settle(group, registry, args.small, cadence * args.rounds)
                collector.publish(bodies[args.small :])
                large, large_sup, waited = settle(group, registry, args.large, cadence * args.rounds)
                calls = sim.admin.stats()["calls_total"]
            finally:
                collector.close()
    finally:
        sim.stop()
    growth = large / small - 1
    section.add(
        f"{args.processes} worker processes x {args.threads} threads, unlimited key, jobs that outlast the run, "
        f"time scale {scale} (a poll round every {2.0 * scale:.1f} real s); RSS sampled over {args.rounds} poll "
        f"rounds once every request was running ({args.large} running after {waited:.0f} s; {calls} API calls)."
    )
    section.add()
    section.table(
        ["requests in flight", "workers' RSS (sum, MiB)", "supervisor RSS (MiB)"],
        [[args.small, small / 1024, small_sup / 1024], [args.large, large / 1024, large_sup / 1024]],
    )
    section.add()
    verdict = "met" if abs(growth) <= TARGET else "MISSED"
    section.add(f"- growth {100 * growth:+.1f}% (target within {100 * TARGET:.0f}%): {verdict}")
    section.write()


if __name__ == "__main__":
    main()
