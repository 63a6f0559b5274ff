"""Pick the state store from `STATE_URL`: Redis for a fleet, the embedded SQLite file for one host."""

from __future__ import annotations

import os
from typing import Final
from urllib.parse import unquote, urlsplit

from worker.state.base import StateStore
from worker.state.redis_store import RedisStateStore, mask_url
from worker.state.sqlite_store import SqliteStateStore

REDIS_SCHEMES: Final = frozenset({"redis", "rediss", "unix"})
SQLITE_FILENAME: Final = "state.sqlite3"


def open_state_store(state_url: str | None, *, state_dir: str, namespace: str) -> StateStore:
    """The store `state_url` names; None or "" means the embedded store under `state_dir`.

    Accepted: `redis://`, `rediss://`, `unix://` (Redis, keys under `namespace`);
    `sqlite:///absolute/path` (SQLite at that file). Nothing is connected until first use.
    """
    if not state_url:
        return SqliteStateStore(os.path.join(os.path.abspath(state_dir), SQLITE_FILENAME))
    scheme = urlsplit(state_url).scheme.lower()
    if scheme in REDIS_SCHEMES:
        return RedisStateStore(state_url, namespace)
    if scheme == "sqlite":
        return SqliteStateStore(_sqlite_path(state_url))
    raise ValueError(
        f"STATE_URL {mask_url(state_url)!r} is not supported: use redis://, rediss:// or unix:// for Redis, "
        "sqlite:///absolute/path for an SQLite file, or leave it empty for the embedded store"
    )


def is_embedded(store: StateStore) -> bool:
    """True for the single-host SQLite store (which `run` refuses inside Kubernetes)."""
    return isinstance(store, SqliteStateStore)


def _sqlite_path(state_url: str) -> str:
    parts = urlsplit(state_url)
    path = unquote(parts.path)
    if parts.netloc or not path.startswith("/") or path.endswith("/") or parts.query:
        raise ValueError(f"STATE_URL {state_url!r} is not a valid SQLite URL: write sqlite:///absolute/path/to/file")
    return path
