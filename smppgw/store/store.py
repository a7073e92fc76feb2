"""The store's public face: typed, awaitable operations over the group-commit writer.

Every write method returns only once its work is committed at the configured
durability level (see ``config.py``), so a caller may acknowledge the PDU right after
``await``. Every write method takes a *batch* (a session journals everything of one
read at once: one work item, one ``executemany``) and ``nowait=True`` to raise
:class:`StoreBusy` instead of waiting when the queue is full.

Errors (see ``errors.py``): :class:`StoreUnavailable` when nothing can be made durable
now (answer ``ESME_RX_T_APPN``), :class:`StoreBusy` for a full queue with ``nowait``
(answer ``ESME_RMSGQFUL``); ``ValueError``/``KeyError`` for a call that makes no sense.

Timestamps of records are taken from the injected ``clock`` when the call is made (on
the trio side), never deep in SQL, so tests can pin them.

Resource handling: :meth:`Store.run` opens the file (writer, then readers), reports
started, and closes everything when cancelled. Use it in the daemon's supervision tree
with ``await nursery.start(store.run)``, or :func:`open_store` in tests and scripts.
"""

from __future__ import annotations

import os
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, TypeVar

import trio

from smppgw.store import inbound, journal, message_reads, quota, scenario_tx
from smppgw.store import outcomes as outcome_writes
from smppgw.store.checkpointer import Checkpointer
from smppgw.store.config import StoreConfig
from smppgw.store.readers import ReaderPool
from smppgw.store.writer import GroupCommitWriter

if TYPE_CHECKING:
    import sqlite3
    from collections.abc import AsyncIterator, Callable, Iterable, Sequence

    from smppgw.store.health import StoreStatistics
    from smppgw.store.records import (
        CarrierLookup,
        FinalOutcome,
        InboundResult,
        MessageState,
        NewInbound,
        NewMessage,
        NewOrder,
        NewReceipt,
        Order,
        PendingReceipt,
        QuotaRefusal,
        Requeue,
        Reservation,
        Settlement,
        StoredInbound,
        StoredMessage,
        Submitted,
    )

__all__ = ["Recovery", "Store", "open_store"]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Recovery:
    """What a crash or a stop left unfinished, for the daemon to resume.

    Attributes:
        messages: every MT message not in a final state, highest priority then oldest
            first. ``accepted`` ones must be (re)sent (one may have reached the carrier
            whose response was lost: at-least-once); ``submitted`` ones await a receipt.
        inbound: inbound PDUs journaled but not marked processed.
        released_reservations: quota reservations released because no message was
            journaled for them (crash between admission and journaling).
    """

    messages: list[StoredMessage]
    inbound: list[StoredInbound]
    released_reservations: int


class Store:
    """The durable store. See the module docstring.

    Args:
        path: the SQLite file (created and migrated if needed).
        config: durability level and tuning.
        clock: wall-clock seconds since the epoch, for record timestamps.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        config: StoreConfig | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._path = os.fspath(path)
        self._config = config or StoreConfig()
        self._clock = clock
        self._journal = journal.JournalState()
        self._writer = GroupCommitWriter(
            self._path, self._config, prepare=self._journal.load, clock=clock
        )
        self._accept_many = partial(journal.accept_many, self._journal)  # one object: merges
        self._admit_many = partial(journal.admit_many, self._journal)
        self._readers = ReaderPool(self._path, self._config.readers, self._config.busy_timeout)
        self._checkpointer = (
            Checkpointer(self._path, self._config, lambda: self._writer.commits)
            if self._config.checkpoint_interval > 0
            else None
        )
        if self._checkpointer is not None:
            checkpointer = self._checkpointer
            self._writer.watch_wal(lambda: checkpointer.wal_pages)

    @property
    def path(self) -> str:
        return self._path

    @property
    def checkpointer(self) -> Checkpointer | None:
        """The background WAL checkpointer (None when SQLite checkpoints inline)."""
        return self._checkpointer

    @property
    def available(self) -> bool:
        """False while the store refuses work (see :meth:`statistics` for why)."""
        return self._writer.available

    async def wait_available(self) -> None:
        """Return once the store accepts work again (at once if it does now)."""
        await self._writer.wait_available()

    def statistics(self) -> StoreStatistics:
        return self._writer.statistics()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Serve until cancelled; ``started`` only once the file is open and migrated.

        Raises (before ``started``): ``StoreCorrupt``, ``SchemaTooNew``,
        ``StoreUnavailable``.
        """
        try:
            async with trio.open_nursery() as nursery:
                await nursery.start(self._writer.run)
                await self._readers.open()
                if self._checkpointer is not None:
                    nursery.start_soon(self._checkpointer.run)
                try:
                    task_status.started()
                    await trio.sleep_forever()
                finally:
                    with trio.CancelScope(shield=True):
                        await self._readers.close()
        except BaseExceptionGroup as group:
            _raise_single(group)
            raise

    # ------------------------------------------------------------------ MT journal

    async def journal_accept(
        self, msgs: Sequence[NewMessage], *, nowait: bool = False
    ) -> list[int]:
        """Journal accepted MT messages; returns their ids once durable."""
        if not msgs:
            return []
        ids: list[int] = await self._writer.submit_merged(
            self._accept_many, (msgs, self._clock()), rows=len(msgs), nowait=nowait, quick=True
        )
        return ids

    async def admit(
        self,
        msgs: Sequence[NewMessage],
        quota_parts: Sequence[int | None],
        *,
        payers: Sequence[Sequence[str]] | None = None,
        nowait: bool = False,
        on_commit: Callable[[list[int | QuotaRefusal]], None] | None = None,
    ) -> list[int | QuotaRefusal]:
        """Reserve quota and journal each message together (see ``journal.admit``);
        per message its id once durable, or the :class:`QuotaRefusal`. ``on_commit``
        gets the same list as soon as it is durable, a scheduling round before this
        returns (see ``GroupCommitWriter.submit_merged``)."""
        if not msgs:
            return []
        # Merged with the other sessions' admissions of the same commit: one pass.
        payload = (msgs, quota_parts, payers, self._clock())
        result: list[int | QuotaRefusal] = await self._writer.submit_merged(
            self._admit_many,
            payload,
            rows=len(msgs),
            nowait=nowait,
            quick=True,
            on_commit=on_commit,
        )
        return result

    async def held_messages(self, limit: int = 100) -> list[StoredMessage]:
        """Messages waiting for moderation, oldest first."""
        return await self._readers.run(partial(message_reads.held_messages, limit=limit))

    async def release_held(self, ids: Sequence[int], *, nowait: bool = False) -> list[int]:
        """Moderation approved these: they become ``accepted``; returns those that were held."""
        fn = partial(journal.release_held, ids=list(ids), now=self._clock())
        return await self._writer.submit(fn, rows=len(ids) or 1, nowait=nowait)

    async def mark_submitted(self, updates: Sequence[Submitted], *, nowait: bool = False) -> int:
        """Record the carrier ids a carrier gave; returns how many messages changed state."""
        fn = partial(outcome_writes.mark_submitted, updates=updates, now=self._clock())
        return await self._writer.submit(fn, rows=len(updates), nowait=nowait)

    async def mark_final(
        self, outcomes: Sequence[FinalOutcome], *, nowait: bool = False
    ) -> list[bool]:
        """Record final states (and settle quota where asked); per outcome: applied?"""
        fn = partial(outcome_writes.mark_final, outcomes=outcomes, now=self._clock())
        return await self._writer.submit(fn, rows=len(outcomes), nowait=nowait)

    async def requeue(self, items: Sequence[Requeue], *, nowait: bool = False) -> list[int | None]:
        """Put messages back for another attempt; returns new attempt counts (None: final)."""
        fn = partial(outcome_writes.requeue, items=items, now=self._clock())
        return await self._writer.submit(fn, rows=len(items), nowait=nowait)

    async def get_message(self, message_id: int) -> StoredMessage | None:
        return await self._readers.run(partial(message_reads.get_message, message_id=message_id))

    async def far_scheduled(self, far_after: float) -> list[tuple[float, int]]:
        """``(due, id)`` of the untouched messages scheduled after ``far_after``."""
        return await self._readers.run(partial(message_reads.far_scheduled, far_after=far_after))

    async def messages_by_id(self, message_ids: Sequence[int]) -> list[StoredMessage]:
        """The messages of ``message_ids`` that exist, in the order given."""
        fn = partial(message_reads.messages_by_id, message_ids=list(message_ids))
        return await self._readers.run(fn)

    async def lookup_carrier(self, smsc: str, carrier_id: str) -> CarrierLookup | None:
        """Our message (and part) behind a carrier's message id, for a receipt."""
        fn = partial(message_reads.lookup_carrier, smsc=smsc, carrier_id=carrier_id)
        return await self._readers.run(fn)

    async def cancel_queued(
        self, message_id: int, from_state: MessageState, error: str, *, nowait: bool = False
    ) -> bool:
        """A partner's cancel: ``from_state`` -> ``rejected``, quota released; False when
        the message has left ``from_state`` (see ``journal.cancel_queued``)."""
        [done] = await self.cancel_queued_many([(message_id, from_state)], error, nowait=nowait)
        return done

    async def cancel_queued_many(
        self, items: Sequence[tuple[int, MessageState]], error: str, *, nowait: bool = False
    ) -> list[bool]:
        """:meth:`cancel_queued` of each ``(message id, state seen)``, one transaction."""
        fn = partial(journal.cancel_queued_many, items=list(items), error=error, now=self._clock())
        return await self._writer.submit(fn, rows=len(items) or 1, nowait=nowait)

    async def queued_by_addresses(
        self, partner: str, source_addr: str, destination_addr: str, limit: int
    ) -> list[StoredMessage]:
        """A partner's messages between two addresses not yet given to a carrier (see
        ``message_reads.queued_by_addresses``)."""
        fn = partial(
            message_reads.queued_by_addresses,
            partner=partner,
            source_addr=source_addr,
            destination_addr=destination_addr,
            limit=limit,
        )
        return await self._readers.run(fn)

    async def replace_queued(
        self,
        message_id: int,
        from_state: MessageState,
        new: NewMessage,
        quota_parts: int | None,
        *,
        payers: Sequence[str] = (),
        nowait: bool = False,
    ) -> bool | QuotaRefusal:
        """A partner's replace of a message still in ``from_state`` (see
        ``journal.replace_queued``): True once durable, False when it left that state,
        or the :class:`QuotaRefusal` when the new part count cannot be paid for."""
        fn = partial(
            journal.replace_queued,
            message_id=message_id,
            from_state=from_state,
            new=new,
            quota_parts=quota_parts,
            payers=tuple(payers) or (new.partner,),
            now=self._clock(),
        )
        return await self._writer.submit(fn, rows=len(new.parts) or 1, nowait=nowait)

    async def stale_submitted(
        self, smsc: str, before: float, limit: int = 1000
    ) -> list[StoredMessage]:
        """Messages at ``smsc`` waiting for a receipt since before ``before``."""
        fn = partial(message_reads.stale_submitted, smsc=smsc, before=before, limit=limit)
        return await self._readers.run(fn)

    async def part_states(self, message_ids: Sequence[int]) -> dict[int, dict[int, str | None]]:
        """Per message in parts: the parts a carrier accepted and their receipt states."""
        return await self._readers.run(partial(message_reads.part_states, message_ids=message_ids))

    async def apply_outcomes(
        self, batch: outcome_writes.OutcomeBatch, *, nowait: bool = False
    ) -> list[int | None]:
        """Everything of one pipeline flush in one transaction (see ``outcomes.py``);
        per final outcome, the outbox id of the partner receipt it queued, or None."""
        fn = partial(outcome_writes.apply_outcomes, batch=batch, now=self._clock())
        return await self._writer.submit(fn, rows=max(1, batch.rows), nowait=nowait, quick=True)

    # ------------------------------------------------------------------ inbound

    async def journal_inbound(
        self, items: Sequence[NewInbound], *, nowait: bool = False
    ) -> list[InboundResult]:
        """Journal inbound deliver_sm once per (smsc, dedup_key); acknowledge after this."""
        result: list[InboundResult] = await self._writer.submit_merged(
            inbound.journal_inbound_many,
            (items, self._clock()),
            rows=len(items),
            nowait=nowait,
            quick=True,
        )
        return result

    async def mark_inbound_processed(self, ids: Iterable[int], *, nowait: bool = False) -> None:
        ids = list(ids)
        fn = partial(inbound.mark_inbound_processed, ids=ids, now=self._clock())
        await self._writer.submit(fn, rows=len(ids), nowait=nowait, quick=True)

    # ------------------------------------------------------------------ partner receipts

    async def enqueue_receipts(
        self, receipts: Sequence[NewReceipt], *, nowait: bool = False
    ) -> list[int]:
        fn = partial(inbound.enqueue_receipts, receipts=receipts, now=self._clock())
        return await self._writer.submit(fn, rows=len(receipts), nowait=nowait, quick=True)

    async def pending_receipts(self, partner: str, limit: int = 100) -> list[PendingReceipt]:
        fn = partial(inbound.pending_receipts, partner=partner, limit=limit)
        return await self._readers.run(fn)

    async def ack_receipts(self, ids: Iterable[int], *, nowait: bool = False) -> int:
        ids = list(ids)
        count: int = await self._writer.submit_merged(
            inbound.ack_receipts_many, ids, rows=len(ids), nowait=nowait, quick=True
        )
        return count

    # ------------------------------------------------------------------ orders and quota

    async def create_order(self, order: NewOrder) -> int:
        return await self._writer.submit(
            partial(quota.create_order, order=order, now=self._clock())
        )

    async def reserve_quota(
        self, partner: str, parts: int, *, order_id: int | None = None, nowait: bool = False
    ) -> Reservation | QuotaRefusal:
        """Hold ``parts`` of quota at admission; never over-spends (see ``quota.py``)."""
        fn = partial(
            quota.reserve, partner=partner, parts=parts, now=self._clock(), order_id=order_id
        )
        return await self._writer.submit(fn, nowait=nowait)

    async def settle_quota(
        self, reservation_id: int, charge_parts: int, *, nowait: bool = False
    ) -> Settlement:
        """Charge ``charge_parts`` and release the rest; settling twice changes nothing."""
        fn = partial(
            quota.settle,
            reservation_id=reservation_id,
            charge_parts=charge_parts,
            now=self._clock(),
        )
        return await self._writer.submit(fn, nowait=nowait)

    async def get_order(self, order_id: int) -> Order | None:
        return await self._readers.run(partial(quota.get_order, order_id=order_id))

    async def orders(self, partner: str) -> list[Order]:
        return await self._readers.run(partial(quota.orders_of, partner=partner))

    async def active_orders(self) -> list[Order]:
        """Every order active now, every partner's (for the quota gauges)."""
        return await self._readers.run(partial(quota.active_orders, now=self._clock()))

    # ------------------------------------------------------------------ scenarios

    async def commit_step(
        self,
        step: Callable[[sqlite3.Connection], scenario_tx.StepWrite],
        on_error: Callable[[BaseException], scenario_tx.StepWrite],
        *,
        inbound_id: int | None = None,
        also_inbound: Sequence[int] = (),
        event: scenario_tx.EventIntake | None = None,
    ) -> scenario_tx.StepResult | None:
        """One scenario step committed whole, exactly once (``scenario_tx``): None when
        the inbound row was already processed or the event key already seen."""
        fn = partial(
            scenario_tx.commit_step,
            state=self._journal,
            step=step,
            on_error=on_error,
            now=self._clock(),
            inbound_id=inbound_id,
            also_inbound=also_inbound,
            event=event,
        )
        result: scenario_tx.StepResult | None = await self._writer.submit(fn)
        return result

    # ------------------------------------------------------------------ escape hatches

    async def run_in_transaction(
        self, fn: Callable[[sqlite3.Connection], T], *, rows: int = 1, nowait: bool = False
    ) -> T:
        """Run ``fn(conn)`` atomically inside the writer's next batch; return its result.

        For read-modify-write that must not interleave with other writers (a points
        redemption, taking a gift from the inventory). ``fn`` runs in the writer thread
        under its own savepoint: if it raises, only its own changes are rolled back and
        the exception comes back here. It must not commit, roll back or call trio, and
        should be quick: the whole batch waits for it.
        """
        return await self._writer.submit(fn, rows=rows, nowait=nowait)

    async def read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn(conn)`` on a read-only connection in a worker thread."""
        return await self._readers.run(fn)

    # ------------------------------------------------------------------ recovery

    async def recover(self, far_after: float | None = None) -> Recovery:
        """Collect unfinished work at start-up (call before sessions start admitting);
        with ``far_after``, not the messages :meth:`far_scheduled` gives."""
        released = await self._writer.submit(partial(quota.release_orphans, now=self._clock()))
        read = partial(message_reads.unfinished_messages, far_after=far_after)
        messages = await self._readers.run(read)
        pending_inbound = await self._readers.run(inbound.unprocessed_inbound)
        return Recovery(messages, pending_inbound, released)


@asynccontextmanager
async def open_store(
    path: str | os.PathLike[str],
    *,
    config: StoreConfig | None = None,
    clock: Callable[[], float] = time.time,
) -> AsyncIterator[Store]:
    """Run a :class:`Store` for the duration of an ``async with`` block.

    A single exception (from opening the store or from the block) comes out as itself,
    not wrapped in an exception group, so ``except StoreCorrupt`` works for callers.
    """
    store = Store(path, config=config, clock=clock)
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(store.run)
            try:
                yield store
            finally:
                nursery.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        _raise_single(group)
        raise


def _raise_single(group: BaseExceptionGroup[BaseException]) -> None:
    """Re-raise the only leaf of nested one-member groups as itself; return otherwise.

    The store's nurseries exist for structure, not for concurrency a caller should see:
    an open failure is one error, and the daemon's ``except StoreCorrupt`` should work.
    """
    leaf: BaseException = group
    while isinstance(leaf, BaseExceptionGroup) and len(leaf.exceptions) == 1:
        leaf = leaf.exceptions[0]
    if leaf is not group and not isinstance(leaf, BaseExceptionGroup):
        raise leaf from leaf.__cause__  # keeps the leaf's own cause, hides the wrapper
