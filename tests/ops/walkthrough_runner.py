"""Run the Walkthrough section of docs/operations.md the way an operator would: one shell, block by block.

The walkthrough's steps are the fenced ```sh blocks under `## Walkthrough`. Comment lines in a block
say what it must do:

- `# expect: TEXT`  the block's output (stdout and stderr) must contain TEXT;
- `# exit: N`       the block's last command exits N (default 0);
- `# retry: SECONDS` the block only reads state the worker reaches asynchronously: run it again until
                     the expectations hold, for at most SECONDS;
- `# skip-in-test: WHY` the block is not run (the install step: the test uses its own virtualenv).

All blocks run in one long-lived `bash` (variables and background jobs carry over, as in a terminal),
each through `source` with stdin from /dev/null, so a command that reads stdin cannot eat the blocks
that follow. A marker printed after each block ends its output and carries its exit status.
"""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

WALKTHROUGH_HEADING = "## Walkthrough"
_FENCE_OPEN = re.compile(r"^```sh\s*$")
_FENCE_CLOSE = re.compile(r"^```\s*$")
_STEP_HEADING = re.compile(r"^###\s+(.+?)\s*$")
_ANNOTATION = re.compile(r"^\s*#\s*(expect|exit|retry|skip-in-test):\s*(.*?)\s*$")


class WalkthroughError(AssertionError):
    """A step did not do what the document says; the message carries the step and its output."""


@dataclass(frozen=True)
class Step:
    """One ```sh block of the walkthrough and what its comments promise."""

    number: int
    title: str
    code: str
    expects: tuple[str, ...] = ()
    exit_status: int = 0
    retry_seconds: float = 0.0
    skip_reason: str | None = None

    @property
    def label(self) -> str:
        return f"block {self.number} ({self.title})"


def walkthrough_section(markdown: str) -> str:
    """The text from `## Walkthrough` to the next level-2 heading (or the end)."""
    lines = markdown.splitlines()
    try:
        start = next(i for i, line in enumerate(lines) if line.strip() == WALKTHROUGH_HEADING)
    except StopIteration:
        raise WalkthroughError(f"no '{WALKTHROUGH_HEADING}' section") from None
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
    return "\n".join(lines[start:end])


def parse_steps(markdown: str) -> list[Step]:
    """Every ```sh block of the Walkthrough section, in order, titled by the `###` heading above it."""
    steps: list[Step] = []
    title = "Walkthrough"
    block: list[str] | None = None
    for line in walkthrough_section(markdown).splitlines():
        if block is not None:
            if _FENCE_CLOSE.match(line):
                steps.append(_step(len(steps) + 1, title, block))
                block = None
            else:
                block.append(line)
        elif _FENCE_OPEN.match(line):
            block = []
        elif heading := _STEP_HEADING.match(line):
            title = heading.group(1)
    if block is not None:
        raise WalkthroughError(f"unclosed ```sh block under '{title}'")
    return steps


def _step(number: int, title: str, lines: list[str]) -> Step:
    expects: list[str] = []
    exit_status, retry, skip = 0, 0.0, None
    for line in lines:
        found = _ANNOTATION.match(line)
        if found is None:
            continue
        key, value = found.groups()
        if key == "expect":
            expects.append(value)
        elif key == "exit":
            exit_status = int(value)
        elif key == "retry":
            retry = float(value)
        else:
            skip = value or "skipped"
    return Step(number, title, "\n".join(lines) + "\n", tuple(expects), exit_status, retry, skip)


def substitute(step: Step, replacements: Mapping[str, str]) -> Step:
    """The step with every whole-token occurrence of each key replaced (in code and expectations)."""

    def apply(text: str) -> str:
        for old, new in replacements.items():
            text = re.sub(rf"(?<![\w.-]){re.escape(old)}(?![\w-])", new, text)
        return text

    return Step(
        step.number,
        step.title,
        apply(step.code),
        tuple(apply(e) for e in step.expects),
        step.exit_status,
        step.retry_seconds,
        step.skip_reason,
    )


@dataclass
class Outcome:
    output: str
    status: int
    attempts: int = 1


@dataclass
class ShellSession:
    """One `bash` in its own session (process group), fed block by block; `close()` kills the group."""

    workdir: Path
    env: Mapping[str, str]
    _proc: subprocess.Popen[str] | None = None
    _lines: queue.Queue[str | None] = field(default_factory=queue.Queue)
    _marker: str = field(default_factory=lambda: f"@@walkthrough-{uuid.uuid4().hex}@@")
    _counter: int = 0

    def start(self) -> ShellSession:
        self._proc = subprocess.Popen(
            ["bash", "--noprofile", "--norc"],
            cwd=self.workdir,
            env=dict(self.env),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
            start_new_session=True,  # its own process group: close() ends the shell and all it started
        )
        threading.Thread(target=self._pump, name="walkthrough-stdout", daemon=True).start()
        return self

    def _pump(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        for line in self._proc.stdout:
            self._lines.put(line)
        self._lines.put(None)

    def run(self, code: str, timeout: float) -> Outcome:
        """Source `code` in the shell; its output until the marker, and its last command's status."""
        assert self._proc is not None and self._proc.stdin is not None
        self._counter += 1
        script = self.workdir / f".walkthrough-block-{self._counter}.sh"
        script.write_text(code, encoding="utf-8")
        self._proc.stdin.write(f"source {script} </dev/null; printf '\\n{self._marker} %d\\n' $?\n")
        self._proc.stdin.flush()
        output: list[str] = []
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise WalkthroughError(f"no end of block within {timeout:.0f} s; output so far:\n{''.join(output)}")
            try:
                line = self._lines.get(timeout=remaining)
            except queue.Empty:
                continue
            if line is None:
                raise WalkthroughError(f"the shell exited during the block; output:\n{''.join(output)}")
            if line.startswith(self._marker):
                return Outcome("".join(output), int(line.split()[-1]))
            output.append(line)

    def close(self) -> None:
        """SIGTERM to the shell's process group, SIGKILL to what is left after a few seconds."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.stdin is not None:
            proc.stdin.close()
        for sig, grace in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                break
            if _group_gone(proc, grace):
                break
        proc.wait(5)


def _group_gone(leader: subprocess.Popen[str], timeout: float) -> bool:
    """Whether every process of the leader's group has exited within `timeout` (signal 0 probes it).

    The leader (our bash) is reaped on the way: a zombie still counts as a member of its group.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        leader.poll()
        try:
            os.killpg(leader.pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.1)  # polling the group's existence; there is no event to wait on
    return False


def missing_expectations(step: Step, outcome: Outcome) -> list[str]:
    """What the step promised and the outcome lacks (empty when it kept every promise)."""
    missing = [f"expected text {e!r}" for e in step.expects if e not in outcome.output]
    if outcome.status != step.exit_status:
        missing.insert(0, f"exit status {outcome.status}, expected {step.exit_status}")
    return missing


def run_step(session: ShellSession, step: Step, *, block_timeout: float) -> Outcome:
    """Run a step (again and again while it may retry) until it keeps its promises; raise if it never does."""
    deadline = time.monotonic() + step.retry_seconds
    attempts = 0
    while True:
        attempts += 1
        outcome = session.run(step.code, block_timeout)
        outcome.attempts = attempts
        missing = missing_expectations(step, outcome)
        if not missing:
            return outcome
        if time.monotonic() >= deadline:
            tried = f" after {attempts} attempts over {step.retry_seconds:.0f} s" if step.retry_seconds else ""
            raise WalkthroughError(
                f"{step.label} failed{tried}: {'; '.join(missing)}\n--- code ---\n{step.code}--- output ---\n"
                f"{outcome.output}"
            )
        time.sleep(0.5)  # the documented retry: run the read-only block again, as an operator would
