"""`toksta-worker run`: check the configuration, then run dramatiq's process supervisor.

dramatiq's CLI forks the worker processes; when one of them dies it stops the others and exits
non-zero, so a supervisor (Kubernetes, compose `restart:`, systemd) restarts the whole group.
SIGTERM/SIGINT drain within DRAIN_SECONDS and exit 0.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from dramatiq import cli as dramatiq_cli

from worker.amqp.connection import AmqpError, safe_url
from worker.logs import configure_logging
from worker.observability.errors import init_sentry
from worker.observability.supervisor import ExpositionError, start_exposition
from worker.runtime.context import Runtime, install_runtime
from worker.runtime.lifecycle import declare_topology, secrets_of
from worker.settings import Settings
from worker.state.base import StateStoreError
from worker.state.factory import is_embedded

log = logging.getLogger("worker.run")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--processes", "-p", type=int, default=2, help="worker processes (default 2)")
    parser.add_argument("--threads", "-t", type=int, default=4, help="tick threads per process (default 4)")


class ConfigError(RuntimeError):
    """The configuration cannot work; the message says what to change."""


def preflight(settings: Settings) -> None:
    """Fail fast, with a clear message, on what would otherwise fail in every process."""
    if settings.toksta_api_key is None:
        raise ConfigError("TOKSTA_API_KEY is not set (the simulator's default key is tk_test_simulator)")
    if not settings.state_url and os.environ.get("KUBERNETES_SERVICE_HOST"):
        raise ConfigError(
            "STATE_URL is unset inside Kubernetes: the embedded store serves one host only; set STATE_URL=redis://..."
        )
    rt = Runtime(settings)
    try:
        rt.store.ping()
    except StateStoreError as exc:
        raise ConfigError(f"state store {rt.store.describe()} unreachable: {exc}") from exc
    if is_embedded(rt.store):
        log.info("state store: embedded (%s); one host only", rt.store.describe())
    else:
        warnings: list[str] = getattr(rt.store, "persistence_warnings", list)()
        for warning in warnings:
            log.warning("state store: %s", warning)
    try:
        declare_topology(rt)
    except AmqpError as exc:
        raise ConfigError(f"RabbitMQ at {safe_url(settings.amqp_url)}: {exc}") from exc
    rt.store.close()


def run(args: argparse.Namespace) -> int:
    settings = Settings()
    rt = Runtime(settings)
    configure_logging(settings.log_format.value, settings.log_level, secrets_of(rt))
    init_sentry(settings)  # before the fork: the workers inherit it (and their brokers get its middleware)
    try:
        preflight(settings)
        exposition = start_exposition(settings, args.processes)  # /metrics etc.: one server, here
    except (ConfigError, ExpositionError) as exc:
        log.error("cannot start: %s", exc)
        return 2
    install_runtime(None)  # each worker process builds its own after the fork
    try:
        return _run_dramatiq(args, settings)
    finally:
        if exposition is not None:
            exposition.close()


def _run_dramatiq(args: argparse.Namespace, settings: Settings) -> int:
    dramatiq_args = dramatiq_cli.make_argument_parser().parse_args(  # type: ignore[no-untyped-call]
        [
            "worker.runtime.app",
            "--processes",
            str(args.processes),
            "--threads",
            str(args.threads),
            "--worker-shutdown-timeout",
            str(int(settings.drain_seconds * 1000)),
            "--skip-logging",
        ]
    )
    code: int = dramatiq_cli.main(dramatiq_args)  # type: ignore[no-untyped-call]
    return code


if __name__ == "__main__":
    sys.exit(run(argparse.Namespace(processes=2, threads=4)))
