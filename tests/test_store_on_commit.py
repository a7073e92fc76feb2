"""``on_commit`` (``GroupCommitWriter.submit_merged``, ``Store.admit``): what must follow
a commit at once runs the moment the commit is known, before the caller is woken, on
every path a commit takes (inline, a round's end, the writer thread)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
import trio
import trio.testing
from helpers.store_helpers import busy, journal_ids, msg

from smppgw.store import Durability, StoreConfig, open_store
from smppgw.store.writer import GroupCommitWriter

if TYPE_CHECKING:
    import sqlite3
    from pathlib import Path


@pytest.mark.parametrize(
    ("durability", "busy_rounds"),
    [
        (Durability.PROCESS, 0),  # inline, on an idle loop
        (Durability.PROCESS, 5),  # at the end of a round
        (Durability.POWER, 0),  # by the writer thread
    ],
)
async def test_on_commit_gets_the_durable_result_before_the_caller_resumes(
    tmp_path: Path, durability: Durability, busy_rounds: int
) -> None:
    path = tmp_path / "j.db"
    events: list[tuple[str, Any]] = []
    async with open_store(path, config=StoreConfig(durability=durability)) as store:
        await trio.testing.wait_all_tasks_blocked()

        def committed(results: list[Any]) -> None:
            events.append(("committed", (results, set(results) <= journal_ids(path))))

        async def admit() -> None:
            results = await store.admit([msg(1), msg(2)], [None, None], on_commit=committed)
            events.append(("resumed", results))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(busy, busy_rounds)
            nursery.start_soon(admit)
    [(first, (seen, durable)), (second, returned)] = events
    assert (first, second) == ("committed", "resumed")
    assert durable
    assert seen == returned
    assert len(returned) == 2


async def test_on_commit_is_not_called_for_an_item_that_failed(tmp_path: Path) -> None:
    """A merged run that raises is retried item by item: the culprit's caller gets the
    error and no on_commit; its neighbours commit and get theirs."""

    def merge(conn: sqlite3.Connection, payloads: list[Any]) -> list[Any]:
        conn.execute("SELECT 1")
        if "bad" in payloads:
            raise ValueError("bad payload")
        return [f"ok {p}" for p in payloads]

    called: list[Any] = []
    writer = GroupCommitWriter(str(tmp_path / "w.db"), StoreConfig(durability=Durability.POWER))
    async with trio.open_nursery() as nursery:
        await nursery.start(writer.run)
        outcomes: dict[str, Any] = {}

        async def submit(payload: str) -> None:
            try:
                outcomes[payload] = await writer.submit_merged(
                    merge, payload, on_commit=called.append
                )
            except ValueError as exc:
                outcomes[payload] = exc

        async with trio.open_nursery() as callers:
            for payload in ("a", "bad", "b"):
                callers.start_soon(submit, payload)
        nursery.cancel_scope.cancel()
    assert isinstance(outcomes["bad"], ValueError)
    assert sorted(called) == ["ok a", "ok b"] == sorted([outcomes["a"], outcomes["b"]])
