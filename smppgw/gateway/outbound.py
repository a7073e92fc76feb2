"""MT messages on their way to a carrier, and the per-carrier queue with priority lanes.

An :class:`OutboundMessage` is the runtime view of a journaled message: the store holds
the truth, this holds what a carrier bind needs to send it (every part's
``short_message``, the UDH flag) and how far sending has got (``next_part``), so a
message cut off by a lost connection resumes at the part that was not acknowledged and
its parts never go out of order.

:class:`CarrierQueue` has lanes: transactional traffic (OTPs, notifications) in the high
lane is always taken before a marketing batch in the low lane, so an OTP never waits
behind a bulk campaign on the same carrier. A message put back after a failure goes to
the *front* of its lane.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING

import trio

from smppgw.protocol.codec import unpack_tlvs

if TYPE_CHECKING:
    from collections.abc import Set

    from smppgw.protocol.tlv import Tlv
    from smppgw.store import NewMessage, StoredMessage

__all__ = ["LANES", "CarrierQueue", "OutboundMessage", "QueueStatistics"]

#: Lane 1 is transactional (priority >= 1), lane 0 bulk.
LANES = 2


@dataclass(slots=True, eq=False)
class OutboundMessage:
    """A journaled MT message being sent. ``parts`` are the ``short_message`` octets."""

    id: int
    partner: str
    source_addr: str
    source_ton: int
    source_npi: int
    destination_addr: str
    dest_ton: int
    dest_npi: int
    data_coding: int
    esm_class: int
    registered_delivery: int
    priority: int
    parts: tuple[bytes, ...]
    tlvs: tuple[Tlv, ...] = ()
    protocol_id: int = 0
    #: The partner's user_message_reference, for its receipt (never sent to a carrier).
    user_ref: int | None = None
    #: The partner's validity_period as wall-clock seconds (None: the carrier's default).
    expires_at: float | None = None
    #: Not to be queued before this wall-clock time (a partner's schedule_delivery_time,
    #: a retry recovered from the journal); None once due.
    not_before: float | None = None
    attempts: int = 0
    next_part: int = 0
    carrier: str | None = None
    #: A carrier accepted a part of it without a message id: no receipt can match it.
    no_carrier_id: bool = False

    @classmethod
    def of(cls, message_id: int, m: NewMessage | StoredMessage) -> OutboundMessage:
        """The sending view of a journaled message (just admitted, or recovered)."""
        return cls(
            id=message_id,
            partner=m.partner,
            source_addr=m.source_addr,
            source_ton=m.source_ton,
            source_npi=m.source_npi,
            destination_addr=m.destination_addr,
            dest_ton=m.dest_ton,
            dest_npi=m.dest_npi,
            data_coding=m.data_coding,
            esm_class=m.esm_class,
            registered_delivery=m.registered_delivery,
            priority=m.priority,
            parts=m.parts or (m.body,),
            tlvs=unpack_tlvs(m.tlvs) if m.tlvs else (),
            protocol_id=m.protocol_id,
            user_ref=m.user_ref,
            expires_at=m.expires_at,
            not_before=m.next_attempt_at,
            attempts=getattr(m, "attempts", 0),
        )

    @property
    def untouched(self) -> bool:
        """No part sent, never tried: a partner may still cancel or replace it."""
        return not (self.next_part or self.attempts)

    def expired(self, now: float) -> bool:
        """Its validity passed (``now``: wall clock) before any part was sent."""
        return self.expires_at is not None and self.next_part == 0 and self.expires_at <= now

    @property
    def lane(self) -> int:
        return 1 if self.priority >= 1 else 0

    @property
    def udhi(self) -> bool:
        return len(self.parts) > 1 or bool(self.esm_class & 0x40)


@dataclass(frozen=True, slots=True)
class QueueStatistics:
    name: str
    depth_by_lane: tuple[int, ...]
    put: int
    taken: int


class CarrierQueue:
    """An unbounded FIFO per lane; :meth:`get` waits, highest lane first.

    Memory is bounded upstream: admission refuses new messages (``ESME_RMSGQFUL``) when
    the gateway's pending total is over its limit, and every message here is already in
    the journal.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self._lanes: tuple[deque[OutboundMessage], ...] = tuple(deque() for _ in range(LANES))
        self._waiting = trio.lowlevel.ParkingLot()
        self._put = 0
        self._taken = 0

    def __len__(self) -> int:
        return sum(len(lane) for lane in self._lanes)

    def depth(self, lane: int) -> int:
        """Messages waiting in one lane (0 marketing, 1 transactional)."""
        return len(self._lanes[lane])

    def put(self, message: OutboundMessage) -> None:
        self._lanes[message.lane].append(message)
        self._put += 1
        self._waiting.unpark()

    def put_front(self, message: OutboundMessage) -> None:
        """Put back a message that was being sent: it goes first in its lane."""
        self._lanes[message.lane].appendleft(message)
        self._waiting.unpark()

    def get_nowait(self) -> OutboundMessage | None:
        for lane in reversed(self._lanes):
            if lane:
                self._taken += 1
                return lane.popleft()
        return None

    async def get(self) -> OutboundMessage:
        """The next message, waiting for one. Several binds' senders wait here at once;
        each message put wakes one of them (a parking lot: an event woke them all, and
        all but one went back to sleep; an event per waiter left all but the newest
        asleep for ever, so a carrier's other binds stopped taking messages after the
        first idle moment). A woken sender that finds the message gone (another took it
        first) waits again; one that is cancelled with a message puts it back, which
        wakes the next."""
        while True:
            message = self.get_nowait()
            if message is not None:
                return message
            await self._waiting.park()

    def remove(self, message_id: int) -> OutboundMessage | None:
        """Take message ``message_id`` out of its lane if it waits here untouched (no part
        sent, never tried): a partner cancelled or replaces it. None otherwise."""
        return self.remove_many({message_id}).get(message_id)

    def remove_many(self, message_ids: Set[int]) -> dict[int, OutboundMessage]:
        """Take out those of ``message_ids`` that wait here untouched (a partner's cancel
        of every message to one number); the others stay.

        A linear scan: cancels are rare and a queue is bounded by
        ``max_pending_messages``, so this is cheaper than an index kept per message.
        """
        out: dict[int, OutboundMessage] = {}
        for lane in self._lanes:
            if any(m.id in message_ids and m.untouched for m in lane):
                keep = []
                for message in lane:
                    if message.id in message_ids and message.untouched:
                        out[message.id] = message
                    else:
                        keep.append(message)
                lane.clear()
                lane.extend(keep)
        return out

    def take_expired(self, now: float) -> list[OutboundMessage]:
        """Take out the messages no part of which was sent whose validity has passed
        (``expires_at <= now``, wall clock), for the pipeline to make final. A linear
        scan, as :meth:`remove`: the pipeline sweeps once a minute."""
        out: list[OutboundMessage] = []
        for lane in self._lanes:
            gone = [m for m in lane if m.expired(now)]
            if gone:
                keep = [m for m in lane if not m.expired(now)]
                lane.clear()
                lane.extend(keep)
                out.extend(gone)
        return out

    def drain(self) -> list[OutboundMessage]:
        """Take every queued message (to re-route them when this carrier is down)."""
        out = [m for lane in reversed(self._lanes) for m in lane]
        for lane in self._lanes:
            lane.clear()
        return out

    def statistics(self) -> QueueStatistics:
        return QueueStatistics(
            self.name, tuple(len(lane) for lane in self._lanes), self._put, self._taken
        )
