"""The group-commit writer: the only code that writes to the database file.

Theory of operation
===================
Callers (partner sessions, carrier sessions, scenario handlers) never touch SQLite.
They hand the writer a *work item*, a plain function ``fn(conn) -> T`` plus a row
count, and ``await`` its durability. The writer is one trio task that owns one
``sqlite3`` connection and one ``CapacityLimiter(1)``; it loops:

1. wait for the first item on a bounded ``trio`` memory channel;
2. optionally linger a few milliseconds (``StoreConfig.linger``, 0 by default);
3. drain, without waiting, whatever else is queued (up to ``max_batch_items`` items or
   ``max_batch_rows`` rows). Under load this is everything that arrived while the
   previous commit ran, so batches grow by themselves with the load: *group commit*;
4. run the whole batch in ONE transaction in the writer thread
   (``trio.to_thread.run_sync(..., limiter=<own limiter>)``): ``BEGIN IMMEDIATE``, each
   item inside its own ``SAVEPOINT``, ``COMMIT`` (one WAL append, one fsync at the
   ``power`` level);
5. only after ``COMMIT`` returned, hand every item its result and wake its caller.

Rules that follow from the promise "an acknowledged message is never lost":

* Rule 1: nothing is woken with success before its transaction committed. A caller that
  answers ``submit_sm_resp`` after ``await`` cannot answer too early.
* Rule 2: an exception raised by one item's own function rolls back that item's
  savepoint only; the rest of the batch commits and the caller of that item gets the
  exception. Errors of the *environment* (disk full, I/O error, lock timeout,
  corruption) are not an item's fault: they abort the batch, every waiter of the batch
  gets :class:`StoreUnavailable`, and the store turns *unavailable*.
* Rule 3: while unavailable, every write is refused at once (callers answer a temporary
  SMPP status immediately instead of queueing behind a broken disk) and the writer
  probes, with exponential back-off, by reopening its connection and writing and
  removing a page-sized row. When the probe commits the store serves again; the back-off
  is only reset by a real batch committing, so a probe that succeeds while real batches
  still fail does not turn into a tight loop.
* Rule 4: one writer thread, owned by this task; no bare threads. The to_thread call is
  not abandoned on cancellation: a commit in progress finishes and its waiters are woken
  before the task stops. Items still queued at shutdown get ``StoreUnavailable``.

Backpressure: the channel is bounded (``queue_size``). ``submit`` waits for room;
``submit(..., nowait=True)`` raises :class:`StoreBusy` instead, so a session can answer
``ESME_RMSGQFUL``.

Cancellation of a caller: if a caller is cancelled after its item was queued, the item
may still commit; the caller simply never learns it. For a partner's ``submit_sm`` this
means a message journaled but not acknowledged, which the partner may resubmit: a
duplicate, never a loss.

Item functions run in the writer thread: they must only use the connection they are
given, must not call trio, must not ``COMMIT``/``ROLLBACK`` themselves, and should be
quick: they hold up everyone else's commit.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar, cast

import structlog
import trio

from smppgw.store.connection import WriterConnection, describe, is_environmental
from smppgw.store.errors import StoreBusy, StoreUnavailable
from smppgw.store.health import StoreStatistics, WriterCounters

if TYPE_CHECKING:
    from smppgw.store.config import StoreConfig

__all__ = ["GroupCommitWriter", "is_environmental"]

T = TypeVar("T")
log = structlog.get_logger(__name__)

#: Runs the payloads of several consecutive items of the same kind in one go (one
#: ``executemany`` instead of one per item) and returns one result per payload.
MergeFn = Callable[[sqlite3.Connection, list[Any]], list[Any]]


class _Item:
    """One unit of work: a function to run in the batch transaction, and its outcome.

    An item has either ``fn`` or a ``merge`` function and its ``payload``: consecutive
    items with the same ``merge`` are run together (the hot path: journaling MT).
    """

    __slots__ = ("done", "error", "fn", "merge", "payload", "result", "rows")

    def __init__(
        self,
        fn: Callable[[sqlite3.Connection], object] | None,
        rows: int,
        merge: MergeFn | None = None,
        payload: object = None,
    ) -> None:
        self.fn = fn
        self.rows = rows
        self.merge = merge
        self.payload = payload
        self.done = trio.Event()
        self.result: object = None
        self.error: BaseException | None = None

    def run(self, conn: sqlite3.Connection) -> None:
        if self.merge is not None:
            self.result = self.merge(conn, [self.payload])[0]
        else:
            assert self.fn is not None
            self.result = self.fn(conn)


class GroupCommitWriter:
    """Owns the write connection; see the module docstring for how it works.

    Args:
        path: the database file.
        config: tuning and durability level.
        prepare: called in the writer thread once the file is open and migrated (the
            store uses it to load its id counters).
        clock: wall-clock seconds, used only for the probe row.

    Resource handling: the connection and a ``<path>.lock`` file (an exclusive ``flock``
    that stops a second daemon from writing the same journal) are opened by :meth:`run`
    and closed when it returns.
    """

    def __init__(
        self,
        path: str,
        config: StoreConfig,
        *,
        prepare: Callable[[sqlite3.Connection], None] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._config = config
        self._db = WriterConnection(path, config, prepare, clock)
        self._send, self._receive = trio.open_memory_channel[_Item](config.queue_size)
        self._limiter = trio.CapacityLimiter(1)
        self._reason: str | None = "store is not running"
        self._up = trio.Event()  # set while available; replaced when the store goes down
        self._failures = 0  # consecutive failed batches/probes, drives the back-off
        self._counters = WriterCounters()

    # ---------------------------------------------------------------- caller side

    @property
    def available(self) -> bool:
        return self._reason is None

    async def wait_available(self) -> None:
        """Return once the store accepts work (at once if it does now)."""
        await self._up.wait()

    def _set_down(self, reason: str) -> None:
        if self._up.is_set():
            self._up = trio.Event()
        self._reason = reason

    async def submit(
        self, fn: Callable[[sqlite3.Connection], T], *, rows: int = 1, nowait: bool = False
    ) -> T:
        """Run ``fn(conn)`` in the next batch transaction and return its result once durable.

        Raises:
            StoreUnavailable: the store refuses work now, or the batch failed to commit.
            StoreBusy: ``nowait`` and the queue is full.
            Exception: whatever ``fn`` raised (only its own savepoint was rolled back).
        """
        return cast("T", await self._submit(_Item(fn, rows), nowait))

    async def submit_merged(
        self, merge: MergeFn, payload: object, *, rows: int = 1, nowait: bool = False
    ) -> Any:
        """Like :meth:`submit` for ``merge(conn, [payload])[0]``, merged with its neighbours.

        ``merge`` must be the same object for every item that may be merged (bind it
        once). If a merged run raises, its items are retried one by one, each under its
        own savepoint, so the error reaches only the caller whose payload caused it.
        """
        return await self._submit(_Item(None, rows, merge, payload), nowait)

    async def _submit(self, item: _Item, nowait: bool) -> object:
        """Queue ``item``, wait for its commit, return its result or raise its error.

        Raises:
            StoreUnavailable: the store refuses work now, or the batch failed to commit.
            StoreBusy: ``nowait`` and the queue is full.
            Exception: whatever ``fn`` raised (only its own savepoint was rolled back).
        """
        if self._reason is not None:
            raise StoreUnavailable(self._reason)
        try:
            try:
                # No checkpoint while there is room: the wait below is this call's only
                # schedule point, which saves a task switch per message on the hot path.
                self._send.send_nowait(item)
            except trio.WouldBlock:
                if nowait:
                    raise StoreBusy("journal queue is full") from None
                await self._send.send(item)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            raise StoreUnavailable("store is closed") from None
        await item.done.wait()
        if item.error is not None:
            raise item.error
        return item.result

    def statistics(self) -> StoreStatistics:
        stats = self._send.statistics()
        return self._counters.snapshot(
            queue_depth=stats.current_buffer_used,
            queue_capacity=self._config.queue_size,
            reason=self._reason,
        )

    # ---------------------------------------------------------------- writer task

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Open and migrate the file, report started, then commit batches until cancelled.

        Raises (before ``started``): :class:`StoreCorrupt`, :class:`SchemaTooNew`,
        :class:`StoreUnavailable` (locked, unreadable, in use by another process).
        """
        try:
            await trio.to_thread.run_sync(self._db.open, limiter=self._limiter)
            self._reason = None
            self._up.set()
            task_status.started()
            while True:
                batch = await self._next_batch()
                if await self._commit(batch):
                    continue
                await self._recover()
        finally:
            self._set_down("store is closed")
            # Drain, then close, with no checkpoint in between: every queued caller is
            # told, and any later sender gets BrokenResourceError -> StoreUnavailable.
            while True:
                try:
                    item = self._receive.receive_nowait()
                except (trio.WouldBlock, trio.EndOfChannel):
                    break
                self._fail(item, "store is closed")
            self._receive.close()
            with trio.CancelScope(shield=True):
                await trio.to_thread.run_sync(self._db.close, limiter=self._limiter)

    async def _next_batch(self) -> list[_Item]:
        first = await self._receive.receive()
        if self._config.linger > 0:
            await trio.sleep(self._config.linger)
        batch = [first]
        rows = first.rows
        max_items = self._config.max_batch_items
        max_rows = self._config.max_batch_rows
        receive_nowait = self._receive.receive_nowait
        while len(batch) < max_items and rows < max_rows:
            try:
                item = receive_nowait()
            except trio.WouldBlock:
                break
            batch.append(item)
            rows += item.rows
        return batch

    async def _commit(self, batch: list[_Item]) -> bool:
        """Commit one batch and wake its waiters; False if the batch failed as a whole."""
        started = time.perf_counter()
        try:
            errors = await trio.to_thread.run_sync(self._run_batch, batch, limiter=self._limiter)
        except Exception as exc:  # any failure of the transaction: nothing is durable
            reason = describe(exc)
            self._counters.batch_errors += 1
            self._failures += 1
            self._set_down(reason)
            log.error("store.batch_failed", reason=reason, items=len(batch))
            for item in batch:
                self._fail(item, reason, cause=exc)
            return False
        latency = time.perf_counter() - started
        rows = 0
        for item in batch:
            rows += item.rows
            item.done.set()
        self._counters.record_commit(len(batch), rows, errors, latency)
        self._failures = 0
        return True

    async def _recover(self) -> None:
        """Refuse work and probe with back-off until a probe write commits."""
        while True:
            delay = min(
                self._config.probe_initial * (2 ** min(self._failures - 1, 30)),
                self._config.probe_max,
            )
            # Items that raced past the availability check are failed as they arrive.
            with trio.move_on_after(delay):
                async for item in self._receive:
                    self._fail(item, self._reason or "store unavailable")
            try:
                await trio.to_thread.run_sync(self._db.probe, limiter=self._limiter)
            except Exception as exc:  # still broken: keep refusing, back off further
                self._failures += 1
                self._set_down(describe(exc))
                log.warning("store.probe_failed", reason=self._reason, failures=self._failures)
                continue
            log.warning("store.recovered", after_failures=self._failures)
            self._reason = None
            self._up.set()
            return

    def _fail(self, item: _Item, reason: str, cause: BaseException | None = None) -> None:
        error = StoreUnavailable(reason)
        error.__cause__ = cause
        item.error = error
        item.done.set()

    # ---------------------------------------------------------------- writer thread

    def _run_batch(self, batch: list[_Item]) -> int:
        """The batch transaction (writer thread). Returns the number of failed items."""
        conn = self._db.conn
        if conn is None:
            raise StoreUnavailable("writer connection is closed")
        conn.execute("BEGIN IMMEDIATE")
        try:
            if len(batch) == 1:
                # A lonely item needs no savepoint: the transaction is its own.
                item = batch[0]
                try:
                    item.run(conn)
                except Exception as exc:
                    if is_environmental(exc):
                        raise
                    item.error = exc
                    conn.execute("ROLLBACK")
                    return 1
                errors = 0
            else:
                errors = self._run_items(conn, batch)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
            raise
        return errors

    def _run_items(self, conn: sqlite3.Connection, batch: list[_Item]) -> int:
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
                    errors += self._run_each(conn, run)  # find the culprit, spare the rest
                else:
                    execute("RELEASE run")
                    for item, result in zip(run, results, strict=True):
                        item.result = result
            else:
                errors += self._run_each(conn, batch[i:j])
            i = j
        return errors

    def _run_each(self, conn: sqlite3.Connection, items: list[_Item]) -> int:
        execute = conn.execute
        errors = 0
        for item in items:
            execute("SAVEPOINT item")
            try:
                item.run(conn)
            except Exception as exc:
                if is_environmental(exc):
                    raise
                item.error = exc
                errors += 1
                execute("ROLLBACK TO item")
            execute("RELEASE item")
        return errors
