"""The group-commit writer: the only code that writes to the database file.

Theory of operation
===================
Callers (partner sessions, carrier sessions, scenario handlers) never touch SQLite.
They hand the writer a *work item*, a plain function ``fn(conn) -> T`` plus a row
count, and ``await`` its durability. The writer is one trio task that owns one
``sqlite3`` connection, one ``CapacityLimiter(1)`` and the writer thread: a single
``trio.to_thread.run_sync`` call that runs for as long as the store serves, and loops:

1. wait for the first item in the bounded inbox (``store/inbox.py``: a deque under a
   ``threading.Condition``; the event loop puts, the thread takes);
2. optionally linger a few milliseconds (``StoreConfig.linger``, 0 by default);
3. take whatever else is queued (up to ``max_batch_items`` items or ``max_batch_rows``
   rows). Under load this is everything that arrived while the previous commit ran,
   so batches grow by themselves with the load: *group commit*;
4. run the whole batch in ONE transaction: ``BEGIN IMMEDIATE``, each item inside its
   own ``SAVEPOINT``, ``COMMIT`` (one WAL append, one fsync at the ``power`` level);
5. only after ``COMMIT`` returned, hand the batch to the event loop
   (``TrioToken.run_sync_soon``), which gives every item its result and wakes its
   caller; the thread takes its next batch as soon as the loop has done that (it used
   to return to the loop and wait there to be handed a batch and started again: a busy
   loop delayed every next commit by about a commit's time). The go-ahead is given by
   that same callback; a cancellation of the writer stops the inbox the instant it is
   delivered (``_watch_stop``), so a stop is never overtaken by a new batch.

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
  not abandoned on cancellation: cancelled, the task stops the inbox, the commit in
  progress finishes and its waiters are woken before the task stops. Items still queued
  at shutdown get ``StoreUnavailable``. A batch that fails as a whole ends the thread's
  loop; the task then refuses work and probes (Rule 3) and starts it again.

Backpressure: the inbox is bounded (``queue_size``). ``submit`` waits for room;
``submit(..., nowait=True)`` raises :class:`StoreBusy` instead, so a session can answer
``ESME_RMSGQFUL``.

Cancellation of a caller: if a caller is cancelled after its item was queued, the item
may still commit; the caller simply never learns it. For a partner's ``submit_sm`` this
means a message journaled but not acknowledged, which the partner may resubmit: a
duplicate, never a loss.

Item functions run in the writer thread: they must only use the connection they are
given, must not call trio, must not ``COMMIT``/``ROLLBACK`` themselves, and should be
quick: they hold up everyone else's commit.

Inline commits
==============
At low load the hand-offs cost more than the commit: a lonely ``admit`` of one message
took 177 us from the loop (190 us of CPU), of which the transaction was about 60; the
rest was waking the thread and being woken back. So a *quick* item (the hot paths ask
for it: MT admission, outcomes, inbound MO, receipts), small enough
(``StoreConfig.inline_rows``), at the ``process`` level (no fsync in the commit), is
committed by the event loop itself, in the same transaction code, when the thread has
nothing running or queued (:meth:`Inbox.claim`): at once if no other task waits for
the loop's next round (``tasks_runnable == 0``; it yields after the commit), else
together with the other quick writes of the same round, when the round ends
(``store/round_commit.py``; the inbox stays claimed until then). The lonely admit
takes 64 us (75 of CPU) instead of 177; four partners that each wait for every answer
went from 1,996 to 2,700 msg/s once their admissions stopped going to the thread in
batches of one or two. Under load too: ``inline_rows`` is 512, a partner's whole
window of admissions, read in one go. At 32, the admissions of partners with a window of
64 came in larger batches, went to the thread, and kept it busy, so every other quick
write went there too, and the loop and the thread passed the GIL back and forth for
each batch (``scripts/bench_partner.py``, window 64, alternating runs: one session
10,900 -> 13,900-15,000 msg/s end to end, p99 at half load 15.9/7.8 -> 9.2/8.4 ms;
four sessions accepted 13,600 -> 17,800-18,800 msg/s, ahead of what the carrier side
forwards; ``scripts/bench_ab.py`` at 4,000 msg/s: one session p50 0.62x, p99 0.73x, CPU
a message 1.02x). A round commits at most ``ROUND_BATCH_ROWS`` times that on the loop.
Everything else (items that are not quick, or too large, and every item at the
``power`` level) goes through the thread as above. Never
without the background checkpointer, nor while the WAL it reports nears SQLite's own
checkpoint (``INLINE_WAL_PAGES``): that checkpoint, with its fsync, would run inside
the commit, on the loop (a report holding a read snapshot for minutes can do that).
Rules 1-3
hold unchanged: the caller is answered after ``COMMIT`` returned, an item's own error
rolls back only itself, and an error of the environment turns the store unavailable
(the thread is stopped and the task probes and restarts it).
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any, TypeVar, cast

import structlog
import trio

from smppgw.store.config import Durability
from smppgw.store.connection import (
    SAFETY_NET_PAGES,
    WriterConnection,
    describe,
    is_environmental,
)
from smppgw.store.errors import StoreBusy, StoreUnavailable
from smppgw.store.health import StoreStatistics, WriterCounters
from smppgw.store.inbox import Inbox
from smppgw.store.round_commit import RoundBatch, RoundEnd
from smppgw.store.work_items import MergeFn, WorkItem, run_batch

if TYPE_CHECKING:
    import sqlite3
    from collections.abc import Callable

    from smppgw.store.config import StoreConfig

__all__ = ["GroupCommitWriter", "is_environmental"]

T = TypeVar("T")
#: Inline commits stop while the WAL holds this many pages the checkpointer could not
#: copy back: half-way to SQLite's own checkpoint (see "Inline commits").
INLINE_WAL_PAGES = SAFETY_NET_PAGES // 2
#: Rows a round batch (``store/round_commit.py``) holds at most, in multiples of
#: ``StoreConfig.inline_rows``; further quick writes of the round go to the thread.
ROUND_BATCH_ROWS = 4

log = structlog.get_logger(__name__)


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
        self._inbox: Inbox[WorkItem] = Inbox(config.queue_size)
        self._room = trio.lowlevel.ParkingLot()  # callers waiting for room in the inbox
        self._handed = threading.Event()  # the thread may take its next batch
        self._handed.set()
        self._limiter = trio.CapacityLimiter(1)
        self._reason: str | None = "store is not running"
        self._up = trio.Event()  # set while available; replaced when the store goes down
        self._failures = 0  # consecutive failed batches/probes, drives the back-off
        self._counters = WriterCounters()
        # Quick items up to this many rows may be committed by the loop (see "Inline
        # commits"); never at the power level, whose fsync must not stall the loop.
        self._inline_rows = config.inline_rows if config.durability is Durability.PROCESS else 0
        self._wal_pages: Callable[[], int] | None = None  # see watch_wal; None: no inline
        self._round: RoundBatch | None = None  # quick items waiting for the round's end

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

    def watch_wal(self, wal_pages: Callable[[], int]) -> None:
        """Allow inline commits while ``wal_pages()`` (the background checkpointer's
        report) stays under :data:`INLINE_WAL_PAGES`."""
        self._wal_pages = wal_pages

    async def submit(
        self,
        fn: Callable[[sqlite3.Connection], T],
        *,
        rows: int = 1,
        nowait: bool = False,
        quick: bool = False,
    ) -> T:
        """Run ``fn(conn)`` in the next batch transaction and return its result once durable.

        ``quick``: ``fn`` is short work bounded by ``rows`` (no waiting, no scans), so it
        may be committed inline by the event loop when that is idle ("Inline commits").

        Raises:
            StoreUnavailable: the store refuses work now, or the batch failed to commit.
            StoreBusy: ``nowait`` and the queue is full.
            Exception: whatever ``fn`` raised (only its own savepoint was rolled back).
        """
        return cast("T", await self._submit(WorkItem(fn, rows, quick=quick), nowait))

    async def submit_merged(
        self,
        merge: MergeFn,
        payload: object,
        *,
        rows: int = 1,
        nowait: bool = False,
        quick: bool = False,
        on_commit: Callable[[Any], None] | None = None,
    ) -> Any:
        """Like :meth:`submit` for ``merge(conn, [payload])[0]``, merged with its neighbours.

        ``merge`` must be the same object for every item that may be merged (bind it
        once). If a merged run raises, its items are retried one by one, each under its
        own savepoint, so the error reaches only the caller whose payload caused it.

        ``on_commit``: called with the result by the event loop the moment the commit
        is known, before the caller is woken (a scheduling round later): what must
        follow the commit at once (a partner's ``submit_sm_resp``) need not wait for
        that round. Not called if the item failed. It must be quick and not raise.
        """
        item = WorkItem(None, rows, merge, payload, quick=quick, on_commit=on_commit)
        return await self._submit(item, nowait)

    async def _submit(self, item: WorkItem, nowait: bool) -> object:
        """Queue ``item``, wait for its commit, return its result or raise its error.

        Raises:
            StoreUnavailable: the store refuses work now, or the batch failed to commit.
            StoreBusy: ``nowait`` and the queue is full.
            Exception: whatever ``fn`` raised (only its own savepoint was rolled back).
        """
        if self._reason is not None:
            raise StoreUnavailable(self._reason)
        if (
            item.quick
            and item.rows <= self._inline_rows
            and self._wal_pages is not None
            and self._wal_pages() < INLINE_WAL_PAGES
        ):
            round_ = self._round
            if round_ is not None:
                if round_.rows + item.rows <= self._inline_rows * ROUND_BATCH_ROWS:
                    round_.add(item)
                    return await self._outcome(item)
            elif self._inbox.claim():  # under load the thread is busy: refused, cheaply
                if trio.lowlevel.current_statistics().tasks_runnable == 0:  # ~2 us: last
                    return await self._commit_inline(item)
                # Others are about to run: commit with their quick writes at the round's
                # end (store/round_commit.py), the inbox claimed until then.
                self._round = round_ = RoundBatch()
                round_.add(item)
                return await self._outcome(item)
        # No checkpoint while there is room: the wait for the commit is this call's only
        # schedule point, which saves a task switch per message on the hot path.
        while not self._inbox.put(item):
            if self._reason is not None:
                raise StoreUnavailable(self._reason)
            if nowait:
                raise StoreBusy("journal queue is full")
            await self._room.park()
        return await self._outcome(item)

    @staticmethod
    async def _outcome(item: WorkItem) -> object:
        """Wait for ``item``'s commit; its result, or its error raised."""
        await item.done.wait()
        if item.error is not None:
            raise item.error
        return item.result

    async def _commit_inline(self, item: WorkItem) -> object:
        """Commit ``item`` alone in the event loop (the inbox is claimed; see "Inline
        commits"), then yield once, so a caller looping on quick writes does not keep
        the loop from its sockets. The result is returned even if the caller was
        cancelled meanwhile: it is durable."""
        self._commit_on_loop([item])
        await trio.lowlevel.cancel_shielded_checkpoint()
        if item.error is not None:
            raise item.error
        return item.result

    def _round_due(self) -> bool:
        return self._round is not None

    def _commit_round(self) -> None:
        """(Event loop, at the round's end.) Commit the round batch, as an inline commit
        of several items; the inbox claim ends with it."""
        round_, self._round = self._round, None
        if round_ is not None:
            self._commit_on_loop(cast("list[WorkItem]", round_.items))

    def _commit_on_loop(self, batch: list[WorkItem]) -> None:
        """Commit ``batch`` in the event loop (the inbox is claimed; the claim ends)."""
        started = time.perf_counter()
        try:
            errors = self._run_batch(batch)
        except Exception as exc:  # the environment's: nothing is durable, the store is down
            self._batch_failed(batch, exc)
            self._stop_thread()  # the task then probes and restarts the thread
        else:
            self._committed(batch, errors, time.perf_counter() - started)
            self._counters.inline_commits += 1
        finally:
            self._inbox.finished()

    def _refuse_round(self, reason: str) -> None:
        """The store stops with a round batch still open: none of it was committed."""
        round_, self._round = self._round, None
        if round_ is not None:
            for item in cast("list[WorkItem]", round_.items):
                self._fail(item, reason)
            self._inbox.finished()

    @property
    def commits(self) -> int:
        """Batches committed so far (the checkpointer looks for new ones)."""
        return self._counters.commits

    def statistics(self) -> StoreStatistics:
        return self._counters.snapshot(
            queue_depth=len(self._inbox),
            queue_capacity=self._config.queue_size,
            reason=self._reason,
        )

    # ---------------------------------------------------------------- writer task

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Open and migrate the file, report started, then commit batches until cancelled.

        Raises (before ``started``): :class:`StoreCorrupt`, :class:`SchemaTooNew`,
        :class:`StoreUnavailable` (locked, unreadable, in use by another process).
        """
        self._inbox.stop()  # nothing is queued before the file is open
        try:
            await trio.to_thread.run_sync(self._db.open, limiter=self._limiter)
            self._serving()
            task_status.started()
            token = trio.lowlevel.current_trio_token()
            round_end = RoundEnd(self._round_due, self._commit_round, token)
            trio.lowlevel.add_instrument(round_end)
            try:
                while True:
                    await self._serve(token)
                    await self._recover()
            finally:
                trio.lowlevel.remove_instrument(round_end)
        finally:
            self._set_down("store is closed")
            self._inbox.stop()
            self._refuse_queued("store is closed")  # any later caller finds it stopped
            self._refuse_round("store is closed")
            with trio.CancelScope(shield=True):
                await trio.to_thread.run_sync(self._db.close, limiter=self._limiter)

    def _serving(self) -> None:
        self._reason = None
        self._inbox.restart()
        self._up.set()

    async def _serve(self, token: trio.lowlevel.TrioToken) -> None:
        """Run the writer thread (:meth:`_commit_loop`) until a batch fails as a whole.

        Cancelled, it stops the inbox at that very moment (:meth:`_watch_stop`): the
        thread finishes the commit in progress (its waiters are woken), takes no other,
        returns, and the cancellation goes on.
        """
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._watch_stop)
            await trio.to_thread.run_sync(self._commit_loop, token, limiter=self._limiter)
            nursery.cancel_scope.cancel()

    async def _watch_stop(self) -> None:
        """Wait for the writer's cancellation and stop the inbox in the same instant.

        Why a bare ``wait_task_rescheduled``: its abort function runs synchronously
        when the cancellation is delivered, before any other task or callback of the
        loop runs (a ``finally`` would run in a later scheduling round, and a batch
        handed back meanwhile would overtake the stop).
        """

        def abort(_raise_cancel: object) -> trio.lowlevel.Abort:
            self._stop_thread()
            return trio.lowlevel.Abort.SUCCEEDED

        await trio.lowlevel.wait_task_rescheduled(abort)

    def _stop_thread(self) -> None:
        self._inbox.stop()
        self._room.unpark_all()
        self._handed.set()  # the thread then finds the inbox stopped and returns

    def _batch_done(self, batch: list[WorkItem], errors: int, latency: float) -> None:
        """(Event loop, from the writer thread.) A batch committed: wake its waiters,
        and let the thread take its next batch (after a stop it finds none: the inbox
        was stopped when the cancellation came, see :meth:`_watch_stop`)."""
        self._committed(batch, errors, latency)
        self._handed.set()

    def _committed(self, batch: list[WorkItem], errors: int, latency: float) -> None:
        """A batch committed, by the thread or inline: wake its waiters, count it."""
        rows = 0
        for item in batch:
            rows += item.rows
            if item.on_commit is not None and item.error is None:
                try:
                    item.on_commit(item.result)
                except Exception:  # pragma: no cover - defensive: the commit stands
                    log.exception("store.on_commit_failed")
            item.done.set()
        self._counters.record_commit(len(batch), rows, errors, latency)
        self._failures = 0

    def _batch_failed(self, batch: list[WorkItem], exc: Exception) -> None:
        """(Event loop, from the writer thread.) Nothing of the batch is durable."""
        reason = describe(exc)
        self._counters.batch_errors += 1
        self._failures += 1
        self._set_down(reason)
        log.error("store.batch_failed", reason=reason, items=len(batch))
        for item in batch:
            self._fail(item, reason, cause=exc)

    async def _recover(self) -> None:
        """Refuse work and probe with back-off until a probe write commits."""
        while True:
            # Items that raced past the availability check are failed.
            self._refuse_queued(self._reason or "store unavailable")
            delay = min(
                self._config.probe_initial * (2 ** min(self._failures - 1, 30)),
                self._config.probe_max,
            )
            await trio.sleep(delay)
            try:
                await trio.to_thread.run_sync(self._db.probe, limiter=self._limiter)
            except Exception as exc:  # still broken: keep refusing, back off further
                self._failures += 1
                self._set_down(describe(exc))
                log.warning("store.probe_failed", reason=self._reason, failures=self._failures)
                continue
            log.warning("store.recovered", after_failures=self._failures)
            self._serving()
            return

    def _refuse_queued(self, reason: str) -> None:
        """Fail every item still in the inbox, and wake the callers waiting for room
        (they find the store down)."""
        for item in self._inbox.drain():
            self._fail(item, reason)
        self._room.unpark_all()

    def _fail(self, item: WorkItem, reason: str, cause: BaseException | None = None) -> None:
        error = StoreUnavailable(reason)
        error.__cause__ = cause
        item.error = error
        item.done.set()

    # ---------------------------------------------------------------- writer thread

    def _commit_loop(self, token: trio.lowlevel.TrioToken) -> None:
        """Commit batches back to back, each taken once the loop has woken the last
        one's waiters, until the inbox is stopped or a batch fails as a whole. Each
        outcome goes to the event loop with ``run_sync_soon`` (in order, before this
        call's own return)."""
        config = self._config
        while True:
            # Paced by the event loop: the next batch is taken once the loop has woken
            # the last one's waiters. An idle loop does that at once; a loop that is
            # behind lets the next batch grow meanwhile instead of being handed commits
            # it cannot answer yet (smaller, more frequent commits cost more in all).
            self._handed.wait()
            batch, was_full = self._inbox.take(
                config.max_batch_items, config.max_batch_rows, config.linger
            )
            if not batch:
                return
            # Cleared before the commit, not after it: a stop that sets it meanwhile
            # must still find the thread's next wait open.
            self._handed.clear()
            if was_full:
                token.run_sync_soon(self._room.unpark_all)
            started = time.perf_counter()
            try:
                errors = self._run_batch(batch)
            except Exception as exc:  # any failure of the transaction: nothing is durable
                token.run_sync_soon(self._batch_failed, batch, exc)
                return
            finally:
                self._inbox.finished()
            token.run_sync_soon(self._batch_done, batch, errors, time.perf_counter() - started)

    def _run_batch(self, batch: list[WorkItem]) -> int:
        """The batch transaction (see ``store/work_items.py``); the number of failed items."""
        conn = self._db.conn
        if conn is None:
            raise StoreUnavailable("writer connection is closed")
        return run_batch(conn, batch)
