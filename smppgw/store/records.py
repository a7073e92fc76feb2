"""The store's own record types: what goes in, what comes back out.

They are frozen, slotted dataclasses, independent of the PDU classes in
``smppgw.protocol``: the journal keeps what the gateway needs to resend and account
for a message, not a PDU, and the two can evolve separately.

Times are ``float`` seconds since the epoch (what the store's injectable clock
returns); the tables keep them as integer milliseconds.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = [
    "FINAL_STATES",
    "CarrierLookup",
    "FinalOutcome",
    "InboundKind",
    "InboundResult",
    "MessageState",
    "NewInbound",
    "NewMessage",
    "NewOrder",
    "NewReceipt",
    "Order",
    "OrderKind",
    "PendingReceipt",
    "QuotaRefusal",
    "RefusalReason",
    "Requeue",
    "Reservation",
    "Settlement",
    "StoredInbound",
    "StoredMessage",
    "Submitted",
]


class MessageState(enum.StrEnum):
    """Where an MT message stands. Stored as text so the file reads well in ``sqlite3``.

    ``ACCEPTED`` and ``SUBMITTED`` are the unfinished states recovery returns; the rest
    are final.
    """

    ACCEPTED = "accepted"  # journaled, acknowledged to the partner, not yet at a carrier
    HELD = "held"  # acknowledged, waiting for moderation: never sent, never recovered
    SUBMITTED = "submitted"  # a carrier accepted it (carrier id known), receipt pending
    #: A carrier accepted every part and no receipt was asked for: as far as anyone
    #: will know (final; the reservation is charged then).
    SENT = "sent"
    DELIVERED = "delivered"
    FAILED = "failed"  # undeliverable, rejected by the carrier, out of retries
    EXPIRED = "expired"
    REJECTED = "rejected"  # refused after acceptance (e.g. moderation)


FINAL_STATES: frozenset[MessageState] = frozenset(
    {
        MessageState.SENT,
        MessageState.DELIVERED,
        MessageState.FAILED,
        MessageState.EXPIRED,
        MessageState.REJECTED,
    }
)


@dataclass(slots=True, kw_only=True)
class NewMessage:
    """An MT message to journal as accepted.

    Not frozen, for speed (one is built per message on the hot path, and a frozen
    dataclass's ``__init__`` costs three times as much); treat it as immutable all the
    same: use ``dataclasses.replace``.

    ``body`` is the whole user data as the partner sent it; ``parts`` optionally holds the
    segments (with UDH) when the message was split before journaling. ``priority`` is the
    lane (higher goes first). ``reservation_id`` links the quota reserved at admission.
    ``held`` journals it for moderation: it is not sent, and recovery leaves it alone.
    """

    partner: str
    source_addr: str
    destination_addr: str
    body: bytes
    source_ton: int = 0
    source_npi: int = 0
    dest_ton: int = 1
    dest_npi: int = 1
    data_coding: int = 0
    esm_class: int = 0
    registered_delivery: int = 0
    priority: int = 0
    parts: tuple[bytes, ...] = ()
    order_id: int | None = None
    reservation_id: int | None = None
    smsc: str | None = None
    expires_at: float | None = None
    next_attempt_at: float | None = None
    held: bool = False
    #: Optional TLVs as wire octets (``smppgw.protocol.codec.pack_tlvs``), sent with
    #: every part: a USSD reply's ``ussd_service_op`` and ``its_session_info``.
    tlvs: bytes = b""
    #: The partner's ``protocol_id``, sent with every part (0x40 a silent SMS, 0x41-0x47
    #: a "replace short message" type): admission lets through only what is allowed.
    protocol_id: int = 0
    #: The partner's ``user_message_reference`` TLV, echoed in its receipt.
    user_ref: int | None = None
    #: The destination in international digits when the opt-out list applies (a
    #: marketing message): admission refuses it if the number opted out of its
    #: partner's (or a parent's, or every partner's) marketing. None: not checked.
    #: Not journaled.
    opt_out_key: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class StoredMessage:
    """An MT message as the journal holds it."""

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
    body: bytes
    parts: tuple[bytes, ...]
    part_count: int
    state: MessageState
    smsc: str | None
    carrier_id: str | None
    attempts: int
    order_id: int | None
    reservation_id: int | None
    created_at: float
    updated_at: float
    next_attempt_at: float | None
    expires_at: float | None
    final_status: int | None
    error: str | None
    tlvs: bytes = b""
    protocol_id: int = 0
    user_ref: int | None = None


@dataclass(frozen=True, slots=True)
class Submitted:
    """A carrier accepted part ``part_no`` of a message and gave it ``carrier_id``."""

    message_id: int
    smsc: str
    carrier_id: str
    part_no: int = 0


@dataclass(frozen=True, slots=True)
class FinalOutcome:
    """A message reached a final state; ``status`` is the SMPP status or receipt error.

    When ``charge_parts`` is not None and the message holds a quota reservation, the
    reservation is settled in the same transaction (``charge_parts`` charged, the rest
    released), so an outcome can never be recorded without its settlement or twice.
    """

    message_id: int
    state: MessageState
    status: int | None = None
    error: str | None = None
    charge_parts: int | None = None


@dataclass(frozen=True, slots=True)
class Requeue:
    """Send the message again no earlier than ``next_attempt_at`` (attempts + 1)."""

    message_id: int
    next_attempt_at: float
    error: str | None = None


@dataclass(frozen=True, slots=True)
class CarrierLookup:
    """What a carrier's message id maps to: our message and which part of it."""

    message: StoredMessage
    part_no: int


class InboundKind(enum.StrEnum):
    MO = "mo"
    RECEIPT = "receipt"


@dataclass(frozen=True, slots=True, kw_only=True)
class NewInbound:
    """A ``deliver_sm`` from a carrier, journaled before it is acknowledged.

    ``dedup_key`` identifies a redelivery of the same PDU by that carrier (for a receipt,
    its receipted message id and state; for an MO, what the carrier gives); the pair
    (smsc, dedup_key) is journaled once, so the gateway handles it exactly once.
    """

    smsc: str
    dedup_key: str
    kind: InboundKind
    source_addr: str
    destination_addr: str
    body: bytes
    source_ton: int = 1
    source_npi: int = 1
    dest_ton: int = 0
    dest_npi: int = 0
    data_coding: int = 0
    esm_class: int = 0
    carrier_id: str | None = None
    #: An MO's redelivery check (``smppgw.gateway.inbound.MoKey``): a row whose key
    #: starts with one of these prefixes and whose bind (the key's 4th field) is not in
    #: ``live_sessions`` is the same MO delivered again, unless the carrier is known to
    #: have read our answer to it: ``answers_read`` gives per bind the serial (the key's
    #: 5th field) up to which it did.
    redelivery_prefixes: tuple[str, ...] = ()
    live_sessions: frozenset[str] = frozenset()
    answers_read: Mapping[str, int] = field(default_factory=dict)
    #: The PDU's TLVs, packed (``protocol.codec.pack_tlvs``); kept for an MO, whose
    #: ``sar_*`` TLVs may be all that says it is a part of a longer message.
    tlvs: bytes = b""


@dataclass(frozen=True, slots=True)
class InboundResult:
    """``new`` is False when the (smsc, dedup_key) was already journaled as ``inbound_id``."""

    inbound_id: int
    new: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class StoredInbound:
    id: int
    smsc: str
    dedup_key: str
    kind: InboundKind
    source_addr: str
    source_ton: int
    source_npi: int
    destination_addr: str
    dest_ton: int
    dest_npi: int
    data_coding: int
    esm_class: int
    body: bytes
    carrier_id: str | None
    received_at: float
    processed_at: float | None
    tlvs: bytes = b""


@dataclass(frozen=True, slots=True, kw_only=True)
class NewReceipt:
    """A delivery receipt owed to a partner (``body`` is the rendered receipt text)."""

    partner: str
    #: The MT message the receipt reports on; None for an MO forwarded to the partner.
    message_id: int | None
    stat: str
    err: int
    body: bytes
    done_at: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class PendingReceipt:
    id: int
    partner: str
    #: The MT message the receipt reports on; None for an MO forwarded to the partner.
    message_id: int | None
    stat: str
    err: int
    body: bytes
    done_at: float | None
    created_at: float


class OrderKind(enum.StrEnum):
    PREPAID = "prepaid"  # a number of SMS parts, ``limit`` counts parts
    POSTPAID = "postpaid"  # a credit limit, ``limit`` is money in minor units


@dataclass(frozen=True, slots=True, kw_only=True)
class NewOrder:
    """A partner's order. A part costs ``unit_cost`` in the order's unit (1 for prepaid)."""

    partner: str
    kind: OrderKind
    limit: int
    unit_cost: int = 1
    starts_at: float | None = None
    expires_at: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Order:
    id: int
    partner: str
    kind: OrderKind
    limit: int
    unit_cost: int
    reserved: int
    spent: int
    starts_at: float | None
    expires_at: float | None
    created_at: float

    @property
    def remaining(self) -> int:
        """What can still be reserved, in the order's unit."""
        return self.limit - self.reserved - self.spent


@dataclass(frozen=True, slots=True)
class Reservation:
    """Quota held for a message at admission, until it is settled by its outcome."""

    reservation_id: int
    order_id: int
    parts: int
    amount: int


class RefusalReason(enum.StrEnum):
    """Why the journal refused a message at admission (``journal.admit``)."""

    NO_ORDER = "no_order"  # no order of this partner is active now
    EXHAUSTED = "exhausted"  # active orders exist, none has enough left
    OPTED_OUT = "opted_out"  # a marketing message to a number on the opt-out list


@dataclass(frozen=True, slots=True)
class QuotaRefusal:
    """A message the journal refused at admission: no order could pay for it, or (the
    one reason that is not about quota) its destination opted out of marketing."""

    reason: RefusalReason


@dataclass(frozen=True, slots=True)
class Settlement:
    """``charged`` is the amount moved to spent; ``released`` went back to the order.

    ``repeated`` is True when the reservation had already been settled: settling is
    idempotent so a retried outcome never charges twice.
    """

    reservation_id: int
    charged: int
    released: int
    repeated: bool = False
