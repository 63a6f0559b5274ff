"""`toksta-worker`: the console script (run, sim, submit, demo, dlq).

Each subcommand's module is imported only when it runs, so `toksta-worker sim` needs no broker
and `--help` works anywhere.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence
from typing import Protocol

from worker import __version__


class _Command(Protocol):
    def add_arguments(self, parser: argparse.ArgumentParser) -> None: ...

    def run(self, args: argparse.Namespace) -> int: ...


COMMANDS: dict[str, tuple[str, str]] = {
    "run": ("worker.runtime.run_cli", "run the worker: consume requests, call the API, poll, reply"),
    "sim": ("worker.sim.cli", "run the local Toksta API simulator"),
    "submit": ("worker.ops.submit_cli", "publish one request and optionally wait for its reply"),
    "demo": (
        "worker.ops.demo_cli",
        "publish one request of every kind (plus a cancel and an invalid one) and print the replies",
    ),
    "dlq": ("worker.ops.dlq_cli", "inspect, replay and purge dead letters and unroutable replies"),
}


def build_parser(load: Callable[[str], _Command] | None = None) -> argparse.ArgumentParser:
    loader = load or _load
    parser = argparse.ArgumentParser(prog="toksta-worker", description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--version", action="version", version=f"toksta-worker {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module, help_text) in COMMANDS.items():
        command = loader(module)
        command_parser = sub.add_parser(name, help=help_text, description=help_text)
        command.add_arguments(command_parser)
        command_parser.set_defaults(_module=module)
    return parser


def _load(module: str) -> _Command:
    loaded: _Command = importlib.import_module(module)
    return loaded


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return _load(args._module).run(args)


if __name__ == "__main__":
    sys.exit(main())
