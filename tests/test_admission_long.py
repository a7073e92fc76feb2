"""Admission of long messages: cut into parts with a UDH (to the room every carrier
takes), a partner's own UDH or sar_* parts, the parts limit."""

from __future__ import annotations

from typing import TYPE_CHECKING

from hypothesis import given
from hypothesis import strategies as st
from test_admission import _admission, _admitted, _partner, _status, _submit

from smppgw.protocol.concat import Reassembler, incoming_part
from smppgw.protocol.status import CommandStatus as S
from smppgw.protocol.text import SplitMode, choose_encoding, decode_text
from smppgw.protocol.tlv import Tag, Tlv
from smppgw.protocol.udh import parse_udh

if TYPE_CHECKING:
    from smppgw.gateway.admission import Admitted


def _reassemble(admitted: Admitted) -> bytes:
    m = admitted.message
    reassembler = Reassembler()
    whole = None
    for part in m.parts:
        whole = reassembler.add(incoming_part("a", "b", part, udhi=True), 0.0)
    assert whole is not None
    return whole.payload


def test_long_payload_is_split_with_udh() -> None:
    payload = bytes(range(32, 127)) * 5  # 475 GSM septets: 4 parts of <= 153
    admitted = _admitted(
        _admission().check(
            "acme", _submit(short_message=b"", tlvs=(Tlv(Tag.MESSAGE_PAYLOAD, payload),)), 0.0
        )
    )
    m = admitted.message
    assert admitted.parts == len(m.parts) == 4
    assert m.body == payload
    assert m.esm_class == 0  # the carrier side sets UDHI on each part
    headers = [parse_udh(part)[0].concat for part in m.parts]
    assert [h.seq for h in headers if h] == [1, 2, 3, 4]
    assert len({h.reference for h in headers if h}) == 1
    assert _reassemble(admitted) == payload


def test_a_udh16_carrier_makes_long_messages_cut_one_octet_shorter() -> None:
    """``cut_room`` UDH16 (some carrier wants the 16-bit reference): 306 GSM septets,
    two parts of 153 with an 8-bit UDH, take three of at most 152, and quota counts
    three; the journaled parts still carry the 8-bit UDH (udh8 carriers send them as
    they are)."""
    submit = _submit(short_message=b"", tlvs=(Tlv(Tag.MESSAGE_PAYLOAD, b"a" * 306),))
    assert _admitted(_admission().check("acme", submit, 0.0)).parts == 2
    admission = _admission()
    admission.cut_room = SplitMode.UDH16
    admitted = _admitted(admission.check("acme", submit, 0.0))
    assert admitted.parts == len(admitted.message.parts) == 3
    assert all(len(part) <= 6 + 152 for part in admitted.message.parts)
    assert {part[:3] for part in admitted.message.parts} == {bytes([5, 0, 3])}
    assert _reassemble(admitted) == b"a" * 306


def test_long_short_message_is_split_and_references_differ() -> None:
    admission = _admission()
    text = "Xin chào " * 20  # UCS2: 180 characters, 360 octets > 254, so use 200 octets
    sm = text.encode("utf-16-be")[:200]
    first = _admitted(admission.check("acme", _submit(data_coding=8, short_message=sm), 0.0))
    second = _admitted(admission.check("acme", _submit(data_coding=8, short_message=sm), 0.0))
    assert first.parts == 2
    assert _reassemble(first) == sm
    ref1 = parse_udh(first.message.parts[0])[0].concat
    ref2 = parse_udh(second.message.parts[0])[0].concat
    assert ref1 is not None
    assert ref2 is not None
    assert ref1.reference != ref2.reference


@given(st.text(min_size=1, max_size=1200))
def test_split_parts_reassemble_to_the_text(text: str) -> None:
    try:
        encoded = choose_encoding(text)
    except ValueError:  # a lone surrogate
        return
    admission = _admission(_partner(max_message_parts=255, content={}))
    pdu = _submit(
        data_coding=encoded.data_coding,
        short_message=b"",
        tlvs=(Tlv(Tag.MESSAGE_PAYLOAD, encoded.payload),),
    )
    admitted = _admitted(admission.check("acme", pdu, 0.0))
    assert admitted.parts == encoded.parts
    assert admitted.text == decode_text(encoded.payload, encoded.data_coding)
    if encoded.parts == 1:
        assert admitted.message.parts == ()
        assert admitted.message.body == encoded.payload
    else:
        assert decode_text(_reassemble(admitted), encoded.data_coding) == admitted.text


def test_too_many_parts() -> None:
    admission = _admission(_partner(max_message_parts=3))
    four = _submit(short_message=b"", tlvs=(Tlv(Tag.MESSAGE_PAYLOAD, b"x" * 600),))
    refused = admission.check("acme", four, 0.0)
    assert _status(refused) == S.ESME_RINVMSGLEN
    assert "4 parts" in refused.reason  # type: ignore[union-attr]


def test_a_partners_udh_part_is_one_part() -> None:
    udh = bytes((5, 0, 3, 0x2A, 2, 1))
    sm = udh + b"first half of a casinos message"
    admitted = _admitted(_admission().check("acme", _submit(esm_class=0x40, short_message=sm), 0.0))
    m = admitted.message
    assert (admitted.parts, m.parts, m.body, m.esm_class) == (1, (), sm, 0x40)
    assert admitted.text == "first half of a casinos message"
    # A piece of a text gets the block checks, not the templates.
    blocked = _submit(esm_class=0x40, short_message=udh + b"a casino part")
    assert _status(_admission().check("acme", blocked, 0.0)) == S.ESME_RX_P_APPN


def test_a_partners_udh_part_must_fit_one_sms() -> None:
    udh = bytes((5, 0, 3, 0x2A, 2, 1))
    fits = _submit(esm_class=0x40, short_message=udh + b"x" * 153)
    _admitted(_admission().check("acme", fits, 0.0))
    too_long = _submit(esm_class=0x40, short_message=udh + b"x" * 154)
    assert _status(_admission().check("acme", too_long, 0.0)) == S.ESME_RINVMSGLEN
    ucs2 = _submit(esm_class=0x40, data_coding=8, short_message=udh + b"\x00x" * 68)
    assert _status(_admission().check("acme", ucs2, 0.0)) == S.ESME_RINVMSGLEN


def _sar(ref: int, total: int, seq: int) -> tuple[Tlv, ...]:
    return (
        Tlv(Tag.SAR_MSG_REF_NUM, ref.to_bytes(2, "big")),
        Tlv(Tag.SAR_TOTAL_SEGMENTS, bytes((total,))),
        Tlv(Tag.SAR_SEGMENT_SEQNUM, bytes((seq,))),
    )


def test_sar_parts_become_udh_parts() -> None:
    admission = _admission()
    narrow = _admitted(
        admission.check("acme", _submit(short_message=b"abc", tlvs=_sar(7, 3, 2)), 0.0)
    )
    assert narrow.message.body == bytes((5, 0, 3, 7, 3, 2)) + b"abc"
    assert narrow.message.esm_class == 0x40
    assert narrow.parts == 1
    wide = _admitted(
        admission.check("acme", _submit(short_message=b"abc", tlvs=_sar(0x1234, 3, 3)), 0.0)
    )
    assert wide.message.body == bytes((6, 8, 4, 0x12, 0x34, 3, 3)) + b"abc"
    # No room for the 16-bit reference: the low octet in an 8-bit one.
    full = _submit(short_message=b"y" * 153, tlvs=_sar(0x1234, 2, 1))
    assert _admitted(admission.check("acme", full, 0.0)).message.body[:6] == bytes(
        (5, 0, 3, 0x34, 2, 1)
    )
    impossible = _submit(tlvs=_sar(1, 2, 3))
    assert _status(admission.check("acme", impossible, 0.0)) == S.ESME_RINVOPTPARAMVAL
