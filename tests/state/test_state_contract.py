"""The StateStore contract, run against both implementations."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import cast

import pytest

from worker.state.base import ANY_VERSION, IndexOp, StateStore, Versioned, Write

WaitUntil = Callable[[Callable[[], bool]], None]

INF = math.inf


def test_absent_key_reads_none(store: StateStore) -> None:
    assert store.get("nothing") is None
    assert store.get_many([]) == []


def test_write_then_get_round_trip(store: StateStore) -> None:
    doc = {"name": "j\u00f6b \u2713", "n": 3, "nested": {"ids": [1, 2], "ok": True, "none": None}}
    version = store.write("doc", doc, expect_version=0)
    assert version is not None and version > 0
    got = store.get("doc")
    assert got is not None
    assert got.value == doc
    assert got.version == version


def test_documents_json_takes_round_trip_alike(store: StateStore) -> None:
    """Documents are encoded with orjson, and with `json` where orjson refuses: a lone surrogate
    (a request's `\\ud800` escape makes one) and an integer past 64 bits round-trip all the same;
    keys that are not strings become strings, as `json` makes them."""
    doc = {"lone": "a\ud800b", "big": 2**70, "tuple": (1, "x"), 7: "seven", "nested": {"\u00e9": [None, 0.1]}}
    assert store.write("odd", doc, expect_version=0) is not None  # type: ignore[arg-type]  # a non-str key on purpose
    got = store.get("odd")
    assert got is not None
    assert got.value == {
        "lone": "a\ud800b",
        "big": 2**70,
        "tuple": [1, "x"],
        "7": "seven",
        "nested": {"\u00e9": [None, 0.1]},
    }


def test_expect_zero_creates_only_once(store: StateStore) -> None:
    first = store.write("k", {"v": 1}, expect_version=0)
    assert first is not None
    assert store.write("k", {"v": 2}, expect_version=0) is None
    got = store.get("k")
    assert got is not None and got.value == {"v": 1} and got.version == first


def test_wrong_version_changes_nothing(store: StateStore) -> None:
    v1 = store.write("k", {"v": 1}, expect_version=0)
    assert v1 is not None
    assert store.write("k", {"v": 2}, expect_version=v1 + 1000) is None
    assert store.write("k", None, expect_version=v1 + 1000) is None
    got = store.get("k")
    assert got is not None and got.value == {"v": 1} and got.version == v1


def test_matching_version_updates_and_bumps(store: StateStore) -> None:
    v1 = store.write("k", {"v": 1}, expect_version=0)
    assert v1 is not None
    v2 = store.write("k", {"v": 2}, expect_version=v1)
    assert v2 is not None and v2 > v1
    assert store.write("k", {"v": 3}, expect_version=v1) is None  # the old version is stale now
    got = store.get("k")
    assert got is not None and got.value == {"v": 2} and got.version == v2


def test_any_version_writes_unconditionally(store: StateStore) -> None:
    v1 = store.write("k", {"v": 1}, expect_version=ANY_VERSION)
    assert v1 is not None and v1 > 0
    v2 = store.write("k", {"v": 2}, expect_version=ANY_VERSION)
    assert v2 is not None and v2 > v1
    assert store.write("k", None, expect_version=ANY_VERSION) == 0
    assert store.get("k") is None


def test_delete_with_version(store: StateStore) -> None:
    v1 = store.write("k", {"v": 1}, expect_version=0)
    assert v1 is not None
    assert store.write("k", None, expect_version=v1) == 0
    assert store.get("k") is None
    assert store.write("k", None, expect_version=v1) is None  # already gone: version is 0 now


def test_recreated_document_never_reuses_a_version(store: StateStore) -> None:
    """Our stores hand out versions from one sequence, so a stale reader cannot win after re-creation."""
    v1 = store.write("k", {"v": 1}, expect_version=0)
    assert v1 is not None
    assert store.write("k", None, expect_version=v1) == 0
    v2 = store.write("k", {"v": 2}, expect_version=0)
    assert v2 is not None and v2 > v1
    assert store.write("k", {"v": 3}, expect_version=v1) is None


def test_ttl_expiry_reads_absent(store: StateStore, wait_until: WaitUntil) -> None:
    v1 = store.write("short", {"v": 1}, expect_version=0, ttl_seconds=0.2)
    assert v1 is not None
    assert store.get("short") is not None
    wait_until(lambda: store.get("short") is None)
    assert store.get_many(["short"]) == [None]
    assert store.write("short", {"v": 2}, expect_version=v1) is None  # expired means version 0
    v2 = store.write("short", {"v": 2}, expect_version=0)
    assert v2 is not None
    got = store.get("short")
    assert got is not None and got.value == {"v": 2}


def test_write_without_ttl_clears_an_earlier_ttl(store: StateStore, wait_until: WaitUntil) -> None:
    v1 = store.write("kept", {"v": 1}, expect_version=0, ttl_seconds=0.2)
    assert v1 is not None
    assert store.write("kept", {"v": 2}, expect_version=v1) is not None
    assert store.write("sentinel", {}, expect_version=0, ttl_seconds=0.2) is not None
    wait_until(lambda: store.get("sentinel") is None)  # written after "kept" got its TTL
    got = store.get("kept")
    assert got is not None and got.value == {"v": 2}


def test_write_with_ttl_sets_a_new_expiry(store: StateStore, wait_until: WaitUntil) -> None:
    v1 = store.write("k", {"v": 1}, expect_version=0)
    assert v1 is not None
    assert store.write("k", {"v": 2}, expect_version=v1, ttl_seconds=0.2) is not None
    wait_until(lambda: store.get("k") is None)


def test_invalid_arguments_are_rejected_and_change_nothing(store: StateStore) -> None:
    with pytest.raises(ValueError):
        store.write("k", {"v": 1}, expect_version=0, ttl_seconds=0)
    with pytest.raises(ValueError):
        store.write("k", {"v": 1}, expect_version=0, index_ops=[IndexOp("ix", "m", math.nan)])
    with pytest.raises(ValueError):
        store.write("k", {"v": math.nan}, expect_version=0)
    with pytest.raises(ValueError):  # deep inside, and infinities too: JSON has neither
        store.write("k", {"v": {"w": [1.0, -INF]}}, expect_version=0)
    with pytest.raises(ValueError):
        store.incr("c", 1, ttl_seconds=-1)
    assert store.get("k") is None
    assert store.index_count("ix") == 0


def test_index_ops_apply_with_the_write(store: StateStore) -> None:
    ops = [IndexOp("due", "a", 10.0), IndexOp("due", "b", 5.0), IndexOp("owners", "a", 1.0)]
    v1 = store.write("a", {"v": 1}, expect_version=0, index_ops=ops)
    assert v1 is not None
    assert store.index_range("due", max_score=INF, limit=10) == [("b", 5.0), ("a", 10.0)]
    assert store.index_range("owners", max_score=INF, limit=10) == [("a", 1.0)]
    # Moving a member and removing another, together with a delete of the document.
    assert (
        store.write("a", None, expect_version=v1, index_ops=[IndexOp("due", "a", 1.0), IndexOp("owners", "a", None)])
        == 0
    )
    assert store.index_range("due", max_score=INF, limit=10) == [("a", 1.0), ("b", 5.0)]
    assert store.index_count("owners") == 0


def test_failed_cas_applies_no_index_op(store: StateStore) -> None:
    v1 = store.write("a", {"v": 1}, expect_version=0, index_ops=[IndexOp("due", "a", 10.0)])
    assert v1 is not None
    stale = [IndexOp("due", "a", None), IndexOp("due", "z", 1.0), IndexOp("other", "a", 2.0)]
    assert store.write("a", {"v": 2}, expect_version=v1 + 1, index_ops=stale) is None
    assert store.write("a", {"v": 2}, expect_version=0, index_ops=stale) is None
    assert store.index_range("due", max_score=INF, limit=10) == [("a", 10.0)]
    assert store.index_count("other") == 0


def test_index_range_order_limits_and_bounds(store: StateStore) -> None:
    scores = {"m3": 3.0, "m1": 1.0, "m2b": 2.0, "m2a": 2.0, "m4": 4.5, "neg": -7.25}
    ops = [IndexOp("ix", member, score) for member, score in scores.items()]
    assert store.write("owner", {}, expect_version=0, index_ops=ops) is not None
    everything = [("neg", -7.25), ("m1", 1.0), ("m2a", 2.0), ("m2b", 2.0), ("m3", 3.0), ("m4", 4.5)]
    assert store.index_range("ix", max_score=INF, limit=100) == everything
    assert store.index_range("ix", max_score=INF, limit=2) == everything[:2]
    assert store.index_range("ix", max_score=3.0, limit=100) == everything[:5]  # inclusive
    assert store.index_range("ix", max_score=3.0, limit=100, min_score=2.0) == everything[2:5]
    assert store.index_range("ix", max_score=0.5, limit=100, min_score=-INF) == everything[:1]
    assert store.index_range("ix", max_score=INF, limit=0) == []
    assert store.index_range("ix", max_score=1.0, limit=100, min_score=2.0) == []
    assert store.index_range("missing", max_score=INF, limit=10) == []


def test_index_count(store: StateStore) -> None:
    ops = [IndexOp("ix", f"m{i}", float(i)) for i in range(5)]
    assert store.write("owner", {}, expect_version=0, index_ops=ops) is not None
    assert store.index_count("ix") == 5
    assert store.index_count("ix", max_score=2.0) == 3
    assert store.index_count("ix", max_score=-1.0) == 0
    assert store.index_count("missing") == 0


def test_index_entries_outlive_an_expired_document(store: StateStore, wait_until: WaitUntil) -> None:
    """Index entries are the caller's to remove; expiry of the document leaves them in place."""
    ops = [IndexOp("ix", "m", 1.0)]
    assert store.write("k", {}, expect_version=0, ttl_seconds=0.2, index_ops=ops) is not None
    wait_until(lambda: store.get("k") is None)
    assert store.index_range("ix", max_score=INF, limit=10) == [("m", 1.0)]


def test_get_many_keeps_order(store: StateStore) -> None:
    versions = {key: store.write(key, {"key": key}, expect_version=0) for key in ("a", "b", "c")}
    got = store.get_many(["c", "missing", "a", "b", "a"])
    assert [g.value["key"] if g else None for g in got] == ["c", None, "a", "b", "a"]
    assert [g.version if g else None for g in got] == [
        versions["c"],
        None,
        versions["a"],
        versions["b"],
        versions["a"],
    ]


def test_get_many_beyond_one_chunk(store: StateStore) -> None:
    keys = [f"k{i}" for i in range(1200)]
    for key in keys[::100]:
        assert store.write(key, {"key": key}, expect_version=0) is not None
    got = store.get_many(keys)
    assert len(got) == len(keys)
    assert [k for k, g in zip(keys, got, strict=True) if g is not None] == keys[::100]


def test_counters(store: StateStore) -> None:
    assert store.read_counter("c") == 0
    assert store.incr("c") == 1
    assert store.incr("c", 2.5) == pytest.approx(3.5)
    assert store.incr("c", -1) == pytest.approx(2.5)
    assert store.read_counter("c") == pytest.approx(2.5)
    store.delete_counter("c")
    assert store.read_counter("c") == 0
    store.delete_counter("never-existed")


def test_counters_are_apart_from_documents(store: StateStore) -> None:
    assert store.write("same", {"v": 1}, expect_version=0) is not None
    assert store.incr("same", 5) == 5
    got = store.get("same")
    assert got is not None and got.value == {"v": 1}
    store.delete_counter("same")
    assert store.get("same") is not None


def test_counter_ttl(store: StateStore, wait_until: WaitUntil) -> None:
    assert store.incr("c", 3, ttl_seconds=0.2) == 3
    assert store.incr("c", 1) == 4  # no ttl given: the expiry stays
    wait_until(lambda: store.read_counter("c") == 0)
    assert store.incr("c", 2) == 2  # an expired counter starts again from 0


def test_counter_ttl_is_reset_by_a_later_ttl(store: StateStore, wait_until: WaitUntil) -> None:
    assert store.incr("c", 1, ttl_seconds=0.2) == 1
    assert store.incr("c", 1, ttl_seconds=60) == 2
    assert store.incr("sentinel", 1, ttl_seconds=0.2) == 1
    wait_until(lambda: store.read_counter("sentinel") == 0)
    assert store.read_counter("c") == 2


def test_close_then_use_again(store: StateStore) -> None:
    assert store.write("k", {"v": 1}, expect_version=0) is not None
    store.close()
    store.ping()
    got = store.get("k")
    assert got is not None and got.value == {"v": 1}
    store.close()
    store.close()


def test_describe_names_the_store(store: StateStore) -> None:
    text = store.describe()
    assert "sqlite" in text or "redis://127.0.0.1:6379" in text
    assert text in repr(store)


# -- write_many -----------------------------------------------------------------------------------


def test_write_many_checks_each_write_on_its_own_in_order(store: StateStore) -> None:
    first = store.write("wm:a", {"n": 1}, expect_version=0)
    assert first is not None
    results = store.write_many(
        [
            Write("wm:a", {"n": 2}, first),  # wins
            Write("wm:a", {"n": 3}, first),  # same expectation, now stale: loses
            Write("wm:b", {"n": 1}, 0, index_ops=[IndexOp("wm:idx", "wm:b", 5.0)]),
            Write("wm:c", {"n": 1}, 12345),  # absent key, wrong version: loses
        ]
    )
    assert results[0] is not None and results[1] is None and results[2] is not None and results[3] is None
    assert store.get("wm:a") == Versioned({"n": 2}, results[0])
    assert store.get("wm:c") is None
    assert store.index_range("wm:idx", max_score=10.0, limit=5) == [("wm:b", 5.0)]
    assert store.write_many([]) == []


def test_write_many_leaves_what_its_writes_in_order_leave(store: StateStore) -> None:
    """Writes to one key (and ops on one index entry) within a batch apply in order: the SQLite
    store writes only what the batch leaves behind, so a later write must win over an earlier one."""
    assert store.write("seq:gone", {"n": 0}, expect_version=0, index_ops=[IndexOp("seq:idx", "gone", 1.0)])
    results = store.write_many(
        [
            Write("seq:back", {"n": 1}, 0, index_ops=[IndexOp("seq:idx", "back", 1.0)]),
            Write("seq:back", None, ANY_VERSION, index_ops=[IndexOp("seq:idx", "back", None)]),
            Write("seq:back", {"n": 2}, 0, index_ops=[IndexOp("seq:idx", "back", 2.0)]),
            Write("seq:gone", None, ANY_VERSION, index_ops=[IndexOp("seq:idx", "gone", None)]),
            Write("seq:gone", {"n": 3}, 12345),  # the key is gone by now: loses
            Write(
                "seq:moved", {"n": 4}, 0, index_ops=[IndexOp("seq:idx", "moved", 3.0), IndexOp("seq:idx", "moved", 4.0)]
            ),
        ]
    )
    assert results[0] is not None and results[1] == 0 and results[2] is not None and results[2] > results[0]
    assert results[3] == 0 and results[4] is None and results[5] is not None
    assert store.get("seq:back") == Versioned({"n": 2}, results[2])
    assert store.get("seq:gone") is None
    assert store.index_range("seq:idx", max_score=INF, limit=10) == [("back", 2.0), ("moved", 4.0)]


def test_write_many_versions_keep_rising_within_and_across_batches(store: StateStore) -> None:
    """The SQLite store takes a batch's versions from one read of its sequence: none may repeat."""
    batch = store.write_many([Write(f"vs:{n}", {"n": n}, 0) for n in range(3)])
    single = store.write("vs:single", {"n": 9}, expect_version=0)
    again = store.write_many([Write("vs:0", {"n": 10}, batch[0] or -1), Write("vs:late", {"n": 11}, 0)])
    versions = [*batch, single, *again]
    assert all(v is not None for v in versions)
    assert versions == sorted(cast("list[int]", versions)) and len(set(versions)) == len(versions)


def test_index_ops_of_one_write_apply_in_order(store: StateStore) -> None:
    """Removals of one member are taken together, but the order of the ops still decides."""
    setup = [IndexOp("o1", "m", 1.0), IndexOp("o2", "m", 2.0), IndexOp("o3", "m", 3.0), IndexOp("o1", "n", 1.0)]
    assert store.write("m", {"v": 1}, expect_version=0, index_ops=setup) is not None
    ops = [
        IndexOp("o1", "m", None),
        IndexOp("o1", "n", None),
        IndexOp("o2", "m", None),
        IndexOp("o3", "m", 7.0),
        IndexOp("o3", "m", None),
        IndexOp("o2", "m", 4.0),
    ]
    assert store.write("m", {"v": 2}, expect_version=ANY_VERSION, index_ops=ops) is not None
    assert store.index_count("o1") == 0
    assert store.index_range("o2", max_score=INF, limit=5) == [("m", 4.0)]
    assert store.index_count("o3") == 0
