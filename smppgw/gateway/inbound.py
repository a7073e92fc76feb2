"""What a carrier's ``deliver_sm`` is: a delivery receipt or an MO, and its dedup key.

A carrier may deliver the same PDU twice (after a reconnect, when our
``deliver_sm_resp`` was lost). The journal keeps each (carrier, dedup key) once, so the
gateway acts on each receipt and MO exactly once:

- a receipt's key is its receipted message id and its state: the same receipt again is
  a duplicate, an intermediate then a final state are two receipts;
- an MO carries no id in SMPP 3.4, so its key is the content (numbers, coding, octets)
  within a time bucket. Two identical texts from one subscriber in the same bucket
  (default 10 minutes) count as one: the price of exactly-once without a carrier id,
  stated here plainly.
"""

from __future__ import annotations

import hashlib
import itertools
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING

from smppgw.protocol.receipt import MessageState, ReceiptError, parse_receipt
from smppgw.protocol.tlv import Tag

if TYPE_CHECKING:
    from smppgw.protocol.pdus import DeliverSm

__all__ = [
    "MO_DEDUP_WINDOW",
    "PROCESS_TOKEN",
    "MoKey",
    "ReceiptInfo",
    "classify_receipt",
    "is_receipt",
    "mo_dedup_key",
    "mo_key",
    "receipt_dedup_key",
]

#: esm_class message-type bits (SMPP 3.4 section 5.2.12): 0x04 SMSC delivery receipt,
#: 0x08 SME delivery ack, 0x10 SME manual ack, 0x20 intermediate notification.
_RECEIPT_TYPES = 0x04 | 0x20


@dataclass(frozen=True, slots=True)
class ReceiptInfo:
    """What a receipt says: whose message (carrier's id), its state and error code."""

    carrier_id: str
    state: MessageState
    error: str | None
    stat: str
    #: True when the id came from ``receipted_message_id``, which repeats the
    #: ``submit_sm_resp`` id (normalise it as a response id), False for the text's ``id:``.
    from_tlv: bool


def is_receipt(pdu: DeliverSm) -> bool:
    return bool(pdu.esm_class & _RECEIPT_TYPES)


def classify_receipt(pdu: DeliverSm) -> ReceiptInfo:
    """Read a receipt from its TLVs, falling back to the receipt text.

    Raises:
        ReceiptError: neither the TLVs nor the text say whose receipt this is.
    """
    carrier_id = pdu.tlv_cstring(Tag.RECEIPTED_MESSAGE_ID)
    state_value = pdu.tlv_int(Tag.MESSAGE_STATE)
    text_state: MessageState | None = None
    error: str | None = None
    stat = ""
    try:
        receipt = parse_receipt(pdu.short_message or pdu.tlv_octets(Tag.MESSAGE_PAYLOAD) or b"")
    except ReceiptError:
        if carrier_id is None or state_value is None:
            raise
    else:
        carrier_id = carrier_id or receipt.message_id
        text_state = receipt.state
        error = receipt.err
        stat = receipt.stat
    if state_value is not None:
        try:
            state = MessageState(state_value)
        except ValueError:
            state = text_state or MessageState.UNKNOWN
    else:
        state = text_state or MessageState.UNKNOWN
    if not stat:
        stat = state.name
    if not carrier_id:
        raise ReceiptError("receipt without a message id")
    from_tlv = pdu.tlv_cstring(Tag.RECEIPTED_MESSAGE_ID) is not None
    return ReceiptInfo(carrier_id.strip(), state, error, stat, from_tlv)


def receipt_dedup_key(info: ReceiptInfo) -> str:
    return f"r:{info.carrier_id}:{int(info.state)}"


#: How long after an MO the same MO (number, short code, text) arriving again may be
#: the carrier's redelivery; per carrier in the config (``mo_dedup_window``).
MO_DEDUP_WINDOW = 120.0

#: Names this process's binds apart from those of an earlier run of the daemon.
PROCESS_TOKEN = uuid.uuid4().hex[:12]


@dataclass(frozen=True, slots=True)
class MoKey:
    """How an MO is journaled so that a redelivery, and only a redelivery, is found.

    MO carry no id of their own. A carrier delivers one again only when our
    ``deliver_sm_resp`` did not reach it, which happens when the bind that took it
    broke (or the daemon died) before the answer went out. So an MO is the carrier's
    redelivery when the same content arrived within the window **on a bind that is no
    longer up** (or in an earlier run of the daemon), unless the carrier showed that
    it read our answer to the first (it answered a request we sent after it:
    ``SmppLink.when_peer_has_read``). The same text again while its first bind is
    still up, or after the carrier read our answer, is the subscriber sending it again
    (``TD <code>`` after registering, a second ``DIEM``) and is a new MO.

    ``key`` is unique (``<prefix>:<session>:<n>``); ``prefixes`` name the current and
    the previous time window, so that a redelivery just after a window boundary is
    still found (the effective window is between ``window`` and twice it).
    """

    key: str
    prefixes: tuple[str, ...]
    #: This MO's place among those of this run (the key's last field).
    serial: int = -1


_MO_SERIAL = itertools.count()


def mo_key(pdu: DeliverSm, now: float, session: str, window: float = MO_DEDUP_WINDOW) -> MoKey:
    """The journal key of an MO received on bind ``session`` (see :class:`MoKey`);
    ``window`` 0 turns deduplication off (no prefixes to look under)."""
    digest = hashlib.blake2b(digest_size=12)
    for part in (pdu.source_addr, pdu.destination_addr, str(pdu.data_coding)):
        digest.update(part.encode("latin-1"))
        digest.update(b"\0")
    digest.update(pdu.short_message)
    digest.update(pdu.tlv_octets(Tag.MESSAGE_PAYLOAD) or b"")
    serial = next(_MO_SERIAL)
    if window <= 0:
        return MoKey(f"m:once:{session}:{serial}", (), serial)
    bucket = int(now // window)
    current = f"m:{bucket}:{digest.hexdigest()}"
    previous = f"m:{bucket - 1}:{digest.hexdigest()}"
    return MoKey(f"{current}:{session}:{serial}", (current, previous), serial)


def mo_dedup_key(pdu: DeliverSm, now: float, window: float = MO_DEDUP_WINDOW) -> str:
    """A journal key for an MO outside any bind (an unreadable receipt kept for the
    record): unique, never a redelivery of anything."""
    return mo_key(pdu, now, f"{PROCESS_TOKEN}.x", 0).key
