"""The request registry: one document per request, in the shared state store.

A request's row moves waiting -> starting -> running -> finishing -> done. Its state decides
which per-kind index it sits in, so a family's tick finds its waiting, due and finishing rows
with one range query each, fleet-wide. Every change is a read-modify-write with a version check
(`update`), so the ingress (adding reply targets, cancels) and a tick (starting, polling,
finishing) never overwrite each other.
"""

from __future__ import annotations

import functools
import hashlib
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from worker.contract.models import ANALYSIS_KINDS, Kind
from worker.state.base import IndexOp, StateStore, Versioned, Write

WAITING: Final = "waiting"
STARTING: Final = "starting"
RUNNING: Final = "running"
FINISHING: Final = "finishing"
DONE: Final = "done"
PENDING_CANCEL: Final = "pending_cancel"  # a cancel request waiting for its target's tick

# Which index a row in each state lives in; a row is in at most one of them (plus `cancels`).
_STATE_INDEX: Final = {WAITING: "waiting", RUNNING: "running", STARTING: "running", FINISHING: "finishing"}
_INDEX_NAMES: Final = ("waiting", "running", "finishing", "cancels")


def namespace(user_id: str | None) -> str:
    """Requests of one AMQP user never touch another's: ids live under a hash of the user."""
    if not user_id:
        return "-"
    return hashlib.sha256(user_id.encode("utf-8")).hexdigest()[:24]


def request_key(user_id: str | None, request_id: str) -> str:
    return f"req:{namespace(user_id)}:{request_id}"


def tombstone_key(user_id: str | None, request_id: str) -> str:
    return f"tomb:{namespace(user_id)}:{request_id}"


@functools.cache
def index_name(index: str, kind: Kind | str) -> str:
    """The index's store key (cached: every row write names four of them)."""
    return f"idx:{index}:{Kind(kind).value}"


def row_score(row: dict[str, Any]) -> float:
    """When a row next needs its tick: its poll or start time, never later than its deadline."""
    state = row["state"]
    if state == WAITING:
        return float(min(row.get("next_start_at", 0.0), row["deadline_at"]))
    if state in (RUNNING, STARTING):
        return float(min(row.get("next_poll_at", 0.0), row.get("deadline_at", float("inf"))))
    # A row the intake is delivering itself waits for the tick until `tick_after` (rows.finished_by_intake).
    return max(float(row.get("finishing_since", 0.0)), float(row.get("tick_after") or 0.0))


def index_ops(key: str, row: dict[str, Any] | None, kind: Kind | str) -> list[IndexOp]:
    """Put `key` into the index its state calls for and out of every other of its kind."""
    wanted: dict[str, float] = {}
    if row is not None:
        state_index = _STATE_INDEX.get(row["state"])
        if state_index is not None:
            wanted[state_index] = row_score(row)
        if row.get("cancel") and row["state"] in (STARTING, RUNNING):
            wanted["cancels"] = 0.0
    return [IndexOp(index_name(name, kind), key, wanted.get(name)) for name in _INDEX_NAMES]


class ConcurrentUpdate(RuntimeError):
    """A row kept changing under us; the caller's unit of work is retried later."""


@dataclass(frozen=True, slots=True)
class Registry:
    """Reads and writes request rows and their indexes."""

    store: StateStore
    done_ttl_seconds: float
    tombstone_ttl_seconds: float

    def get(self, key: str) -> Versioned | None:
        return self.store.get(key)

    def get_many(self, keys: list[str]) -> list[Versioned | None]:
        return self.store.get_many(keys)

    def read_many(self, keys: list[str], known: Mapping[str, Versioned]) -> list[Versioned | None]:
        """The rows of `keys`: those in `known` as given, the others read in one call."""
        unread = [key for key in keys if key not in known]
        read = dict(zip(unread, self.store.get_many(unread), strict=True)) if unread else {}
        return [known[key] if key in known else read[key] for key in keys]

    def create(self, key: str, row: dict[str, Any]) -> bool:
        """Insert a new row; False when the key already exists (a concurrent duplicate)."""
        return self.create_many([(key, row)])[0]

    def create_many(self, rows: list[tuple[str, dict[str, Any]]]) -> list[bool]:
        """`create` for several (key, row): one batched write; False where the key already existed."""
        writes = [Write(key, row, 0, self._ttl(row), index_ops(key, row, row["kind"])) for key, row in rows]
        return [version is not None for version in self.store.write_many(writes)] if writes else []

    def save(self, key: str, row: dict[str, Any], version: int) -> int | None:
        """Write `row` if it is still at `version`; the new version, or None when it changed."""
        return self.save_many([(key, row, version)])[0]

    def update(
        self, key: str, mutate: Callable[[dict[str, Any]], dict[str, Any] | None], *, attempts: int = 20
    ) -> dict[str, Any] | None:
        """Apply `mutate` to the current row until the write wins; returns the row as written.

        `mutate` gets the row as just read (its own: the stores decode every read afresh) and returns
        the new row, or None to leave the row as it is (then the current row is returned, so a
        mutation that returns None must not have changed it). A missing row returns None without
        calling `mutate`.
        """
        return self.update_many({key: mutate}, attempts=attempts)[key]

    def save_many(self, rows: list[tuple[str, dict[str, Any], int]]) -> list[int | None]:
        """`save` for several (key, row, version): one batched write; None where a row had changed."""
        writes = [
            Write(key, row, version, self._ttl(row), index_ops(key, row, row["kind"])) for key, row, version in rows
        ]
        return self.store.write_many(writes) if writes else []

    def update_many(
        self,
        mutations: Mapping[str, Callable[[dict[str, Any]], dict[str, Any] | None]],
        *,
        attempts: int = 20,
        known: Mapping[str, Versioned] | None = None,
    ) -> dict[str, dict[str, Any] | None]:
        """`update` for several rows: one read and one batched write per round.

        A row that changed under us is read and mutated again in the next round, so each mutation
        may run more than once, as with `update`. Returns key -> the row as written (or as it is
        when its mutation returned None; None when the row is missing). `known`: see
        `update_many_versioned`.
        """
        updated = self.update_many_versioned(mutations, attempts=attempts, known=known)
        return {key: None if current is None else current.value for key, current in updated.items()}

    def update_many_versioned(
        self,
        mutations: Mapping[str, Callable[[dict[str, Any]], dict[str, Any] | None]],
        *,
        attempts: int = 20,
        known: Mapping[str, Versioned] | None = None,
    ) -> dict[str, Versioned | None]:
        """`update_many`, returning each row with the version it was written (or found) at.

        `known`: rows the caller has just read (or written), which its first round starts from
        instead of reading them again (those of other keys are ignored). The ones used are given
        away: a mutation changes them in place. A tick reads its due rows, then writes each of them
        once or twice; reading every row again before each write was 4 of the 9 documents a request
        decoded. One that went stale meanwhile only loses its write, and is then read afresh, as
        any row changed under us is.
        """
        results: dict[str, Versioned | None] = {}
        pending = dict(mutations)
        given: Mapping[str, Versioned] = known or {}
        for _ in range(attempts):
            if not pending:
                return results
            keys = list(pending)
            staged: list[tuple[str, dict[str, Any], int]] = []
            for key, current in zip(keys, self.read_many(keys, given), strict=True):
                if current is None:
                    results[key] = None
                    del pending[key]
                    continue
                new = pending[key](current.value)
                if new is None:
                    results[key] = current
                    del pending[key]
                    continue
                staged.append((key, new, current.version))
            given = {}  # known rows serve the first round only
            for (key, new, _), version in zip(staged, self.save_many(staged), strict=True):
                if version is not None:
                    results[key] = Versioned(new, version)
                    del pending[key]
        if pending:
            raise ConcurrentUpdate(f"rows {sorted(pending)[:5]} changed {attempts} times while being updated")
        return results

    def due(self, index: str, kind: Kind | str, *, until: float, limit: int) -> list[str]:
        return [m for m, _ in self.store.index_range(index_name(index, kind), max_score=until, limit=limit)]

    def count_waiting(self) -> int:
        return sum(self.store.index_count(index_name("waiting", kind)) for kind in ANALYSIS_KINDS)

    def next_due(self, index: str, kind: Kind | str) -> float | None:
        first = self.store.index_range(index_name(index, kind), max_score=float("inf"), limit=1)
        return first[0][1] if first else None

    def tombstone(self, user_id: str | None, request_id: str, cancel_request_id: str) -> None:
        self.store.write(
            tombstone_key(user_id, request_id),
            {"canceled_by": cancel_request_id, "at": time.time()},
            expect_version=-1,
            ttl_seconds=self.tombstone_ttl_seconds,
        )

    def tombstoned(self, user_id: str | None, request_id: str) -> bool:
        return self.store.get(tombstone_key(user_id, request_id)) is not None

    def _ttl(self, row: dict[str, Any]) -> float | None:
        return self.done_ttl_seconds if row["state"] == DONE else None
