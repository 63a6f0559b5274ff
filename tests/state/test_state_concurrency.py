"""Races that a broken CAS or a broken fork/thread story would lose: the count must come out exact."""

from __future__ import annotations

import multiprocessing
import threading

import pytest

from worker.state.base import StateStore

WORKERS = 4
LOOPS = 200
KEY = "shared-counter-doc"


def cas_increments(store: StateStore, loops: int) -> None:
    """Read, add one, write back expecting the version read; retry when another writer won."""
    for _ in range(loops):
        while True:
            current = store.get(KEY)
            assert current is not None
            if store.write(KEY, {"n": current.value["n"] + 1}, expect_version=current.version) is not None:
                break


def counter_increments(store: StateStore, loops: int) -> None:
    for _ in range(loops):
        store.incr("hits", 1)


def _start(store: StateStore) -> None:
    # The parent uses the store before forking, so the children inherit live connections.
    assert store.write(KEY, {"n": 0}, expect_version=0) is not None
    store.ping()


def test_cas_increments_from_processes(store: StateStore) -> None:
    _start(store)
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=cas_increments, args=(store, LOOPS)) for _ in range(WORKERS)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(timeout=60)
    assert [proc.exitcode for proc in procs] == [0] * WORKERS
    final = store.get(KEY)
    assert final is not None and final.value == {"n": WORKERS * LOOPS}


def test_cas_increments_from_threads(store: StateStore) -> None:
    _start(store)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            cas_increments(store, LOOPS)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(WORKERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    assert not any(thread.is_alive() for thread in threads)
    final = store.get(KEY)
    assert final is not None and final.value == {"n": WORKERS * LOOPS}


@pytest.mark.parametrize("loops", [100])
def test_counter_increments_from_processes(store: StateStore, loops: int) -> None:
    store.incr("hits", 0)
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=counter_increments, args=(store, loops)) for _ in range(WORKERS)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(timeout=60)
    assert [proc.exitcode for proc in procs] == [0] * WORKERS
    assert store.read_counter("hits") == WORKERS * loops
