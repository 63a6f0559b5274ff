"""The simulator object every route reaches through the aiohttp application."""

from __future__ import annotations

from aiohttp import web

from worker.sim.clock import SimClock
from worker.sim.config import SimConfig
from worker.sim.faults import FaultBook
from worker.sim.ratelimit import RateLimiter
from worker.sim.state import SimState


class Simulator:
    """Clock, state, rate limiter and fault book; `defaults` is what `POST /_sim/reset` restores."""

    def __init__(self, defaults: SimConfig, clock: SimClock, seed: int | None = None) -> None:
        self.defaults = defaults
        self.clock = clock
        self.state = SimState(defaults, clock, seed)
        self.limiter = RateLimiter(clock)
        self.faults = FaultBook()

    def reset(self) -> None:
        self.state.reset(self.defaults)
        self.limiter.clear()
        self.faults.clear()


SIM = web.AppKey("simulator", Simulator)


def sim_of(request: web.Request) -> Simulator:
    return request.app[SIM]
