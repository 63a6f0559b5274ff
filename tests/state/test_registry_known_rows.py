"""`Registry.update_many_versioned(known=...)`: a write that starts from rows the caller has read.

A tick reads its due rows and writes them after its calls; the write starts from that read instead
of reading again. What must hold: a known row still current is written without another read, and
one that changed meanwhile loses its write, is read afresh and mutated again (nothing it missed is
overwritten). Both stores, real.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from worker.runtime.registry import Registry
from worker.state.base import StateStore, Versioned


class ReadCounting:
    """The store, counting the documents read through `get_many` (every other call goes through)."""

    def __init__(self, inner: StateStore) -> None:
        self._inner = inner
        self.read: list[str] = []

    def get_many(self, keys: Sequence[str]) -> list[Versioned | None]:
        self.read.extend(keys)
        return self._inner.get_many(keys)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def _row(state: str, **extra: Any) -> dict[str, Any]:
    return {"kind": "enrichment", "state": state, "deadline_at": 1e12, "targets": [], **extra}


def _registry(store: StateStore) -> tuple[Registry, ReadCounting]:
    counting = ReadCounting(store)
    return Registry(counting, done_ttl_seconds=60, tombstone_ttl_seconds=60), counting


def _bump(row: dict[str, Any]) -> dict[str, Any]:
    row["polls"] = int(row.get("polls") or 0) + 1
    return row


def test_a_current_known_row_is_written_without_another_read(store: StateStore) -> None:
    registry, counting = _registry(store)
    assert registry.create_many([("a", _row("finishing")), ("b", _row("finishing"))]) == [True, True]
    known = {key: current for key, current in zip("ab", registry.get_many(["a", "b"]), strict=True) if current}
    counting.read.clear()

    written = registry.update_many_versioned(dict.fromkeys("ab", _bump), known=known)

    assert counting.read == []
    for key in "ab":
        current = written[key]
        assert current is not None and current.value["polls"] == 1
        assert store.get(key) == current  # the version returned is the one stored


def test_a_stale_known_row_loses_its_write_and_is_mutated_again_from_a_fresh_read(store: StateStore) -> None:
    registry, counting = _registry(store)
    registry.create("a", _row("running"))
    stale = registry.get("a")
    assert stale is not None
    # Meanwhile another writer (the ingress adding a sender, say) changes the row.
    registry.update("a", lambda r: dict(r, targets=[{"queue": "late"}]))
    counting.read.clear()

    written = registry.update_many_versioned({"a": _bump}, known={"a": stale})

    assert counting.read == ["a"]  # read once, after the stale write lost
    current = written["a"]
    assert current is not None
    assert current.value["polls"] == 1
    assert current.value["targets"] == [{"queue": "late"}]  # the other writer's change survives
    assert store.get("a") == current


def test_known_rows_serve_only_the_keys_being_updated(store: StateStore) -> None:
    registry, counting = _registry(store)
    registry.create_many([("a", _row("running")), ("b", _row("running"))])
    known_b = registry.get("b")
    assert known_b is not None
    counting.read.clear()

    written = registry.update_many({"a": _bump}, known={"b": known_b})

    assert counting.read == ["a"]
    assert written["a"] is not None and written["a"]["polls"] == 1
    current_b = store.get("b")
    assert current_b is not None and "polls" not in current_b.value
