"""SQLite-only behaviour: the file, WAL, purging, several store objects on one file."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

from worker.state.base import IndexOp
from worker.state.sqlite_store import SqliteStateStore

WaitUntil = Callable[[Callable[[], bool]], None]


def test_creates_parent_directories_and_uses_wal(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "state.sqlite3"
    store = SqliteStateStore(str(path))
    try:
        store.ping()
        assert path.exists()
        with sqlite3.connect(path) as raw:
            assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        store.close()


def test_two_store_objects_share_one_file(tmp_path: Path) -> None:
    path = str(tmp_path / "state.sqlite3")
    first, second = SqliteStateStore(path), SqliteStateStore(path)
    try:
        version = first.write("k", {"v": 1}, expect_version=0, index_ops=[IndexOp("ix", "k", 2.0)])
        assert version is not None
        got = second.get("k")
        assert got is not None and got.version == version
        assert second.write("k", {"v": 2}, expect_version=0) is None
        assert second.index_range("ix", max_score=10, limit=5) == [("k", 2.0)]
        assert second.incr("c", 2) == 2 and first.read_counter("c") == 2
    finally:
        first.close()
        second.close()


def _rows(path: str, table: str) -> int:
    with sqlite3.connect(path) as raw:
        return int(raw.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])


def test_expired_rows_are_purged(sqlite_store: SqliteStateStore, wait_until: WaitUntil) -> None:
    for i in range(5):
        assert sqlite_store.write(f"k{i}", {}, expect_version=0, ttl_seconds=0.2) is not None
        sqlite_store.incr(f"c{i}", ttl_seconds=0.2)
    assert sqlite_store.write("kept", {}, expect_version=0) is not None
    sqlite_store.incr("kept")
    wait_until(lambda: sqlite_store.get("k4") is None and sqlite_store.read_counter("c4") == 0)
    assert _rows(sqlite_store.path, "documents") == 6  # expired rows linger until purged
    assert sqlite_store.purge_expired() == 10
    assert _rows(sqlite_store.path, "documents") == 1
    assert _rows(sqlite_store.path, "counters") == 1


def test_writes_purge_opportunistically(sqlite_store: SqliteStateStore, wait_until: WaitUntil) -> None:
    assert sqlite_store.write("old", {}, expect_version=0, ttl_seconds=0.2) is not None
    wait_until(lambda: sqlite_store.get("old") is None)
    sqlite_store._next_purge = 0.0  # the purge interval (30 s) is too long to wait for in a test
    assert sqlite_store.write("new", {}, expect_version=0) is not None
    assert _rows(sqlite_store.path, "documents") == 1
