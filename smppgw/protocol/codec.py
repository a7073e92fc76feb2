"""The encoder and decoder of every PDU, generated per class from the field tables.

Header (section 3.2): ``command_length``, ``command_id``, ``command_status``,
``sequence_number``, four big-endian unsigned 32-bit integers. The body follows the
PDU's ``FIELDS`` table, then optional parameters (TLVs) to the end of the PDU.

Error handling:
    :func:`decode_pdu` raises only :class:`~smppgw.protocol.errors.PduDecodeError` and
    carries the status to answer, the ``sequence_number`` and the ``command_id`` (so
    the session can send the right ``_resp`` or ``generic_nack`` and go on).
    :func:`encode_pdu` raises only :class:`~smppgw.protocol.errors.PduEncodeError`: a
    field over its spec limit never reaches the wire.

Leniency: a response may stop after any whole field (SMSCs omit the body of a failed
``submit_sm_resp``); the remaining fields keep their defaults. Standard TLVs are
structurally checked (the tag/length/value stream must fit the PDU exactly) but their
value lengths are not judged here: ``tlv.validate_tlv`` does that where the gateway wants
to be strict, since carriers in the wild bend those rules.

Why generated code
------------------
This is the gateway's hot path, and the table-driven version spent most of its time
interpreting the table: about 75% of a ``submit_sm`` decode was the per-field dispatch
loop (which kind? which limit? which setter?) and 65% of an encode. So at import,
``codegen.py`` turns each class's ``FIELDS`` into straight-line Python (one block per
field, limits and statuses as constants, the slot setters bound by name) and compiles it.
Measured with ``scripts/bench_codec.py`` on the 2-core dev box (3 runs each, the two
versions alternating; time per PDU from the median rate, ratio to python-smpplib in the
same run), ``submit_sm``:

=============  ==================  ===================  ========
op             table-driven        generated            smpplib
=============  ==================  ===================  ========
decode         4.4 us (5.7-5.9x)   2.1 us (11.9-12.6x)  ~26 us
encode         4.7 us (4.2-4.6x)   1.1 us (18.0-18.6x)  ~21 us
build+encode   7.8 us (4.4-4.9x)   3.0 us (11.8-12.4x)  ~37 us
=============  ==================  ===================  ========

Three more choices carry those numbers:

- Decoding sets the slots through their descriptors (``object.__new__`` then one
  ``__set__`` per slot, ~50 ns each: half of what is left of a ``submit_sm`` decode)
  instead of calling the frozen dataclass ``__init__``. It works on one latin-1 ``str``
  of the whole PDU (latin-1 maps octet ``i`` to character ``i``, so C-strings are
  slices of it), and first tries one generated regular expression over all the
  mandatory fields (~20% faster than a ``find`` and a slice per C-string); what the
  expression does not match, the checked field-by-field decoder reads, and it owns
  every error, status and message.
- Encoding has two generated functions: a reference one that checks field by field in
  table order (it owns every error, status and message), and a fast one that screens all
  values with one condition and formats the body with a single bytes ``%``; whenever the
  screen fails or anything raises, it hands over to the reference, so the errors are
  the reference's by construction.
- The dataclass ``__init__`` of each PDU class is replaced by a generated one with the
  same keyword-only signature and defaults that sets the slots through the descriptors
  (the frozen dataclass one goes through ``object.__setattr__`` per field): building a
  ``SubmitSm`` of nine fields drops from ~2.5 us to ~1.4 us. ``dataclasses.replace``
  and ``fields`` are unaffected; frozen, slots and keyword-only semantics are unchanged
  (``tests/test_codegen.py`` holds each generated fast path to its checked reference,
  and each generated ``__init__`` to the dataclass one).

Reading the generated code: ``generated_source(SubmitSm)`` returns it (it is also in
:mod:`linecache`, so tracebacks and ``pdb`` show its lines under the file name
``<smppgw.codegen SubmitSm>``); ``codegen.py`` documents the functions of each class.
"""

from __future__ import annotations

import dataclasses
import re
import struct
from typing import TYPE_CHECKING, Any, TypeVar

from smppgw.protocol.codegen import CompiledPdu, compile_pdu_functions
from smppgw.protocol.commands import CommandId
from smppgw.protocol.errors import PduDecodeError, PduEncodeError
from smppgw.protocol.fields import DestAddress, DestFlag, UnsuccessSme
from smppgw.protocol.pdus import PDU_CLASSES, Pdu
from smppgw.protocol.status import CommandStatus
from smppgw.protocol.tlv import Tlv

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = [
    "HEADER_LENGTH",
    "command_name",
    "decode_header",
    "decode_pdu",
    "encode_pdu",
    "generated_source",
    "pack_tlvs",
    "unpack_tlvs",
    "with_sequence_number",
]

HEADER_LENGTH = 16
_HEADER = struct.Struct(">IIII")
_TLV_HEAD = struct.Struct(">HH")
_U32 = struct.Struct(">I")
_SHORT_PDU = CommandStatus.ESME_RINVCMDLEN

P = TypeVar("P", bound=Pdu)


def decode_header(data: bytes) -> tuple[int, int, int, int]:
    """``(command_length, command_id, command_status, sequence_number)`` of a PDU."""
    return _HEADER.unpack_from(data, 0)


def command_name(command_id: int) -> str:
    """``submit_sm`` for 0x00000004; the hex value for an unknown id."""
    try:
        return CommandId(command_id).name.lower()
    except ValueError:
        return f"0x{command_id:08X}"


class _BodyError(Exception):
    """Internal: a body fault, wrapped into PduDecodeError/PduEncodeError with the
    header's numbers."""

    def __init__(self, msg: str, status: int) -> None:
        super().__init__(msg)
        self.status = status


# -- helpers the generated decoders call ---------------------------------------------


def _cstring_fault(name: str, limit: int, status: int, nul: int, pos: int, end: int) -> _BodyError:
    """The error for a C-string at ``pos`` whose NUL is at ``nul`` (-1: none)."""
    if nul < 0:
        # Cut short (no NUL and fewer octets than the limit) is a length error.
        return _BodyError(
            f"{name}: no terminating NUL", status if end - pos >= limit else _SHORT_PDU
        )
    return _BodyError(f"{name}: longer than {limit - 1}", status)


def _u8_fault(names: tuple[str, ...], pos: int, end: int) -> _BodyError:
    """The error for a run of 1-octet fields at ``pos`` that the PDU cuts short."""
    return _BodyError(f"{names[end - pos]}: PDU ends before it", _SHORT_PDU)


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


# -- helpers the generated encoders call ---------------------------------------------

_BYTE = [bytes((i,)) for i in range(256)]

#: What a bad value can raise while encoding (besides _BodyError): a PduEncodeError
#: with ESME_RSYSERR. ValueError: bytes((ton, npi)) of a value out of 0..255.
_ENCODE_ERRORS = (
    struct.error,
    OverflowError,
    UnicodeEncodeError,
    TypeError,
    AttributeError,
    ValueError,
)


def _u8_octet(name: str, value: int, status: int) -> bytes:
    if not 0 <= value <= 255:
        raise _BodyError(f"{name}: {value} is not an octet", status)
    return _BYTE[value]


def _cstring_octets(value: str, limit: int, what: str, status: int) -> bytes:
    raw = value.encode("latin-1")
    if len(raw) >= limit or b"\0" in raw:
        raise _BodyError(f"{what}: longer than {limit - 1} or contains NUL", status)
    return raw + b"\0"


def _encode_dest_list(limit: int, status: int, dests: tuple[DestAddress, ...]) -> bytes:
    if not 1 <= len(dests) <= limit:
        raise _BodyError(f"{len(dests)} destinations, out of 1..{limit}", status)
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


def _encode_unsuccess_list(limit: int, status: int, smes: tuple[UnsuccessSme, ...]) -> bytes:
    if len(smes) > limit:
        raise _BodyError(f"{len(smes)} unsuccess_sme over {limit}", status)
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


def _encode_tlvs(tlvs: tuple[Tlv, ...]) -> bytes:
    parts = []
    for tag, value in tlvs:
        parts.append(_TLV_HEAD.pack(tag, len(value)))
        parts.append(value)
    return b"".join(parts)


def pack_tlvs(tlvs: tuple[Tlv, ...]) -> bytes:
    """TLVs as they go on the wire (the journal keeps an MT's TLVs this way)."""
    return _encode_tlvs(tlvs)


def unpack_tlvs(data: bytes) -> tuple[Tlv, ...]:
    """The inverse of :func:`pack_tlvs`; raises :class:`PduDecodeError` on a bad stream."""
    try:
        return _decode_tlvs(data, 0, len(data))
    except _BodyError as exc:
        raise PduDecodeError(str(exc), command_status=exc.status) from None


# -- the generated functions ---------------------------------------------------------

_HELPERS: dict[str, Any] = {
    "_BodyError": _BodyError,
    "_ENCODE_ERRORS": _ENCODE_ERRORS,
    "_HEADER_pack": _HEADER.pack,
    "_cstring_fault": _cstring_fault,
    "_decode_dest_list": _decode_dest_list,
    "_decode_tlvs": _decode_tlvs,
    "_decode_unsuccess_list": _decode_unsuccess_list,
    "_encode_dest_list": _encode_dest_list,
    "_encode_tlvs": _encode_tlvs,
    "_encode_unsuccess_list": _encode_unsuccess_list,
    "_new": object.__new__,
    "_re_compile": re.compile,
    "_u8_fault": _u8_fault,
    "_u8_octet": _u8_octet,
}

_COMPILED: dict[type[Pdu], CompiledPdu] = {
    cls: compile_pdu_functions(cls, _HELPERS) for cls in PDU_CLASSES.values()
}
_DECODERS: dict[int, Callable[[bytes, int, int, int], Pdu]] = {
    cid: _COMPILED[cls].decode for cid, cls in PDU_CLASSES.items()
}
_ENCODERS: dict[type[Pdu], Callable[[Pdu, int], bytes]] = {
    cls: c.encode for cls, c in _COMPILED.items()
}
_COPIERS: dict[type[Pdu], Callable[[Pdu, int], Pdu]] = {
    cls: c.with_sequence_number for cls, c in _COMPILED.items()
}
# Same signature and defaults as the dataclass __init__, a third of the cost (see the
# module docstring). Done here, where the setters are generated, for every PDU class;
# the dataclass ones are kept for the tests that hold the two to the same results.
_DATACLASS_INITS: dict[type[Pdu], Callable[..., None]] = {}
for _cls, _compiled in _COMPILED.items():
    _DATACLASS_INITS[_cls] = _cls.__init__
    _cls.__init__ = _compiled.init  # type: ignore[method-assign]
del _cls, _compiled


def generated_source(cls: type[Pdu]) -> str:
    """The generated Python source of ``cls``'s decoder, encoders, copier and __init__."""
    return _COMPILED[cls].source


# -- the public functions ------------------------------------------------------------


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
    decode = _DECODERS.get(command_id)
    if decode is None:
        raise PduDecodeError(
            f"unknown command_id 0x{command_id:08X}",
            command_status=CommandStatus.ESME_RINVCMDID,
            sequence_number=seq,
            command_id=command_id,
        )
    try:
        return decode(data, end, status, seq)
    except _BodyError as exc:
        raise PduDecodeError(
            f"{PDU_CLASSES[command_id].__name__}: {exc.args[0]}",
            command_status=exc.status,
            sequence_number=seq,
            command_id=command_id,
        ) from None


def encode_pdu(pdu: Pdu, *, sequence_number: int | None = None) -> bytes:
    """Encode ``pdu``; ``sequence_number`` overrides the one the PDU carries.

    Raises:
        PduEncodeError: a field is out of range or over its spec length.
    """
    cls = type(pdu)
    encode = _ENCODERS.get(cls)
    if encode is None:
        raise PduEncodeError(
            f"{cls.__name__} is not a PDU class", command_status=CommandStatus.ESME_RSYSERR
        )
    seq = pdu.sequence_number if sequence_number is None else sequence_number
    try:
        return encode(pdu, seq)
    except _BodyError as exc:
        raise PduEncodeError(
            f"{cls.__name__}: {exc.args[0]}",
            command_status=exc.status,
            sequence_number=seq,
            command_id=cls.command_id,
        ) from None
    except _ENCODE_ERRORS as exc:
        raise PduEncodeError(
            f"{cls.__name__}: {exc}",
            command_status=CommandStatus.ESME_RSYSERR,
            sequence_number=seq,
            command_id=cls.command_id,
        ) from None


def with_sequence_number(pdu: P, sequence_number: int) -> P:
    """A copy of ``pdu`` carrying ``sequence_number``: ``dataclasses.replace`` for one
    field, without its per-field keyword handling (the session's send path)."""
    copy = _COPIERS.get(type(pdu))
    if copy is None:
        return dataclasses.replace(pdu, sequence_number=sequence_number)
    return copy(pdu, sequence_number)  # type: ignore[return-value]
