"""The state-store interface: versioned documents, sorted indexes and counters.

Everything the fleet shares (idempotency records, the in-flight registry, leases, the rate budget,
delivery counters) is built from these few primitives by the domain modules, so the Redis store
and the embedded SQLite store are interchangeable and tested against the same suite.

Semantics every implementation keeps:
- A document is a JSON object stored under a key with a version. Version 0 means "absent".
  Every successful write bumps the version by at least one.
- `write` is atomic together with its index operations: either all of them happen or none.
- A document whose TTL has passed reads as absent (version 0) and its index entries are ignored
  by nobody: callers remove index entries themselves in the same write that deletes a document.
- Times are wall-clock epoch seconds (time.time()), the same on every host.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, Protocol

ANY_VERSION: Final = -1
"""Pass as `expect_version` to write unconditionally."""


@dataclass(frozen=True, slots=True)
class Versioned:
    """A document and the version it was read at."""

    value: dict[str, Any]
    version: int


@dataclass(frozen=True, slots=True)
class IndexOp:
    """Put `member` into sorted index `index` with `score`, or remove it when score is None."""

    index: str
    member: str
    score: float | None


@dataclass(frozen=True, slots=True)
class Write:
    """One document write of a `write_many` batch (the arguments of `write`)."""

    key: str
    value: dict[str, Any] | None
    expect_version: int
    ttl_seconds: float | None = None
    index_ops: Sequence[IndexOp] = ()


class StateStoreError(RuntimeError):
    """The store could not be reached or answered with an error; the caller may retry."""


class StateStore(Protocol):
    """Shared state for every worker process of a deployment."""

    def get(self, key: str) -> Versioned | None:
        """The document at `key`, or None when absent or expired."""
        ...

    def get_many(self, keys: Sequence[str]) -> list[Versioned | None]:
        """`get` for several keys in one round trip, in the same order."""
        ...

    def write(
        self,
        key: str,
        value: dict[str, Any] | None,
        *,
        expect_version: int,
        ttl_seconds: float | None = None,
        index_ops: Sequence[IndexOp] = (),
    ) -> int | None:
        """Store `value` (or delete when None) if the current version equals `expect_version`.

        `expect_version=0` means the key must be absent (or expired); `ANY_VERSION` skips the
        check. Applies `index_ops` in the same atomic step. Returns the new version (0 after a
        delete), or None when the expectation failed and nothing was changed. `ttl_seconds`
        None keeps the document until it is deleted.
        """
        ...

    def write_many(self, writes: Sequence[Write]) -> list[int | None]:
        """`write` for several documents, each with its own version check; results in the same order.

        Not atomic as a group: each write succeeds or fails on its own, as if made one after the
        other. Stores that can make them in one round trip or transaction do (SQLite: one write
        transaction instead of one per document, which is what bounds a busy host's throughput).
        """
        ...

    def index_range(
        self, index: str, *, max_score: float, limit: int, min_score: float = float("-inf")
    ) -> list[tuple[str, float]]:
        """Members with min_score <= score <= max_score, lowest score first, at most `limit`."""
        ...

    def index_count(self, index: str, *, max_score: float = float("inf")) -> int:
        """How many members have score <= max_score."""
        ...

    def incr(self, key: str, amount: float = 1.0, *, ttl_seconds: float | None = None) -> float:
        """Atomically add `amount` to a counter (absent counts as 0) and return the new value.

        Counters live in their own namespace, apart from documents. `ttl_seconds` (re)sets the
        counter's expiry.
        """
        ...

    def read_counter(self, key: str) -> float:
        """A counter's value, 0 when absent or expired."""
        ...

    def delete_counter(self, key: str) -> None:
        """Remove a counter."""
        ...

    def ping(self) -> None:
        """Raise StateStoreError unless the store answers."""
        ...

    def describe(self) -> str:
        """Where the store lives, with no secret (a password in a URL is masked)."""
        ...

    def close(self) -> None:
        """Release connections; the store may be used again afterwards (it reconnects lazily)."""
        ...
