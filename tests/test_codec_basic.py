"""Whole-PDU cases, byte for byte, for the generic codec."""

from __future__ import annotations

import pytest

from smppgw.protocol.codec import decode_pdu, encode_pdu
from smppgw.protocol.errors import PduDecodeError, PduEncodeError
from smppgw.protocol.pdus import EnquireLink, SubmitSm, SubmitSmResp
from smppgw.protocol.status import CommandStatus
from smppgw.protocol.tlv import Tag, Tlv

SUBMIT = SubmitSm(
    sequence_number=2,
    source_addr="8055",
    dest_addr_ton=1,
    dest_addr_npi=1,
    destination_addr="84912345678",
    registered_delivery=1,
    short_message=b"hi",
    tlvs=(Tlv(Tag.USER_MESSAGE_REFERENCE, b"\x00\x07"), Tlv(0x1401, b"vendor")),
)
SUBMIT_WIRE = (
    b"\x00\x00\x00\x42"  # command_length 66
    b"\x00\x00\x00\x04"  # submit_sm
    b"\x00\x00\x00\x00"
    b"\x00\x00\x00\x02"
    b"\x00"  # service_type
    b"\x00\x00"
    b"8055\x00"
    b"\x01\x01"
    b"84912345678\x00"
    b"\x00\x00\x00"  # esm_class, protocol_id, priority_flag
    b"\x00\x00"  # schedule, validity
    b"\x01\x00\x00\x00"  # registered_delivery, replace, data_coding, default msg id
    b"\x02hi"
    b"\x02\x04\x00\x02\x00\x07"
    b"\x14\x01\x00\x06vendor"
)


def test_submit_sm_bytes() -> None:
    assert encode_pdu(SUBMIT) == SUBMIT_WIRE
    assert decode_pdu(SUBMIT_WIRE) == SUBMIT
    assert decode_pdu(SUBMIT_WIRE).tlv_int(Tag.USER_MESSAGE_REFERENCE) == 7


def test_sequence_number_override() -> None:
    wire = encode_pdu(EnquireLink(), sequence_number=0x7FFFFFFF)
    assert wire == b"\x00\x00\x00\x10\x00\x00\x00\x15\x00\x00\x00\x00\x7f\xff\xff\xff"


def test_error_response_without_body() -> None:
    wire = b"\x00\x00\x00\x10\x80\x00\x00\x04\x00\x00\x00\x58\x00\x00\x00\x09"
    pdu = decode_pdu(wire)
    assert pdu == SubmitSmResp(sequence_number=9, command_status=CommandStatus.ESME_RTHROTTLED)


def test_unknown_command_id_carries_sequence() -> None:
    wire = b"\x00\x00\x00\x10\x00\x00\x00\x99\x00\x00\x00\x00\x00\x00\x00\x05"
    with pytest.raises(PduDecodeError) as info:
        decode_pdu(wire)
    assert info.value.command_status == CommandStatus.ESME_RINVCMDID
    assert info.value.sequence_number == 5


def test_source_addr_too_long_is_rinvsrcadr() -> None:
    wire = SUBMIT_WIRE.replace(b"8055\x00", b"8055" * 6 + b"\x00")
    wire = len(wire).to_bytes(4, "big") + wire[4:]
    with pytest.raises(PduDecodeError) as info:
        decode_pdu(wire)
    assert info.value.command_status == CommandStatus.ESME_RINVSRCADR
    assert info.value.sequence_number == 2


def test_encode_refuses_over_limit_fields() -> None:
    with pytest.raises(PduEncodeError) as info:
        encode_pdu(SubmitSm(short_message=b"x" * 255))
    assert info.value.command_status == CommandStatus.ESME_RINVMSGLEN
    with pytest.raises(PduEncodeError) as info:
        encode_pdu(SubmitSm(destination_addr="1" * 21))
    assert info.value.command_status == CommandStatus.ESME_RINVDSTADR
