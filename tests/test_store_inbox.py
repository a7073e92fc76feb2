"""The writer's inbox (``store/inbox.py``) and the writer thread that takes from it."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

import trio
import trio.testing
from helpers.store_helpers import Gate, msg
from hypothesis import given
from hypothesis import strategies as st

from smppgw.store import StoreConfig, open_store
from smppgw.store.inbox import Inbox

if TYPE_CHECKING:
    import sqlite3
    from pathlib import Path


@dataclass
class Work:
    rows: int


@given(
    sizes=st.lists(st.integers(1, 50), max_size=40),
    max_items=st.integers(1, 10),
    max_rows=st.integers(1, 120),
)
def test_take_makes_batches_within_the_limits_in_order(
    sizes: list[int], max_items: int, max_rows: int
) -> None:
    inbox: Inbox[Work] = Inbox(capacity=len(sizes) or 1)
    items = [Work(n) for n in sizes]
    assert all(inbox.put(item) for item in items)
    taken: list[Work] = []
    while len(inbox):
        batch, _ = inbox.take(max_items, max_rows, 0)
        inbox.finished()
        assert 1 <= len(batch) <= max_items
        # A batch closes once it reaches max_rows; only its first item may exceed it.
        assert sum(w.rows for w in batch[:-1]) < max_rows
        taken.extend(batch)
    assert [id(w) for w in taken] == [id(w) for w in items]


def test_a_full_inbox_refuses_and_take_says_it_was_full() -> None:
    inbox: Inbox[Work] = Inbox(capacity=2)
    assert inbox.put(Work(1))
    assert inbox.put(Work(1))
    assert not inbox.put(Work(1))
    batch, was_full = inbox.take(10, 100, 0)
    inbox.finished()
    assert (len(batch), was_full) == (2, True)
    assert inbox.put(Work(1))
    batch, was_full = inbox.take(10, 100, 0)
    assert (len(batch), was_full) == (1, False)


def test_stop_wakes_a_waiting_take_and_refuses_puts() -> None:
    inbox: Inbox[Work] = Inbox(capacity=4)
    result: list[tuple[list[Work], bool]] = []
    taker = threading.Thread(target=lambda: result.append(inbox.take(10, 100, 0)))
    taker.start()
    inbox.stop()
    taker.join(timeout=5)
    assert result == [([], False)]
    assert not inbox.put(Work(1))
    inbox.restart()
    assert inbox.put(Work(1))
    assert len(inbox.drain()) == 1


def test_the_loop_claims_the_connection_only_when_nothing_runs_or_waits() -> None:
    inbox: Inbox[Work] = Inbox(capacity=4)
    assert inbox.claim()
    assert not inbox.claim()  # already claimed
    inbox.finished()
    assert inbox.put(Work(1))
    assert not inbox.claim()  # something is queued: it goes first
    inbox.take(10, 100, 0)
    assert not inbox.claim()  # the thread's batch is running
    inbox.finished()
    assert inbox.claim()
    inbox.finished()
    inbox.stop()
    assert not inbox.claim()  # stopped: the connection is being closed or probed


def test_a_claim_holds_the_thread_back_until_it_is_finished() -> None:
    inbox: Inbox[Work] = Inbox(capacity=4)
    assert inbox.claim()
    result: list[tuple[list[Work], bool]] = []
    taker = threading.Thread(target=lambda: result.append(inbox.take(10, 100, 0)))
    taker.start()
    assert inbox.put(Work(3))
    taker.join(timeout=0.2)
    assert taker.is_alive()  # queued, but the loop holds the connection
    assert result == []
    inbox.finished()
    taker.join(timeout=5)
    assert [len(batch) for batch, _ in result] == [1]


async def test_a_caller_waiting_for_room_gets_in_when_the_thread_takes(tmp_path: Path) -> None:
    gate = Gate()
    async with open_store(tmp_path / "j.db", config=StoreConfig(queue_size=1)) as store:
        ids: list[list[int]] = []

        async def accept(n: int) -> None:
            ids.append(await store.journal_accept([msg(n)]))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(store.run_in_transaction, gate)
            await gate.wait_entered()
            nursery.start_soon(accept, 1)  # fills the inbox
            await trio.testing.wait_all_tasks_blocked()
            nursery.start_soon(accept, 2)  # waits for room
            await trio.testing.wait_all_tasks_blocked()
            assert store.statistics().queue_depth == 1
            assert ids == []
            gate.release.set()
        assert sorted(i for batch in ids for i in batch) == [1, 2]


async def test_the_thread_takes_its_next_batch_once_the_loop_has_woken_the_last(
    tmp_path: Path,
) -> None:
    """Paced by the event loop: while the loop has not woken the first batch's waiters
    (here it is blocked in a synchronous wait), the thread does not begin the next; as
    soon as the loop runs, it does, with no call from the writer task to start it."""
    gate = Gate()
    async with open_store(tmp_path / "j.db") as store, trio.open_nursery() as nursery:
        nursery.start_soon(store.run_in_transaction, gate)
        await gate.wait_entered()
        committed = threading.Event()

        def second(conn: sqlite3.Connection) -> None:
            committed.set()

        nursery.start_soon(store.run_in_transaction, second)
        await trio.testing.wait_all_tasks_blocked()
        gate.release.set()
        assert not committed.wait(0.2)  # the loop is held: no batch runs ahead of it
        with trio.fail_after(5):
            await trio.to_thread.run_sync(committed.wait)
