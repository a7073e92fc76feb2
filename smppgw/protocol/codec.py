"""One generic encoder and decoder for every PDU, driven by the classes' field tables.

Header (section 3.2): ``command_length``, ``command_id``, ``command_status``,
``sequence_number``, four big-endian unsigned 32-bit integers. The body follows the
PDU's ``FIELDS`` table, then optional parameters (TLVs) to the end of the PDU.

Error handling:
    :func:`decode_pdu` raises only :class:`~smppgw.protocol.errors.PduDecodeError` and
    carries the status to answer, the ``sequence_number`` and the ``command_id`` (so
    the session can send the right ``_resp`` or ``generic_nack`` and go on).
    :func:`encode_pdu` raises only :class:`~smppgw.protocol.errors.PduEncodeError`: a
    field over its spec limit never reaches the wire.

Leniency: a response whose status is an error may stop after any whole field (SMSCs omit
the body of a failed ``submit_sm_resp``); the remaining fields keep their defaults.
Standard TLVs are structurally checked (the tag/length/value stream must fit the PDU
exactly) but their value lengths are not judged here: ``tlv.validate_tlv`` does that
where the gateway wants to be strict, since carriers in the wild bend those rules.

Performance: this is the gateway's hot path. The loops below are written flat, with the
most frequent field kinds tested first, and construct the dataclass once per PDU; see
``scripts/bench_codec.py`` for the rates against smpplib.
"""

from __future__ import annotations

import dataclasses
import struct
from operator import attrgetter
from typing import Any

from smppgw.protocol.commands import CommandId
from smppgw.protocol.errors import PduDecodeError, PduEncodeError
from smppgw.protocol.fields import DestAddress, DestFlag, Field, FieldKind, UnsuccessSme
from smppgw.protocol.pdus import PDU_CLASSES, Pdu
from smppgw.protocol.status import CommandStatus
from smppgw.protocol.tlv import Tlv

__all__ = ["HEADER_LENGTH", "decode_header", "decode_pdu", "encode_pdu"]

HEADER_LENGTH = 16
_HEADER = struct.Struct(">IIII")
_TLV_HEAD = struct.Struct(">HH")
_U32 = struct.Struct(">I")

_CSTRING = FieldKind.CSTRING
_U8 = FieldKind.U8
_TIME = FieldKind.TIME
_SHORT_MESSAGE = FieldKind.SHORT_MESSAGE
_DEST_LIST = FieldKind.DEST_LIST
_UNSUCCESS_LIST = FieldKind.UNSUCCESS_LIST

_MAX_SEQUENCE = 0xFFFFFFFF


def _slot_setter(cls: type[Pdu], name: str) -> Any:
    for klass in cls.__mro__:
        if name in klass.__dict__:
            return klass.__dict__[name].__set__
    raise AssertionError(f"{cls.__name__} has no slot {name}")


_new = object.__new__
_SHORT_PDU = CommandStatus.ESME_RINVCMDLEN


class _Spec:
    """What the codec precomputes per PDU class."""

    __slots__ = (
        "cls",
        "command_id",
        "defaults",
        "fields",
        "getter",
        "names",
        "response",
        "setters",
    )

    def __init__(self, cls: type[Pdu]) -> None:
        self.cls = cls
        self.command_id = int(cls.command_id)
        self.fields: tuple[Field, ...] = cls.FIELDS
        self.names = tuple(f.name for f in cls.FIELDS)
        self.response = bool(self.command_id & 0x80000000)
        self.getter: Any = attrgetter(*self.names) if len(self.names) > 1 else None
        # Decoding sets the slots directly: one descriptor call per field instead of the
        # frozen dataclass __init__'s keyword handling (measured ~2x faster).
        order = ("sequence_number", "command_status", "tlvs", *self.names)
        self.setters = tuple(_slot_setter(cls, name) for name in order)
        defaults = {f.name: f.default for f in dataclasses.fields(cls)}
        self.defaults = tuple(defaults[name] for name in order)


_SPEC_BY_ID: dict[int, _Spec] = {cid: _Spec(cls) for cid, cls in PDU_CLASSES.items()}
_SPEC_BY_CLASS: dict[type[Pdu], _Spec] = {s.cls: s for s in _SPEC_BY_ID.values()}


def decode_header(data: bytes) -> tuple[int, int, int, int]:
    """``(command_length, command_id, command_status, sequence_number)`` of a PDU."""
    return _HEADER.unpack_from(data, 0)


# -- decoding ------------------------------------------------------------------------


def decode_pdu(data: bytes) -> Pdu:
    """Decode one whole PDU (as cut by :class:`~smppgw.protocol.framer.Framer`).

    Raises:
        PduDecodeError: the PDU is malformed; the error carries the status to answer.
    """
    end = len(data)
    if end < HEADER_LENGTH:
        raise PduDecodeError(
            f"PDU of {end} octets is shorter than its header",
            command_status=CommandStatus.ESME_RINVCMDLEN,
        )
    length, command_id, status, seq = _HEADER.unpack_from(data, 0)
    if length != end:
        raise PduDecodeError(
            f"command_length {length} does not match the {end} octets given",
            command_status=CommandStatus.ESME_RINVCMDLEN,
            sequence_number=seq,
            command_id=command_id,
        )
    spec = _SPEC_BY_ID.get(command_id)
    if spec is None:
        raise PduDecodeError(
            f"unknown command_id 0x{command_id:08X}",
            command_status=CommandStatus.ESME_RINVCMDID,
            sequence_number=seq,
            command_id=command_id,
        )
    try:
        return _decode_body(spec, data, HEADER_LENGTH, end, status, seq)
    except _BodyError as exc:
        raise PduDecodeError(
            f"{spec.cls.__name__}: {exc.args[0]}",
            command_status=exc.status,
            sequence_number=seq,
            command_id=command_id,
        ) from None


class _BodyError(Exception):
    """Internal: a body fault, wrapped into PduDecodeError with the header's numbers."""

    def __init__(self, msg: str, status: int) -> None:
        super().__init__(msg)
        self.status = status


def _decode_body(spec: _Spec, data: bytes, pos: int, end: int, status: int, seq: int) -> Pdu:
    pdu = _new(spec.cls)
    setters = spec.setters
    setters[0](pdu, seq)
    setters[1](pdu, status)
    find = data.find
    index = 3
    tlvs: tuple[Tlv, ...] = ()
    for name, kind, limit, fault in spec.fields:
        if pos >= end and spec.response:
            # An error response may omit its body (section 4.4.2 and others): the
            # remaining fields keep their defaults.
            for setter, default in zip(setters[index:], spec.defaults[index:], strict=True):
                setter(pdu, default)
            break
        if kind is _CSTRING or kind is _TIME:
            nul = find(b"\0", pos, end)
            if nul < 0:
                raise _BodyError(
                    f"{name}: no terminating NUL", fault if end - pos >= limit else _SHORT_PDU
                )
            if nul - pos >= limit:
                raise _BodyError(f"{name}: longer than {limit - 1}", fault)
            if kind is _TIME and nul != pos and nul - pos != 16:
                raise _BodyError(f"{name}: must be empty or 16 characters", fault)
            value: Any = data[pos:nul].decode("latin-1")
            pos = nul + 1
        elif kind is _U8:
            if pos >= end:
                raise _BodyError(f"{name}: PDU ends before it", _SHORT_PDU)
            value = data[pos]
            pos += 1
        elif kind is _SHORT_MESSAGE:
            if pos >= end:
                raise _BodyError("sm_length: PDU ends before it", _SHORT_PDU)
            sm_length = data[pos]
            if sm_length > limit:
                raise _BodyError(f"sm_length {sm_length} over {limit}", fault)
            pos += 1
            if pos + sm_length > end:
                raise _BodyError("short_message runs past the PDU", CommandStatus.ESME_RINVMSGLEN)
            value = data[pos : pos + sm_length]
            pos += sm_length
        elif kind is _DEST_LIST:
            value, pos = _decode_dest_list(limit, fault, data, pos, end)
        else:  # _UNSUCCESS_LIST
            value, pos = _decode_unsuccess_list(data, pos, end)
        setters[index](pdu, value)
        index += 1
    if pos < end:
        tlvs = _decode_tlvs(data, pos, end)
    setters[2](pdu, tlvs)
    return pdu


def _read_cstring(
    data: bytes, pos: int, end: int, limit: int, what: str, status: int
) -> tuple[str, int]:
    nul = data.find(b"\0", pos, end)
    if nul < 0 or nul - pos >= limit:
        raise _BodyError(f"{what}: missing NUL or longer than {limit - 1}", status)
    return data[pos:nul].decode("latin-1"), nul + 1


def _decode_dest_list(
    limit: int, fault: int, data: bytes, pos: int, end: int
) -> tuple[tuple[DestAddress, ...], int]:
    if pos >= end:
        raise _BodyError("number_of_dests: PDU ends before it", CommandStatus.ESME_RINVCMDLEN)
    count = data[pos]
    pos += 1
    if count == 0 or count > limit:
        raise _BodyError(f"number_of_dests {count} out of 1..{limit}", fault)
    dests = []
    for _ in range(count):
        if pos >= end:
            raise _BodyError("dest_address: PDU ends before it", CommandStatus.ESME_RINVCMDLEN)
        flag = data[pos]
        pos += 1
        if flag == DestFlag.SME_ADDRESS:
            if pos + 2 > end:
                raise _BodyError("dest_address: PDU ends in it", CommandStatus.ESME_RINVCMDLEN)
            ton, npi = data[pos], data[pos + 1]
            addr, pos = _read_cstring(
                data, pos + 2, end, 21, "destination_addr", CommandStatus.ESME_RINVDSTADR
            )
            dests.append(
                DestAddress(
                    dest_flag=flag, dest_addr_ton=ton, dest_addr_npi=npi, destination_addr=addr
                )
            )
        elif flag == DestFlag.DISTRIBUTION_LIST:
            name, pos = _read_cstring(data, pos, end, 21, "dl_name", CommandStatus.ESME_RINVDLNAME)
            dests.append(DestAddress(dest_flag=flag, dl_name=name))
        else:
            raise _BodyError(
                f"dest_flag {flag} is neither 1 nor 2", CommandStatus.ESME_RINVDESTFLAG
            )
    return tuple(dests), pos


def _decode_unsuccess_list(data: bytes, pos: int, end: int) -> tuple[tuple[UnsuccessSme, ...], int]:
    count = data[pos]
    pos += 1
    smes = []
    for _ in range(count):
        if pos + 2 > end:
            raise _BodyError("unsuccess_sme: PDU ends in it", CommandStatus.ESME_RINVCMDLEN)
        ton, npi = data[pos], data[pos + 1]
        addr, pos = _read_cstring(
            data, pos + 2, end, 21, "unsuccess destination_addr", CommandStatus.ESME_RINVDSTADR
        )
        if pos + 4 > end:
            raise _BodyError("error_status_code: PDU ends in it", CommandStatus.ESME_RINVCMDLEN)
        (code,) = _U32.unpack_from(data, pos)
        pos += 4
        smes.append(
            UnsuccessSme(
                dest_addr_ton=ton, dest_addr_npi=npi, destination_addr=addr, error_status_code=code
            )
        )
    return tuple(smes), pos


def _decode_tlvs(data: bytes, pos: int, end: int) -> tuple[Tlv, ...]:
    tlvs = []
    while pos < end:
        if pos + 4 > end:
            raise _BodyError(
                f"{end - pos} stray octets where a TLV header should be",
                CommandStatus.ESME_RINVOPTPARSTREAM,
            )
        tag, length = _TLV_HEAD.unpack_from(data, pos)
        pos += 4
        if pos + length > end:
            raise _BodyError(
                f"TLV 0x{tag:04X} length {length} runs past the PDU",
                CommandStatus.ESME_RINVOPTPARSTREAM,
            )
        tlvs.append(Tlv(tag, data[pos : pos + length]))
        pos += length
    return tuple(tlvs)


# -- encoding ------------------------------------------------------------------------


def encode_pdu(pdu: Pdu, *, sequence_number: int | None = None) -> bytes:
    """Encode ``pdu``; ``sequence_number`` overrides the one the PDU carries.

    Raises:
        PduEncodeError: a field is out of range or over its spec length.
    """
    spec = _SPEC_BY_CLASS.get(type(pdu))
    if spec is None:
        raise PduEncodeError(
            f"{type(pdu).__name__} is not a PDU class", command_status=CommandStatus.ESME_RSYSERR
        )
    seq = pdu.sequence_number if sequence_number is None else sequence_number
    try:
        parts = _encode_body(spec, pdu)
        for tag, value in pdu.tlvs:
            parts.append(_TLV_HEAD.pack(tag, len(value)))
            parts.append(value)
        body = b"".join(parts)
        return (
            _HEADER.pack(HEADER_LENGTH + len(body), spec.command_id, pdu.command_status, seq) + body
        )
    except _BodyError as exc:
        raise PduEncodeError(
            f"{spec.cls.__name__}: {exc.args[0]}",
            command_status=exc.status,
            sequence_number=seq,
            command_id=spec.command_id,
        ) from None
    except (
        struct.error,
        OverflowError,
        UnicodeEncodeError,
        TypeError,
        AttributeError,
        ValueError,  # bytes((ton, npi)) of a submit_multi destination out of 0..255
    ) as exc:
        raise PduEncodeError(
            f"{spec.cls.__name__}: {exc}",
            command_status=CommandStatus.ESME_RSYSERR,
            sequence_number=seq,
            command_id=spec.command_id,
        ) from None


def _encode_body(spec: _Spec, pdu: Pdu) -> list[bytes]:
    fields = spec.fields
    if not fields:
        return []
    values = spec.getter(pdu) if spec.getter is not None else (getattr(pdu, fields[0].name),)
    parts: list[bytes] = []
    append = parts.append
    for field, value in zip(fields, values, strict=True):
        kind = field.kind
        if kind is _CSTRING or kind is _TIME:
            raw = value.encode("latin-1")
            if len(raw) >= field.limit:
                raise _BodyError(f"{field.name}: longer than {field.limit - 1}", field.status)
            if b"\0" in raw:
                raise _BodyError(f"{field.name}: contains NUL", field.status)
            if kind is _TIME and raw and len(raw) != 16:
                raise _BodyError(f"{field.name}: must be empty or 16 characters", field.status)
            append(raw)
            append(b"\0")
        elif kind is _U8:
            append(_u8_octet(field, value))
        elif kind is _SHORT_MESSAGE:
            if len(value) > field.limit:
                raise _BodyError(
                    f"short_message of {len(value)} octets over {field.limit}", field.status
                )
            append(_BYTE[len(value)])
            append(bytes(value))
        elif kind is _DEST_LIST:
            append(_encode_dest_list(field, value))
        else:
            append(_encode_unsuccess_list(field, value))
    return parts


_BYTE = [bytes((i,)) for i in range(256)]


def _u8_octet(field: Field, value: int) -> bytes:
    if not 0 <= value <= 255:
        raise _BodyError(f"{field.name}: {value} is not an octet", field.status)
    return _BYTE[value]


def _cstring_octets(value: str, limit: int, what: str, status: int) -> bytes:
    raw = value.encode("latin-1")
    if len(raw) >= limit or b"\0" in raw:
        raise _BodyError(f"{what}: longer than {limit - 1} or contains NUL", status)
    return raw + b"\0"


def _encode_dest_list(field: Field, dests: tuple[DestAddress, ...]) -> bytes:
    if not 1 <= len(dests) <= field.limit:
        raise _BodyError(f"{len(dests)} destinations, out of 1..{field.limit}", field.status)
    out = [_BYTE[len(dests)]]
    for d in dests:
        if d.dest_flag == DestFlag.SME_ADDRESS:
            out.append(bytes((d.dest_flag, d.dest_addr_ton, d.dest_addr_npi)))
            out.append(
                _cstring_octets(
                    d.destination_addr, 21, "destination_addr", CommandStatus.ESME_RINVDSTADR
                )
            )
        elif d.dest_flag == DestFlag.DISTRIBUTION_LIST:
            out.append(_BYTE[d.dest_flag])
            out.append(_cstring_octets(d.dl_name, 21, "dl_name", CommandStatus.ESME_RINVDLNAME))
        else:
            raise _BodyError(f"dest_flag {d.dest_flag}", CommandStatus.ESME_RINVDESTFLAG)
    return b"".join(out)


def _encode_unsuccess_list(field: Field, smes: tuple[UnsuccessSme, ...]) -> bytes:
    if len(smes) > field.limit:
        raise _BodyError(f"{len(smes)} unsuccess_sme over {field.limit}", field.status)
    out = [_BYTE[len(smes)]]
    for s in smes:
        out.append(bytes((s.dest_addr_ton, s.dest_addr_npi)))
        out.append(
            _cstring_octets(
                s.destination_addr, 21, "destination_addr", CommandStatus.ESME_RINVDSTADR
            )
        )
        out.append(_U32.pack(s.error_status_code))
    return b"".join(out)


def command_name(command_id: int) -> str:
    """``submit_sm`` for 0x00000004; the hex value for an unknown id."""
    try:
        return CommandId(command_id).name.lower()
    except ValueError:
        return f"0x{command_id:08X}"
