"""Simulated time: one clock scaled by TOKSTA_TIME_SCALE.

Every duration the simulator talks about (job run times, rate windows, holds, slow
responses) is in simulated seconds; real seconds = simulated seconds x scale, so a
test can live through minutes of API time in a fraction of a second.
"""

from __future__ import annotations

import asyncio
import functools
import math
import time
from datetime import UTC, datetime


class SimClock:
    """Maps a monotonic real clock onto simulated seconds since the simulator started."""

    def __init__(self, scale: float = 1.0) -> None:
        if not scale > 0:
            raise ValueError(f"time scale must be > 0, got {scale!r}")
        self.scale = float(scale)
        self._mono0 = time.monotonic()
        self._epoch0 = time.time()

    def now(self) -> float:
        """Simulated seconds elapsed since the clock started."""
        return (time.monotonic() - self._mono0) / self.scale

    def real_epoch(self, sim_t: float) -> float:
        """Real unix time (seconds) at which simulated instant `sim_t` happens."""
        return self._epoch0 + sim_t * self.scale

    def real_seconds(self, sim_seconds: float) -> float:
        return sim_seconds * self.scale

    def iso(self, sim_t: float) -> str:
        """ISO-8601 UTC timestamp (seconds precision, `Z`) of a simulated instant, as the API writes them."""
        return iso_from_epoch(self.real_epoch(sim_t))

    async def sleep(self, sim_seconds: float) -> None:
        await asyncio.sleep(max(0.0, sim_seconds * self.scale))


def iso_from_epoch(epoch: float) -> str:
    """The whole second `epoch` falls in, as the API writes it. Rounded to microseconds first, as
    `datetime.fromtimestamp` does, so a time a hair before a second reads as that second."""
    return _iso_second(math.floor(round(epoch, 6)))


@functools.lru_cache(maxsize=4096)
def _iso_second(second: int) -> str:
    """Cached: every job view carries several timestamps, mostly of the same few seconds."""
    return datetime.fromtimestamp(second, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
