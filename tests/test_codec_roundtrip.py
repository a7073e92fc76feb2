"""Round trips for every PDU class: ``decode(encode(p)) == p`` and ``encode(decode(b)) == b``.

The strategies (``pdu_strategies.py``) draw every field anywhere inside its spec limits,
and TLVs with standard, vendor and unknown tags and arbitrary values. A few explicit
cases pin the limits themselves (a full 254-octet message, 254 destinations, a 64 KiB
``message_payload``) and one hand-written ``submit_multi`` checks the dest-list layout
byte for byte, since smpplib cannot check that one (see test_codec_differential.py).
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pdu_strategies import ALL_PDU_CLASSES, any_pdu, pdus

from smppgw.protocol.codec import decode_header, decode_pdu, encode_pdu
from smppgw.protocol.fields import DestAddress, DestFlag, UnsuccessSme
from smppgw.protocol.pdus import (
    PDU_CLASSES,
    BindTransceiver,
    DataSm,
    Pdu,
    SubmitMulti,
    SubmitMultiResp,
    SubmitSm,
)
from smppgw.protocol.tlv import Tag, Tlv


def _check_round_trip(pdu: Pdu) -> None:
    wire = encode_pdu(pdu)
    length, command_id, status, seq = decode_header(wire)
    assert length == len(wire)
    assert (command_id, status, seq) == (pdu.command_id, pdu.command_status, pdu.sequence_number)
    back = decode_pdu(wire)
    assert type(back) is type(pdu)
    assert back == pdu
    assert encode_pdu(back) == wire


def test_every_command_id_has_a_class() -> None:
    assert len(PDU_CLASSES) == 27
    assert len(ALL_PDU_CLASSES) == 27


@pytest.mark.parametrize("cls", ALL_PDU_CLASSES, ids=lambda c: c.__name__)
@settings(max_examples=40)
@given(data=st.data())
def test_round_trip_each_class(cls: type[Pdu], data: st.DataObject) -> None:
    _check_round_trip(data.draw(pdus(cls)))


@given(any_pdu)
def test_round_trip_any_pdu(pdu: Pdu) -> None:
    _check_round_trip(pdu)


@given(any_pdu)
def test_sequence_number_override(pdu: Pdu) -> None:
    wire = encode_pdu(pdu, sequence_number=0xFFFFFFFF)
    assert decode_header(wire)[3] == 0xFFFFFFFF
    assert wire[16:] == encode_pdu(pdu)[16:]


# -- the limits themselves -----------------------------------------------------------


def test_limits_exactly() -> None:
    """Every field at its spec maximum round-trips (one octet more is refused: malformed)."""
    _check_round_trip(
        SubmitSm(
            sequence_number=0xFFFFFFFF,
            command_status=0xFFFFFFFF,
            service_type="\xff" * 5,
            source_addr="A" * 20,
            destination_addr="9" * 20,
            esm_class=255,
            schedule_delivery_time="261125120000000+",
            validity_period="000001000000000R",
            short_message=bytes(range(254)),
        )
    )
    _check_round_trip(
        BindTransceiver(
            system_id="s" * 15, password="p" * 8, system_type="t" * 12, address_range="^1" * 20
        )
    )
    _check_round_trip(DataSm(source_addr="1" * 64, destination_addr="2" * 64))


def test_254_destinations() -> None:
    dests = tuple(
        DestAddress(dest_addr_ton=1, dest_addr_npi=1, destination_addr=f"{i:011d}")
        if i % 2
        else DestAddress(dest_flag=DestFlag.DISTRIBUTION_LIST, dl_name=f"list{i}")
        for i in range(254)
    )
    _check_round_trip(SubmitMulti(dest_addresses=dests, short_message=b"x"))


def test_64k_message_payload_and_many_tlvs() -> None:
    tlvs = (
        Tlv(Tag.MESSAGE_PAYLOAD, bytes(range(256)) * 255 + b"x" * 255),  # 0xFFFF octets
        Tlv(0x1400, b""),
        Tlv(0x3FFF, b"\0" * 3),
        Tlv(0xFFFF, b"?"),
        Tlv(Tag.MESSAGE_PAYLOAD, b"a duplicate is kept, in order"),
    )
    assert len(tlvs[0].value) == 0xFFFF
    _check_round_trip(SubmitSm(tlvs=tlvs))


# -- submit_multi byte for byte (smpplib has no submit_multi) ---------------------------


def test_submit_multi_bytes() -> None:
    pdu = SubmitMulti(
        sequence_number=3,
        source_addr="Shop",
        source_addr_ton=5,
        dest_addresses=(
            DestAddress(dest_addr_ton=1, dest_addr_npi=1, destination_addr="84912345678"),
            DestAddress(dest_flag=DestFlag.DISTRIBUTION_LIST, dl_name="vip"),
        ),
        registered_delivery=1,
        short_message=b"hello",
    )
    body = (
        b"\0"  # service_type
        b"\x05\x00Shop\0"  # source ton, npi, addr
        b"\x02"  # number_of_dests
        b"\x01\x01\x0184912345678\0"  # dest_flag 1: ton, npi, destination_addr
        b"\x02vip\0"  # dest_flag 2: dl_name
        b"\x00\x00\x00"  # esm_class, protocol_id, priority_flag
        b"\0\0"  # schedule_delivery_time, validity_period
        b"\x01\x00\x00\x00"  # registered_delivery, replace, data_coding, sm_default_msg_id
        b"\x05hello"
    )
    wire = (16 + len(body)).to_bytes(4, "big") + bytes.fromhex("00000021 00000000 00000003")
    wire += body
    assert encode_pdu(pdu) == wire
    assert decode_pdu(wire) == pdu


def test_submit_multi_resp_bytes() -> None:
    pdu = SubmitMultiResp(
        sequence_number=3,
        message_id="m1",
        unsuccess_smes=(
            UnsuccessSme(
                dest_addr_ton=1, dest_addr_npi=1, destination_addr="849", error_status_code=0x45
            ),
        ),
    )
    body = b"m1\0\x01\x01\x01849\0\x00\x00\x00\x45"
    wire = (16 + len(body)).to_bytes(4, "big") + bytes.fromhex("80000021 00000000 00000003")
    wire += body
    assert encode_pdu(pdu) == wire
    assert decode_pdu(wire) == pdu
    # No unsuccessful destinations: no_unsuccess 0 is still on the wire.
    assert encode_pdu(SubmitMultiResp(message_id="m1"))[16:] == b"m1\0\x00"
