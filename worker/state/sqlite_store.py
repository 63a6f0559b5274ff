"""The embedded state store: one SQLite file shared by the worker processes of one host.

Why it looks the way it does:
- WAL mode lets readers run beside the one writer; `BEGIN IMMEDIATE` takes the write lock before
  the version check, so a CAS write and its index operations are one atomic step across processes.
- Document writes are group-committed: a process's threads hand their writes to one writer thread,
  which makes everything queued in one transaction. Ten threads each running their own small
  transaction spent their time queueing for the write lock (and, holding it, for the GIL); one
  transaction per batch holds the lock once. Processes queue on a lock file (`flock`) before they
  begin, so the kernel hands the lock over the moment it is released, where SQLite's own busy
  handler sleeps and retries (1, 2, 5, 10... ms). `busy_timeout` stays as the fallback.
- SQLite connections must not cross a fork and are best kept to one thread, so each thread of
  each process opens its own connection lazily. Connections inherited from a parent process are
  never touched again (not even closed: closing one in the child can disturb the parent's locks).
- Versions come from one database-wide sequence, so a document that is deleted (or expires) and
  created again never reuses a version a stale reader may still hold.
- `synchronous=NORMAL` in WAL mode survives a process crash and may lose the last commits on
  power loss: the same promise as Redis with `appendfsync everysec`.
"""

from __future__ import annotations

import fcntl
import os
import queue
import sqlite3
import threading
import time
import weakref
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Final

from worker.state._args import check_index_ops, check_ttl, check_write_args, dump_document, load_document
from worker.state.base import ANY_VERSION, IndexOp, StateStoreError, Versioned, Write

BUSY_TIMEOUT_SECONDS: Final = 15.0
PURGE_INTERVAL_SECONDS: Final = 30.0
PURGE_BATCH: Final = 1000
_GET_MANY_CHUNK: Final = 500

_SCHEMA: Final = (
    """CREATE TABLE IF NOT EXISTS documents (
        key TEXT PRIMARY KEY, version INTEGER NOT NULL, value TEXT NOT NULL, expires_at REAL
    ) WITHOUT ROWID""",
    "CREATE INDEX IF NOT EXISTS documents_expiry ON documents (expires_at) WHERE expires_at IS NOT NULL",
    """CREATE TABLE IF NOT EXISTS index_entries (
        idx TEXT NOT NULL, member TEXT NOT NULL, score REAL NOT NULL, PRIMARY KEY (idx, member)
    ) WITHOUT ROWID""",
    "CREATE INDEX IF NOT EXISTS index_entries_by_score ON index_entries (idx, score, member)",
    """CREATE TABLE IF NOT EXISTS counters (
        key TEXT PRIMARY KEY, value REAL NOT NULL, expires_at REAL
    ) WITHOUT ROWID""",
    "CREATE INDEX IF NOT EXISTS counters_expiry ON counters (expires_at) WHERE expires_at IS NOT NULL",
    "CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID",
    "INSERT OR IGNORE INTO meta (name, value) VALUES ('version_seq', 0)",
)

# Connections inherited across a fork: kept referenced forever so they are never closed in the child.
_INHERITED: list[sqlite3.Connection] = []


class SqliteStateStore:
    """`StateStore` on a local SQLite file, for the processes of one host."""

    def __init__(self, path: str) -> None:
        self._path = os.path.abspath(path)
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._gate_fd: int | None = None
        self._commits: _GroupCommit | None = None
        self._conns: list[sqlite3.Connection] = []
        self._local = threading.local()
        self._generation = 0
        self._next_purge = 0.0
        ref = weakref.WeakMethod(self._after_fork_in_child)
        os.register_at_fork(after_in_child=lambda: _call_if_alive(ref))

    def __repr__(self) -> str:
        return f"SqliteStateStore({self.describe()!r})"

    @property
    def path(self) -> str:
        """The database file."""
        return self._path

    # --- connections -------------------------------------------------------------------------

    def _after_fork_in_child(self) -> None:
        """Runs in the child right after fork, while it has one thread: forget the parent's links."""
        _INHERITED.extend(self._conns)
        self._conns = []
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._gate_fd = None  # the parent's lock file description must not be shared: reopen
        self._commits = None  # the parent's writer thread does not exist here
        self._generation += 1

    def _conn(self) -> sqlite3.Connection:
        """This thread's connection, opened on first use (and again after a fork or close())."""
        local = self._local
        if getattr(local, "generation", None) == self._generation and local.pid == os.getpid():
            conn: sqlite3.Connection = local.conn
            return conn
        conn = self._open()
        with self._lock:
            self._conns.append(conn)
            local.conn, local.pid, local.generation = conn, os.getpid(), self._generation
        return conn

    def _open(self) -> sqlite3.Connection:
        try:
            os.makedirs(os.path.dirname(self._path), exist_ok=True)
            # isolation_level=None: we issue BEGIN IMMEDIATE / COMMIT ourselves.
            # check_same_thread=False only so close() can close every thread's connection.
            conn = sqlite3.connect(
                self._path, timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None, check_same_thread=False
            )
            conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_SECONDS * 1000)}")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute("PRAGMA journal_size_limit = 67108864")
            conn.execute("PRAGMA cache_size = -512")  # KiB: one connection per thread; the OS caches the file
            with _immediate(conn):
                for statement in _SCHEMA:
                    conn.execute(statement)
        except (sqlite3.Error, OSError) as exc:
            raise StateStoreError(f"cannot open the state store at {self._path}: {exc}") from exc
        return conn

    @contextmanager
    def _write_gate(self) -> Iterator[None]:
        """Hold the store's writer lock (this process's threads, then the lock file across processes)."""
        with self._write_lock:
            if self._gate_fd is None:
                try:
                    self._gate_fd = os.open(self._path + ".lock", os.O_RDWR | os.O_CREAT, 0o600)
                except OSError as exc:
                    raise StateStoreError(f"cannot open the lock file of {self._path}: {exc}") from exc
            fcntl.flock(self._gate_fd, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(self._gate_fd, fcntl.LOCK_UN)

    @contextmanager
    def _guard(self) -> Iterator[sqlite3.Connection]:
        """This thread's connection, with SQLite errors turned into StateStoreError."""
        conn = self._conn()
        try:
            yield conn
        except sqlite3.Error as exc:
            raise StateStoreError(f"state store {self._path}: {exc}") from exc

    # --- documents ---------------------------------------------------------------------------

    def get(self, key: str) -> Versioned | None:
        return self.get_many([key])[0]

    def get_many(self, keys: Sequence[str]) -> list[Versioned | None]:
        with self._guard() as conn:
            found = {
                key: Versioned(value=load_document(value), version=version)
                for key, version, value in _live_documents(conn, "key, version, value", keys, time.time())
            }
        return [found.get(key) for key in keys]

    def write(
        self,
        key: str,
        value: dict[str, Any] | None,
        *,
        expect_version: int,
        ttl_seconds: float | None = None,
        index_ops: Sequence[IndexOp] = (),
    ) -> int | None:
        return self.write_many([Write(key, value, expect_version, ttl_seconds, index_ops)])[0]

    def write_many(self, writes: Sequence[Write]) -> list[int | None]:
        for w in writes:
            check_write_args(w.value, w.expect_version, w.ttl_seconds)
            check_index_ops(w.index_ops)
        texts = [None if w.value is None else dump_document(w.value) for w in writes]
        if not writes:
            return []
        with self._lock:
            if self._commits is None:
                self._commits = _GroupCommit(self._commit)
            commits = self._commits
        return commits.submit(list(zip(writes, texts, strict=True)))

    def _commit(self, writes: list[tuple[Write, str | None]]) -> list[int | None]:
        """The writer thread: every queued write in one transaction."""
        with self._guard() as conn, self._write_gate(), _immediate(conn):
            now = time.time()
            versions = _VersionSequence(conn)
            results = _write_batch(conn, writes, now, versions)
            versions.save()
            self._maybe_purge(conn, now)
            return results

    # --- indexes -----------------------------------------------------------------------------

    def index_range(
        self, index: str, *, max_score: float, limit: int, min_score: float = float("-inf")
    ) -> list[tuple[str, float]]:
        if limit <= 0:
            return []
        with self._guard() as conn:
            rows = conn.execute(
                "SELECT member, score FROM index_entries WHERE idx = ? AND score >= ? AND score <= ?"
                " ORDER BY score, member LIMIT ?",
                (index, min_score, max_score, limit),
            ).fetchall()
        return [(member, float(score)) for member, score in rows]

    def index_count(self, index: str, *, max_score: float = float("inf")) -> int:
        with self._guard() as conn:
            row = conn.execute(
                "SELECT COUNT(*) FROM index_entries WHERE idx = ? AND score <= ?", (index, max_score)
            ).fetchone()
        return int(row[0])

    # --- counters ----------------------------------------------------------------------------

    def incr(self, key: str, amount: float = 1.0, *, ttl_seconds: float | None = None) -> float:
        check_ttl(ttl_seconds)
        with self._guard() as conn, self._write_gate(), _immediate(conn):
            now = time.time()
            row = conn.execute(
                "SELECT value, expires_at FROM counters WHERE key = ? AND (expires_at IS NULL OR expires_at > ?)",
                (key, now),
            ).fetchone()
            current, expires_at = (0.0, None) if row is None else (float(row[0]), row[1])
            if ttl_seconds is not None:
                expires_at = now + ttl_seconds
            new_value = current + amount
            conn.execute(
                "INSERT OR REPLACE INTO counters (key, value, expires_at) VALUES (?, ?, ?)",
                (key, new_value, expires_at),
            )
            self._maybe_purge(conn, now)
            return new_value

    def read_counter(self, key: str) -> float:
        with self._guard() as conn:
            row = conn.execute(
                "SELECT value FROM counters WHERE key = ? AND (expires_at IS NULL OR expires_at > ?)",
                (key, time.time()),
            ).fetchone()
        return 0.0 if row is None else float(row[0])

    def delete_counter(self, key: str) -> None:
        with self._guard() as conn, self._write_gate(), _immediate(conn):
            conn.execute("DELETE FROM counters WHERE key = ?", (key,))

    # --- housekeeping ------------------------------------------------------------------------

    def purge_expired(self) -> int:
        """Delete up to one batch of expired documents and counters now; returns how many."""
        with self._guard() as conn, self._write_gate(), _immediate(conn):
            return _purge(conn, time.time())

    def _maybe_purge(self, conn: sqlite3.Connection, now: float) -> None:
        """Inside a write transaction: purge a batch of expired rows every so often, per process."""
        if time.monotonic() < self._next_purge:
            return
        self._next_purge = time.monotonic() + PURGE_INTERVAL_SECONDS
        _purge(conn, now)

    def ping(self) -> None:
        with self._guard() as conn:
            conn.execute("SELECT 1 FROM meta LIMIT 1").fetchone()

    def describe(self) -> str:
        return f"sqlite:{self._path}"

    def close(self) -> None:
        """Close this process's connections (call it when no other thread is using the store)."""
        with self._lock:
            conns, self._conns = self._conns, []
            self._generation += 1
        for conn in conns:
            conn.close()
        with self._write_lock:
            gate, self._gate_fd = self._gate_fd, None
        if gate is not None:
            os.close(gate)


class _Pending:
    """Writes one caller handed to the writer thread, and their outcome."""

    def __init__(self, writes: list[tuple[Write, str | None]]) -> None:
        self.writes = writes
        self.done = threading.Event()
        self.results: list[int | None] = []
        self.error: BaseException | None = None


class _GroupCommit:
    """One writer thread per process: callers queue their writes and wait; the thread commits
    whatever is queued in one transaction and hands each caller its results (or the error)."""

    def __init__(self, commit: Any) -> None:
        self._commit = commit
        self._queue: queue.SimpleQueue[_Pending] = queue.SimpleQueue()
        threading.Thread(target=self._run, name="toksta-sqlite-writer", daemon=True).start()

    def submit(self, writes: list[tuple[Write, str | None]]) -> list[int | None]:
        pending = _Pending(writes)
        self._queue.put(pending)
        pending.done.wait()
        if pending.error is not None:
            raise pending.error
        return pending.results

    def _run(self) -> None:
        while True:
            batch = [self._queue.get()]
            while True:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            try:
                results = self._commit([w for pending in batch for w in pending.writes])
            except BaseException as exc:  # noqa: BLE001 (every waiting caller gets the error)
                for pending in batch:
                    pending.error = exc
                    pending.done.set()
                continue
            offset = 0
            for pending in batch:
                pending.results = results[offset : offset + len(pending.writes)]
                offset += len(pending.writes)
                pending.done.set()


def _call_if_alive(ref: weakref.WeakMethod[Any]) -> None:
    method = ref()
    if method is not None:
        method()


@contextmanager
def _immediate(conn: sqlite3.Connection) -> Iterator[None]:
    """A write transaction that holds the database's write lock from its first statement."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def _write_batch(
    conn: sqlite3.Connection, writes: list[tuple[Write, str | None]], now: float, versions: _VersionSequence
) -> list[int | None]:
    """A batch's CAS writes inside one open write transaction: each write's new version, or None
    where it lost.

    The writes are decided in order against the versions as the batch leaves them (one read of
    the current versions), and only what the batch leaves behind is written, a few statements per
    table (`executemany`). The writer holds the store's write lock meanwhile, and each statement
    is another wait for the GIL among the process's busy threads: per write it took four.
    """
    keys = list(dict.fromkeys(w.key for w, _ in writes))
    current: dict[str, int] = dict(_live_documents(conn, "key, version", keys, now))
    documents: dict[str, tuple[int, str, float | None] | None] = {}  # key -> what it ends as (None: gone)
    entries: dict[tuple[str, str], float | None] = {}  # (index, member) -> its score in the end
    results: list[int | None] = []
    for w, text in writes:
        if w.expect_version not in (ANY_VERSION, current.get(w.key, 0)):
            results.append(None)
            continue
        version = 0 if text is None else versions.take()
        current[w.key] = version
        expires_at = None if w.ttl_seconds is None else now + w.ttl_seconds
        documents[w.key] = None if text is None else (version, text, expires_at)
        for op in w.index_ops:
            entries[(op.index, op.member)] = op.score
        results.append(version)
    conn.executemany("DELETE FROM documents WHERE key = ?", [(k,) for k, d in documents.items() if d is None])
    conn.executemany(
        "INSERT OR REPLACE INTO documents (key, version, value, expires_at) VALUES (?, ?, ?, ?)",
        [(k, *d) for k, d in documents.items() if d is not None],
    )
    conn.executemany(
        "DELETE FROM index_entries WHERE idx = ? AND member = ?",
        [pair for pair, score in entries.items() if score is None],
    )
    conn.executemany(
        "INSERT OR REPLACE INTO index_entries (idx, member, score) VALUES (?, ?, ?)",
        [(*pair, score) for pair, score in entries.items() if score is not None],
    )
    return results


def _live_documents(conn: sqlite3.Connection, columns: str, keys: Sequence[str], now: float) -> list[Any]:
    """`columns` of those of `keys` whose document exists and has not expired, in chunks of keys."""
    rows: list[Any] = []
    for start in range(0, len(keys), _GET_MANY_CHUNK):
        chunk = list(keys[start : start + _GET_MANY_CHUNK])
        marks = ",".join("?" * len(chunk))
        rows += conn.execute(
            f"SELECT {columns} FROM documents WHERE key IN ({marks})"  # noqa: S608 (fixed columns, placeholders)
            " AND (expires_at IS NULL OR expires_at > ?)",
            (*chunk, now),
        ).fetchall()
    return rows


class _VersionSequence:
    """The store-wide version counter, read once per write transaction and written back once at its
    end: the transaction holds the write lock, so no other writer takes a number meanwhile, and a
    batch of n writes costs two statements for its versions instead of 2n."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        row = conn.execute("SELECT value FROM meta WHERE name = 'version_seq'").fetchone()
        self._first = self._last = int(row[0])

    def take(self) -> int:
        self._last += 1
        return self._last

    def save(self) -> None:
        if self._last != self._first:
            self._conn.execute("UPDATE meta SET value = ? WHERE name = 'version_seq'", (self._last,))


def _purge(conn: sqlite3.Connection, now: float) -> int:
    removed = 0
    for table in ("documents", "counters"):
        cursor = conn.execute(
            f"DELETE FROM {table} WHERE key IN (SELECT key FROM {table}"  # noqa: S608 (fixed names)
            " WHERE expires_at IS NOT NULL AND expires_at <= ? LIMIT ?)",
            (now, PURGE_BATCH),
        )
        removed += cursor.rowcount
    return removed
