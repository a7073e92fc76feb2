"""Round-end commits (``store/round_commit.py``): the quick writes of one event-loop
round, committed together by the loop when the round ends, under the batch rules."""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING, Any

import pytest
import trio
import trio.testing
from helpers.store_helpers import busy, journal_ids, msg

from smppgw.store import Durability, StoreConfig, open_store
from smppgw.store.round_commit import RoundEnd

if TYPE_CHECKING:
    from pathlib import Path

    from smppgw.store.store import Store

PROCESS = StoreConfig(durability=Durability.PROCESS)


async def test_the_quick_writes_of_a_round_commit_together_on_the_loop(tmp_path: Path) -> None:
    """Callers woken together while other tasks run: one commit for all of them, by the
    loop (the thread is never handed them), each durable when its await returns."""
    path = tmp_path / "j.db"
    async with open_store(path, config=PROCESS) as store:
        await trio.testing.wait_all_tasks_blocked()  # the store's own tasks have started
        durable: list[bool] = []

        async def accept(n: int) -> None:
            [message_id] = await store.journal_accept([msg(n)])
            durable.append(message_id in journal_ids(path))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(busy, 5)
            for n in range(6):
                nursery.start_soon(accept, n)
        stats = store.statistics()
        assert durable == [True] * 6
        assert stats.items == 6
        assert stats.inline_commits == stats.commits  # all by the loop
        assert stats.commits <= 2  # at most the first alone, then the rest together
    assert len(journal_ids(path)) == 6


async def test_a_write_queued_while_a_round_is_open_commits_after_it(tmp_path: Path) -> None:
    """The inbox is claimed while a round is open: what goes to the thread meanwhile
    (here a write that is not quick) is committed after the round, never before it.
    The scheduler's order within a round is random; every order is checked over the
    repetitions, and the open-round case must have come up."""
    seen_open_round = 0
    async with open_store(tmp_path / "j.db", config=PROCESS) as store:
        writer = store._writer
        for attempt in range(30):
            order: list[str] = []
            quick_ids: list[int] = []
            queued_while_open: list[bool] = []

            async def quick(n: int) -> None:
                quick_ids.extend(await store.journal_accept([msg(n)]))  # noqa: B023
                order.append("quick")  # noqa: B023

            async def slow() -> int:
                queued_while_open.append(writer._round is not None)  # noqa: B023
                return await store.run_in_transaction(
                    lambda conn: conn.execute("SELECT max(id) FROM mt_message").fetchone()[0] or 0
                )

            seen: list[int] = []

            async def slow_task() -> None:
                seen.append(await slow())  # noqa: B023

            async with trio.open_nursery() as nursery:
                nursery.start_soon(busy, 3)
                nursery.start_soon(quick, attempt)
                nursery.start_soon(slow_task)
            if queued_while_open[0]:
                seen_open_round += 1
                assert seen[0] >= quick_ids[0]  # the round's row was there before it
    assert seen_open_round > 0


async def test_an_item_of_a_round_that_fails_rolls_back_alone(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    async with open_store(path, config=PROCESS) as store:
        await trio.testing.wait_all_tasks_blocked()
        accepted: list[int] = []
        errors: list[BaseException] = []

        async def accept(n: int, reservation_id: int | None = None) -> None:
            try:
                message = msg(n, reservation_id=reservation_id)
                accepted.extend(await store.journal_accept([message]))
            except sqlite3.IntegrityError as exc:
                errors.append(exc)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(busy, 5)
            nursery.start_soon(accept, 1)
            # No such reservation: the foreign key fails.
            nursery.start_soon(accept, 2, 999)
            nursery.start_soon(accept, 3)
            nursery.start_soon(accept, 4)
        assert len(errors) == 1
        assert store.available
        assert store.statistics().item_errors == 1
        assert store.statistics().inline_commits == store.statistics().commits
    assert journal_ids(path) == set(accepted)
    assert len(accepted) == 3


async def test_a_round_that_fails_as_a_whole_refuses_then_recovers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An error of the environment under a round's commit (a lock held elsewhere, here):
    every caller of the round gets StoreUnavailable, nothing of it is durable, the
    thread is stopped, and the store probes and serves again."""
    path = tmp_path / "j.db"
    config = StoreConfig(durability=Durability.PROCESS, probe_initial=0.01, probe_max=0.05)
    async with open_store(path, config=config) as store:
        await trio.testing.wait_all_tasks_blocked()
        writer = store._writer
        run_batch = writer._run_batch
        failing = {"on": True, "rounds": 0}

        def locked_for_rounds(batch: list[Any]) -> int:
            if failing["on"] and len(batch) > 1:
                failing["rounds"] += 1
                raise sqlite3.OperationalError("database is locked")
            return run_batch(batch)

        monkeypatch.setattr(writer, "_run_batch", locked_for_rounds)
        acknowledged: list[int] = []
        refused: list[str] = []

        async def accept(n: int) -> None:
            try:
                acknowledged.extend(await store.journal_accept([msg(n)]))
            except Exception as exc:
                refused.append(type(exc).__name__)

        async with trio.open_nursery() as nursery:
            for n in range(5):  # the first alone (idle loop), the other four a round
                nursery.start_soon(accept, n)
        assert failing["rounds"] == 1
        assert len(acknowledged) == 1
        assert refused == ["StoreUnavailable"] * 4
        assert journal_ids(path) == set(acknowledged)
        failing["on"] = False
        with trio.fail_after(5):
            await store.wait_available()
        assert (await store.journal_accept([msg(7)]))[0] > acknowledged[0]


async def test_a_store_closed_with_a_round_open_fails_its_callers(tmp_path: Path) -> None:
    """Cancelled in the round a quick write opened: its caller is told the store closed
    (StoreUnavailable), nothing is left waiting, nothing half-written."""
    path = tmp_path / "j.db"
    outcome: list[str] = []

    async def accept(store: Store) -> None:
        try:
            await store.journal_accept([msg(1)])
            outcome.append("committed")
        except Exception as exc:
            outcome.append(type(exc).__name__)

    with trio.fail_after(10):
        async with trio.open_nursery() as outer, open_store(path, config=PROCESS) as store:
            await trio.testing.wait_all_tasks_blocked()
            outer.start_soon(busy, 2)
            outer.start_soon(accept, store)
            await trio.lowlevel.checkpoint()  # in that round: close the store
    assert outcome in (["committed"], ["StoreUnavailable"])
    assert (outcome == ["committed"]) == (len(journal_ids(path)) == 1)


def test_the_round_end_instrument_commits_only_when_due() -> None:
    """``before_io_wait`` commits when a round is due, and wakes a loop that meant to
    sleep (its waiters were just made runnable); not otherwise."""
    calls: list[str] = []
    due = {"now": False}

    class Token:
        def run_sync_soon(self, fn: object) -> None:
            calls.append("wake")

    end = RoundEnd(lambda: due["now"], lambda: calls.append("commit"), Token())  # type: ignore[arg-type]
    end.before_io_wait(0.5)
    assert calls == []
    due["now"] = True
    end.before_io_wait(0)
    assert calls == ["commit"]
    end.before_io_wait(0.5)
    assert calls == ["commit", "commit", "wake"]


@pytest.mark.parametrize("inline_rows", [0, 1])
async def test_no_round_where_inline_commits_do_not_apply(tmp_path: Path, inline_rows: int) -> None:
    config = StoreConfig(durability=Durability.PROCESS, inline_rows=inline_rows)
    async with open_store(tmp_path / "j.db", config=config) as store:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(busy, 5)
            for n in range(4):
                nursery.start_soon(store.journal_accept, [msg(n), msg(n + 10)])
        assert store.statistics().inline_commits == 0
