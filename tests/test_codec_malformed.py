"""Malformed input: ``decode_pdu`` raises only ``PduDecodeError``, with the right answer.

The fuzz invariant (MODELS.md, lesson 9): *garbage in -> a PDU or PduDecodeError, never
anything else*. When garbage does decode, it must be canonical: re-encoding gives the same
octets back, except for an error response whose body stopped early (the one leniency the
codec allows, see ``codec.py``), which re-encodes to the same header and a longer body.

The explicit cases pin the ``command_status`` (what the session answers), and that the
``sequence_number`` and ``command_id`` of the offending PDU are carried, so the session
can answer with the right ``*_resp`` or ``generic_nack``.

The encoder's side: ``encode_pdu`` raises only ``PduEncodeError`` for any out-of-range
value of any field.
"""

from __future__ import annotations

import dataclasses
import struct
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from pdu_strategies import ALL_PDU_CLASSES, any_pdu, u32

from smppgw.protocol.codec import decode_pdu, encode_pdu
from smppgw.protocol.commands import CommandId
from smppgw.protocol.errors import PduDecodeError, PduEncodeError
from smppgw.protocol.fields import DestAddress, DestFlag, FieldKind, UnsuccessSme
from smppgw.protocol.pdus import Pdu, QuerySmResp, SubmitSm
from smppgw.protocol.status import CommandStatus as S
from smppgw.protocol.tlv import Tag, Tlv

SEQ = 0x01020304
KNOWN_IDS = [int(c) for c in CommandId]


def frame(command_id: int, body: bytes, *, seq: int = SEQ, status: int = 0) -> bytes:
    return struct.pack(">IIII", 16 + len(body), command_id, status, seq) + body


def relength(wire: bytes) -> bytes:
    """``wire`` with its command_length set to its real length."""
    return len(wire).to_bytes(4, "big") + wire[4:]


def check_decode_invariant(wire: bytes) -> Pdu | PduDecodeError:
    """Decode ``wire``: a canonical PDU, or a PduDecodeError carrying the header's numbers."""
    error: PduDecodeError | None = None
    try:
        pdu = decode_pdu(wire)
    except PduDecodeError as exc:
        error = exc
    if error is not None:
        assert error.command_status in S._value2member_map_, hex(error.command_status)
        if len(wire) >= 16:
            _, command_id, _, seq = struct.unpack_from(">IIII", wire)
            assert error.sequence_number == seq
            assert error.command_id == command_id
        else:
            assert error.command_status == S.ESME_RINVCMDLEN
        return error
    again = encode_pdu(pdu)
    if again != wire:
        # Only an error response cut short after a whole field may differ: same header
        # but the length, and the body it has is the start of the canonical one.
        assert pdu.is_response
        assert not pdu.tlvs
        assert again[4:16] == wire[4:16]
        assert again[16:].startswith(wire[16:])
    return pdu


# -- fuzz ----------------------------------------------------------------------------


@given(
    command_id=st.one_of(st.sampled_from(KNOWN_IDS), u32),
    status=u32,
    seq=u32,
    body=st.binary(max_size=300),
)
def test_random_body_behind_valid_header(
    command_id: int, status: int, seq: int, body: bytes
) -> None:
    check_decode_invariant(frame(command_id, body, seq=seq, status=status))


@given(st.binary(max_size=64))
@example(b"")
@example(b"\x00\x00\x00\x10")
def test_random_bytes(wire: bytes) -> None:
    check_decode_invariant(wire)


_mutation = st.tuples(
    st.sampled_from(["replace", "insert", "delete"]),
    st.integers(min_value=0, max_value=10_000),
    st.integers(min_value=0, max_value=255),
)


@given(any_pdu, st.lists(_mutation, min_size=1, max_size=4), st.booleans())
def test_mutated_valid_pdus(
    pdu: Pdu, mutations: list[tuple[str, int, int]], fix_length: bool
) -> None:
    """Valid PDUs with octets replaced, inserted or deleted in the body."""
    wire = bytearray(encode_pdu(pdu))
    for op, where, octet in mutations:
        pos = 16 + where % max(1, len(wire) - 15)
        if op == "insert":
            wire.insert(pos, octet)
        elif pos < len(wire):
            if op == "replace":
                wire[pos] = octet
            else:
                del wire[pos]
    data = relength(bytes(wire)) if fix_length else bytes(wire)
    result = check_decode_invariant(data)
    if not fix_length and len(data) != int.from_bytes(data[:4], "big"):
        assert isinstance(result, PduDecodeError)
        assert result.command_status == S.ESME_RINVCMDLEN


# -- truncation at every offset ------------------------------------------------------


def _rich(cls: type[Pdu]) -> Pdu:
    """A PDU of ``cls`` with every field non-default and two TLVs."""
    values: dict[str, Any] = {}
    for field in cls.FIELDS:
        kind = field.kind
        if kind is FieldKind.CSTRING:
            values[field.name] = "abc"
        elif kind is FieldKind.TIME:
            values[field.name] = "261125120000000+"
        elif kind is FieldKind.U8:
            values[field.name] = 1
        elif kind is FieldKind.SHORT_MESSAGE:
            values[field.name] = b"hello"
        elif kind is FieldKind.DEST_LIST:
            values[field.name] = (
                DestAddress(dest_addr_ton=1, dest_addr_npi=1, destination_addr="849"),
                DestAddress(dest_flag=DestFlag.DISTRIBUTION_LIST, dl_name="vip"),
            )
        else:
            values[field.name] = (UnsuccessSme(destination_addr="849", error_status_code=0x45),)
    tlvs = (Tlv(Tag.USER_MESSAGE_REFERENCE, b"\x00\x07"), Tlv(0x1401, b"vendor"))
    return cls(sequence_number=SEQ, tlvs=tlvs, **values)


def _field_ends(pdu: Pdu) -> list[int]:
    """Offsets just after each mandatory field of ``pdu`` on the wire (16: the header)."""
    ends = [16]
    for f in pdu.FIELDS:
        value = getattr(pdu, f.name)
        kind = f.kind
        if kind is FieldKind.CSTRING or kind is FieldKind.TIME:
            size = len(value) + 1
        elif kind is FieldKind.U8:
            size = 1
        elif kind is FieldKind.SHORT_MESSAGE:
            size = 1 + len(value)
        elif kind is FieldKind.DEST_LIST:
            size = 1 + sum(
                4 + len(d.destination_addr) if d.dest_flag == 1 else 2 + len(d.dl_name)
                for d in value
            )
        else:
            size = 1 + sum(7 + len(u.destination_addr) for u in value)
        ends.append(ends[-1] + size)
    return ends


@pytest.mark.parametrize("cls", ALL_PDU_CLASSES, ids=lambda c: c.__name__)
def test_truncation_at_every_offset(cls: type[Pdu]) -> None:
    pdu = _rich(cls)
    wire = encode_pdu(pdu)
    ends = _field_ends(pdu)
    mandatory_end = ends[-1]
    assert mandatory_end == len(encode_pdu(dataclasses.replace(pdu, tlvs=())))
    tlv_ends = [mandatory_end, mandatory_end + 6, mandatory_end + 16]
    assert tlv_ends[-1] == len(wire)
    for cut in range(len(wire)):
        # command_length still says the whole PDU: always RINVCMDLEN.
        with pytest.raises(PduDecodeError) as info:
            decode_pdu(wire[:cut])
        assert info.value.command_status == S.ESME_RINVCMDLEN
        assert info.value.sequence_number == (SEQ if cut >= 16 else None)
        if cut < 16:
            continue
        # command_length agrees with the cut: a shorter body.
        result = check_decode_invariant(relength(wire[:cut]))
        if cut >= mandatory_end:
            # Among the TLVs: fine exactly at a TLV boundary, RINVOPTPARSTREAM elsewhere.
            if cut in tlv_ends:
                assert isinstance(result, Pdu)
                assert result.tlvs == pdu.tlvs[: tlv_ends.index(cut)]
            else:
                assert isinstance(result, PduDecodeError)
                assert result.command_status == S.ESME_RINVOPTPARSTREAM
        elif pdu.is_response and cut in ends:
            # The leniency: a response may stop after any whole field.
            assert isinstance(result, Pdu)
            assert result.tlvs == ()
        else:
            # A request needs all its mandatory fields; no PDU may stop inside one.
            assert isinstance(result, PduDecodeError), cut


# -- what each fault answers ---------------------------------------------------------


def _sm_body(
    *,
    service_type: bytes = b"",
    src: bytes = b"8055",
    dst: bytes = b"84912345678",
    sched: bytes = b"",
    validity: bytes = b"",
    sm: bytes = b"hi",
    sm_length: int | None = None,
    tail: bytes = b"",
) -> bytes:
    return (
        service_type
        + b"\0\x05\x00"
        + src
        + b"\0\x01\x01"
        + dst
        + b"\0\x00\x00\x00"
        + sched
        + b"\0"
        + validity
        + b"\0\x01\x00\x00\x00"
        + bytes([len(sm) if sm_length is None else sm_length])
        + sm
        + tail
    )


def _bind_body(
    system_id: bytes = b"esme", password: bytes = b"pw", system_type: bytes = b""
) -> bytes:
    return system_id + b"\0" + password + b"\0" + system_type + b"\0\x34\x00\x00\0"


def _multi_body(dests: bytes, count: int = 1) -> bytes:
    return b"\0\x00\x00src\0" + bytes([count]) + dests + b"\x00\x00\x00\0\0\x01\x00\x00\x00\x02hi"


SM = CommandId.SUBMIT_SM
CASES: list[tuple[str, int, bytes, S]] = [
    # header
    ("unknown command_id", 0x00000099, b"", S.ESME_RINVCMDID),
    ("unknown response id", 0x80000099, b"", S.ESME_RINVCMDID),
    ("reserved id 0x0A", 0x0000000A, b"", S.ESME_RINVCMDID),
    # submit_sm fields
    ("source_addr 21 chars", SM, _sm_body(src=b"1" * 21), S.ESME_RINVSRCADR),
    ("source_addr no NUL", SM, b"\0\x05\x00" + b"1" * 30, S.ESME_RINVSRCADR),
    ("destination_addr 21 chars", SM, _sm_body(dst=b"1" * 21), S.ESME_RINVDSTADR),
    ("service_type 6 chars", SM, _sm_body(service_type=b"ABCDEF"), S.ESME_RINVSERTYP),
    ("schedule 10 chars", SM, _sm_body(sched=b"2611251200"), S.ESME_RINVSCHED),
    ("schedule 17 chars", SM, _sm_body(sched=b"2611251200000000+"), S.ESME_RINVSCHED),
    ("validity 15 chars", SM, _sm_body(validity=b"1" * 15), S.ESME_RINVEXPIRY),
    ("sm_length 255", SM, _sm_body(sm=b"x" * 255), S.ESME_RINVMSGLEN),
    ("sm_length past the end", SM, _sm_body(sm=b"hi", sm_length=10), S.ESME_RINVMSGLEN),
    ("body ends in fields", SM, b"\0\x05\x00src\0\x01", S.ESME_RINVCMDLEN),
    ("no NUL, short remainder", SM, b"\0\x05\x00sr", S.ESME_RINVCMDLEN),
    ("no sm_length", SM, _sm_body()[:-3], S.ESME_RINVCMDLEN),
    # TLV stream
    (
        "TLV length past end",
        SM,
        _sm_body(tail=b"\x02\x04\x00\x64\x00\x07"),
        S.ESME_RINVOPTPARSTREAM,
    ),
    ("3 stray octets", SM, _sm_body(tail=b"\x02\x04\x00"), S.ESME_RINVOPTPARSTREAM),
    ("1 stray octet", SM, _sm_body(tail=b"\x02"), S.ESME_RINVOPTPARSTREAM),
    ("stray after good TLV", SM, _sm_body(tail=b"\x14\x01\x00\x00\xff"), S.ESME_RINVOPTPARSTREAM),
    # binds
    ("system_id 16 chars", CommandId.BIND_TRANSMITTER, _bind_body(b"s" * 16), S.ESME_RINVSYSID),
    ("system_id no NUL", CommandId.BIND_RECEIVER, b"s" * 40, S.ESME_RINVSYSID),
    (
        "password 9 chars",
        CommandId.BIND_TRANSCEIVER,
        _bind_body(password=b"p" * 9),
        S.ESME_RINVPASWD,
    ),
    (
        "system_type 13",
        CommandId.BIND_TRANSMITTER,
        _bind_body(system_type=b"t" * 13),
        S.ESME_RINVSYSTYP,
    ),
    (
        "address_range 41",
        CommandId.BIND_TRANSMITTER,
        _bind_body()[:-1] + b"1" * 41 + b"\0",
        S.ESME_RINVPARLEN,
    ),
    ("bind ends early", CommandId.BIND_TRANSMITTER, b"esme\0pw\0\0\x34", S.ESME_RINVCMDLEN),
    ("outbind password", CommandId.OUTBIND, b"smsc\0" + b"p" * 9 + b"\0", S.ESME_RINVPASWD),
    ("bind_resp system_id", CommandId.BIND_TRANSMITTER_RESP, b"s" * 16 + b"\0", S.ESME_RINVSYSID),
    # responses and message management
    ("message_id 65 chars", CommandId.SUBMIT_SM_RESP, b"m" * 65 + b"\0", S.ESME_RINVMSGID),
    ("message_id cut", CommandId.DELIVER_SM_RESP, b"abc", S.ESME_RINVCMDLEN),
    ("final_date 5 chars", CommandId.QUERY_SM_RESP, b"m\0" + b"26112\0\x02\x00", S.ESME_RINVPARLEN),
    ("query_sm message_id", CommandId.QUERY_SM, b"m" * 70 + b"\0\x00\x00\0", S.ESME_RINVMSGID),
    ("cancel_sm service_type", CommandId.CANCEL_SM, b"LONGER\0", S.ESME_RINVSERTYP),
    (
        "replace_sm sm_length",
        CommandId.REPLACE_SM,
        b"m\0\x00\x00s\0\0\0\x00\x00\xff",
        S.ESME_RINVMSGLEN,
    ),
    ("data_sm source 65", CommandId.DATA_SM, b"\0\x00\x00" + b"1" * 65 + b"\0", S.ESME_RINVSRCADR),
    (
        "alert esme_addr 65",
        CommandId.ALERT_NOTIFICATION,
        b"\x01\x01s\0\x01\x01" + b"e" * 65 + b"\0",
        S.ESME_RINVDSTADR,
    ),
    # submit_multi destination lists
    ("number_of_dests 0", CommandId.SUBMIT_MULTI, _multi_body(b"", 0), S.ESME_RINVNUMDESTS),
    (
        "number_of_dests 255",
        CommandId.SUBMIT_MULTI,
        _multi_body(b"\x02dl\0" * 255, 255),
        S.ESME_RINVNUMDESTS,
    ),
    ("dest_flag 3", CommandId.SUBMIT_MULTI, _multi_body(b"\x03\x01\x01849\0"), S.ESME_RINVDESTFLAG),
    ("dest_flag 0", CommandId.SUBMIT_MULTI, _multi_body(b"\x00\x01\x01849\0"), S.ESME_RINVDESTFLAG),
    (
        "dl_name 21 chars",
        CommandId.SUBMIT_MULTI,
        _multi_body(b"\x02" + b"d" * 21 + b"\0"),
        S.ESME_RINVDLNAME,
    ),
    (
        "dest addr 21 chars",
        CommandId.SUBMIT_MULTI,
        _multi_body(b"\x01\x01\x01" + b"8" * 21 + b"\0"),
        S.ESME_RINVDSTADR,
    ),
    (
        "fewer dests than said",
        CommandId.SUBMIT_MULTI,
        b"\0\x00\x00src\0\x03\x02dl\0",
        S.ESME_RINVCMDLEN,
    ),
    (
        "dest cut in ton/npi",
        CommandId.SUBMIT_MULTI,
        b"\0\x00\x00src\0\x01\x01\x01",
        S.ESME_RINVCMDLEN,
    ),
    ("no number_of_dests", CommandId.SUBMIT_MULTI, b"\0\x00\x00src\0", S.ESME_RINVCMDLEN),
    (
        "unsuccess cut in code",
        CommandId.SUBMIT_MULTI_RESP,
        b"m\0\x01\x01\x01849\0\x00\x00",
        S.ESME_RINVCMDLEN,
    ),
    ("unsuccess cut in ton", CommandId.SUBMIT_MULTI_RESP, b"m\0\x02\x01", S.ESME_RINVCMDLEN),
]


@pytest.mark.parametrize(
    ("command_id", "body", "status"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_fault_answers(command_id: int, body: bytes, status: S) -> None:
    wire = frame(command_id, body)
    with pytest.raises(PduDecodeError) as info:
        decode_pdu(wire)
    assert info.value.command_status == status, info.value
    assert info.value.sequence_number == SEQ
    assert info.value.command_id == command_id
    check_decode_invariant(wire)


def test_the_good_bodies_of_the_cases_decode() -> None:
    """The helpers build valid PDUs when nothing is wrong (so each case has one fault)."""
    assert decode_pdu(frame(SM, _sm_body())) == SubmitSm(
        sequence_number=SEQ,
        source_addr_ton=5,
        source_addr="8055",
        dest_addr_ton=1,
        dest_addr_npi=1,
        destination_addr="84912345678",
        registered_delivery=1,
        short_message=b"hi",
    )
    decode_pdu(frame(CommandId.BIND_TRANSMITTER, _bind_body()))
    decode_pdu(frame(CommandId.SUBMIT_MULTI, _multi_body(b"\x02dl\0")))
    decode_pdu(frame(CommandId.SUBMIT_MULTI, _multi_body(b"\x02dl\0" * 254, 254)))


@pytest.mark.parametrize("delta", [-17, -1, 1, 100])
def test_command_length_disagrees_with_octets(delta: int) -> None:
    wire = encode_pdu(SubmitSm(sequence_number=SEQ, short_message=b"hi"))
    bad = (len(wire) + delta).to_bytes(4, "big", signed=False) if len(wire) + delta >= 0 else b""
    with pytest.raises(PduDecodeError) as info:
        decode_pdu(bad + wire[4:])
    assert info.value.command_status == S.ESME_RINVCMDLEN
    assert info.value.sequence_number == SEQ
    assert info.value.command_id == SM


@pytest.mark.parametrize("size", range(16))
def test_shorter_than_a_header(size: int) -> None:
    with pytest.raises(PduDecodeError) as info:
        decode_pdu(encode_pdu(SubmitSm(sequence_number=SEQ))[:size])
    assert info.value.command_status == S.ESME_RINVCMDLEN
    assert info.value.sequence_number is None


def test_error_response_may_omit_body_but_request_may_not() -> None:
    resp = decode_pdu(frame(CommandId.QUERY_SM_RESP, b"m1\0", status=S.ESME_RQUERYFAIL))
    assert resp == QuerySmResp(
        sequence_number=SEQ, command_status=S.ESME_RQUERYFAIL, message_id="m1"
    )
    with pytest.raises(PduDecodeError):
        decode_pdu(frame(CommandId.QUERY_SM, b"m1\0"))


# -- the encoder ---------------------------------------------------------------------

_TOO_LONG = object()


def _bad_values(pdu: Pdu) -> list[tuple[str, Any]]:
    """(field, out-of-range value) pairs for every field of ``pdu``'s class."""
    bad: list[tuple[str, Any]] = [
        ("sequence_number", -1),
        ("sequence_number", 1 << 32),
        ("command_status", -1),
        ("command_status", 1 << 32),
        ("tlvs", (Tlv(0x10000, b""),)),
        ("tlvs", (Tlv(-1, b""),)),
        ("tlvs", (Tlv(0x1400, b"x" * 0x10000),)),
    ]
    for f in pdu.FIELDS:
        kind = f.kind
        if kind is FieldKind.CSTRING or kind is FieldKind.TIME:
            bad += [(f.name, "x" * f.limit), (f.name, "a\0b"), (f.name, "\u20ac")]
            if kind is FieldKind.TIME:
                bad += [(f.name, "1" * n) for n in (1, 12, 15)]
        elif kind is FieldKind.U8:
            bad += [(f.name, -1), (f.name, 256), (f.name, 1 << 40)]
        elif kind is FieldKind.SHORT_MESSAGE:
            bad += [(f.name, b"x" * 255), (f.name, "text, not octets")]
        elif kind is FieldKind.DEST_LIST:
            bad += [
                (f.name, ()),
                (f.name, (DestAddress(),) * 255),
                (f.name, (DestAddress(dest_flag=0),)),
                (f.name, (DestAddress(dest_flag=3),)),
                (f.name, (DestAddress(dest_addr_ton=256),)),
                (f.name, (DestAddress(dest_addr_npi=-1),)),
                (f.name, (DestAddress(destination_addr="1" * 21),)),
                (f.name, (DestAddress(dest_flag=2, dl_name="d" * 21),)),
            ]
        else:
            bad += [
                (f.name, (UnsuccessSme(),) * 255),
                (f.name, (UnsuccessSme(dest_addr_ton=256),)),
                (f.name, (UnsuccessSme(dest_addr_npi=-1),)),
                (f.name, (UnsuccessSme(error_status_code=1 << 32),)),
                (f.name, (UnsuccessSme(error_status_code=-1),)),
                (f.name, (UnsuccessSme(destination_addr="1" * 21),)),
            ]
    return bad


@given(any_pdu, st.data())
def test_encode_refuses_out_of_range_with_encode_error_only(pdu: Pdu, data: st.DataObject) -> None:
    name, value = data.draw(st.sampled_from(_bad_values(pdu)))
    broken = dataclasses.replace(pdu, **{name: value})
    with pytest.raises(PduEncodeError) as info:
        encode_pdu(broken)
    assert info.value.command_id == pdu.command_id
    assert info.value.command_status in S._value2member_map_


@pytest.mark.parametrize("cls", ALL_PDU_CLASSES, ids=lambda c: c.__name__)
def test_encode_every_bad_value(cls: type[Pdu]) -> None:
    pdu = cls()
    for name, value in _bad_values(pdu):
        with pytest.raises(PduEncodeError):
            encode_pdu(dataclasses.replace(pdu, **{name: value}))


def test_encode_status_names_the_field() -> None:
    cases: list[tuple[Pdu, S]] = [
        (SubmitSm(source_addr="1" * 21), S.ESME_RINVSRCADR),
        (SubmitSm(schedule_delivery_time="2611"), S.ESME_RINVSCHED),
        (SubmitSm(validity_period="2611"), S.ESME_RINVEXPIRY),
        (SubmitSm(short_message=b"x" * 255), S.ESME_RINVMSGLEN),
        (SubmitSm(service_type="LONGER"), S.ESME_RINVSERTYP),
    ]
    for pdu, status in cases:
        with pytest.raises(PduEncodeError) as info:
            encode_pdu(pdu)
        assert info.value.command_status == status


def test_encode_refuses_a_non_pdu() -> None:
    @dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
    class Sub(SubmitSm):
        pass

    for thing in (Sub(), object(), Pdu()):
        with pytest.raises(PduEncodeError):
            encode_pdu(thing)  # type: ignore[arg-type]
