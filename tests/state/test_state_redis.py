"""Redis-only behaviour: namespacing, secrets, unreachable servers, persistence warnings."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import pytest
import redis

from worker.state.base import IndexOp, StateStoreError
from worker.state.redis_store import RedisStateStore, mask_url

REDIS_URL = "redis://127.0.0.1:6379/0"  # the same server as conftest's stores


def test_describe_and_repr_mask_the_password() -> None:
    store = RedisStateStore("redis://:s3cret@127.0.0.1:6379/0", "ns")
    for text in (store.describe(), repr(store), str(store)):
        assert "s3cret" not in text
        assert "127.0.0.1:6379/0" in text
        assert "***" in text


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("redis://user:pw@host:6379/1", "redis://user:***@host:6379/1"),
        ("rediss://:p%40ss@host/0", "rediss://:***@host/0"),
        ("unix:///run/redis.sock?db=2&password=pw", "unix:///run/redis.sock?db=2&password=***"),
        ("redis://host:6379/0", "redis://host:6379/0"),
    ],
)
def test_mask_url(url: str, masked: str) -> None:
    assert mask_url(url) == masked


def test_unreachable_redis_fails_fast_without_the_password() -> None:
    store = RedisStateStore("redis://:s3cret@127.0.0.1:1/0", "ns")
    started = time.monotonic()
    with pytest.raises(StateStoreError) as caught:
        store.ping()
    with pytest.raises(StateStoreError):
        store.write("k", {}, expect_version=0)
    with pytest.raises(StateStoreError):
        store.get_many(["a", "b"])
    assert time.monotonic() - started < 5
    assert "s3cret" not in str(caught.value)
    assert "s3cret" not in repr(caught.value)
    assert caught.value.__cause__ is None


def test_wrong_password_error_hides_it(namespace: str) -> None:
    store = RedisStateStore("redis://nobody-here:s3cret@127.0.0.1:6379/0", namespace)
    with pytest.raises(StateStoreError) as caught:
        store.ping()
    assert "s3cret" not in str(caught.value)


def test_keys_stay_under_the_namespace(redis_store: RedisStateStore, namespace: str) -> None:
    redis_store.write("doc", {"v": 1}, expect_version=0, index_ops=[IndexOp("ix", "m", 1.0)])
    redis_store.incr("hits")
    client = redis.Redis.from_url(REDIS_URL, decode_responses=True)
    try:
        keys = set(client.scan_iter(match=f"{namespace}:*"))
    finally:
        client.close()
    assert keys == {f"{namespace}:d:doc", f"{namespace}:i:ix", f"{namespace}:c:hits", f"{namespace}:seq"}


def test_namespaces_do_not_collide(redis_store: RedisStateStore) -> None:
    other_ns = f"{redis_store.namespace}-other"
    other = RedisStateStore(REDIS_URL, other_ns)
    try:
        assert redis_store.write("k", {"who": "a"}, expect_version=0) is not None
        assert other.get("k") is None
        assert other.write("k", {"who": "b"}, expect_version=0) is not None
        got = redis_store.get("k")
        assert got is not None and got.value == {"who": "a"}
    finally:
        other.write("k", None, expect_version=-1)
        client = redis.Redis.from_url(REDIS_URL)
        client.delete(f"{other_ns}:seq")
        client.close()
        other.close()


def test_persistence_warnings_report_missing_appendonly(redis_store: RedisStateStore) -> None:
    # The development Redis runs without persistence (appendonly no).
    warnings = redis_store.persistence_warnings()
    assert any("appendonly" in w for w in warnings)
    assert all(isinstance(w, str) and w for w in warnings)


@pytest.fixture
def user_without_config() -> Iterator[tuple[str, str]]:
    """A throwaway ACL user that may run everything but CONFIG (removed afterwards)."""
    name, password = f"test-state-{uuid.uuid4().hex}", uuid.uuid4().hex
    client = redis.Redis.from_url(REDIS_URL)
    client.acl_setuser(name, enabled=True, passwords=[f"+{password}"], keys=["*"], commands=["+@all", "-config"])
    try:
        yield name, password
    finally:
        client.acl_deluser(name)
        client.close()


def test_persistence_warnings_when_config_is_refused(user_without_config: tuple[str, str], namespace: str) -> None:
    name, password = user_without_config
    store = RedisStateStore(f"redis://{name}:{password}@127.0.0.1:6379/0", namespace)
    try:
        store.ping()
        warnings = store.persistence_warnings()
    finally:
        store.close()
    assert len(warnings) == 1
    assert "could not check" in warnings[0]
    assert password not in warnings[0]
