"""The work items of the group-commit writer and the batch transaction that runs them.

Part of ``store/writer.py`` (which queues the items, decides who commits them, and wakes
their callers), kept apart because it is a concern of its own: how one batch of items
becomes one transaction, under Rules 1 and 2 of the writer's docstring (nothing is
durable before ``COMMIT``; an item's own error rolls back only its savepoint, an error of
the environment the whole batch). Runs in the writer thread or, for inline commits, on
the event loop; the transaction never calls trio (an item only carries the
trio.Event its caller waits on).
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable
from typing import Any

import trio

from smppgw.store.connection import is_environmental

__all__ = ["MergeFn", "WorkItem", "run_batch"]

#: Runs the payloads of several consecutive items of the same kind in one go (one pass
#: and one savepoint instead of one per item) and returns one result per payload.
MergeFn = Callable[[sqlite3.Connection, list[Any]], list[Any]]


class WorkItem:
    """One unit of work: a function to run in the batch transaction, and its outcome.

    An item has either ``fn`` or a ``merge`` function and its ``payload``: consecutive
    items with the same ``merge`` are run together (the hot path: journaling MT).
    """

    __slots__ = (
        "done",
        "error",
        "fn",
        "merge",
        "on_commit",
        "payload",
        "quick",
        "result",
        "rows",
    )

    def __init__(
        self,
        fn: Callable[[sqlite3.Connection], object] | None,
        rows: int,
        merge: MergeFn | None = None,
        payload: object = None,
        *,
        quick: bool = False,
        on_commit: Callable[[Any], None] | None = None,
    ) -> None:
        self.fn = fn
        self.rows = rows
        self.merge = merge
        self.payload = payload
        self.quick = quick
        self.on_commit = on_commit
        self.done = trio.Event()
        self.result: object = None
        self.error: BaseException | None = None

    def run(self, conn: sqlite3.Connection) -> None:
        if self.merge is not None:
            self.result = self.merge(conn, [self.payload])[0]
        else:
            assert self.fn is not None
            self.result = self.fn(conn)


def run_batch(conn: sqlite3.Connection, batch: list[WorkItem]) -> int:
    """The batch transaction: ``BEGIN IMMEDIATE``, each item (or merged run of items)
    under its own savepoint, ``COMMIT``. Returns the number of items that failed (their
    own error: rolled back alone, kept in ``item.error``); an error of the environment
    rolls the whole batch back and is raised."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        if len(batch) == 1:
            # A lonely item needs no savepoint: the transaction is its own.
            if not _ran(batch[0], conn):
                conn.execute("ROLLBACK")
                return 1
            errors = 0
        else:
            errors = _run_items(conn, batch)
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
        raise
    return errors


def _run_items(conn: sqlite3.Connection, batch: list[WorkItem]) -> int:
    """Run items under savepoints, merging runs of items that share a merge function."""
    execute = conn.execute
    errors = 0
    i, n = 0, len(batch)
    while i < n:
        merge = batch[i].merge
        j = i + 1
        if merge is not None:
            while j < n and batch[j].merge is merge:
                j += 1
        if j - i > 1 and merge is not None:
            run = batch[i:j]
            execute("SAVEPOINT run")
            try:
                results = merge(conn, [item.payload for item in run])
            except Exception as exc:
                if is_environmental(exc):
                    raise
                execute("ROLLBACK TO run")
                execute("RELEASE run")
                errors += _run_each(conn, run)  # find the culprit, spare the rest
            else:
                execute("RELEASE run")
                for item, result in zip(run, results, strict=True):
                    item.result = result
        else:
            errors += _run_each(conn, batch[i:j])
        i = j
    return errors


def _run_each(conn: sqlite3.Connection, items: list[WorkItem]) -> int:
    execute = conn.execute
    errors = 0
    for item in items:
        execute("SAVEPOINT item")
        if not _ran(item, conn):
            errors += 1
            execute("ROLLBACK TO item")
        execute("RELEASE item")
    return errors


def _ran(item: WorkItem, conn: sqlite3.Connection) -> bool:
    """Run ``item``; False when its own function raised (kept in ``item.error``, for
    the caller to roll back). An error of the environment is raised."""
    try:
        item.run(conn)
    except Exception as exc:
        if is_environmental(exc):
            raise
        item.error = exc
        return False
    return True
