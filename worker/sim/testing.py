"""Helpers for tests and benchmarks: run the simulator as a real subprocess, and drive its admin API.

with SimulatorProcess("--time-scale", "0.01") as sim:
    httpx.post(f"{sim.base_url}/v1/...", headers={"Authorization": f"Bearer {sim.key}"})
    sim.admin.stats()["calls_total"]
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from worker.sim.config import DEFAULT_KEY

_REPO_ROOT = Path(__file__).resolve().parents[2]


class SimAdmin:
    """Client of the `/_sim/*` admin routes."""

    def __init__(self, base_url: str, timeout: float = 10.0) -> None:
        self._client = httpx.Client(base_url=base_url, timeout=timeout)

    def __repr__(self) -> str:
        return f"SimAdmin({self._client.base_url!s})"

    def _json(self, response: httpx.Response) -> Any:
        if response.status_code >= 400:
            raise RuntimeError(f"simulator admin {response.request.url.path}: {response.status_code} {response.text}")
        return response.json()

    def stats(self) -> dict[str, Any]:
        result: dict[str, Any] = self._json(self._client.get("/_sim/stats"))
        return result

    def calls(self, route: str) -> dict[str, Any]:
        """`route`'s call count, its calls' arrival times and the simulator's now (one monotonic clock)."""
        result: dict[str, Any] = self._json(self._client.get("/_sim/calls", params={"route": route}))
        return result

    def reset(self) -> None:
        self._json(self._client.post("/_sim/reset"))

    def config(self) -> dict[str, Any]:
        result: dict[str, Any] = self._json(self._client.get("/_sim/config"))
        return result

    def configure(self, **knobs: Any) -> dict[str, Any]:
        result: dict[str, Any] = self._json(self._client.post("/_sim/config", json=knobs))
        return result

    def add_faults(self, *faults: Mapping[str, Any]) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._json(
            self._client.post("/_sim/faults", json={"faults": [dict(f) for f in faults]})
        )["faults"]
        return result

    def clear_faults(self) -> None:
        self._json(self._client.delete("/_sim/faults"))

    def jobs(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._json(self._client.get("/_sim/jobs"))["jobs"]
        return result

    def force_job(self, job_id: str, status: str) -> dict[str, Any]:
        result: dict[str, Any] = self._json(self._client.post(f"/_sim/jobs/{job_id}", json={"status": status}))
        return result

    def close(self) -> None:
        self._client.close()


class SimulatorProcess:
    """`python -m worker.sim` in a subprocess on a free port; a context manager that kills it on exit."""

    def __init__(
        self,
        *args: str,
        env: Mapping[str, str] | None = None,
        key: str = DEFAULT_KEY,
        host: str = "127.0.0.1",
        startup_timeout: float = 15.0,
    ) -> None:
        self.key = key
        self.host = host
        self._args = list(args)
        self._env = dict(env or {})
        self._startup_timeout = startup_timeout
        self._proc: subprocess.Popen[bytes] | None = None
        self._dir: tempfile.TemporaryDirectory[str] | None = None
        self._admin: SimAdmin | None = None
        self.port = 0

    def __repr__(self) -> str:
        return f"SimulatorProcess(port={self.port}, running={self.running})"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def base_url(self) -> str:
        if not self.port:
            raise RuntimeError("simulator not started")
        return f"http://{self.host}:{self.port}"

    @property
    def admin(self) -> SimAdmin:
        if self._admin is None:
            raise RuntimeError("simulator not started")
        return self._admin

    @property
    def log_path(self) -> Path:
        if self._dir is None:
            raise RuntimeError("simulator not started")
        return Path(self._dir.name) / "sim.log"

    def headers(self) -> dict[str, str]:
        """Authorization and content type for a v1 call."""
        return {"Authorization": f"Bearer {self.key}", "Content-Type": "application/json"}

    def start(self) -> SimulatorProcess:
        self._dir = tempfile.TemporaryDirectory(prefix="toksta-sim-")
        port_file = Path(self._dir.name) / "port"
        env = {**os.environ, **self._env, "SIM_KEY": self.key}
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(_REPO_ROOT), env.get("PYTHONPATH")]))
        command = [sys.executable, "-m", "worker.sim", "--host", self.host, "--port", "0"]
        command += ["--port-file", str(port_file), *self._args]
        with self.log_path.open("wb") as log:
            self._proc = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            self._wait_ready(port_file)
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self, port_file: Path) -> None:
        deadline = time.monotonic() + self._startup_timeout
        while time.monotonic() < deadline:
            if not self.running:
                raise RuntimeError(f"simulator exited early: {self._log_tail()}")
            if port_file.exists() and self._healthy(port_file):
                self._admin = SimAdmin(self.base_url)
                return
            time.sleep(0.02)
        raise TimeoutError(f"simulator not ready within {self._startup_timeout}s: {self._log_tail()}")

    def _healthy(self, port_file: Path) -> bool:
        text = port_file.read_text().strip()
        if not text:
            return False
        self.port = int(text)
        try:
            return httpx.get(f"{self.base_url}/health", timeout=1.0).status_code == 200
        except httpx.TransportError:
            return False

    def _log_tail(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-2000:]
        except OSError:
            return "<no log>"

    def stop(self) -> None:
        if self._admin is not None:
            self._admin.close()
            self._admin = None
        if self._proc is not None:
            if self._proc.poll() is None:
                self._proc.terminate()
                try:
                    self._proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    self._proc.kill()
                    self._proc.wait(timeout=5)
            self._proc = None
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None

    def __enter__(self) -> SimulatorProcess:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
