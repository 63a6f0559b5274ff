"""Which waiting requests of a family go out in one start call.

A burst of enrichment or match requests with the same criteria would otherwise cost one start
call each, most of what such a request costs. Requests whose start bodies differ only in
`creator_ids` (the family rules' share key) start together instead: one call for the union of
their creators, split back per request by the API's per-creator `jobs[]` and `failures[]`.

Oldest first: a group is opened by its oldest row and filled in arrival order up to the family's
creator limit. A row marked `start_alone` (the API refused a shared call it was in, so one of the
requests may be the cause) always starts on its own call.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from worker.families import FamilyRules


def start_groups(rules: FamilyRules, rows: Sequence[tuple[str, dict[str, Any]]]) -> list[list[str]]:
    """The keys of `rows` (oldest first) grouped into start calls, in the order the calls go out."""
    groups: list[list[str]] = []
    open_groups: dict[str, tuple[list[str], int]] = {}  # share key -> (group, creators in it)
    for key, row in rows:
        share = None if row.get("start_alone") else rules.share_key(row["params"])
        if share is None:
            groups.append([key])
            continue
        units = rules.start_units(row["params"])
        current = open_groups.get(share)
        if current is not None and current[1] + units <= rules.start_share_limit:
            current[0].append(key)
            open_groups[share] = (current[0], current[1] + units)
            continue
        group = [key]
        groups.append(group)
        open_groups[share] = (group, units)
    return groups
