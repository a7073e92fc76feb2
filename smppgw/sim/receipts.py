"""Delivery receipts of the simulated SMSC: outcomes, the receipt PDU, its timing, and
the routing of every ``deliver_sm`` (receipts and MO) to a receiver session.

Theory of operation
-------------------
A receipt is due ``delay`` seconds after its message was accepted. Tens of thousands may
be pending at once, so they are not one sleeping task each: :class:`DueQueue` is a heap
ordered by due time, served by one task (:meth:`DueQueue.run`) that sleeps until the
earliest due time and hands every item that has come due to a callback. With a fixed
delay, items arrive in due order, so a push never has to wake the task early and costs
one ``heappush``.

The outcome of a message (DELIVRD, UNDELIV, EXPIRED, REJECTD) is drawn when it is
accepted, from weights, with a seedable :class:`random.Random`, so a test run is
repeatable. Whether a receipt is sent follows ``registered_delivery`` (SMPP 3.4
5.2.17): bits ``xxxxxx01`` ask for one whatever the outcome, ``xxxxxx10`` only on
failure.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import math
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Final, Generic, Literal, TypeVar

import structlog
import trio

from smppgw.net.link import LinkClosed
from smppgw.protocol.errors import PduEncodeError, SendStateError
from smppgw.protocol.pdus import DataSm, DeliverSm, Pdu, SubmitMulti, SubmitSm
from smppgw.protocol.receipt import (
    MessageState,
    Receipt,
    format_receipt,
    format_receipt_fields,
    is_receipt_word,
    stat_word,
)
from smppgw.protocol.text import decode_text
from smppgw.protocol.tlv import Tag, Tlv, tlv_octets
from smppgw.protocol.udh import parse_udh

if TYPE_CHECKING:
    import random
    from collections.abc import Mapping
    from datetime import datetime

    from smppgw.net.link import SmppLink

__all__ = [
    "ESM_CLASS_RECEIPT",
    "Delivery",
    "DeliveryRouter",
    "DueQueue",
    "Outbox",
    "OutcomePicker",
    "PendingReceipt",
    "build_receipt",
    "receipt_text",
    "wants_receipt",
]

#: esm_class "SMSC delivery receipt" (SMPP 3.4 5.2.12).
ESM_CLASS_RECEIPT: Final = 0x04

_STATES: Final[dict[str, MessageState]] = {
    "DELIVRD": MessageState.DELIVERED,
    "UNDELIV": MessageState.UNDELIVERABLE,
    "EXPIRED": MessageState.EXPIRED,
    "REJECTD": MessageState.REJECTED,
}
#: The ``err:`` value and network_error_code we report per outcome.
_ERRORS: Final[dict[MessageState, int]] = {
    MessageState.DELIVERED: 0,
    MessageState.UNDELIVERABLE: 1,
    MessageState.EXPIRED: 27,
    MessageState.REJECTED: 2,
}

T = TypeVar("T")
log = structlog.get_logger("smppgw.sim")


def wants_receipt(registered_delivery: int, state: MessageState) -> bool:
    """Whether ``registered_delivery`` asks for a receipt of a message ending in ``state``."""
    bits = registered_delivery & 0x03
    return bits == 1 or (bits == 2 and state is not MessageState.DELIVERED)


def receipt_text(pdu: SubmitSm | DataSm | SubmitMulti) -> str:
    """The message's text for the receipt's ``text:`` (UDH stripped), best effort."""
    payload = b"" if isinstance(pdu, DataSm) else pdu.short_message
    if not payload:
        payload = tlv_octets(pdu.tlvs, Tag.MESSAGE_PAYLOAD) or b""
    if pdu.esm_class & 0x40:
        with contextlib.suppress(ValueError):
            payload = parse_udh(payload)[1]
    return decode_text(payload, pdu.data_coding)[:20]


class OutcomePicker:
    """Draws final states by weight, e.g. ``{"DELIVRD": 90, "UNDELIV": 10}``.

    Raises:
        ValueError: an unknown stat word, a negative weight, or no positive weight.
    """

    def __init__(self, weights: Mapping[str, float], rng: random.Random) -> None:
        unknown = set(weights) - set(_STATES)
        if unknown:
            raise ValueError(f"unknown outcome(s) {sorted(unknown)}; known: {sorted(_STATES)}")
        if any(w < 0 or not math.isfinite(w) for w in weights.values()):
            raise ValueError("outcome weights must be finite and >= 0")
        if sum(weights.values()) <= 0:
            raise ValueError("at least one outcome needs a weight above 0")
        self._states = [_STATES[word] for word in weights]
        self._cum = list(itertools.accumulate(weights.values()))
        self._rng = rng
        self._only = self._states[0] if len(self._states) == 1 else None

    def pick(self) -> MessageState:
        if self._only is not None:
            return self._only
        return self._rng.choices(self._states, cum_weights=self._cum)[0]


@dataclass(frozen=True, slots=True)
class PendingReceipt:
    """What a receipt needs from its message (addresses are the *submit*'s)."""

    system_id: str
    message_id: str
    state: MessageState
    source_addr: str
    source_addr_ton: int
    source_addr_npi: int
    destination_addr: str
    dest_addr_ton: int
    dest_addr_npi: int
    text: str
    submitted_at: datetime


def build_receipt(p: PendingReceipt, done_at: datetime) -> DeliverSm:
    """The ``deliver_sm`` that reports ``p``'s outcome to the message's sender.

    The text is the canonical receipt (what ``format_receipt`` writes) with the first 20
    characters of the message; the ``receipted_message_id`` TLV carries the id exactly
    as given in ``submit_sm_resp``, and ``message_state`` the final state.
    """
    err = _ERRORS.get(p.state, 0)
    delivered = p.state is MessageState.DELIVERED
    tlvs = [
        Tlv.of_cstring(Tag.RECEIPTED_MESSAGE_ID, p.message_id),
        Tlv.of_int(Tag.MESSAGE_STATE, int(p.state)),
    ]
    if err:
        # network_error_code: type 3 (GSM), then the error as two octets.
        tlvs.append(Tlv(Tag.NETWORK_ERROR_CODE, bytes((3,)) + err.to_bytes(2, "big")))
    return DeliverSm(
        source_addr=p.destination_addr,
        source_addr_ton=p.dest_addr_ton,
        source_addr_npi=p.dest_addr_npi,
        destination_addr=p.source_addr,
        dest_addr_ton=p.source_addr_ton,
        dest_addr_npi=p.source_addr_npi,
        esm_class=ESM_CLASS_RECEIPT,
        short_message=_receipt_text(p, done_at, err, delivered).encode("ascii", "replace")[:254],
        tlvs=tuple(tlvs),
    )


def _receipt_text(p: PendingReceipt, done_at: datetime, err: int, delivered: bool) -> str:
    """``format_receipt`` of the receipt, written directly: building and checking a
    ``Receipt`` and formatting two dates took most of a receipt's cost in the
    simulator (which sends one a message, at the benchmark's full rate)."""
    submit_date, done_date = _minute_text(p.submitted_at), _minute_text(done_at)
    if submit_date is None or done_date is None or not is_receipt_word(p.message_id):
        return format_receipt(  # refuses what it cannot write, as it always did
            Receipt(
                message_id=p.message_id,
                sub=1,
                dlvrd=1 if delivered else 0,
                submit_date=p.submitted_at,
                done_date=done_at,
                stat=stat_word(p.state),
                err=f"{err:03d}",
                text=p.text[:20],
            )
        )
    return format_receipt_fields(
        p.message_id,
        1,
        1 if delivered else 0,
        submit_date,
        done_date,
        stat_word(p.state),
        err,
        p.text[:20],
    )


_MINUTES: dict[tuple[int, int, int, int, int], str] = {}


def _minute_text(value: datetime) -> str | None:
    """``YYMMDDhhmm`` of ``value`` (receipts come by the thousand each minute, so the
    text is kept), or None outside the years a receipt may carry (2000-2099)."""
    if not 2000 <= value.year <= 2099:
        return None
    key = (value.year, value.month, value.day, value.hour, value.minute)
    text = _MINUTES.get(key)
    if text is None:
        if len(_MINUTES) > 64:
            _MINUTES.clear()
        text = _MINUTES[key] = value.strftime("%y%m%d%H%M")
    return text


class DueQueue(Generic[T]):
    """Items that come due at a time (``trio.current_time()`` scale), in a heap.

    One :meth:`run` task serves the queue; :meth:`push` may be called from any task.
    """

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, T]] = []
        self._order = itertools.count()
        self._wake = trio.Event()

    def __len__(self) -> int:
        return len(self._heap)

    def push(self, due: float, item: T) -> None:
        heap = self._heap
        if not heap or due < heap[0][0]:
            self._wake.set()  # the serving task sleeps until a later time: re-arm it
        heapq.heappush(heap, (due, next(self._order), item))

    def next_due(self) -> float | None:
        return self._heap[0][0] if self._heap else None

    def pop_due(self, now: float) -> list[T]:
        """Remove and return every item due at ``now``, earliest first."""
        heap = self._heap
        out: list[T] = []
        while heap and heap[0][0] <= now:
            out.append(heapq.heappop(heap)[2])
        return out

    async def run(self, deliver: Callable[[T], None]) -> None:
        """Hand each item to ``deliver`` once due; runs until cancelled."""
        while True:
            due = self.next_due()
            with trio.move_on_at(math.inf if due is None else due):
                await self._wake.wait()
            self._wake = trio.Event()
            for item in self.pop_due(trio.current_time()):
                deliver(item)


# -- delivery to receiver sessions ---------------------------------------------------


@dataclass(slots=True)
class Delivery:
    """One ``deliver_sm`` on its way to a system_id (a receipt or an MO part)."""

    system_id: str
    pdu: DeliverSm
    kind: Literal["receipt", "mo"]
    message_id: str = ""
    stat: str = ""


class Outbox:
    """The deliveries waiting for one session's window; served by
    :meth:`DeliveryRouter.run_sender`."""

    def __init__(self, link: SmppLink) -> None:
        self.link = link
        self.system_id: str | None = None
        self.items: deque[Delivery] = deque()
        self.ready = trio.Event()


#: ``on_answer(delivery, response)``: response None when the session ended first.
AnswerCallback = Callable[[Delivery, "Pdu | None"], None]


class DeliveryRouter:
    """Sends each delivery through one receiver session bound with its system_id.

    Sessions are picked round robin. With none bound, deliveries wait in a queue per
    system_id, at most ``max_queued`` (the oldest is dropped and counted beyond). A
    delivery whose session ends before its answer goes back through :meth:`deliver`
    (at-least-once, as a real SMSC retries).
    """

    def __init__(self, *, max_queued: int, on_answer: AnswerCallback) -> None:
        self._max_queued = max_queued
        self._on_answer = on_answer
        self._receivers: dict[str, list[Outbox]] = {}
        self._queued: dict[str, deque[Delivery]] = {}
        self._rr = 0
        self.counts: Counter[str] = Counter()

    @property
    def receivers(self) -> int:
        return sum(len(v) for v in self._receivers.values())

    @property
    def queued(self) -> int:
        return sum(len(q) for q in self._queued.values())

    def bound_system_ids(self) -> list[str]:
        return [sid for sid, outboxes in self._receivers.items() if outboxes]

    def attach(self, outbox: Outbox, system_id: str) -> None:
        """``outbox``'s session is bound as a receiver or transceiver of ``system_id``."""
        outbox.system_id = system_id
        self._receivers.setdefault(system_id, []).append(outbox)
        queued = self._queued.pop(system_id, None)
        if queued:
            outbox.items.extend(queued)
            outbox.ready.set()

    def detach(self, outbox: Outbox) -> None:
        """The session ended: what it had not sent goes to another receiver or waits."""
        if outbox.system_id is not None:
            receivers = self._receivers.get(outbox.system_id, [])
            if outbox in receivers:
                receivers.remove(outbox)
        items, outbox.items = outbox.items, deque()
        for delivery in items:
            self.counts["redelivered"] += 1
            self.deliver(delivery)

    def deliver(self, delivery: Delivery) -> None:
        receivers = [o for o in self._receivers.get(delivery.system_id, ()) if not o.link.closed]
        if receivers:
            self._rr += 1
            outbox = receivers[self._rr % len(receivers)]
            outbox.items.append(delivery)
            outbox.ready.set()
            return
        queue = self._queued.setdefault(delivery.system_id, deque())
        if len(queue) >= self._max_queued:
            queue.popleft()
            self.counts["dropped"] += 1
        queue.append(delivery)

    async def run_sender(self, outbox: Outbox) -> None:
        """Send ``outbox``'s deliveries from one task, a window in flight; runs until
        the link ends (what is left is requeued by :meth:`detach`)."""
        link = outbox.link
        while True:
            if not outbox.items:
                outbox.ready = trio.Event()
                await outbox.ready.wait()
                continue
            delivery = outbox.items.popleft()
            try:
                await link.send_request(delivery.pdu, partial(self._answered, delivery))
            except (LinkClosed, SendStateError):
                outbox.items.appendleft(delivery)
                return
            except PduEncodeError:
                log.exception("undeliverable deliver_sm dropped", kind=delivery.kind)
                self.counts["dropped"] += 1
                continue
            self.counts["receipts_sent" if delivery.kind == "receipt" else "mo_sent"] += 1

    def _answered(self, delivery: Delivery, _request: Pdu, result: Pdu | BaseException) -> None:
        if isinstance(result, BaseException):
            self._on_answer(delivery, None)
            self.counts["redelivered"] += 1
            self.deliver(delivery)
            return
        self.counts["receipts_answered" if delivery.kind == "receipt" else "mo_answered"] += 1
        self._on_answer(delivery, result)
