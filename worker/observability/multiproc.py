"""The prometheus-client multiprocess directory shared by the processes of one `toksta-worker run`.

Every worker process writes its metric values into memory-mapped files in PROMETHEUS_MULTIPROC_DIR,
the supervisor aggregates them per scrape, and the processes drop their readiness reports
(`status_<pid>.json`) next to them. The directory must be set before the workers fork and wiped at
start: values of an earlier run would otherwise add to this one's counters.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import MutableMapping
from dataclasses import dataclass
from pathlib import Path

from prometheus_client import values

ENV = "PROMETHEUS_MULTIPROC_DIR"
# What a run leaves in the directory: prometheus-client's value files, our reports and the lock.
_OURS = ("*.db", "status_*.json", "status_*.json.tmp", "collector.lock")


@dataclass(frozen=True)
class MultiprocDir:
    """The directory in use, and whether this run created it (and so removes it at exit)."""

    path: Path
    created: bool

    def cleanup(self) -> None:
        if self.created:
            shutil.rmtree(self.path, ignore_errors=True)


def prepare(environ: MutableMapping[str, str] | None = None) -> MultiprocDir:
    """Use PROMETHEUS_MULTIPROC_DIR (wiped), or create a fresh temp dir and export it for the children.

    Only files this package and prometheus-client write are removed, so a directory set by mistake
    to somewhere shared loses nothing else.
    """
    env = os.environ if environ is None else environ
    configured = env.get(ENV)
    if configured:
        path = Path(configured)
        path.mkdir(parents=True, exist_ok=True)
        wipe(path)
        return MultiprocDir(path, created=False)
    path = Path(tempfile.mkdtemp(prefix="toksta-metrics-"))
    env[ENV] = str(path)
    return MultiprocDir(path, created=True)


def wipe(path: Path) -> None:
    for pattern in _OURS:
        for stale in path.glob(pattern):
            stale.unlink(missing_ok=True)


def current() -> Path | None:
    """This process's multiprocess directory, when one is set and exists."""
    configured = os.environ.get(ENV)
    if configured and Path(configured).is_dir():
        return Path(configured)
    return None


def use_multiprocess_values() -> None:
    """Make metrics created from now on write to the multiprocess directory.

    prometheus-client chooses where values live when it is first imported; the `toksta-worker`
    CLI imports every command's module (and so prometheus-client) before `run` has exported
    PROMETHEUS_MULTIPROC_DIR. Called before this process creates its first metric.
    """
    if current() is not None and values.ValueClass is values.MutexValue:
        values.ValueClass = values.MultiProcessValue()  # type: ignore[no-untyped-call]
