"""docs/operations.md: its Walkthrough runs as written, and its reference parts cover the real interface.

The walkthrough test runs every ```sh block of the Walkthrough section in one bash, in a temporary
directory, with the real RabbitMQ of this machine, the real simulator and a real `toksta-worker run`.
What it changes, and only that: the install block is skipped (the `toksta-worker` and `python` of this
test's virtualenv come first on PATH), the ports 8080/9191 and the queue names `walkthrough.requests` /
`walkthrough.replies` become unique per run (so runs beside other tests cannot collide), and
TOKSTA_TIME_SCALE=0.05 lets the simulated minutes pass in seconds. Everything it started is killed at
the end (its own process group) and its queues are deleted.
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pika
import pika.exceptions
import pytest
from prometheus_client import CollectorRegistry

from tests.ops.walkthrough_runner import (
    ShellSession,
    Step,
    WalkthroughError,
    parse_steps,
    run_step,
    substitute,
)
from tests.rabbit_fixtures import AMQP_URL
from worker.amqp.topology import WAIT_DELAYS_MS
from worker.observability.metrics import Metrics
from worker.ops import dlq_cli
from worker.settings import Settings

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "operations.md"
TIME_SCALE = "0.05"
BLOCK_TIMEOUT_SECONDS = 90.0  # one block; `submit --wait 60` is the longest
# What the document uses that must be unique per run (whole tokens in code and expectations).
PER_RUN_TOKENS = ("8080", "9191", "walkthrough.requests", "walkthrough.replies")
LOG_FILES = ("sim.log", "worker.log")


def _doc_text() -> str:
    return DOC.read_text(encoding="utf-8")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _clean_env() -> dict[str, str]:
    """This process's environment without any worker or simulator setting, the test venv first on PATH.

    A setting left over from the calling shell (STATE_URL, REQUEST_QUEUE, METRICS_PORT...) would make the
    walkthrough run differently from the document. AMQP_URL is kept: it says where this machine's
    RabbitMQ is, and the document's commands read it the same way.
    """
    settings = {name.upper() for name in Settings.model_fields} - {"AMQP_URL"}
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in settings and not k.startswith(("TOKSTA_", "SIM_")) and k != "PROMETHEUS_MULTIPROC_DIR"
    }
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "/usr/bin:/bin")])
    env["TOKSTA_TIME_SCALE"] = TIME_SCALE
    return env


def _delete_queues(names: list[str]) -> None:
    connection = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
    try:
        for name in names:
            channel = connection.channel()
            try:
                channel.queue_delete(name)
                channel.close()
            except pika.exceptions.AMQPError:
                pass  # already gone (the walkthrough's last step deletes them itself)
    finally:
        if connection.is_open:
            connection.close()


def _log_tails(workdir: Path, lines: int = 40) -> str:
    parts = []
    for name in LOG_FILES:
        path = workdir / name
        if path.is_file():
            tail = path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:]
            parts.append(f"--- {name} (last {lines} lines) ---\n" + "\n".join(tail))
    return "\n".join(parts)


# -- the document's structure ------------------------------------------------------------------------


def test_walkthrough_blocks_are_annotated() -> None:
    steps = parse_steps(_doc_text())
    assert len(steps) >= 15
    install = steps[0]
    assert install.skip_reason is not None, "the install block is the one the test skips"
    assert "pip install ." in install.code
    assert [s for s in steps if s.skip_reason] == [install], "only the install block may be skipped"
    unchecked = [s.label for s in steps[1:] if not s.expects]
    assert not unchecked, f"every block says what its output must contain: {unchecked}"
    code = "\n".join(s.code for s in steps)
    for token in PER_RUN_TOKENS:
        assert token in code, f"the walkthrough no longer uses {token!r}; update PER_RUN_TOKENS"
    assert "toksta-worker sim --port 8080" in code
    assert "METRICS_PORT=9191" in code


def test_every_metric_is_documented() -> None:
    families = list(Metrics(CollectorRegistry()).__dict__.values())
    names = set()
    for metric in families:
        for family in metric.collect():
            names.add(f"{family.name}_total" if family.type == "counter" else family.name)
    assert len(names) == 12
    doc = _doc_text()
    missing = sorted(name for name in names if f"`{name}`" not in doc)
    assert not missing, f"docs/operations.md does not describe {missing}"


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    (action,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(action.choices)


def test_every_dlq_command_and_option_is_documented() -> None:
    parser = argparse.ArgumentParser(prog="toksta-worker dlq")
    dlq_cli.add_arguments(parser)
    doc = _doc_text()
    for name, sub in _subparsers(parser).items():
        assert f"toksta-worker dlq {name}" in doc, name
        for action in sub._actions:
            for option in action.option_strings:
                if option.startswith("--") and option != "--help":
                    assert option in doc, f"dlq {name} {option}"


# -- the runner can fail -----------------------------------------------------------------------------


@pytest.fixture
def shell(tmp_path: Path) -> Iterator[ShellSession]:
    session = ShellSession(tmp_path, _clean_env()).start()
    yield session
    session.close()


def test_runner_reports_a_broken_promise(shell: ShellSession) -> None:
    broken = Step(1, "t", "echo hello\n", expects=("goodbye",))
    with pytest.raises(WalkthroughError, match="goodbye"):
        run_step(shell, broken, block_timeout=10)
    failing = Step(2, "t", "echo hello; false\n", expects=("hello",))
    with pytest.raises(WalkthroughError, match="exit status 1"):
        run_step(shell, failing, block_timeout=10)


def test_runner_keeps_shell_state_and_retries(shell: ShellSession, tmp_path: Path) -> None:
    run_step(shell, Step(1, "t", "COUNT=0\n", expects=()), block_timeout=10)
    counting = Step(2, "t", "COUNT=$((COUNT + 1)); echo count=$COUNT\n", expects=("count=3",), retry_seconds=20)
    outcome = run_step(shell, counting, block_timeout=10)
    assert outcome.attempts == 3
    reads_stdin = Step(3, "t", "cat; echo after\n", expects=("after",))
    assert run_step(shell, reads_stdin, block_timeout=10).output.strip() == "after"


# -- the walkthrough, run -----------------------------------------------------------------------------


def test_walkthrough_runs_as_written(tmp_path: Path) -> None:
    run_id = uuid.uuid4().hex[:10]
    request_queue = f"wt.{run_id}.requests"
    reply_queue = f"wt.{run_id}.replies"
    replacements = {
        "8080": str(_free_port()),
        "9191": str(_free_port()),
        "walkthrough.requests": request_queue,
        "walkthrough.replies": reply_queue,
    }
    steps = [substitute(step, replacements) for step in parse_steps(_doc_text())]
    queues = [request_queue, reply_queue] + [
        f"{request_queue}.{suffix}" for suffix in ("dlq", "unroutable", "ticks", "ticks.DQ", "ticks.XQ")
    ]
    queues += [f"{request_queue}.wait.{ms}ms" for ms in WAIT_DELAYS_MS]
    session = ShellSession(tmp_path, _clean_env()).start()
    ran = []
    try:
        for step in steps:
            if step.skip_reason is not None:
                continue
            try:
                run_step(session, step, block_timeout=BLOCK_TIMEOUT_SECONDS)
            except WalkthroughError as exc:
                raise WalkthroughError(f"{exc}\n{_log_tails(tmp_path)}") from None
            ran.append(step.number)
    finally:
        session.close()
        _delete_queues(queues)
    assert ran == [s.number for s in steps if s.skip_reason is None]


def _anchors(markdown: str) -> set[str]:
    """GitHub-style heading anchors (the same rule tests/deploy uses for the runbook links)."""
    anchors = set()
    for heading in re.findall(r"^#{1,6}\s+(.+?)\s*$", markdown, flags=re.MULTILINE):
        anchors.add(re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-"))
    return anchors


def test_links_resolve() -> None:
    """Every relative link of the document names an existing file and, with `#`, an existing heading."""
    doc = _doc_text()
    prose = re.sub(r"^```.*?^```", "", doc, flags=re.MULTILINE | re.DOTALL)  # links only count outside code
    links = re.findall(r"\]\(([^)\s]+)\)", prose)
    assert links
    for link in links:
        if re.match(r"[a-z]+://", link):
            continue
        path, _, anchor = link.partition("#")
        target = (DOC.parent / path).resolve() if path else DOC
        assert target.is_file(), link
        if anchor:
            assert anchor in _anchors(target.read_text(encoding="utf-8")), link
