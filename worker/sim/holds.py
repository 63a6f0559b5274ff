"""`wait_seconds`: hold a results request until its jobs are terminal or the hold runs out.

Holds are coroutines parked on the state's change broadcast with a timeout at the next
instant a selected job becomes terminal, so hundreds of them cost no threads.
"""

from __future__ import annotations

from collections.abc import Callable

from worker.sim.jobs import Job
from worker.sim.state import SimState

_WAKE_SLACK_REAL = 0.0005


async def hold(state: SimState, wait_sim: float, pending: Callable[[], list[Job]]) -> None:
    """Returns once `pending()` is empty or `wait_sim` simulated seconds have passed."""
    if wait_sim <= 0 or not pending():
        return
    deadline = state.now() + wait_sim
    state.stats.hold_enter()
    try:
        while True:
            jobs = pending()
            now = state.now()
            if not jobs or now >= deadline:
                return
            changes = [change for change in (job.next_change() for job in jobs) if change is not None]
            wake = min([deadline, *changes])
            await state.wait_changed(state.clock.real_seconds(max(0.0, wake - now)) + _WAKE_SLACK_REAL)
    finally:
        state.stats.hold_exit()
