"""`toksta-worker dlq`: list, show, replay and purge dead letters (or unroutable replies).

Wire it into the main CLI with `add_arguments(subparsers.add_parser("dlq"))` and `run(args)`.
Settings (AMQP_URL, REQUEST_QUEUE) come from the environment. Exit codes: 0 done, 1 something was
not found, not replayed or the broker is unavailable, 2 refused (bad arguments, purge without
confirmation).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TextIO

import pika

from worker.amqp.connection import AmqpUnavailable, open_connection
from worker.amqp.topology import Topology
from worker.ops import dlq
from worker.settings import load_settings

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_REFUSED = 2
ERROR_COLUMN_CHARS = 60


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the `list`, `show`, `replay` and `purge` subcommands to `parser`."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--unroutable",
        action="store_true",
        help="operate on <request queue>.unroutable (unroutable replies) instead of .dlq",
    )
    sub = parser.add_subparsers(dest="dlq_command", required=True, metavar="{list,show,replay,purge}")

    p_list = sub.add_parser("list", parents=[common], help="list held messages, oldest first")
    p_list.add_argument("--reason", help="only messages with this x-reject-reason / x-unroutable-reason")
    p_list.add_argument("--older-than", type=float, metavar="SECONDS", help="only messages at least this old")
    p_list.add_argument("--json", action="store_true", help="print a JSON array")

    p_show = sub.add_parser("show", parents=[common], help="one message: body, properties, headers")
    p_show.add_argument("id")
    p_show.add_argument("--json", action="store_true", help="print a JSON object")

    p_replay = sub.add_parser(
        "replay", parents=[common], help="republish messages (to the request queue, or the reply queue)"
    )
    p_replay.add_argument("ids", nargs="*", metavar="ID")
    p_replay.add_argument("--all", action="store_true", help="every message (see --reason)")
    p_replay.add_argument("--reason", help="only messages with this reason")

    p_purge = sub.add_parser("purge", parents=[common], help="delete held messages")
    p_purge.add_argument("--reason", help="only messages with this reason")
    p_purge.add_argument("--yes", action="store_true", help="do not ask for confirmation")


def run(args: argparse.Namespace, *, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """Run the subcommand in `args`; returns the exit code."""
    out = out or sys.stdout
    err = err or sys.stderr
    if args.dlq_command == "replay" and bool(args.ids) == bool(args.all):
        print("replay: give message ids or --all (not both)", file=err)
        return EXIT_REFUSED
    settings = load_settings()
    topology = Topology.from_settings(settings)
    queue = dlq.holding_queue(topology, unroutable=args.unroutable)
    try:
        connection = open_connection(settings.amqp_url, name="toksta-worker dlq")
    except AmqpUnavailable as exc:
        print(str(exc), file=err)
        return EXIT_FAILED
    try:
        return _dispatch(args, _Context(connection, topology, queue, out, err))
    except dlq.DlqError as exc:
        print(str(exc), file=err)
        return EXIT_FAILED
    finally:
        if connection.is_open:
            connection.close()


@dataclass(frozen=True)
class _Context:
    connection: pika.BlockingConnection
    topology: Topology
    queue: str
    out: TextIO
    err: TextIO


def _dispatch(args: argparse.Namespace, ctx: _Context) -> int:
    handlers = {"list": _list, "show": _show, "replay": _replay, "purge": _purge}
    return handlers[args.dlq_command](args, ctx)


def _list(args: argparse.Namespace, ctx: _Context) -> int:
    letters = dlq.list_messages(ctx.connection, ctx.queue, reason=args.reason, older_than=args.older_than)
    if args.json:
        print(json.dumps([letter.summary() for letter in letters], indent=2, default=str), file=ctx.out)
    else:
        _print_table(letters, ctx.out, unroutable=args.unroutable)
    return EXIT_OK


def _show(args: argparse.Namespace, ctx: _Context) -> int:
    letter = dlq.show(ctx.connection, ctx.queue, args.id)
    if letter is None:
        print(f"no message {args.id!r} in {ctx.queue}", file=ctx.err)
        return EXIT_FAILED
    if args.json:
        print(json.dumps(_detail(letter), indent=2, default=str), file=ctx.out)
    else:
        _print_detail(letter, ctx.out)
    return EXIT_OK


def _replay(args: argparse.Namespace, ctx: _Context) -> int:
    ids = None if args.all else list(args.ids)
    report = dlq.replay(ctx.connection, ctx.topology, unroutable=args.unroutable, ids=ids, reason=args.reason)
    _print_report(report, ctx.out, ctx.err)
    return EXIT_OK if report.complete else EXIT_FAILED


def _purge(args: argparse.Namespace, ctx: _Context) -> int:
    ids: list[str] | None = None
    if not args.yes:
        if not sys.stdin.isatty():
            print("purge: refusing without --yes when stdin is not a terminal", file=ctx.err)
            return EXIT_REFUSED
        letters = dlq.list_messages(ctx.connection, ctx.queue, reason=args.reason)
        what = f" with reason {args.reason!r}" if args.reason else ""
        answer = input(f"Delete {len(letters)} message(s){what} from {ctx.queue}? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            print("purge: nothing deleted", file=ctx.out)
            return EXIT_REFUSED
        ids = [letter.id for letter in letters]  # exactly what was confirmed, not later arrivals
    removed = dlq.purge(ctx.connection, ctx.queue, reason=args.reason, ids=ids)
    print(f"purged {removed} message(s) from {ctx.queue}", file=ctx.out)
    return EXIT_OK


def _print_table(letters: Sequence[dlq.DeadLetter], out: TextIO, *, unroutable: bool) -> None:
    last = "ROUTING_KEY" if unroutable else "ERROR"
    rows = [("ID", "AGE", "REASON", "KIND", "REQUEST_ID", "DELIV", last)]
    for letter in letters:
        tail = letter.original_routing_key if unroutable else letter.error
        rows.append(
            (
                letter.id,
                _age(letter.age_seconds),
                letter.reason or "-",
                letter.kind or "-",
                letter.request_id or "-",
                "-" if letter.deliveries is None else str(letter.deliveries),
                _one_line(tail or "-", ERROR_COLUMN_CHARS),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        print("  ".join([*cells, row[-1]]), file=out)
    print(f"{len(letters)} message(s)", file=out)


def _detail(letter: dlq.DeadLetter) -> dict[str, Any]:
    try:
        body: Any = json.loads(letter.body)
    except ValueError:
        body = letter.body.decode("utf-8", "replace")
    properties = dlq.properties_dict(letter.properties)
    headers = properties.pop("headers", {})
    return {**letter.summary(), "properties": properties, "headers": headers, "body": body}


def _print_detail(letter: dlq.DeadLetter, out: TextIO) -> None:
    detail = _detail(letter)
    for key in ("id", "queue", "reason", "error", "deliveries", "kind", "request_id"):
        print(f"{key}: {detail[key]}", file=out)
    if letter.original_routing_key:
        print(f"original_routing_key: {letter.original_routing_key}", file=out)
    print(f"dead_lettered_at: {_when(letter.dead_lettered_at)} ({_age(letter.age_seconds)} ago)", file=out)
    print("properties:", file=out)
    for key, value in detail["properties"].items():
        print(f"  {key}: {value}", file=out)
    print("headers:", file=out)
    for key, value in detail["headers"].items():
        print(f"  {key}: {value}", file=out)
    print("body:", file=out)
    body = detail["body"]
    print(body if isinstance(body, str) else json.dumps(body, indent=2, ensure_ascii=False), file=out)


def _print_report(report: dlq.ReplayReport, out: TextIO, err: TextIO) -> None:
    for letter_id in report.replayed:
        print(f"replayed {letter_id}", file=out)
    for letter_id, why in report.skipped:
        print(f"not replayed {letter_id}: {why}", file=err)
    for letter_id in report.not_found:
        print(f"not found {letter_id}", file=err)
    print(
        f"{len(report.replayed)} replayed, {len(report.skipped)} left in place, {len(report.not_found)} not found",
        file=out,
    )


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    total = int(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if total >= size:
            return f"{total // size}{unit}"
    return f"{total}s"


def _when(epoch: float | None) -> str:
    if epoch is None:
        return "-"
    return datetime.fromtimestamp(epoch, tz=UTC).isoformat(timespec="seconds")


def _one_line(text: str, limit: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."
