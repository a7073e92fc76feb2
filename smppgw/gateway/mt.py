"""The MT pipeline's hub: routes journaled messages to carrier queues and records what
the carriers say, in batches, in the journal.

Theory of operation
-------------------
A message reaches :meth:`MtPipeline.enqueue` only once it is in the journal. The router
picks the first carrier of its prefix route that is up (the primary otherwise, so it
waits there), and the message joins that carrier's :class:`CarrierQueue`.

Carrier binds report back through plain method calls (no awaiting, so a bind never
waits on the disk): a part accepted with the carrier's id, a message failed, a message
to retry. The pipeline keeps those in lists and one flusher task writes them to the
journal in batches. The carrier-id -> message map is also kept in memory for recent
messages, so a receipt is usually matched without a read; a receipt that arrives before
its ``submit_sm_resp`` is recorded is held and tried again for a while.

When a carrier's last bind goes down its queue is re-routed to the next carrier of each
message's route that is up. A message whose send failed for a temporary reason is
retried later (attempts counted in the journal) up to ``max_attempts``.

Crash safety: a part's carrier id that was not flushed yet is lost with the process;
the message is still ``accepted`` in the journal, so recovery sends it again
(at-least-once: the duplicate is counted by the carrier side as a possible duplicate).
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from typing import TYPE_CHECKING

import structlog
import trio

from smppgw.gateway.delayed import DelayedMessages
from smppgw.gateway.far_ahead import FarAhead
from smppgw.gateway.mt_statistics import COUNTS, MtStatistics
from smppgw.gateway.opt_out import OPTED_OUT_ERROR, refused_on_release
from smppgw.gateway.outbound import CarrierQueue, OutboundMessage
from smppgw.gateway.pending_outcomes import PendingOutcomes
from smppgw.gateway.receipt_state import (
    RECEIPT_TO_FINAL,
    Tracked,
    info_from_outbound,
    info_from_stored,
    overall_state,
    stale_outcome,
)
from smppgw.gateway.recovery import outbound_from_stored, recovered_outbound
from smppgw.gateway.routing import NoRoute, PrefixRouter
from smppgw.store import (
    FINAL_STATES,
    FinalOutcome,
    MessageState,
    NewReceipt,
    Requeue,
    Store,
    StoredMessage,
    StoreError,
    Submitted,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence

    from smppgw.gateway.opt_out import ReleaseCheckFn
    from smppgw.gateway.partner_receipts import MessageInfo
    from smppgw.protocol.receipt import MessageState as ReceiptState

__all__ = ["MtPipeline", "MtStatistics"]

log = structlog.get_logger("smppgw.mt")

#: Messages awaiting a carrier receipt kept in memory at most (about 300 bytes each).
TRACKED_MAX = 200_000
FINALIZED_MAX = 50_000
#: How often messages past their carrier's receipt timeout are looked for.
STALE_SWEEP_INTERVAL = 60.0


class MtPipeline:
    """See the module docstring.

    Args:
        store: the journal.
        router: prefix routes to carrier names.
        carriers: every configured carrier name (each gets a queue).
        max_attempts: sends of one message before it fails for good.
        retry_delay: seconds before a temporarily failed message is sent again.
        on_receipts: called with ``(outbox id, receipt)`` pairs just journaled in the
            (after they are journaled), so their sessions can deliver them.
        clock: wall-clock seconds for journal records.
        flush_interval: least seconds between two writes of outcomes. At low load each
            message's outcome was a commit of its own, in the way of the next
            admission's; 10 ms of them in one write took a single-message partner from
            about 1,060 to 1,490 msg/s (``scripts/bench_partner.py`` case
            ``--window 1``). It delays what it writes by at most that: the carrier ids
            and final states, and the receipts to partners.
    """

    def __init__(
        self,
        store: Store,
        router: PrefixRouter,
        carriers: Iterable[str],
        *,
        max_attempts: int = 10,
        retry_delay: float = 5.0,
        on_receipts: Callable[[list[tuple[int, NewReceipt]]], None] | None = None,
        clock: Callable[[], float] = time.time,
        recent_receipt_keys: int = 200_000,
        flush_interval: float = 0.01,
    ) -> None:
        self.store = store
        self.router = router
        self.queues = {name: CarrierQueue(name) for name in carriers}
        self._up = dict.fromkeys(self.queues, 0)
        self.max_attempts = max_attempts
        self.retry_delay = retry_delay
        self.on_receipts = on_receipts
        self._clock = clock
        #: What the next flush writes (``gateway/pending_outcomes.py``).
        self._pending = PendingOutcomes()
        self._dirty = trio.Event()
        self.flush_interval = flush_interval
        #: Scheduled messages and retries, by trio time (``gateway/delayed.py``).
        self._delayed = DelayedMessages()
        self._delayed_changed = trio.Event()
        #: Scheduled further ahead: ids only, read back when due (``gateway/far_ahead.py``).
        self._far = FarAhead(store.messages_by_id, self.release, self._room, clock)
        #: ``server.max_pending_messages``: far-ahead messages are read back within it.
        self.max_pending: float = math.inf
        self._recent: OrderedDict[tuple[str, str], tuple[int, int]] = OrderedDict()
        self._recent_max = recent_receipt_keys
        # OrderedDicts: dropping the oldest is popitem(last=False), O(1); on a dict,
        # next(iter(d)) walks over every slot deleted since the last resize (6 % of the
        # gateway's CPU once 50,000 messages had been made final).
        self._tracked: OrderedDict[int, Tracked] = OrderedDict()
        #: Ids made final lately (a repeated receipt must not make a second final).
        self._finalized: OrderedDict[int, None] = OrderedDict()
        #: Carrier name -> seconds after which a message without a receipt expires.
        self.receipt_timeouts: dict[str, float] = {}
        #: One flush at a time: flush() must not return while another is mid-write.
        self._flush_lock = trio.Lock()
        self._counts = dict.fromkeys(COUNTS, 0)
        #: ``check(messages)``: the ids of those that must not go after all, a
        #: marketing message whose number opted out while it waited for its schedule or
        #: a moderator (admission checked it when it came). None: none is checked. The
        #: daemon sets it: the partner server knows whose messages the list applies to.
        self.release_check: ReleaseCheckFn | None = None

    # -- routing ---------------------------------------------------------------------

    def is_up(self, carrier: str) -> bool:
        return self._up.get(carrier, 0) > 0

    def enqueue(self, message: OutboundMessage) -> None:
        """Route a journaled message to a carrier queue; one whose partner scheduled it
        (``schedule_delivery_time``), or recovered with a retry not yet due, waits
        until its time (``gateway/delayed.py``)."""
        if message.not_before is not None:
            wait = message.not_before - self._clock()
            if wait > 0:
                if not self._far.takes(message, wait):
                    scheduled = not message.attempts  # else a retry recovered from the journal
                    self._delayed.push(trio.current_time() + wait, message, scheduled=scheduled)
                self._delayed_changed.set()
                return
            message.not_before = None
        try:
            carrier = self.router.choose(message.destination_addr, self.is_up)
        except NoRoute:
            candidates = self.router.candidates(message.destination_addr)
            if not candidates or candidates[0] not in self.queues:
                self._counts["unroutable"] += 1
                log.warning("no route", message_id=message.id)
                self.fail(message, 0x0B, "no route for destination")
                return
            carrier = candidates[0]  # none is up: wait at the primary
        message.carrier = carrier
        self.queues[carrier].put(message)

    def carrier_up(self, carrier: str) -> None:
        self._up[carrier] = self._up.get(carrier, 0) + 1

    def carrier_down(self, carrier: str) -> None:
        self._up[carrier] = max(0, self._up.get(carrier, 0) - 1)
        if self._up[carrier] == 0:
            queue = self.queues.get(carrier)
            if queue is None:
                return
            moved = 0
            for message in queue.drain():
                self.enqueue(message)
                moved += message.carrier != carrier
            if moved:
                log.info("re-routed queued messages", carrier=carrier, moved=moved)

    # -- outcomes from carrier binds ---------------------------------------------------

    def part_accepted(self, message: OutboundMessage, part_no: int, carrier_key: str) -> None:
        """The carrier accepted ``part_no``; ``carrier_key`` is its normalised id."""
        carrier = message.carrier or ""
        self._pending.submitted.append(Submitted(message.id, carrier, carrier_key, part_no))
        self._counts["submitted"] += 1
        recent = self._recent
        recent[(carrier, carrier_key)] = (message.id, part_no)
        if len(recent) > self._recent_max:
            recent.popitem(last=False)
        if not message.registered_delivery & 0x03:
            # No receipt asked of the carrier: nothing will come to wait for. Final once
            # the last part is accepted (and charged then); nothing kept in memory.
            if part_no == len(message.parts) - 1:
                self._add_final(
                    FinalOutcome(
                        message.id, MessageState.SENT, None, None, charge_parts=len(message.parts)
                    ),
                    None,
                )
        elif not carrier_key or message.no_carrier_id:
            # No id for this part or an earlier one: its receipt can never be matched.
            message.no_carrier_id = True
            if part_no == len(message.parts) - 1:
                self._final_without_carrier_id(message, carrier)
        elif part_no == 0 and message.id not in self._tracked:
            # Only at the first part: one resumed after a restart (or dropped from
            # memory) may have parts whose receipts are journaled already, and a blank
            # tracking would wait for them for ever (found by the chaos test: a kill
            # between the two parts of a message). Its receipts rebuild it from the
            # journal instead (_tracked_for).
            tracked = self._tracked
            tracked[message.id] = Tracked(info_from_outbound(message, self._clock()), {})
            if len(tracked) > TRACKED_MAX:
                # A receipt that never comes must not hold memory for ever: the oldest
                # goes; a late receipt finds its message in the journal again.
                tracked.popitem(last=False)
        self._dirty.set()

    def _final_without_carrier_id(self, message: OutboundMessage, carrier: str) -> None:
        """The carrier took every part, some without an id (SMPP 3.4 4.4.2 says it gives
        one): no receipt can match them. Final ``sent`` (charged) and the partner told
        ``UNKNOWN`` now, not ``EXPIRED`` after ``receipt_timeout_hours``."""
        self._tracked.pop(message.id, None)
        error = f"{carrier} gave no message id: its receipt cannot be matched"
        outcome = FinalOutcome(
            message.id, MessageState.SENT, None, error, charge_parts=len(message.parts)
        )
        self._add_final(outcome, info_from_outbound(message, self._clock()))

    def fail(self, message: OutboundMessage, status: int, error: str) -> None:
        """The message cannot be sent (permanent refusal or out of attempts)."""
        self._counts["failed"] += 1
        self._final_unsent(message, MessageState.FAILED, status, error)

    def expire(self, message: OutboundMessage) -> None:
        """The partner's validity_period passed before any part was sent (the carrier
        was down, throttled, or the message waited for a retry or a moderator): final
        ``expired``, nothing charged (no carrier took it), and the partner's receipt
        (EXPIRED) if it asked for one. Sending it would deliver what the partner said
        is worthless by now (an OTP, an alert)."""
        self._counts["expired_unsent"] += 1
        self._final_unsent(
            message, MessageState.EXPIRED, None, "validity_period passed before sending"
        )

    def _final_unsent(
        self, message: OutboundMessage, state: MessageState, status: int | None, error: str
    ) -> None:
        """Final without a carrier having taken it: nothing charged, receipt if asked."""
        self._tracked.pop(message.id, None)
        self._add_final(
            FinalOutcome(message.id, state, status, error, charge_parts=0),
            info_from_outbound(message, self._clock()),
        )

    def reject_held(self, stored: StoredMessage, reason: str) -> None:
        """Moderation refused a held message: final ``rejected``, nothing charged, and
        the partner's receipt (REJECTD) if it asked for one."""
        self._add_final(
            FinalOutcome(stored.id, MessageState.REJECTED, None, reason, charge_parts=0),
            info_from_stored(stored),
        )

    def retry(self, message: OutboundMessage, error: str, *, possible_duplicate: bool) -> None:
        """Send again later: a temporary refusal, a timeout, or a lost connection."""
        if possible_duplicate:
            self._counts["dups"] += 1
        message.attempts += 1
        if message.attempts >= self.max_attempts:
            self.fail(message, 0x08, f"gave up after {message.attempts} attempts: {error}")
            return
        self._counts["retried"] += 1
        due = self._clock() + self.retry_delay
        self._pending.requeues.append(Requeue(message.id, due, error))
        self._delayed.push(trio.current_time() + self.retry_delay, message)
        self._delayed_changed.set()
        self._dirty.set()

    def put_back(self, message: OutboundMessage) -> None:
        """A bind stopped before sending ``message``: front of the queue, no attempt
        (a scheduled one taken out to be replaced: back to waiting for its time)."""
        queue = self.queues.get(message.carrier or "")
        if message.not_before is not None or queue is None or not self.is_up(message.carrier or ""):
            self.enqueue(message)
        else:
            queue.put_front(message)

    def withdraw(self, stored: StoredMessage) -> OutboundMessage | None:
        """Take a message out of the carrier queues before any part of it was sent (a
        partner's cancel or replace); None when it is not waiting untouched in a queue
        or for its schedule: being sent, waiting for a retry, or gone. Synchronous, so
        no sender can take it between the look and the removal. ``stored``: its journal
        row, which is what one scheduled far ahead was kept as."""
        return self.withdraw_many([stored]).get(stored.id)

    def withdraw_many(self, stored: Sequence[StoredMessage]) -> dict[int, OutboundMessage]:
        """:meth:`withdraw` of several messages at once (a cancel by addresses), each
        queue scanned once: those taken out, by id."""
        out: dict[int, OutboundMessage] = {}
        wanted = {s.id for s in stored}
        for queue in self.queues.values():
            out.update(queue.remove_many(wanted - out.keys()))
        out.update(self._delayed.remove_many(wanted - out.keys()))
        far = self._far.remove_many(wanted - out.keys())
        out.update((s.id, outbound_from_stored(s)) for s in stored if s.id in far)
        return out

    # -- receipts ----------------------------------------------------------------------

    async def match_receipt(
        self, carrier: str, carrier_key: str, state: ReceiptState, error: str | None
    ) -> bool:
        """Apply a receipt; False when no message is known for it (yet)."""
        found = self._recent.get((carrier, carrier_key))
        stored: StoredMessage | None = None
        if found is None:
            self._flush_now()
            lookup = await self.store.lookup_carrier(carrier, carrier_key)
            if lookup is None:
                return False
            found = (lookup.message.id, lookup.part_no)
            stored = lookup.message
        message_id, part_no = found
        self._counts["matched"] += 1
        final = RECEIPT_TO_FINAL.get(state)
        if final is None:  # ENROUTE, ACCEPTED: intermediate
            return True
        tracked = await self._tracked_for(message_id, stored)
        if tracked is None:  # final already: a repeated receipt
            return True
        tracked.finals[part_no] = final
        if tracked.info.parts > 1:
            # Kept in the journal too: the other parts' receipts may come after a restart.
            self._pending.part_states.append(
                (message_id, part_no, carrier, carrier_key, final.value)
            )
        if len(tracked.finals) >= tracked.info.parts:
            self._tracked.pop(message_id, None)
            overall = overall_state(tracked.finals)
            outcome = FinalOutcome(
                message_id, overall, None, error, charge_parts=tracked.info.parts
            )
            self._add_final(outcome, tracked.info)
        return True

    async def _tracked_for(self, message_id: int, stored: StoredMessage | None) -> Tracked | None:
        """The message's tracking, rebuilt from the journal if it is not in memory (a
        restart, or dropped past ``TRACKED_MAX``); None when the message is final.

        Checked again after every wait: two copies of a receipt (a carrier repeating it
        on another bind, a replay at start) may be applied at once, and the first may
        make the message final while the second reads the journal.
        """
        while True:
            if message_id in self._finalized:
                return None
            tracked = self._tracked.get(message_id)
            if tracked is not None:
                return tracked
            if stored is None:
                stored = await self.store.get_message(message_id)
                if stored is None:
                    return None
                continue
            if stored.state in FINAL_STATES:
                return None
            rebuilt = await self._tracked_from_store(stored)
            if message_id in self._finalized:
                return None
            return self._tracked.setdefault(message_id, rebuilt)

    async def _tracked_from_store(self, stored: StoredMessage) -> Tracked:
        """A message awaiting receipts, rebuilt from the journal (after a restart, or
        dropped from memory): for one in parts, the part receipts that already came."""
        finals: dict[int, MessageState] = {}
        if stored.part_count > 1:
            states = (await self.store.part_states([stored.id])).get(stored.id, {})
            finals = {p: MessageState(v) for p, v in states.items() if v is not None}
            for message_id, part_no, _, _, value in self._pending.part_states:  # not flushed
                if message_id == stored.id:
                    finals[part_no] = MessageState(value)
        return Tracked(info_from_stored(stored), finals)

    def _add_final(self, outcome: FinalOutcome, info: MessageInfo | None) -> None:
        finalized = self._finalized
        finalized[outcome.message_id] = None
        if len(finalized) > FINALIZED_MAX:
            finalized.popitem(last=False)
        self._pending.add_final(outcome, info)
        self._dirty.set()

    def receipts_applied(self, inbound_ids: Iterable[int]) -> None:
        """These journaled receipts were applied: mark them processed in the flush that
        writes what they caused (after the final states), never before it."""
        self._pending.applied.extend(inbound_ids)
        self._dirty.set()

    def receipt_unmatched(self) -> None:
        self._counts["unmatched"] += 1

    def receipt_held(self) -> None:
        self._counts["held"] += 1

    # -- background work -------------------------------------------------------------

    def _flush_now(self) -> None:
        self._dirty.set()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Flush outcomes to the journal and release delayed retries, until cancelled."""
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._flusher)
            nursery.start_soon(self._release_delayed)
            nursery.start_soon(self._expire_stale)
            task_status.started()

    async def _expire_stale(self) -> None:
        """Every minute: messages a carrier accepted but never sent a receipt for within
        its ``receipt_timeout`` become final ``expired`` (charged: the carrier took
        them), so their quota is settled and their partner told, instead of waiting
        for ever; and queued messages past their partner's validity_period."""
        while True:
            await trio.sleep(STALE_SWEEP_INTERVAL)
            self.expire_queued()
            try:
                await self.expire_stale()
            except StoreError as exc:  # the journal unreadable now: the next sweep
                log.warning("cannot look for messages without a receipt", error=str(exc))

    def expire_queued(self) -> int:
        """Make final the queued messages whose validity passed before any part was
        sent (see :meth:`expire`); the senders check each message they take, this finds
        those of a carrier that is down. Returns how many."""
        now = self._clock()
        expired = [m for queue in self.queues.values() for m in queue.take_expired(now)]
        for message in expired:
            self.expire(message)
        return len(expired)

    async def expire_stale(self) -> int:
        """One sweep (see :meth:`_expire_stale`); how many messages it made final."""
        now = self._clock()
        count = 0
        for carrier, timeout in list(self.receipt_timeouts.items()):
            if timeout <= 0:
                continue
            for stored in await self.store.stale_submitted(carrier, now - timeout):
                if stored.id in self._finalized:
                    continue
                self._tracked.pop(stored.id, None)
                self._add_final(stale_outcome(stored, carrier, timeout), info_from_stored(stored))
                count += 1
        if count:
            self._counts["receipt_timeouts"] += count
            log.warning("messages without a receipt made final (expired)", count=count)
        return count

    async def flush(self) -> None:
        """Write every pending outcome now (used at shutdown), including those a
        background flush has taken and is still writing."""
        while True:
            async with self._flush_lock:  # waits for a flush in progress
                pending = bool(self._pending)
            if not pending:
                return
            await self._flush_once()

    async def _flusher(self) -> None:
        last = -math.inf
        while True:
            await self._dirty.wait()
            await trio.sleep_until(last + self.flush_interval)
            last = trio.current_time()
            self._dirty = trio.Event()
            try:
                await self._flush_once()
            except StoreError as exc:
                self._counts["flush_errors"] += 1
                log.warning("journal flush failed; will retry", error=str(exc))
                await trio.sleep(0.5)
                self._dirty.set()

    async def _flush_once(self) -> None:
        async with self._flush_lock:
            await self._flush_locked()

    async def _flush_locked(self) -> None:
        taken = self._pending.take(self._clock())
        try:
            # One transaction: a kill leaves all of it or none (see store/outcomes.py).
            receipt_ids = await self.store.apply_outcomes(taken.batch)
        except BaseException:
            self._pending.give_back(taken)  # for the next try, older first
            raise
        queued = [
            (receipt_id, receipt)
            for receipt_id, receipt in zip(receipt_ids, taken.receipts, strict=True)
            if receipt_id is not None and receipt is not None
        ]
        if queued and self.on_receipts is not None:
            self.on_receipts(queued)

    def _room(self) -> float:
        return self.max_pending - self.pending

    async def _release_delayed(self) -> None:
        while True:
            far = trio.current_time() + max(0.0, self._far.next_look() - self._clock())
            with trio.move_on_at(min(self._delayed.next_due(), far)):
                await self._delayed_changed.wait()
            self._delayed_changed = trio.Event()
            waited: list[OutboundMessage] = []
            for message in self._delayed.pop_due(trio.current_time()):
                message.not_before = None  # its time has come (the clocks may differ)
                if message.untouched:  # a schedule (a retry was checked when it came)
                    waited.append(message)
                else:
                    self.enqueue(message)
            if waited:
                await self.release(waited)
            while await self._far.release_due():
                pass

    async def release(self, messages: Sequence[OutboundMessage]) -> list[int]:
        """Queue messages that waited since admission (a schedule, a moderator), but
        make final ``rejected`` those :attr:`release_check` refuses (nothing charged;
        the partner's REJECTD receipt if it asked). Returns the refused ids
        (``gateway/opt_out.py``)."""
        refused = await refused_on_release(messages, self.release_check)
        for message in messages:
            if message.id in refused:
                self._counts["opted_out"] += 1
                self._final_unsent(message, MessageState.REJECTED, None, OPTED_OUT_ERROR)
            else:
                self.enqueue(message)
        return sorted(refused)

    async def recover(self) -> int:
        """Queue every unfinished message from the journal (``gateway/recovery.py``);
        returns how many."""
        far_after = self._clock() + self._far.far_ahead
        far = await self.store.far_scheduled(far_after)  # ids only: a campaign for tomorrow
        for due, message_id in far:
            self._far.keep(due, message_id)
        self._delayed_changed.set()  # the release task looks again (it may run already)
        messages = await recovered_outbound(self.store, far_after)
        for message in messages:
            self.enqueue(message)
        return len(messages) + len(far)

    @property
    def queued(self) -> int:
        """Messages waiting in all carrier queues (cheap: admission reads it per batch)."""
        return sum(len(q) for q in self.queues.values())

    @property
    def pending(self) -> int:
        """Messages not yet sent that memory holds, queued or waiting to be retried (what
        ``max_pending_messages`` bounds); the scheduled ones are :attr:`scheduled`."""
        return self.queued + len(self._delayed) - self._delayed.scheduled

    @property
    def scheduled(self) -> int:
        """Messages waiting for their partner's schedule (``max_scheduled_messages``)."""
        return self._delayed.scheduled + len(self._far)

    @property
    def queued_marketing(self) -> int:
        """Marketing messages (lane 0) waiting in all carrier queues."""
        return sum(q.depth(0) for q in self.queues.values())

    def statistics(self) -> MtStatistics:
        return MtStatistics.of(
            self._counts,
            queued=self.queued,
            delayed=len(self._delayed) + len(self._far),
            in_flight_receipts=len(self._tracked),
        )
