"""Inline commits (``store/writer.py``, "Inline commits"): a quick write on an idle loop
at the ``process`` level is committed by the loop itself, under the same rules as a batch."""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING

import pytest
import trio
import trio.testing
from helpers.store_helpers import Gate, journal_ids, msg

from smppgw.store import Durability, StoreConfig, StoreUnavailable, open_store
from smppgw.store.writer import INLINE_WAL_PAGES

if TYPE_CHECKING:
    from pathlib import Path

PROCESS = StoreConfig(durability=Durability.PROCESS)


async def test_a_quick_write_on_an_idle_loop_is_committed_inline_and_durable(
    tmp_path: Path,
) -> None:
    path = tmp_path / "j.db"
    async with open_store(path, config=PROCESS) as store:
        await trio.testing.wait_all_tasks_blocked()  # the store's own tasks have started
        ids = await store.journal_accept([msg(1)])
        assert journal_ids(path) == set(ids)  # committed when the await returned
        more = await store.journal_accept([msg(2), msg(3)])
        stats = store.statistics()
        assert stats.inline_commits == 2
        assert stats.commits >= 2
    assert journal_ids(path) == set(ids + more)


async def test_a_partners_whole_window_of_admissions_is_committed_inline(
    tmp_path: Path,
) -> None:
    """A window of 256 submits read in one go is one quick write: sent to the thread, it
    would keep the thread busy, and every other quick write would follow it there."""
    window = [msg(i) for i in range(256)]
    async with open_store(tmp_path / "j.db", config=PROCESS) as store:
        await trio.testing.wait_all_tasks_blocked()
        ids = await store.journal_accept(window)
        assert len(ids) == 256
        assert store.statistics().inline_commits == 1
        assert store.statistics().last_batch_rows == 256


@pytest.mark.parametrize(
    "config",
    [
        StoreConfig(durability=Durability.POWER),  # an fsync must not stall the loop
        StoreConfig(durability=Durability.PROCESS, inline_rows=0),
        StoreConfig(durability=Durability.PROCESS, inline_rows=1),  # two rows: too many
        # SQLite's own checkpoint, with its fsync, would run inside some commits.
        StoreConfig(durability=Durability.PROCESS, checkpoint_interval=0),
    ],
)
async def test_inline_commits_are_off_where_they_do_not_apply(
    tmp_path: Path, config: StoreConfig
) -> None:
    async with open_store(tmp_path / "j.db", config=config) as store:
        await store.journal_accept([msg(1), msg(2)])
        assert store.statistics().inline_commits == 0
        assert store.statistics().commits == 1


async def test_a_write_that_is_not_quick_goes_through_the_thread(tmp_path: Path) -> None:
    async with open_store(tmp_path / "j.db", config=PROCESS) as store:
        assert await store.run_in_transaction(lambda conn: 42) == 42
        assert store.statistics().inline_commits == 0


async def test_an_inline_write_never_overtakes_a_batch_in_the_thread(tmp_path: Path) -> None:
    """While the thread holds a batch, a quick write on the now idle loop is queued, and
    committed after it, by the thread."""
    gate = Gate()
    order: list[str] = []
    async with open_store(tmp_path / "j.db", config=PROCESS) as store:
        async with trio.open_nursery() as nursery:

            async def held() -> None:
                await store.run_in_transaction(gate)
                order.append("held")

            async def quick() -> None:
                await store.journal_accept([msg(1)])
                order.append("quick")

            nursery.start_soon(held)
            await gate.wait_entered()
            nursery.start_soon(quick)
            await trio.testing.wait_all_tasks_blocked()
            assert store.statistics().queue_depth == 1
            assert order == []
            gate.release.set()
        assert order == ["held", "quick"]
        assert store.statistics().inline_commits == 0


async def test_callers_that_come_together_share_a_batch_instead(tmp_path: Path) -> None:
    """Only the first of callers woken together may find the loop idle (trio runs a
    round's tasks off a list it has emptied); it yields after its commit, so the others
    find a task waiting to run and share one commit at the round's end
    (``store/round_commit.py``)."""
    async with open_store(tmp_path / "j.db", config=PROCESS) as store:
        async with trio.open_nursery() as nursery:
            for n in range(5):
                nursery.start_soon(store.journal_accept, [msg(n)])
        stats = store.statistics()
        assert stats.items == 5
        assert stats.commits == 2
        assert stats.last_batch_items == 4
    assert len(journal_ids(tmp_path / "j.db")) == 5


async def test_an_inline_item_that_fails_rolls_back_alone(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    async with open_store(path, config=PROCESS) as store:
        await trio.testing.wait_all_tasks_blocked()  # the store's own tasks have started
        with pytest.raises(sqlite3.IntegrityError):
            # No such reservation: the foreign key fails, after the first row went in.
            await store.journal_accept([msg(1), msg(2, reservation_id=999)])
        assert store.available
        assert store.statistics().item_errors == 1
        assert journal_ids(path) == set()
        ids = await store.journal_accept([msg(3)])
        assert journal_ids(path) == set(ids)
        assert store.statistics().inline_commits == 2


async def test_a_full_disk_under_an_inline_commit_refuses_then_recovers(tmp_path: Path) -> None:
    limit = {"pages": 0}

    def on_connect(conn: sqlite3.Connection) -> None:
        if limit["pages"]:
            conn.execute(f"PRAGMA max_page_count = {limit['pages']}")

    config = StoreConfig(
        durability=Durability.PROCESS, on_connect=on_connect, probe_initial=0.01, probe_max=0.05
    )
    path = tmp_path / "j.db"
    async with open_store(path, config=config) as store:
        await store.journal_accept([msg(0)])
        with sqlite3.connect(path) as conn:
            limit["pages"] = conn.execute("PRAGMA page_count").fetchone()[0] + 4

        def cap(conn: sqlite3.Connection) -> None:
            conn.execute(f"PRAGMA max_page_count = {limit['pages']}")

        await store.run_in_transaction(cap)
        inline_before = store.statistics().inline_commits
        acknowledged: list[int] = []

        async def fill() -> None:
            for n in range(1000):
                acknowledged.extend(await store.journal_accept([msg(n, body=b"x" * 1500)] * 5))

        with pytest.raises(StoreUnavailable) as full:
            await fill()
        assert "FULL" in full.value.reason
        assert store.statistics().inline_commits > inline_before  # the loop committed them
        assert not store.available
        with pytest.raises(StoreUnavailable):
            await store.journal_accept([msg(1)])
        # every acknowledged message is there, nothing else is
        assert journal_ids(path) - {1} == set(acknowledged)
        limit["pages"] = 0
        with trio.fail_after(5):
            await store.wait_available()
        assert (await store.journal_accept([msg(7)]))[0] > max(acknowledged)


async def test_inline_commits_stop_while_the_wal_nears_sqlites_own_checkpoint(
    tmp_path: Path,
) -> None:
    """A reader holding a snapshot keeps the checkpointer from copying the WAL back; as
    it grows towards SQLite's own checkpoint (which would run inside a commit, on the
    loop), writes go through the thread again, and inline once it is copied."""
    async with open_store(tmp_path / "j.db", config=PROCESS) as store:
        checkpointer = store.checkpointer
        assert checkpointer is not None
        await trio.testing.wait_all_tasks_blocked()
        await store.journal_accept([msg(1)])
        assert store.statistics().inline_commits == 1
        checkpointer.wal_pages = INLINE_WAL_PAGES  # as the checkpointer reports it
        await store.journal_accept([msg(2)])
        assert store.statistics().inline_commits == 1
        checkpointer.wal_pages = 0
        await store.journal_accept([msg(3)])
        assert store.statistics().inline_commits == 2
