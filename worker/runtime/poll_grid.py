"""When a family's poll rounds fall: on one grid per family, so that its rows share their rounds.

A row's next poll used to count from the round that polled it (its start plus the cadence). That
keeps the rows of one round together, but rows polled at another time stayed apart for good: those
started while the starts were being paced, those a budget refusal cut from a round, those behind a
slow call. Each such group then made its own round, and its own part-empty call, topped up with
rows of the next group (which that moved, not merged). Under load a family of 45 discovery jobs
went on making three rounds of one call a cadence instead of one round of three, and fewer rows
than a call holds could cost a call per group.

Every next poll is instead the grid instant nearest to when it is due: instants a cadence apart,
shifted by a phase per family (so that the families' rounds do not all ask the budget at once).
A group polled off the grid is back on it after its next poll; a row is polled between half a
cadence and one and a half cadences after its last poll (a cadence, once the family is in step).
"""

from __future__ import annotations

from worker.contract.models import ANALYSIS_KINDS

# Each family's offset on the grid, as a share of the cadence: the families spread evenly.
_PHASES = {kind.value: index / len(ANALYSIS_KINDS) for index, kind in enumerate(ANALYSIS_KINDS)}


def phase(kind: str) -> float:
    """The family's offset on the grid, as a share of the cadence."""
    return _PHASES[kind]


def nearest_round(t: float, cadence: float, kind: str) -> float:
    """The instant of `kind`'s poll grid nearest `t` (epoch seconds; `cadence` in seconds, > 0)."""
    if cadence <= 0:
        raise ValueError(f"cadence must be positive, not {cadence}")
    shift = phase(kind)
    return (round(t / cadence - shift) + shift) * cadence
