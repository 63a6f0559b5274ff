"""The simulator's cached timestamp text is what `datetime` writes.

Timestamps name a job's times on every poll: repeated polls must agree, and agree with what the
simulator wrote before the text was cached per second.
"""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from worker.sim.clock import iso_from_epoch


@settings(max_examples=2000, deadline=None)
@given(
    st.one_of(
        st.floats(min_value=0, max_value=4e9),
        st.integers(min_value=1, max_value=4_000_000_000).flatmap(
            lambda s: st.sampled_from([s - 1e-7, s - 4e-7, s - 5e-7, s - 6e-7, s - 1e-6, float(s)])
        ),
    )
)
def test_iso_from_epoch_is_datetimes_second(epoch: float) -> None:
    """Including an instant a hair before a whole second, which datetime rounds up to it."""
    assert iso_from_epoch(epoch) == datetime.fromtimestamp(epoch, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
