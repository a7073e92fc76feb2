"""What a carrier's settings change in the submit_sm of each part (gateway/carrier_pdu.py)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smppgw.gateway.carrier_pdu import LATE_PART_VALIDITY, CarrierShape, part_pdu
from smppgw.gateway.outbound import OutboundMessage
from smppgw.protocol.concat import split_message
from smppgw.protocol.smpp_time import ValidityFormat, parse_smpp_time, resolve_smpp_time
from smppgw.protocol.text import DC_DEFAULT, DC_LATIN1, DC_UCS2, SplitMode, gsm7, ucs2
from smppgw.protocol.text.gsm7 import BASIC_TABLE, ESCAPE, EXTENSION_TABLE
from smppgw.protocol.tlv import Tag, Tlv
from smppgw.store import NewMessage

NOW = 1_800_000_000.0
_GSM_CHARS = [c for i, c in enumerate(BASIC_TABLE) if i != ESCAPE] + list(EXTENSION_TABLE.values())
gsm_text = st.text(alphabet=_GSM_CHARS, min_size=1, max_size=500)


def _message(
    payload: bytes,
    data_coding: int,
    *,
    reference: int = 7,
    room: SplitMode = SplitMode.UDH8,
    message_id: int = 1,
    **kw: int,
) -> OutboundMessage:
    segments = split_message(payload, data_coding, SplitMode.UDH8, reference=reference, room=room)
    parts = tuple(s.short_message for s in segments) if len(segments) > 1 else ()
    return OutboundMessage.of(
        message_id,
        NewMessage(
            partner="acme",
            source_addr="ACME",
            destination_addr="84912345678",
            body=payload,
            parts=parts,
            data_coding=data_coding,
            **kw,  # type: ignore[arg-type]
        ),
    )


@given(gsm_text, st.integers(min_value=0, max_value=255))
def test_the_plain_shape_sends_the_parts_as_journaled(text: str, reference: int) -> None:
    message = _message(gsm7.encode(text), DC_DEFAULT, reference=reference)
    for part_no, part in enumerate(message.parts):
        pdu = part_pdu(message, part_no, CarrierShape(), NOW)
        assert pdu.short_message == part
        assert pdu.data_coding == DC_DEFAULT
        assert bool(pdu.esm_class & 0x40) == (len(message.parts) > 1)
        assert pdu.tlvs == ()
        assert pdu.validity_period == ""


@given(gsm_text, st.integers(min_value=0, max_value=255))
def test_sar_parts_are_what_a_sar_split_of_the_text_gives(text: str, reference: int) -> None:
    """The UDH8 parts of admission, sent with TLVs, are the SAR split of the same text:
    the same cuts, no UDH, the reference, total and sequence in the TLVs."""
    payload = gsm7.encode(text)
    message = _message(payload, DC_DEFAULT, reference=reference)
    expected = split_message(payload, DC_DEFAULT, SplitMode.SAR, reference=reference)
    pdus = [part_pdu(message, n, CarrierShape(sar=True), NOW) for n in range(len(message.parts))]
    assert [p.short_message for p in pdus] == [s.short_message for s in expected]
    for pdu, segment in zip(pdus, expected, strict=True):
        assert not pdu.esm_class & 0x40
        if segment.sar_ref is None:  # one part: nothing to say
            assert pdu.tlvs == ()
            continue
        assert pdu.tlvs == (
            Tlv.of_int(Tag.SAR_MSG_REF_NUM, segment.sar_ref),
            Tlv.of_int(Tag.SAR_TOTAL_SEGMENTS, segment.sar_total or 0),
            Tlv.of_int(Tag.SAR_SEGMENT_SEQNUM, segment.sar_seq or 0),
        )


texts = st.one_of(
    gsm_text.map(lambda t: (gsm7.encode(t), DC_DEFAULT)),
    st.text(min_size=1, max_size=300).map(lambda t: (ucs2.encode(t), DC_UCS2)),
    st.binary(min_size=1, max_size=600).map(lambda b: (b, 0x04)),
)


@given(texts, st.integers(min_value=1, max_value=1 << 40))
def test_udh16_parts_are_what_a_udh16_split_of_the_text_gives(
    text: tuple[bytes, int], message_id: int
) -> None:
    """Cut to UDH16's room at admission (``Admission.cut_room``) and journaled with the
    8-bit UDH, a udh16 carrier gets the 16-bit split of the same payload (reference:
    the message id's low 16 bits); a udh8 carrier the parts as they are; each one SMS."""
    payload, dc = text
    message = _message(payload, dc, room=SplitMode.UDH16, message_id=message_id)
    count = len(message.parts)
    expected = split_message(payload, dc, SplitMode.UDH16, reference=message_id & 0xFFFF)
    wide = [part_pdu(message, n, CarrierShape(udh16=True), NOW) for n in range(count)]
    narrow = [part_pdu(message, n, CarrierShape(), NOW) for n in range(count)]
    assert [p.short_message for p in narrow] == list(message.parts)
    if count == 1:
        assert wide[0].short_message == payload
        assert not wide[0].esm_class & 0x40
        return
    assert [p.short_message for p in wide] == [s.short_message for s in expected]
    assert all(p.esm_class & 0x40 and p.data_coding == dc for p in wide)


def test_udh16_leaves_a_part_that_would_not_fit_and_a_partners_own_udh() -> None:
    """A message cut before a reload added udh16 (153 septets a part) keeps its 8-bit
    UDH on every part, the short last one included (a handset joins the parts of one
    message by one kind of reference); so does a partner's own part (one message here)."""
    full = _message(b"a" * 310, DC_DEFAULT)  # cut at UDH8's room: 153, 153 and 4
    assert [len(p) for p in full.parts] == [6 + 153, 6 + 153, 6 + 4]
    for n in range(3):  # the short last part too: one kind of reference a message
        assert part_pdu(full, n, CarrierShape(udh16=True), NOW).short_message == full.parts[n]
    body = bytes([5, 0, 3, 9, 2, 1]) + b"hello"
    own = OutboundMessage.of(
        3,
        NewMessage(
            partner="acme", source_addr="ACME", destination_addr="8491", body=body, esm_class=0x40
        ),
    )
    assert part_pdu(own, 0, CarrierShape(udh16=True), NOW).short_message == body


def test_sar_keeps_a_udh_that_carries_more_than_concatenation() -> None:
    ports_and_concat = bytes(
        [0x0B, 0x05, 0x04, 0x0B, 0x84, 0x23, 0xF0, 0x00, 0x03, 0x01, 0x02, 0x01]
    )
    message = OutboundMessage.of(
        1,
        NewMessage(
            partner="acme",
            source_addr="ACME",
            destination_addr="8491",
            body=ports_and_concat + b"data",
            data_coding=0x04,
            esm_class=0x40,
        ),
    )
    pdu = part_pdu(message, 0, CarrierShape(sar=True), NOW)
    assert pdu.short_message == ports_and_concat + b"data"
    assert pdu.esm_class & 0x40
    assert pdu.tlvs == ()


@given(gsm_text)
def test_a_latin1_smsc_gets_gsm_text_in_latin1(text: str) -> None:
    message = _message(gsm7.encode(text), DC_DEFAULT)
    shape = CarrierShape(latin1_default=True)
    if len(message.parts) == 1:
        pdu = part_pdu(message, 0, shape, NOW)
        assert pdu.short_message == text.encode("latin-1", errors="replace")
        assert pdu.data_coding == DC_DEFAULT
        return
    rebuilt = ""
    for part_no, part in enumerate(message.parts):
        pdu = part_pdu(message, part_no, shape, NOW)
        assert pdu.short_message[:6] == part[:6]  # the UDH is kept
        rebuilt += pdu.short_message[6:].decode("latin-1")
    assert rebuilt == text.encode("latin-1", errors="replace").decode("latin-1")


@pytest.mark.parametrize(
    ("text", "data_coding"),
    [
        ("São Paulo, três", DC_LATIN1),  # ã ê: Latin-1 has them, GSM does not
        ("Hello", DC_UCS2),  # GSM can write it: the partner's choice stands
        ("Xin chào Việt Nam", DC_UCS2),  # ệ: not Latin-1
        ("ação " * 40, DC_LATIN1),  # in parts: every part converted
    ],
)
def test_allow_latin1_sends_ucs2_text_that_only_latin1_can_write_as_dc3(
    text: str, data_coding: int
) -> None:
    message = _message(ucs2.encode(text), DC_UCS2)
    count = len(message.parts)
    pdus = [part_pdu(message, n, CarrierShape(allow_latin1=True), NOW) for n in range(count)]
    assert {p.data_coding for p in pdus} == {data_coding}
    users = [p.short_message[6:] if count > 1 else p.short_message for p in pdus]
    codec = "latin-1" if data_coding == DC_LATIN1 else "utf-16-be"
    assert "".join(u.decode(codec) for u in users) == text


@pytest.mark.parametrize(
    ("own", "expected"),
    [
        ((0, 0, 0, 0), (5, 0, 1, 1)),  # unknown: the carrier's
        ((5, 0, 2, 1), (5, 0, 2, 1)),  # the partner's own: kept
        ((1, 0, 0, 1), (1, 0, 0, 1)),  # one of the two set: kept
    ],
)
def test_unknown_ton_and_npi_take_the_carriers(
    own: tuple[int, int, int, int], expected: tuple[int, int, int, int]
) -> None:
    message = _message(
        b"hi", DC_DEFAULT, source_ton=own[0], source_npi=own[1], dest_ton=own[2], dest_npi=own[3]
    )
    shape = CarrierShape(source_ton=5, source_npi=0, dest_ton=1, dest_npi=1)
    pdu = part_pdu(message, 0, shape, NOW)
    got = (pdu.source_addr_ton, pdu.source_addr_npi, pdu.dest_addr_ton, pdu.dest_addr_npi)
    assert got == expected


@pytest.mark.parametrize("fmt", [ValidityFormat.ABSOLUTE, ValidityFormat.RELATIVE])
def test_a_late_part_never_gets_a_validity_already_past(fmt: ValidityFormat) -> None:
    message = _message(b"x" * 300, DC_DEFAULT)  # two parts
    message.expires_at = NOW - 5  # passed while the first part was being sent
    pdu = part_pdu(message, 1, CarrierShape(validity=fmt), NOW)
    until = parse_smpp_time(pdu.validity_period, field="validity_period")
    reference = datetime.fromtimestamp(NOW, UTC)
    resolved = resolve_smpp_time(until, reference)
    assert resolved is not None
    assert resolved.timestamp() >= NOW + LATE_PART_VALIDITY - 0.1


@pytest.mark.parametrize("shape", [CarrierShape(), CarrierShape(sar=True, allow_latin1=True)])
def test_every_part_carries_the_partner_s_protocol_id_not_its_reference(
    shape: CarrierShape,
) -> None:
    message = _message(b"x" * 300, DC_DEFAULT, protocol_id=0x41, user_ref=0x1234)
    for part_no in range(len(message.parts)):
        pdu = part_pdu(message, part_no, shape, NOW)
        assert pdu.protocol_id == 0x41
        assert pdu.tlv_int(Tag.USER_MESSAGE_REFERENCE) is None


def test_a_carrier_s_dropped_tlvs_are_left_out_of_every_part() -> None:
    ports = (Tlv(Tag.DESTINATION_PORT, b"\x0b\x84"), Tlv(Tag.MS_VALIDITY, b"\x01"))
    message = _message(b"x" * 300, DC_DEFAULT)
    message.tlvs = ports
    for shape, kept in (
        (CarrierShape(), ports),
        (CarrierShape(drop_tlvs=frozenset({Tag.MS_VALIDITY})), ports[:1]),
    ):
        for part_no in range(len(message.parts)):
            assert part_pdu(message, part_no, shape, NOW).tlvs == kept
    # The sar_* TLVs a sar carrier gets are the gateway's, after the drop.
    shape = CarrierShape(sar=True, drop_tlvs=frozenset({Tag.DESTINATION_PORT, Tag.MS_VALIDITY}))
    tags = [t.tag for t in part_pdu(message, 0, shape, NOW).tlvs]
    assert tags == [Tag.SAR_MSG_REF_NUM, Tag.SAR_TOTAL_SEGMENTS, Tag.SAR_SEGMENT_SEQNUM]


def test_a_partner_s_vendor_tlvs_go_only_to_the_carriers_that_list_them() -> None:
    port = Tlv(Tag.DESTINATION_PORT, b"\x0b\x84")
    charging, brand = Tlv(0x1401, b"\x01\x02"), Tlv(0x1402, b"ACME")
    message = _message(b"x" * 300, DC_DEFAULT)
    message.tlvs = (port, charging, brand)
    for shape, kept in (
        (CarrierShape(), (port,)),
        (CarrierShape(vendor_tlvs=frozenset({0x1401})), (port, charging)),
        (CarrierShape(vendor_tlvs=frozenset({0x1401, 0x1402})), (port, charging, brand)),
        (
            CarrierShape(
                vendor_tlvs=frozenset({0x1402}), drop_tlvs=frozenset({Tag.DESTINATION_PORT})
            ),
            (brand,),
        ),
    ):
        for part_no in range(len(message.parts)):
            assert part_pdu(message, part_no, shape, NOW).tlvs == kept
