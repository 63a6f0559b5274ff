"""`toksta-worker demo`: one request of every kind, a cancel and an invalid one, replies printed.

By default it starts what it needs beside an already running RabbitMQ: the API simulator and one
worker, both as child processes with a shortened time scale, and stops them at the end. With
`--external` it only publishes (docker compose runs the simulator and workers itself).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx

from worker.ops.requester import Requester
from worker.settings import Settings

SIM_KEY = "tk_test_simulator"
CREATORS = ["f0e1d2c3-b4a5-4678-9abc-def012345678", "a1b2c3d4-e5f6-4789-9abc-0123456789ab"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--external",
        action="store_true",
        help="use the running worker and API (AMQP_URL, REQUEST_QUEUE); start nothing",
    )
    parser.add_argument(
        "--time-scale",
        type=float,
        default=0.05,
        help="simulated time scale for the demo's own simulator and worker",
    )
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for all replies")


def demo_requests(tag: str) -> list[dict[str, Any]]:
    """The demo's requests, in publishing order (the cancel targets the second thought-leaders one)."""
    keywords = ["B2B SaaS", "demand generation", "marketing analytics", "growth", "ABM"]
    return [
        {
            "request_id": f"demo-{tag}-tl",
            "kind": "thought_leaders",
            "params": {"keywords": keywords, "count": 10, "mode": "balanced"},
            "options": {"results_limit": 5},
        },
        {"request_id": f"demo-{tag}-enrich", "kind": "enrichment", "params": {"creator_ids": CREATORS}},
        {
            "request_id": f"demo-{tag}-content",
            "kind": "content_match",
            "params": {"creator_ids": CREATORS, "topic_keywords": ["developer tools", "DevEx"]},
            "options": {"include": ["posts"]},
        },
        {
            "request_id": f"demo-{tag}-audience",
            "kind": "audience_match",
            "params": {
                "creator_ids": CREATORS[:1],
                "target_audience_criteria": ["VP Marketing", "Head of Growth"],
            },
            "options": {"include": ["details"], "detail_level": "summary"},
        },
        {
            "request_id": f"demo-{tag}-tl-2",
            "kind": "thought_leaders",
            "params": {"keywords": [*keywords, "sim:duration=600"]},
        },
        {"request_id": f"demo-{tag}-cancel", "kind": "cancel", "params": {"request_id": f"demo-{tag}-tl-2"}},
        {
            "request_id": f"demo-{tag}-invalid",
            "kind": "thought_leaders",
            "params": {"keywords": ["too", "few"]},
        },
    ]


def run(args: argparse.Namespace) -> int:
    settings = Settings()
    tag = uuid.uuid4().hex[:6]
    with contextlib.ExitStack() as stack:
        alive: Callable[[], bool] = _always
        if not args.external:
            alive = stack.enter_context(_local_services(settings, args.time_scale))
        requester = stack.enter_context(Requester(settings.amqp_url, settings.request_queue))
        try:
            requester.wait_for_worker(60.0, alive)
        except (RuntimeError, TimeoutError) as exc:
            print(f"!! {exc}", file=sys.stderr)
            return 1
        requests = demo_requests(tag)
        for body in requests:
            requester.publish(body, correlation_id=f"demo-corr-{body['request_id']}")
            print(f"-> published {body['kind']:<16} {body['request_id']}", flush=True)
        replies = requester.collect(len(requests), args.timeout)
        for reply in replies:
            _print_reply(reply.body, reply.properties.message_id)
        missing = len(requests) - len(replies)
        if missing:
            print(
                f"!! {missing} repl{'y' if missing == 1 else 'ies'} missing after {args.timeout} s",
                file=sys.stderr,
            )
            return 1
    print(f"all {len(requests)} replies received")
    return 0


def _always() -> bool:
    return True


def _print_reply(body: dict[str, Any], message_id: str | None) -> None:
    error = body.get("error") or {}
    summary = f"<- {body.get('kind') or '?':<16} {body.get('request_id')!s:<28} {body['status']:<10}"
    if error:
        summary += f" {error.get('code')}: {error.get('message')}"
    print(summary)
    print(
        "   message_id:",
        message_id,
        "| job_ids:",
        body.get("job_ids"),
        "| api_calls:",
        body.get("api_calls"),
        "| credits:",
        body.get("credits"),
    )
    print("   result:", json.dumps(body.get("result"))[:300])


@contextlib.contextmanager
def _local_services(settings: Settings, time_scale: float) -> Iterator[Callable[[], bool]]:
    """The simulator and one worker as child processes, stopped (SIGTERM) at the end."""
    port = _free_port()
    state_dir = tempfile.mkdtemp(prefix="toksta-demo-")
    env = dict(
        os.environ,
        TOKSTA_TIME_SCALE=str(time_scale),
        LOG_FORMAT=os.environ.get("LOG_FORMAT", "console"),
        LOG_LEVEL="WARNING",
    )
    sim = subprocess.Popen([sys.executable, "-m", "worker", "sim", "--port", str(port), "--key", SIM_KEY], env=env)
    worker_env = dict(
        env,
        TOKSTA_BASE_URL=f"http://127.0.0.1:{port}",
        TOKSTA_API_KEY=SIM_KEY,
        STATE_DIR=state_dir,
        METRICS_PORT="0",
    )
    worker: subprocess.Popen[bytes] | None = None
    try:
        _wait_http(f"http://127.0.0.1:{port}/health", 30.0)
        print(f"simulator on 127.0.0.1:{port}; starting a worker (time scale {time_scale})", flush=True)
        worker = subprocess.Popen(
            [sys.executable, "-m", "worker", "run", "--processes", "1", "--threads", "4"], env=worker_env
        )
        started = worker
        yield lambda: started.poll() is None
    finally:
        for proc in (worker, sim):
            if proc is not None and proc.poll() is None:
                proc.terminate()
        for proc in (worker, sim):
            if proc is not None:
                try:
                    proc.wait(timeout=settings.drain_seconds + 5)
                except subprocess.TimeoutExpired:
                    proc.kill()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_http(url: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)  # polling a child process's port until it listens (no other signal exists)
    raise RuntimeError(f"{url} did not answer within {timeout} s")
