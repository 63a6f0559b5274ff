"""Command line of the simulator: `toksta-worker sim ...` and `python -m worker.sim ...`."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import tempfile
from pathlib import Path

from aiohttp import web

from worker.sim.app import ROUTE_KEYS, build_app
from worker.sim.clock import SimClock
from worker.sim.config import DEFAULT_KEY, ConfigError, SimConfig, parse_job_seconds, parse_outcomes

log = logging.getLogger("worker.sim")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    env = os.environ.get
    parser.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8080, help="port; 0 picks a free one (default 8080)")
    parser.add_argument(
        "--key",
        default=env("SIM_KEY", DEFAULT_KEY),
        help="accepted bearer key (env SIM_KEY; default %(default)s)",
    )
    parser.add_argument(
        "--rate-limit",
        type=int,
        default=int(env("SIM_RATE_LIMIT", "60")),
        help="calls per key per 60 s window, 0 = unlimited (env SIM_RATE_LIMIT; default 60)",
    )
    parser.add_argument(
        "--credits", type=int, default=int(env("SIM_CREDITS", "100000")), help="starting credit balance"
    )
    parser.add_argument(
        "--job-seconds",
        default=env("SIM_JOB_SECONDS", "5,30"),
        help="MIN,MAX simulated job duration (default 5,30)",
    )
    parser.add_argument(
        "--outcomes",
        default=env("SIM_OUTCOMES", "succeeded=1"),
        help='terminal weights, e.g. "succeeded=9,failed=1"',
    )
    parser.add_argument(
        "--time-scale",
        type=float,
        default=float(env("TOKSTA_TIME_SCALE", "1")),
        help="real seconds per simulated second (env TOKSTA_TIME_SCALE; default 1)",
    )
    parser.add_argument(
        "--disable-route",
        action="append",
        default=[],
        metavar="ROUTE_KEY",
        help='answer 501 on this route, e.g. "POST /v1/creators/enrich" (repeatable)',
    )
    seed = env("SIM_SEED")
    parser.add_argument("--seed", type=int, default=int(seed) if seed else None, help="random seed (env SIM_SEED)")
    parser.add_argument("--port-file", default=None, help="write the bound port to this file once listening")
    parser.add_argument("--log-level", default="INFO", help="logging level (default INFO)")


def config_from_args(args: argparse.Namespace) -> SimConfig:
    """The startup config; raises ConfigError on a bad knob."""
    unknown = set(args.disable_route) - ROUTE_KEYS
    if unknown:
        raise ConfigError(f"--disable-route: unknown route keys {sorted(unknown)}")
    if args.rate_limit < 0 or args.credits < 0:
        raise ConfigError("--rate-limit and --credits must be >= 0")
    if not args.key:
        raise ConfigError("--key must not be empty")
    return SimConfig(
        rate_limit=args.rate_limit,
        credits=args.credits,
        job_seconds=parse_job_seconds(args.job_seconds),
        outcomes=parse_outcomes(args.outcomes),
        disabled_routes=frozenset(args.disable_route),
        keys=(args.key,),
    )


def _write_port_file(path: str, port: int) -> None:
    """Atomic write, so a reader never sees a half-written port."""
    target = Path(path)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".port-")
    with os.fdopen(fd, "w") as handle:
        handle.write(f"{port}\n")
    Path(tmp).replace(target)


async def serve(args: argparse.Namespace, config: SimConfig) -> None:
    app = build_app(config, SimClock(args.time_scale), args.seed)
    runner = web.AppRunner(app, access_log=log if log.isEnabledFor(logging.DEBUG) else None)
    await runner.setup()
    site = web.TCPSite(runner, args.host, args.port, backlog=1024)
    await site.start()
    port = runner.addresses[0][1]
    if args.port_file:
        _write_port_file(args.port_file, port)
    log.info("toksta simulator listening on http://%s:%d (time scale %s)", args.host, port, args.time_scale)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        if not args.time_scale > 0:
            raise ConfigError("--time-scale must be > 0")
        config = config_from_args(args)
    except ConfigError as exc:
        log.error("invalid simulator setting: %s", exc)
        return 2
    asyncio.run(serve(args, config))
    return 0
