"""The multiprocess directory `run` prepares before it forks."""

from __future__ import annotations

from pathlib import Path

from worker.observability import multiproc


def test_unset_creates_a_fresh_dir_and_exports_it() -> None:
    env: dict[str, str] = {}
    prepared = multiproc.prepare(env)
    try:
        assert prepared.created
        assert env[multiproc.ENV] == str(prepared.path)
        assert prepared.path.is_dir()
        assert list(prepared.path.iterdir()) == []
    finally:
        prepared.cleanup()
    assert not prepared.path.exists()


def test_a_configured_dir_is_wiped_of_our_files_only(tmp_path: Path) -> None:
    for name in ("counter_12.db", "gauge_mostrecent_12.db", "status_12.json", "collector.lock", "notes.txt"):
        (tmp_path / name).write_text("x")
    env = {multiproc.ENV: str(tmp_path)}
    prepared = multiproc.prepare(env)
    assert not prepared.created
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]
    prepared.cleanup()
    assert tmp_path.is_dir()  # not ours to remove
