"""Readiness: each worker process reports what it is connected to; the supervisor judges the group.

A worker process writes `status_<pid>.json` into the multiprocess directory every second (see
`reporter.py`): whether its state store answers, whether RabbitMQ answers, whether its ingress
consumes the request queue. `/readyz` is 200 only when every expected process has a fresh report
saying all three; otherwise 503 with the list of what is missing. `/healthz` says only that the
supervisor is alive: it never depends on RabbitMQ or Redis, so an outage of either does not get
healthy pods restarted.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

STATUS_GLOB = "status_*.json"
STALE_AFTER_SECONDS = 5.0  # a report older than this means the process (or its reporter) is stuck


@dataclass(frozen=True)
class ProcessStatus:
    """One worker process's own view of its connections."""

    pid: int
    at: float
    state_store: bool
    rabbitmq: bool
    ingress: bool
    problems: list[str] = field(default_factory=list)

    @property
    def ready(self) -> bool:
        return self.state_store and self.rabbitmq and self.ingress

    def missing(self) -> list[str]:
        named = [
            ("state store", self.state_store),
            ("RabbitMQ", self.rabbitmq),
            ("ingress consumer", self.ingress),
        ]
        gaps = [f"process {self.pid}: {what} not connected" for what, ok in named if not ok]
        return gaps + [f"process {self.pid}: {problem}" for problem in self.problems]


def status_path(directory: Path, pid: int) -> Path:
    return directory / f"status_{pid}.json"


def write_status(directory: Path, status: ProcessStatus) -> None:
    """Replace this process's report atomically (a reader never sees half a file)."""
    target = status_path(directory, status.pid)
    temporary = target.with_suffix(".json.tmp")
    temporary.write_text(json.dumps(asdict(status)), encoding="utf-8")
    os.replace(temporary, target)


def remove_status(directory: Path, pid: int) -> None:
    status_path(directory, pid).unlink(missing_ok=True)


def read_statuses(directory: Path) -> list[ProcessStatus]:
    statuses = []
    for path in sorted(directory.glob(STATUS_GLOB)):
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
            statuses.append(
                ProcessStatus(
                    pid=int(raw["pid"]),
                    at=float(raw["at"]),
                    state_store=bool(raw["state_store"]),
                    rabbitmq=bool(raw["rabbitmq"]),
                    ingress=bool(raw["ingress"]),
                    problems=[str(p) for p in raw.get("problems") or []],
                )
            )
        except (OSError, ValueError, KeyError, TypeError):
            continue  # removed or replaced while we read it: the next probe reads the new one
    return statuses


def readiness(
    directory: Path | None,
    expected_processes: int,
    *,
    now: float | None = None,
    stale_after: float = STALE_AFTER_SECONDS,
) -> tuple[bool, dict[str, Any]]:
    """Whether the group is ready, and a JSON-able body that says why (or why not)."""
    if directory is None:
        return False, {"ready": False, "missing": ["no multiprocess directory: worker processes cannot report"]}
    moment = time.time() if now is None else now
    statuses = read_statuses(directory)
    fresh = [s for s in statuses if moment - s.at <= stale_after]
    missing = [f"process {s.pid}: no report for {moment - s.at:.1f} s" for s in statuses if s not in fresh]
    if len(fresh) < expected_processes:
        missing.insert(0, f"{len(fresh)} of {expected_processes} worker processes reporting")
    for status in fresh:
        missing.extend(status.missing())
    body: dict[str, Any] = {
        "ready": not missing,
        "processes": [
            {"pid": s.pid, "state_store": s.state_store, "rabbitmq": s.rabbitmq, "ingress": s.ingress} for s in fresh
        ],
    }
    if missing:
        body["missing"] = missing
    return not missing, body
