"""The poll grid: every next poll on one grid per family, so rows polled apart come together."""

from __future__ import annotations

import pytest

from worker.contract.models import ANALYSIS_KINDS
from worker.runtime.poll_grid import nearest_round, phase

CADENCE = 14.0
EPOCH = 1_795_000_000.0  # a real epoch: the grid must hold at today's magnitudes


def on_grid(t: float, kind: str) -> bool:
    steps = t / CADENCE - phase(kind)
    return abs(steps - round(steps)) < 1e-6


@pytest.mark.parametrize("kind", [k.value for k in ANALYSIS_KINDS])
def test_rounds_fall_on_the_family_grid_within_half_a_cadence(kind: str) -> None:
    for offset in [0.0, 0.1, 3.3, 6.9, 7.1, 13.9]:
        t = EPOCH + offset
        at = nearest_round(t, CADENCE, kind)
        assert on_grid(at, kind), (offset, at)
        assert abs(at - t) <= CADENCE / 2 + 1e-6


def test_groups_polled_apart_share_the_next_round() -> None:
    """Three groups of one family polled 0.3, 4 and 6.5 s after a round: one next round for all."""
    kind = "thought_leaders"
    base = nearest_round(EPOCH, CADENCE, kind)
    nexts = {nearest_round(base + late + CADENCE, CADENCE, kind) for late in (0.3, 4.0, 6.5)}
    assert nexts == {base + CADENCE}


def test_a_round_in_step_is_followed_a_cadence_later() -> None:
    kind = "content_match"
    base = nearest_round(EPOCH, CADENCE, kind)
    assert nearest_round(base + 0.05 + CADENCE, CADENCE, kind) == pytest.approx(base + CADENCE)


def test_families_have_distinct_phases() -> None:
    phases = [phase(k.value) for k in ANALYSIS_KINDS]
    assert len(set(phases)) == len(phases)
    assert all(0 <= p < 1 for p in phases)


def test_a_cadence_must_be_positive() -> None:
    with pytest.raises(ValueError, match="cadence"):
        nearest_round(EPOCH, 0.0, "enrichment")
