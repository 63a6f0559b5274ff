"""New work wakes its family's tick on an unlimited key: a request reaching an idle worker is started
before the moment its family's tick was next due (an idle tick re-arms through the longest wait
queue, 5 s). The budget learns that the key is unlimited from the first response, so a first
request goes through before the one measured."""

from __future__ import annotations

import time
from collections.abc import Callable

from worker.amqp.topology import WAIT_DELAYS_MS
from worker.ops.harness import Deployment, WorkerGroup
from worker.runtime.ticks import ARMED, tick_key
from worker.sim.testing import SimulatorProcess
from worker.state.factory import open_state_store

TL_START = "POST /v1/creators/thought-leaders"
KEYWORDS = ["B2B SaaS", "demand generation", "marketing analytics", "growth", "ABM"]
LONGEST_WAIT = max(WAIT_DELAYS_MS) / 1000


def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.01)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def test_a_request_at_an_idle_worker_starts_before_its_tick_was_due(
    deployment: Deployment, sim: SimulatorProcess
) -> None:
    state_dir = str(deployment.workdir / "state")
    store = open_state_store(deployment.state_url, state_dir=state_dir, namespace=deployment.request_queue)
    due_at: list[float] = []

    def just_rearmed_idle() -> bool:
        """The thought-leaders tick armed through the longest wait queue a moment ago."""
        doc = store.get(tick_key("thought_leaders"))
        if doc is None or doc.value["state"] != ARMED:
            return False
        if doc.value["runs_at"] - time.time() < LONGEST_WAIT - 0.5:
            return False
        due_at.append(float(doc.value["runs_at"]))
        return True

    started = lambda: sim.admin.stats()["calls"].get(TL_START, 0) >= 2  # noqa: E731
    sim.admin.configure(rate_limit=0)
    try:
        group = WorkerGroup(deployment, processes=1, threads=4, env={"TICK_MAX_IDLE_SECONDS": "60"})
        with group, deployment.requester() as client:
            client.publish({"request_id": "first", "kind": "thought_leaders", "params": {"keywords": KEYWORDS}})
            assert [r.body["status"] for r in client.collect(1, timeout=30)] == ["succeeded"]
            wait_until(just_rearmed_idle, 30, "the thought-leaders tick to re-arm idle")
            client.publish({"request_id": "woken", "kind": "thought_leaders", "params": {"keywords": KEYWORDS}})
            wait_until(started, 2 * LONGEST_WAIT, "the start call")
            assert time.time() < due_at[-1], "the start waited for the idle tick's own message"
            replies = client.collect(1, timeout=30)
        assert [r.body["status"] for r in replies] == ["succeeded"]
    finally:
        store.close()
