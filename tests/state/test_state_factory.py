"""STATE_URL parsing: which store, where, and clear errors for the rest."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from worker.state.factory import is_embedded, open_state_store
from worker.state.redis_store import RedisStateStore
from worker.state.sqlite_store import SqliteStateStore


@pytest.mark.parametrize("url", [None, ""])
def test_empty_url_means_sqlite_in_state_dir(url: str | None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    store = open_state_store(url, state_dir=".toksta-state", namespace="ns")
    assert isinstance(store, SqliteStateStore)
    assert is_embedded(store)
    assert store.path == os.path.join(str(tmp_path), ".toksta-state", "state.sqlite3")
    store.ping()
    store.close()
    assert (tmp_path / ".toksta-state" / "state.sqlite3").exists()


def test_sqlite_url_with_absolute_path(tmp_path: Path) -> None:
    path = tmp_path / "elsewhere" / "my.db"
    store = open_state_store(f"sqlite://{path}", state_dir="ignored", namespace="ns")
    assert isinstance(store, SqliteStateStore)
    assert store.path == str(path)


@pytest.mark.parametrize(
    "url", ["redis://127.0.0.1:6379/0", "rediss://:pw@cache.example:6380/1", "unix:///run/redis.sock"]
)
def test_redis_urls(url: str) -> None:
    store = open_state_store(url, state_dir="ignored", namespace="deploy-a")
    assert isinstance(store, RedisStateStore)
    assert store.namespace == "deploy-a"
    assert not is_embedded(store)


@pytest.mark.parametrize(
    "url", ["postgres://u:s3cret@db/x", "sqlite://relative/path", "sqlite:///dir/", "127.0.0.1:6379"]
)
def test_unsupported_urls_are_refused_clearly(url: str) -> None:
    with pytest.raises(ValueError, match="STATE_URL") as caught:
        open_state_store(url, state_dir="ignored", namespace="ns")
    assert "s3cret" not in str(caught.value)
