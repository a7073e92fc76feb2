"""The background WAL checkpointer (``store/checkpointer.py``) on a real store file."""

from __future__ import annotations

import shutil
import sqlite3
from typing import TYPE_CHECKING

import trio
from helpers.store_helpers import msg

from smppgw.store import Durability, StoreConfig, open_store
from smppgw.store.checkpointer import Checkpointer
from smppgw.store.connection import SAFETY_NET_PAGES

if TYPE_CHECKING:
    from pathlib import Path

    import pytest

    from smppgw.store import Store


def _config(interval: float) -> StoreConfig:
    return StoreConfig(durability=Durability.PROCESS, checkpoint_interval=interval)


def _rows_in_file_alone(path: Path, tmp_path: Path) -> int:
    """Messages in the database file itself, without its WAL (what was copied back)."""
    copy = tmp_path / "file-alone.db"
    shutil.copyfile(path, copy)
    with sqlite3.connect(copy) as conn:
        if conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'mt_message'").fetchone():
            return int(conn.execute("SELECT count(*) FROM mt_message").fetchone()[0])
        return 0  # not even the schema is in the file yet


async def _write(store: Store, batches: int, size: int = 50) -> None:
    for b in range(batches):
        await store.journal_accept([msg(b * size + n) for n in range(size)])


async def _autocheckpoint(store: Store) -> int:
    return int(
        await store.run_in_transaction(
            lambda conn: conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0]
        )
    )


async def test_background_checkpoints_copy_the_wal_into_the_file(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    async with open_store(path, config=_config(0.01)) as store:
        assert store.checkpointer is not None
        assert await _autocheckpoint(store) == SAFETY_NET_PAGES
        await _write(store, 10)
        for _ in range(500):  # a checkpoint every 10 ms: give it up to 5 s
            if _rows_in_file_alone(path, tmp_path) == 500:
                break
            await trio.sleep(0.01)
        assert _rows_in_file_alone(path, tmp_path) == 500
        assert store.checkpointer.runs >= 1
        assert store.checkpointer.pages > 0


async def test_inline_checkpoints_leave_a_small_wal_in_the_wal(tmp_path: Path) -> None:
    """The control: SQLite's own checkpoint waits for 1,000 pages, so the same writes
    stay in the WAL (this is what the test above would see without the checkpointer)."""
    path = tmp_path / "j.db"
    async with open_store(path, config=_config(0)) as store:
        assert store.checkpointer is None
        assert await _autocheckpoint(store) == 1000
        await _write(store, 10)
        await trio.sleep(0.1)
        assert _rows_in_file_alone(path, tmp_path) == 0


async def test_no_checkpoint_while_nothing_is_committed(tmp_path: Path) -> None:
    async with open_store(tmp_path / "j.db", config=_config(0.01)) as store:
        assert store.checkpointer is not None
        await _write(store, 2)
        await trio.sleep(0.1)
        runs = store.checkpointer.runs
        assert runs >= 1
        await trio.sleep(0.1)
        assert store.checkpointer.runs == runs


async def test_a_failing_checkpoint_is_retried_and_the_store_serves_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = 0
    real = Checkpointer._checkpoint

    def flaky(self: Checkpointer) -> None:
        nonlocal calls
        calls += 1
        if calls <= 2:
            raise sqlite3.OperationalError("disk I/O error")
        real(self)

    monkeypatch.setattr(Checkpointer, "_checkpoint", flaky)
    path = tmp_path / "j.db"
    async with open_store(path, config=_config(0.01)) as store:
        assert store.checkpointer is not None
        with trio.fail_after(5):
            while store.checkpointer.runs == 0:
                await _write(store, 1)
                await trio.sleep(0.02)
        assert store.checkpointer.failures == 2
        assert store.available
        await _write(store, 1)


async def test_it_reports_the_wal_a_reader_keeps_from_being_copied(tmp_path: Path) -> None:
    """What the writer's inline commits watch (``Checkpointer.wal_pages``): pages left in
    the WAL because a reader still needed them, and 0 once everything was copied."""
    path = tmp_path / "j.db"
    async with open_store(path, config=_config(0.01)) as store:
        checkpointer = store.checkpointer
        assert checkpointer is not None
        await _write(store, 2)
        reader = sqlite3.connect(path, isolation_level=None)
        try:
            reader.execute("BEGIN")
            reader.execute("SELECT count(*) FROM mt_message").fetchone()  # a snapshot
            await _write(store, 10)
            with trio.fail_after(5):
                while checkpointer.wal_pages == 0:  # noqa: ASYNC110 (set by its thread: polled)
                    await trio.sleep(0.01)
            assert checkpointer.wal_pages > 0
        finally:
            reader.close()
        await _write(store, 1)
        with trio.fail_after(5):
            while checkpointer.wal_pages:  # noqa: ASYNC110 (set by its thread: polled)
                await trio.sleep(0.01)
