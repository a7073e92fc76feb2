"""The group-commit writer: batching, isolation, backpressure, failures and recovery."""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING

import pytest
import trio
from helpers.store_helpers import FakeClock, Gate, msg

from smppgw.protocol.status import CommandStatus
from smppgw.store import (
    SCHEMA_VERSION,
    Durability,
    SchemaTooNew,
    Store,
    StoreBusy,
    StoreConfig,
    StoreCorrupt,
    StoreUnavailable,
    open_store,
)
from smppgw.store.connection import is_environmental

if TYPE_CHECKING:
    from pathlib import Path


def _count(path: Path, table: str = "mt_message") -> int:
    with sqlite3.connect(path) as conn:
        return int(conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])


async def test_started_only_once_open_and_migrated(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    store = Store(path)
    assert not store.available
    async with trio.open_nursery() as nursery:
        await nursery.start(store.run)
        with sqlite3.connect(path) as conn:
            assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
            assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert store.available
        nursery.cancel_scope.cancel()
    assert not store.available
    with pytest.raises(StoreUnavailable):
        await store.journal_accept([msg()])


async def test_accept_is_durable_when_await_returns(tmp_path: Path) -> None:
    clock = FakeClock()
    async with open_store(tmp_path / "j.db", clock=clock) as store:
        ids = await store.journal_accept([msg(1), msg(2), msg(3)])
        assert ids == [1, 2, 3]
        # Another connection (another process, in effect) sees them at once.
        assert _count(tmp_path / "j.db") == 3
        stored = await store.get_message(2)
        assert stored is not None
        assert stored.destination_addr == "84900000002"
        assert stored.created_at == clock.now
        assert await store.journal_accept([]) == []


async def test_concurrent_callers_share_commits(tmp_path: Path) -> None:
    async with open_store(tmp_path / "j.db") as store:
        results: list[int] = []

        async def one(n: int) -> None:
            results.extend(await store.journal_accept([msg(n)]))

        async with trio.open_nursery() as nursery:
            for n in range(200):
                nursery.start_soon(one, n)
        assert sorted(results) == list(range(1, 201))
        stats = store.statistics()
        assert stats.items == 200
        assert stats.commits < 50, stats  # grouped, not one commit each
        assert stats.avg_batch_items > 4
        assert stats.commit_latency_max >= stats.commit_latency_avg > 0
        assert not stats.refusing


async def test_failing_item_is_rolled_back_alone(tmp_path: Path) -> None:
    gate = Gate()
    async with open_store(tmp_path / "j.db") as store, trio.open_nursery() as nursery:
        nursery.start_soon(store.run_in_transaction, gate)
        await gate.wait_entered()
        outcomes: dict[str, object] = {}

        def poisoned(conn: sqlite3.Connection) -> None:
            conn.execute("INSERT INTO event (kind, payload, created_at) VALUES ('poison', '{}', 0)")
            raise ValueError("handler bug")

        async def good(n: int) -> None:
            outcomes[f"good{n}"] = await store.journal_accept([msg(n)])

        async def bad() -> None:
            with pytest.raises(ValueError, match="handler bug"):
                await store.run_in_transaction(poisoned)
            outcomes["bad"] = "raised"

        nursery.start_soon(good, 1)
        nursery.start_soon(bad)
        nursery.start_soon(good, 2)
        await trio.testing.wait_all_tasks_blocked()
        gate.release.set()
    # the three queued items formed one batch after the gate's
    assert store.statistics().last_batch_items == 3
    assert store.statistics().item_errors == 1
    assert outcomes.pop("bad") == "raised"
    assert sorted(outcomes.values()) == [[1], [2]]
    assert _count(tmp_path / "j.db") == 2
    assert _count(tmp_path / "j.db", "event") == 0


async def test_merged_journal_run_isolates_the_bad_message(tmp_path: Path) -> None:
    gate = Gate()
    async with open_store(tmp_path / "j.db") as store, trio.open_nursery() as nursery:
        nursery.start_soon(store.run_in_transaction, gate)
        await gate.wait_entered()
        got: dict[int, object] = {}

        async def submit(n: int, reservation: int | None = None) -> None:
            try:
                got[n] = await store.journal_accept(
                    [msg(n, reservation_id=reservation), msg(n + 100)]
                )
            except sqlite3.IntegrityError as exc:
                got[n] = exc

        nursery.start_soon(submit, 1)
        nursery.start_soon(submit, 2, 999)  # no such reservation: the foreign key fails
        nursery.start_soon(submit, 3)
        await trio.testing.wait_all_tasks_blocked()
        gate.release.set()
    assert isinstance(got.pop(2), sqlite3.IntegrityError)
    assert all(isinstance(v, list) and len(v) == 2 for v in got.values())
    assert _count(tmp_path / "j.db") == 4
    assert store.statistics().item_errors == 1


async def test_lonely_failing_item(tmp_path: Path) -> None:
    async with open_store(tmp_path / "j.db") as store:

        def broken(conn: sqlite3.Connection) -> None:
            conn.execute("INSERT INTO no_such_table VALUES (1)")

        with pytest.raises(sqlite3.OperationalError, match="no such table"):
            await store.run_in_transaction(broken)
        assert store.available  # a bad statement is not a broken disk
        assert await store.run_in_transaction(lambda c: 41 + 1) == 42


async def test_full_queue_backpressure_and_nowait(tmp_path: Path) -> None:
    gate = Gate()
    config = StoreConfig(queue_size=2)
    async with open_store(tmp_path / "j.db", config=config) as store, trio.open_nursery() as n:
        n.start_soon(store.run_in_transaction, gate)
        await gate.wait_entered()
        n.start_soon(store.journal_accept, [msg(1)])
        n.start_soon(store.journal_accept, [msg(2)])
        await trio.testing.wait_all_tasks_blocked()
        assert store.statistics().queue_depth == 2
        with pytest.raises(StoreBusy) as busy:
            await store.journal_accept([msg(3)], nowait=True)
        assert busy.value.command_status == CommandStatus.ESME_RMSGQFUL
        # the blocking variant waits for room instead
        with trio.move_on_after(0.05) as waited:
            await store.journal_accept([msg(4)])
        assert waited.cancelled_caught
        gate.release.set()
    assert _count(tmp_path / "j.db") == 2


async def test_disk_full_refuses_then_recovers(tmp_path: Path) -> None:
    limit = {"pages": 0}

    def on_connect(conn: sqlite3.Connection) -> None:
        if limit["pages"]:
            conn.execute(f"PRAGMA max_page_count = {limit['pages']}")

    config = StoreConfig(on_connect=on_connect, probe_initial=0.01, probe_max=0.05)
    path = tmp_path / "j.db"
    async with open_store(path, config=config) as store:
        await store.journal_accept([msg(0)])
        with sqlite3.connect(path) as conn:
            pages = conn.execute("PRAGMA page_count").fetchone()[0]
        limit["pages"] = pages + 2

        # Reconnect the writer with the cap: let it fail once via a forced probe.
        def cap(conn: sqlite3.Connection) -> None:
            conn.execute(f"PRAGMA max_page_count = {limit['pages']}")

        await store.run_in_transaction(cap)
        body = b"x" * 1500
        acknowledged: list[int] = []

        async def fill() -> None:
            for n in range(1000):
                acknowledged.extend(await store.journal_accept([msg(n, body=body)] * 5))

        with pytest.raises(StoreUnavailable) as full:
            await fill()
        assert full.value.command_status == CommandStatus.ESME_RX_T_APPN
        assert "FULL" in full.value.reason
        assert isinstance(full.value.__cause__, sqlite3.OperationalError)
        # refusing at once, without queueing
        assert not store.available
        assert store.statistics().refusing
        with pytest.raises(StoreUnavailable):
            await store.journal_accept([msg(1)], nowait=True)
        # nothing unacknowledged was committed; everything acknowledged was
        with sqlite3.connect(path) as conn:
            ids = {r[0] for r in conn.execute("SELECT id FROM mt_message")}
        assert set(acknowledged) | {1} == ids
        # space comes back: the probe notices and the store serves again
        limit["pages"] = 0
        with trio.fail_after(5):
            await store.wait_available()
        assert (await store.journal_accept([msg(7)]))[0] > max(ids)
        assert store.statistics().batch_errors >= 1


async def test_locked_file_refuses_then_recovers(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    config = StoreConfig(busy_timeout=0.05, probe_initial=0.01, probe_max=0.05)
    async with open_store(path, config=config) as store:
        await store.journal_accept([msg(0)])
        other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        try:
            other.execute("BEGIN EXCLUSIVE")
            with pytest.raises(StoreUnavailable, match=r"locked|BUSY"):
                await store.journal_accept([msg(1)])
            assert not store.available
            other.execute("ROLLBACK")
            with trio.fail_after(5):
                await store.wait_available()
            await store.journal_accept([msg(2)])
        finally:
            other.close()
    assert _count(path) == 2


async def test_second_writer_on_the_same_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    async with open_store(path):
        with pytest.raises(StoreUnavailable, match="in use"):
            async with open_store(path):
                pass  # pragma: no cover


async def test_not_a_database(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    path.write_bytes(b"this is not an sqlite file at all" * 200)
    with pytest.raises(StoreCorrupt, match=str(path)):
        async with open_store(path):
            pass  # pragma: no cover


async def test_corrupt_pages_fail_quick_check(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    async with open_store(path) as store:
        await store.journal_accept([msg(n, body=b"y" * 300) for n in range(400)])
    with sqlite3.connect(path) as conn:  # fold the WAL in so the pages are in the file
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    data = bytearray(path.read_bytes())
    for page in range(3, len(data) // page_size, 2):
        start = page * page_size
        data[start : start + 64] = b"\xa5" * 64
    path.write_bytes(bytes(data))
    with pytest.raises(StoreCorrupt):
        async with open_store(path):
            pass  # pragma: no cover


async def test_schema_newer_than_code_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    async with open_store(path):
        pass
    with sqlite3.connect(path) as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 5}")
    with pytest.raises(SchemaTooNew) as refused:
        async with open_store(path):
            pass  # pragma: no cover
    text = str(refused.value)
    assert str(path) in text
    assert str(SCHEMA_VERSION + 5) in text
    assert f"version {SCHEMA_VERSION}" in text


async def test_ids_continue_after_reopen(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    async with open_store(path) as store:
        assert await store.journal_accept([msg(1), msg(2)]) == [1, 2]
    async with open_store(path) as store:
        assert await store.journal_accept([msg(3)]) == [3]


async def test_linger_still_commits(tmp_path: Path) -> None:
    config = StoreConfig(linger=0.002, max_batch_items=3)
    async with open_store(tmp_path / "j.db", config=config) as store:
        async with trio.open_nursery() as nursery:
            for n in range(10):
                nursery.start_soon(store.journal_accept, [msg(n)])
        stats = store.statistics()
        assert stats.items == 10
        assert stats.last_batch_items <= 3


async def test_shutdown_finishes_the_commit_in_progress_and_fails_the_queue(
    tmp_path: Path,
) -> None:
    gate = Gate()
    store = Store(tmp_path / "j.db")
    outcomes: list[object] = []

    async def submit(n: int) -> None:
        try:
            outcomes.append(await store.journal_accept([msg(n)]))
        except StoreUnavailable as exc:
            outcomes.append(exc.reason)

    async def gated() -> None:
        outcomes.append(await store.run_in_transaction(gate))

    async with trio.open_nursery() as outer:
        with trio.CancelScope() as store_scope:
            async with trio.open_nursery() as inner:
                await inner.start(store.run)
                outer.start_soon(gated)
                await gate.wait_entered()
                outer.start_soon(submit, 1)
                outer.start_soon(submit, 2)
                await trio.testing.wait_all_tasks_blocked()
                store_scope.cancel()  # stop the store while the gate's commit runs
                gate.release.set()
    assert outcomes[0] == "gate"  # committed before the writer stopped
    assert outcomes[1:] == ["store is closed", "store is closed"]
    assert _count(tmp_path / "j.db") == 0


@pytest.mark.parametrize(("level", "expected"), [(Durability.PROCESS, 1), (Durability.POWER, 2)])
async def test_durability_level_sets_synchronous(
    tmp_path: Path, level: Durability, expected: int
) -> None:
    async with open_store(tmp_path / "j.db", config=StoreConfig(durability=level)) as store:
        got = await store.run_in_transaction(
            lambda c: c.execute("PRAGMA synchronous").fetchone()[0]
        )
        mode = await store.read(lambda c: c.execute("PRAGMA journal_mode").fetchone()[0])
    assert (got, mode) == (expected, "wal")
    assert StoreConfig().durability is Durability.POWER


def test_environmental_errors_are_told_apart(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "x.db")
    conn.execute("CREATE TABLE t (a UNIQUE)")
    conn.execute("INSERT INTO t VALUES (1)")
    with pytest.raises(sqlite3.IntegrityError) as dup:
        conn.execute("INSERT INTO t VALUES (1)")
    with pytest.raises(sqlite3.OperationalError) as syntax:
        conn.execute("BOGUS")
    conn.execute("PRAGMA max_page_count = 2")
    with pytest.raises(sqlite3.OperationalError) as full:
        conn.execute("INSERT INTO t VALUES (randomblob(100000))")
    conn.close()
    assert not is_environmental(dup.value)
    assert not is_environmental(syntax.value)
    assert not is_environmental(ValueError("x"))
    assert is_environmental(full.value)


async def test_the_writer_keeps_statement_journals_in_memory(tmp_path: Path) -> None:
    """Every hot-path batch runs in savepoints, and a statement's journal spilled past
    64 KiB to a temporary file in /var/tmp (created, written, unlinked ~30 times a
    second under load, on the loop's thread, message bodies included): the writer's
    connection keeps temporary storage in memory (``temp_store`` 2)."""
    async with open_store(tmp_path / "j.db") as store:
        mode = await store.run_in_transaction(
            lambda conn: int(conn.execute("PRAGMA temp_store").fetchone()[0])
        )
        assert mode == 2
