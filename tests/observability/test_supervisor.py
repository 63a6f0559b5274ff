"""`toksta-worker run` refuses to start when its metrics endpoint cannot be set up."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from worker.observability import multiproc
from worker.observability.supervisor import ExpositionError, start_exposition
from worker.ops.harness import WorkerGroup
from worker.settings import Settings
from worker.sim.testing import SimulatorProcess

from .helpers import make_deployment


def test_run_exits_2_when_the_metrics_port_is_taken(sim: SimulatorProcess) -> None:
    deployment = make_deployment(sim)
    with socket.socket() as holder:
        holder.bind(("0.0.0.0", 0))
        holder.listen()
        port = holder.getsockname()[1]
        group = WorkerGroup(deployment, processes=1, env={"METRICS_PORT": str(port)})
        try:
            with pytest.raises(RuntimeError, match="worker exited with 2"):
                group.start(wait=30)
        finally:
            group.stop()
            deployment.delete_queues()
    assert f"METRICS_PORT {port}" in group.log_text()


def test_an_unusable_multiprocess_dir_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("x")
    monkeypatch.setenv(multiproc.ENV, str(not_a_dir / "metrics"))
    settings = Settings(_env_file=None, metrics_port=9)
    with pytest.raises(ExpositionError, match=multiproc.ENV):
        start_exposition(settings, 1)


def test_port_zero_turns_it_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(multiproc.ENV, raising=False)
    assert start_exposition(Settings(_env_file=None, metrics_port=0), 1) is None
