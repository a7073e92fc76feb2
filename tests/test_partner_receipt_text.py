"""The receipt text a partner gets is what ``format_receipt`` would write.

``receipt_text`` writes it directly (it runs once per message sent); the canonical
formatter, fed the same fields, is the reference.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smppgw.gateway.partner_receipts import (
    MessageInfo,
    _checked_receipt_octets,
    receipt_octets,
    receipt_text,
)
from smppgw.protocol.codec import decode_pdu
from smppgw.protocol.errors import PduEncodeError
from smppgw.protocol.pdus import DeliverSm
from smppgw.protocol.receipt import MessageState as ReceiptState
from smppgw.protocol.receipt import Receipt, ReceiptError, format_receipt, parse_receipt
from smppgw.protocol.tlv import Tag

_times = st.floats(946_684_800, 4_102_444_799, allow_nan=False)  # 2000 .. 2099


@given(
    st.integers(1, 10**12),
    st.integers(1, 255),
    _times,
    _times,
    st.sampled_from(["DELIVRD", "UNDELIV", "EXPIRED", "REJECTD"]),
    st.integers(0, 0xFFF),
    st.booleans(),
    st.text(max_size=40),
)
def test_receipt_text_is_the_canonical_format(
    message_id: int,
    parts: int,
    submitted_at: float,
    now: float,
    stat: str,
    err: int,
    delivered: bool,
    head: str,
) -> None:
    info = MessageInfo(
        message_id, "p1", "SRC", 5, 0, "84901234567", 1, 1, 1, parts, submitted_at, head
    )

    def minute(t: float) -> datetime:
        return datetime.fromtimestamp(t, tz=UTC).replace(tzinfo=None, second=0, microsecond=0)

    reference = Receipt(
        message_id=str(message_id),
        sub=parts,
        dlvrd=parts if delivered else 0,
        submit_date=minute(submitted_at),
        done_date=minute(now),
        stat=stat,
        err=f"{err:03d}",
        text=head[:20],
    )
    text = receipt_text(info, stat, err, delivered=delivered, now=now)
    assert text == format_receipt(reference)
    assert parse_receipt(text).message_id == str(message_id)


def test_a_date_outside_the_receipt_years_is_refused_as_before() -> None:
    info = MessageInfo(1, "p1", "SRC", 5, 0, "849", 1, 1, 1, 1, 0.0, "")
    with pytest.raises(ReceiptError, match="2000-2099"):
        receipt_text(info, "DELIVRD", 0, delivered=True, now=1_800_000_000.0)


_addresses = st.one_of(
    st.text(alphabet=st.characters(max_codepoint=0xFF), max_size=24),
    st.text(max_size=3),  # outside latin-1 now and then
)
_octet = st.one_of(st.integers(0, 0xFF), st.integers(-2, 300))


@given(
    message_id=st.integers(1, 10**15),
    source=_addresses,
    destination=_addresses,
    tons=st.tuples(_octet, _octet, _octet, _octet),
    short_message=st.binary(max_size=254),
    state=st.sampled_from(list(ReceiptState)),
    user_ref=st.none() | st.integers(0, 0xFFFF),
)
def test_receipt_octets_are_the_codec_s(
    message_id: int,
    source: str,
    destination: str,
    tons: tuple[int, int, int, int],
    short_message: bytes,
    state: ReceiptState,
    user_ref: int | None,
) -> None:
    """The directly written receipt PDU is, octet for octet, what the codec encodes from
    the same ``DeliverSm``; what the codec refuses is refused the same way."""
    info = MessageInfo(
        message_id,
        "p",
        source,
        tons[0],
        tons[1],
        destination,
        tons[2],
        tons[3],
        1,
        1,
        0.0,
        user_ref=user_ref,
    )
    try:
        want: bytes | type[Exception] = _checked_receipt_octets(info, short_message, state)
    except (PduEncodeError, UnicodeEncodeError) as exc:
        want = type(exc)
    try:
        got: bytes | type[Exception] = receipt_octets(info, short_message, state)
    except (PduEncodeError, UnicodeEncodeError) as exc:
        got = type(exc)
    assert got == want
    if isinstance(got, bytes):
        pdu = decode_pdu(got)
        assert isinstance(pdu, DeliverSm)
        assert pdu.tlv_cstring(Tag.RECEIPTED_MESSAGE_ID) == str(message_id)
        assert pdu.tlv_int(Tag.USER_MESSAGE_REFERENCE) == user_ref
