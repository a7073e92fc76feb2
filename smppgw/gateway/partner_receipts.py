"""The delivery receipt a partner gets for its message, built once the message is final.

The receipt is journaled as the whole ``deliver_sm`` the partner will receive (encoded
PDU octets), so delivering it later (the partner may not be bound now, the gateway may
restart) needs nothing but the outbox row. It carries the gateway's message id, the one
the partner got in ``submit_sm_resp``, both in the text and in ``receipted_message_id``.

``registered_delivery`` decides whether one is owed (SMPP 3.4 section 5.2.17): bits 0-1
are 1 (on success and failure) or 2 (on failure only); 0 asks for none.
"""

from __future__ import annotations

import functools
import struct
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from smppgw.protocol.codec import encode_pdu
from smppgw.protocol.commands import CommandId
from smppgw.protocol.pdus import ADDRESS_LIMIT, DeliverSm
from smppgw.protocol.receipt import MessageState as ReceiptState
from smppgw.protocol.receipt import Receipt, format_receipt, format_receipt_fields
from smppgw.protocol.tlv import Tag, Tlv
from smppgw.store import MessageState, NewReceipt

__all__ = [
    "SCENARIO_PARTNER_PREFIX",
    "MessageInfo",
    "partner_receipt",
    "receipt_octets",
    "receipt_text",
]

#: The ``partner`` of the gateway's own MTs (scenario replies): ``scenario:<name>``.
#: They ask the carrier for receipts (the journal records the final state) but no
#: partner is owed one.
SCENARIO_PARTNER_PREFIX = "scenario:"


@dataclass(frozen=True, slots=True)
class MessageInfo:
    """What a receipt needs to know of the message it reports on."""

    message_id: int
    partner: str
    source_addr: str
    source_ton: int
    source_npi: int
    destination_addr: str
    dest_ton: int
    dest_npi: int
    registered_delivery: int
    parts: int
    submitted_at: float
    text_head: str = ""
    #: The partner's user_message_reference, echoed in the receipt (SMPP 3.4 4.6.1).
    user_ref: int | None = None


_STAT = {
    MessageState.DELIVERED: ("DELIVRD", ReceiptState.DELIVERED),
    MessageState.FAILED: ("UNDELIV", ReceiptState.UNDELIVERABLE),
    MessageState.EXPIRED: ("EXPIRED", ReceiptState.EXPIRED),
    MessageState.REJECTED: ("REJECTD", ReceiptState.REJECTED),
}


def _err_code(error: str | None, status: int | None) -> int:
    if status:
        return status & 0xFFF
    if error and error.strip().isdigit():
        return int(error.strip()) & 0xFFF
    return 0


def receipt_text(info: MessageInfo, stat: str, err: int, *, delivered: bool, now: float) -> str:
    """The receipt text, as ``format_receipt`` writes it, without building a
    ``Receipt`` and two datetimes for every message (this runs once per message)."""
    if not (_EARLIEST <= info.submitted_at < _LATEST and _EARLIEST <= now < _LATEST):
        return format_receipt(
            Receipt(
                message_id=str(info.message_id),
                sub=info.parts,
                dlvrd=info.parts if delivered else 0,
                submit_date=_datetime(info.submitted_at),
                done_date=_datetime(now),
                stat=stat,
                err=f"{err:03d}",
                text=info.text_head[:20],
            )
        )  # refuses a date outside 2000-2099, as before
    return format_receipt_fields(
        info.message_id,
        info.parts,
        info.parts if delivered else 0,
        _minute(int(info.submitted_at // 60)),
        _minute(int(now // 60)),
        stat,
        err,
        info.text_head[:20],
    )


#: The years a receipt date may have (``Receipt``'s rule), as Unix times.
_EARLIEST = datetime(2000, 1, 1, tzinfo=UTC).timestamp()
_LATEST = datetime(2100, 1, 1, tzinfo=UTC).timestamp()


def _datetime(t: float) -> datetime:
    return datetime.fromtimestamp(t, tz=UTC).replace(tzinfo=None)


@functools.lru_cache(maxsize=256)
def _minute(minute: int) -> str:
    return time.strftime("%y%m%d%H%M", time.gmtime(minute * 60))


def partner_receipt(
    info: MessageInfo,
    state: MessageState,
    *,
    status: int | None,
    error: str | None,
    now: float,
) -> NewReceipt | None:
    """The receipt owed for ``info`` reaching ``state``, or None when none was asked."""
    wanted = info.registered_delivery & 0x03
    if info.partner.startswith(SCENARIO_PARTNER_PREFIX):
        return None
    if wanted == 0 or (wanted == 2 and state is MessageState.DELIVERED):
        return None
    stat, receipt_state = _STAT.get(state, ("UNKNOWN", ReceiptState.UNKNOWN))
    err = _err_code(error, status)
    text = receipt_text(info, stat, err, delivered=state is MessageState.DELIVERED, now=now)
    body = receipt_octets(info, text.encode("latin-1", "replace")[:254], receipt_state)
    return NewReceipt(
        partner=info.partner,
        message_id=info.message_id,
        stat=stat,
        err=err,
        body=body,
        done_at=now,
    )


def receipt_octets(info: MessageInfo, short_message: bytes, state: ReceiptState) -> bytes:
    """The receipt's ``deliver_sm`` (sequence number 0: set when sent), written
    directly: the same octets as ``encode_pdu(DeliverSm(...))`` (a hypothesis test holds
    them to it) at a third of the cost, once per message with a receipt. Addresses the
    direct path cannot vouch for go through the checked encoder, which refuses them."""
    try:
        source = info.destination_addr.encode("latin-1")
        destination = info.source_addr.encode("latin-1")
    except UnicodeEncodeError:
        return _checked_receipt_octets(info, short_message, state)
    if (
        len(source) > _MAX_ADDRESS
        or len(destination) > _MAX_ADDRESS
        or b"\0" in source
        or b"\0" in destination
        or not all(
            0 <= v <= 0xFF for v in (info.dest_ton, info.dest_npi, info.source_ton, info.source_npi)
        )
    ):
        return _checked_receipt_octets(info, short_message, state)
    message_id = str(info.message_id).encode("ascii")
    body = b"".join(
        (
            b"\0",  # service_type
            bytes((info.dest_ton, info.dest_npi)),
            source,
            b"\0",
            bytes((info.source_ton, info.source_npi)),
            destination,
            b"\0",
            # esm_class 0x04 (a receipt), protocol_id, priority_flag, no schedule and
            # no validity, registered_delivery, replace_if_present, data_coding,
            # sm_default_msg_id, then sm_length
            b"\x04\x00\x00\x00\x00\x00\x00\x00\x00",
            bytes((len(short_message),)),
            short_message,
            _RECEIPTED_ID_TAG,
            (len(message_id) + 1).to_bytes(2, "big"),
            message_id,
            b"\0",
            _MESSAGE_STATE_TLV,
            bytes((int(state),)),
            b"" if info.user_ref is None else _USER_REF_TAG + info.user_ref.to_bytes(2, "big"),
        )
    )
    return _HEADER.pack(16 + len(body), int(CommandId.DELIVER_SM), 0, 0) + body


def _checked_receipt_octets(info: MessageInfo, short_message: bytes, state: ReceiptState) -> bytes:
    return encode_pdu(
        DeliverSm(
            source_addr_ton=info.dest_ton,
            source_addr_npi=info.dest_npi,
            source_addr=info.destination_addr,
            dest_addr_ton=info.source_ton,
            dest_addr_npi=info.source_npi,
            destination_addr=info.source_addr,
            esm_class=0x04,
            short_message=short_message,
            tlvs=(
                Tlv.of_cstring(Tag.RECEIPTED_MESSAGE_ID, str(info.message_id)),
                Tlv.of_int(Tag.MESSAGE_STATE, int(state)),
                *(
                    ()
                    if info.user_ref is None
                    else (Tlv.of_int(Tag.USER_MESSAGE_REFERENCE, info.user_ref),)
                ),
            ),
        )
    )


_MAX_ADDRESS = ADDRESS_LIMIT - 1  # deliver_sm's, without the NUL
_HEADER = struct.Struct(">IIII")
_RECEIPTED_ID_TAG = int(Tag.RECEIPTED_MESSAGE_ID).to_bytes(2, "big")
_MESSAGE_STATE_TLV = int(Tag.MESSAGE_STATE).to_bytes(2, "big") + b"\x00\x01"
_USER_REF_TAG = int(Tag.USER_MESSAGE_REFERENCE).to_bytes(2, "big") + b"\x00\x02"
