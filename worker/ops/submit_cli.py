"""`toksta-worker submit`: publish one request, and with --wait print its reply."""

from __future__ import annotations

import argparse
import json
import sys
import uuid

from worker.ops.requester import Requester
from worker.settings import Settings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--kind", required=True, help="thought_leaders, enrichment, content_match, audience_match or cancel"
    )
    parser.add_argument("--params", required=True, help="the params object as JSON")
    parser.add_argument("--options", default=None, help="the options object as JSON")
    parser.add_argument("--request-id", default=None, help="the idempotency key (default: a new uuid)")
    parser.add_argument("--reply-to", default=None, help="reply queue (default: a temporary queue of this command)")
    parser.add_argument(
        "--wait",
        type=float,
        default=None,
        metavar="SECONDS",
        help="wait this long for the reply and print it",
    )


def run(args: argparse.Namespace) -> int:
    settings = Settings()
    try:
        params = json.loads(args.params)
        options = json.loads(args.options) if args.options else None
    except json.JSONDecodeError as exc:
        print(f"--params/--options must be JSON: {exc}", file=sys.stderr)
        return 2
    request_id = args.request_id or f"submit-{uuid.uuid4().hex[:12]}"
    body = {"request_id": request_id, "kind": args.kind, "params": params}
    if options is not None:
        body["options"] = options
    with Requester(
        settings.amqp_url,
        settings.request_queue,
        reply_queue=args.reply_to,
        durable_reply_queue=args.reply_to is not None,
    ) as requester:
        requester.publish(body)
        print(
            f"published {request_id} to {settings.request_queue}; replies go to {requester.reply_queue}",
            file=sys.stderr,
        )
        if args.wait is None:
            return 0
        reply = requester.wait_for(request_id, args.wait)
        if reply is None:
            print(f"no reply within {args.wait} s", file=sys.stderr)
            return 1
        print(json.dumps(reply.body, indent=2))
        return 0 if reply.body["status"] == "succeeded" else 3
