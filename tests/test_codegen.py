"""The generated code of ``codec.py``/``codegen.py`` against its references.

- the generated ``__init__`` of each PDU class behaves as the dataclass one it replaced
  (signature, defaults, results, errors), and the classes stay frozen;
- each screened decoder (one regular expression) agrees with the checked straight-line
  decoder, and each fast encoder with the checked encoder, on good and bad input:
  same value, or the same error with the same status and message;
- ``with_sequence_number`` is ``dataclasses.replace`` for one field;
- the generated source is available and shows in tracebacks.
"""

from __future__ import annotations

import dataclasses
import inspect
import linecache
import traceback
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pdu_strategies import ALL_PDU_CLASSES, any_pdu

from smppgw.protocol import codec
from smppgw.protocol.codec import (
    decode_pdu,
    encode_pdu,
    generated_source,
    with_sequence_number,
)
from smppgw.protocol.errors import PduDecodeError
from smppgw.protocol.fields import Field, FieldKind
from smppgw.protocol.pdus import SubmitSm
from smppgw.protocol.tlv import Tlv


def _outcome(fn: Any, *args: Any) -> tuple[Any, ...]:
    try:
        return ("ok", fn(*args))
    except codec._BodyError as exc:
        return ("body", exc.args[0], exc.status)
    except codec._ENCODE_ERRORS as exc:
        return ("raised", type(exc))


def _slots(pdu: object) -> dict[str, Any]:
    return {f.name: getattr(pdu, f.name) for f in dataclasses.fields(pdu)}  # type: ignore[arg-type]


# -- __init__ ------------------------------------------------------------------------


@pytest.mark.parametrize("cls", ALL_PDU_CLASSES, ids=lambda c: c.__name__)
def test_init_signature_is_the_dataclass_one(cls: type[Any]) -> None:
    original = codec._DATACLASS_INITS[cls]
    assert cls.__init__ is not original
    assert inspect.signature(cls.__init__) == inspect.signature(original)
    assert cls.__init__.__qualname__ == f"{cls.__qualname__}.__init__"


@given(any_pdu, st.data())
def test_init_builds_what_the_dataclass_init_builds(pdu: Any, data: st.DataObject) -> None:
    cls = type(pdu)
    names = [f.name for f in dataclasses.fields(cls)]
    chosen = data.draw(st.lists(st.sampled_from(names), unique=True))
    kwargs = {name: getattr(pdu, name) for name in chosen}
    reference = object.__new__(cls)
    codec._DATACLASS_INITS[cls](reference, **kwargs)
    built = cls(**kwargs)
    assert _slots(built) == _slots(reference)
    assert built == reference


@pytest.mark.parametrize("cls", ALL_PDU_CLASSES, ids=lambda c: c.__name__)
def test_init_refuses_what_the_dataclass_init_refuses(cls: type[Any]) -> None:
    original = codec._DATACLASS_INITS[cls]
    for args, kwargs in (((1,), {}), ((), {"no_such_field": 1})):
        with pytest.raises(TypeError):
            original(object.__new__(cls), *args, **kwargs)
        with pytest.raises(TypeError):
            cls(*args, **kwargs)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cls().sequence_number = 1
    assert dataclasses.replace(cls(), sequence_number=9) == cls(sequence_number=9)


# -- fast paths against checked paths ------------------------------------------------


@given(
    any_pdu,
    st.lists(st.tuples(st.integers(min_value=0, max_value=400), st.integers(0, 255)), max_size=3),
    st.integers(min_value=0, max_value=400),
)
def test_screened_decoder_agrees_with_checked(
    pdu: Any, changes: list[tuple[int, int]], cut: int
) -> None:
    compiled = codec._COMPILED[type(pdu)]
    wire = bytearray(encode_pdu(pdu))
    for where, octet in changes:
        if len(wire) > 16:
            wire[16 + where % (len(wire) - 16)] = octet
    for data in (bytes(wire), bytes(wire[: 16 + cut % (len(wire) - 15)])):
        end = len(data)
        fast = _outcome(compiled.decode, data, end, 0, 1)
        checked = _outcome(compiled.decode_checked, data, end, 0, 1)
        assert fast == checked


def _body(fields: tuple[Field, ...], special: str, size: int) -> bytes:
    """A body with every field valid but ``special``, whose content is ``size`` long."""
    out = b""
    for f in fields:
        n = size if f.name == special else 3
        if f.kind is FieldKind.CSTRING:
            out += b"a" * n + b"\0"
        elif f.kind is FieldKind.TIME:
            out += (b"1" * n if f.name == special else b"") + b"\0"
        elif f.kind is FieldKind.U8:
            out += b"\0"
        elif f.kind is FieldKind.SHORT_MESSAGE:
            out += bytes((n,)) + b"m" * n
        else:
            out += b"\x01\x02dl\0" if f.kind is FieldKind.DEST_LIST else b"\0"
    return out


@pytest.mark.parametrize("cls", ALL_PDU_CLASSES, ids=lambda c: c.__name__)
def test_screened_decoder_agrees_at_the_limits(cls: type[Any]) -> None:
    """Every C-string, TIME and sm_length at and around its limit, with and without
    the rest of the PDU: the pattern's bounds are the checked decoder's."""
    compiled = codec._COMPILED[cls]
    for f in cls.FIELDS:
        for size in sorted({0, 1, 3, 15, 16, 17, f.limit - 2, f.limit - 1, f.limit, f.limit + 1}):
            body = _body(cls.FIELDS, f.name, max(size, 0))
            for data in (bytes(16) + body, bytes(16) + body + b"\x00\x05\x00\x00"):
                fast = _outcome(compiled.decode, data, len(data), 0, 1)
                checked = _outcome(compiled.decode_checked, data, len(data), 0, 1)
                assert fast == checked, (f.name, size, fast, checked)


_BAD = ["x" * 70, "a\0b", "\u20ac", "1" * 15, -1, 256, True, b"A", 1.0, None, b"x" * 255, (), 0]


@given(any_pdu, st.lists(st.tuples(st.integers(0, 100), st.sampled_from(_BAD)), max_size=2))
def test_fast_encoder_agrees_with_checked(pdu: Any, changes: list[tuple[int, Any]]) -> None:
    cls = type(pdu)
    compiled = codec._COMPILED[cls]
    values = _slots(pdu)
    names = list(values)
    for index, value in changes:
        values[names[index % len(names)]] = value
    broken = object.__new__(cls)
    for name, value in values.items():
        object.__setattr__(broken, name, value)
    assert _outcome(compiled.encode, broken, 5) == _outcome(compiled.encode_checked, broken, 5)


@pytest.mark.parametrize("cls", ALL_PDU_CLASSES, ids=lambda c: c.__name__)
def test_fast_encoder_agrees_at_the_limits(cls: type[Any]) -> None:
    compiled = codec._COMPILED[cls]
    for f in cls.FIELDS:
        sizes = sorted({0, 1, 15, 16, 17, f.limit - 2, f.limit - 1, f.limit, f.limit + 1})
        values: list[Any] = []
        if f.kind in (FieldKind.CSTRING, FieldKind.TIME):
            values = ["1" * n for n in sizes if n >= 0] + ["1" * 15 + "\0", "\0"]
        elif f.kind is FieldKind.SHORT_MESSAGE:
            values = [b"m" * n for n in (0, 253, 254, 255, 256)]
        elif f.kind is FieldKind.U8:
            values = [0, 255, 256, -1]
        for value in values:
            pdu = dataclasses.replace(cls(), **{f.name: value})
            fast = _outcome(compiled.encode, pdu, 5)
            assert fast == _outcome(compiled.encode_checked, pdu, 5), (f.name, value)


# -- copying and debugging -----------------------------------------------------------


@given(any_pdu, st.integers(min_value=0, max_value=0xFFFFFFFF))
def test_with_sequence_number_is_replace(pdu: Any, seq: int) -> None:
    copy = with_sequence_number(pdu, seq)
    assert type(copy) is type(pdu)
    assert copy == dataclasses.replace(pdu, sequence_number=seq)
    assert _slots(copy) == {**_slots(pdu), "sequence_number": seq}


def test_with_sequence_number_of_a_non_pdu_class_falls_back_to_replace() -> None:
    @dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
    class Sub(SubmitSm):
        pass

    copy = with_sequence_number(Sub(source_addr="1", tlvs=(Tlv(1, b"x"),)), 7)
    assert copy == Sub(source_addr="1", tlvs=(Tlv(1, b"x"),), sequence_number=7)


@pytest.mark.parametrize("cls", ALL_PDU_CLASSES, ids=lambda c: c.__name__)
def test_generated_source_is_registered(cls: type[Any]) -> None:
    source = generated_source(cls)
    filename = codec._COMPILED[cls].filename
    assert f"Generated from {cls.__name__}.FIELDS" in source
    assert "".join(linecache.getlines(filename)) == source
    compile(source, filename, "exec")  # the text is the code that runs


def test_traceback_shows_the_generated_line() -> None:
    wire = bytearray(encode_pdu(SubmitSm(source_addr="8055")))
    wire[16:19] = b"xxx"  # service_type loses its NUL and runs into source_addr
    try:
        codec._COMPILED[SubmitSm].decode_checked(bytes(wire), len(wire), 0, 1)
    except codec._BodyError as exc:
        text = "".join(traceback.format_exception(exc))
    else:  # pragma: no cover
        pytest.fail("no error")
    assert "<smppgw.codegen SubmitSm>" in text
    assert "raise _cstring_fault('service_type'" in text
    with pytest.raises(PduDecodeError):
        decode_pdu(bytes(wire))
