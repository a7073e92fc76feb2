"""What a message awaiting receipts is, as the MT pipeline tracks it (pure data).

Split from ``mt.py``: how a carrier's receipt state maps to a final state, the worst
part decides a message in parts, and what a partner's receipt needs to know of its
message (:class:`~smppgw.gateway.partner_receipts.MessageInfo`), built from the sending
view or from the journal.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from smppgw.gateway.partner_receipts import MessageInfo
from smppgw.protocol.receipt import MessageState as ReceiptState
from smppgw.protocol.text import decode_text
from smppgw.store import FinalOutcome, MessageState

if TYPE_CHECKING:
    from smppgw.gateway.outbound import OutboundMessage
    from smppgw.store import StoredMessage

__all__ = [
    "RECEIPT_TO_FINAL",
    "SEVERITY",
    "Tracked",
    "info_from_outbound",
    "info_from_stored",
    "overall_state",
    "stale_outcome",
]

RECEIPT_TO_FINAL = {
    ReceiptState.DELIVERED: MessageState.DELIVERED,
    ReceiptState.EXPIRED: MessageState.EXPIRED,
    ReceiptState.DELETED: MessageState.FAILED,
    ReceiptState.UNDELIVERABLE: MessageState.FAILED,
    ReceiptState.REJECTED: MessageState.REJECTED,
    ReceiptState.UNKNOWN: MessageState.FAILED,
}
#: Worst first: the final state of a message in parts is its worst part's.
SEVERITY = [MessageState.REJECTED, MessageState.FAILED, MessageState.EXPIRED]


def overall_state(finals: dict[int, MessageState]) -> MessageState:
    """The final state of a message from its parts' (the worst one decides)."""
    states = set(finals.values())
    return next((s for s in SEVERITY if s in states), MessageState.DELIVERED)


@dataclass(slots=True)
class Tracked:
    """A message with parts accepted by a carrier, awaiting receipts."""

    info: MessageInfo
    finals: dict[int, MessageState]


def info_from_outbound(m: OutboundMessage, now: float) -> MessageInfo:
    head = m.parts[0] if m.parts else b""
    if len(m.parts) > 1 or m.esm_class & 0x40:
        head = head[head[0] + 1 :] if head else head  # skip the UDH
    return MessageInfo(
        m.id,
        m.partner,
        m.source_addr,
        m.source_ton,
        m.source_npi,
        m.destination_addr,
        m.dest_ton,
        m.dest_npi,
        m.registered_delivery,
        len(m.parts),
        now,
        _text_head(head, m.data_coding),
        m.user_ref,
    )


def info_from_stored(m: StoredMessage) -> MessageInfo:
    return MessageInfo(
        m.id,
        m.partner,
        m.source_addr,
        m.source_ton,
        m.source_npi,
        m.destination_addr,
        m.dest_ton,
        m.dest_npi,
        m.registered_delivery,
        m.part_count,
        m.created_at,
        _text_head(m.body, m.data_coding),
        m.user_ref,
    )


def _text_head(payload: bytes, data_coding: int) -> str:
    try:
        return decode_text(payload[:40], data_coding)[:20]
    except Exception:  # a receipt's text is a courtesy: never fail a receipt for it
        return ""


def stale_outcome(stored: StoredMessage, carrier: str, timeout: float) -> FinalOutcome:
    """A message ``carrier`` took but sent no receipt for within ``timeout`` seconds:
    final ``expired``, charged (the carrier took it), its error saying it is a guess."""
    error = f"no receipt from {carrier} within {timeout / 3600:g} h"
    return FinalOutcome(
        stored.id, MessageState.EXPIRED, None, error, charge_parts=stored.part_count
    )
