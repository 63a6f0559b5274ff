"""The simulator's fast helpers write what the standard library's slower spelling writes.

Derived ids and timestamps name a job's rows and times on every poll: repeated polls must agree,
and ids made before these helpers were sped up must still be the same ids.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from worker.sim.clock import iso_from_epoch
from worker.sim.fakedata import _NAMESPACE, derived_uuid


@settings(max_examples=500, deadline=None)
@given(st.lists(st.text(max_size=40), min_size=1, max_size=4))
def test_derived_uuid_is_uuid5(parts: list[str]) -> None:
    assert derived_uuid(*parts) == str(uuid.uuid5(_NAMESPACE, "|".join(parts)))


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
