"""Message-id normalisation: a receipt's id and the submit_sm_resp id meet on one key."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smppgw.protocol.message_id import (
    MAX_ID_LENGTH,
    IdBase,
    IdFormat,
    MessageIdError,
    id_key,
    receipt_key,
    resp_key,
)


def test_docstring_examples() -> None:
    assert resp_key("0A1B", IdFormat.HEX_RESP_DEC_RECEIPT) == "2587"
    assert receipt_key("2587", IdFormat.HEX_RESP_DEC_RECEIPT) == "2587"
    assert resp_key("00000a1b", IdFormat.HEX) == receipt_key("A1B", IdFormat.HEX) == "2587"
    assert resp_key("0042", IdFormat.DECIMAL) == receipt_key("42", IdFormat.DECIMAL) == "42"
    assert resp_key(" Ab-01 ", IdFormat.STRING) == "Ab-01"


def test_dec_resp_hex_receipt() -> None:
    assert resp_key("2587", IdFormat.DEC_RESP_HEX_RECEIPT) == receipt_key(
        "0a1b", IdFormat.DEC_RESP_HEX_RECEIPT
    )


def test_config_values_are_the_enum_values() -> None:
    assert IdFormat("hex_resp_dec_receipt") is IdFormat.HEX_RESP_DEC_RECEIPT
    assert {f.value for f in IdFormat} == {
        "string",
        "hex",
        "decimal",
        "hex_resp_dec_receipt",
        "dec_resp_hex_receipt",
    }
    for fmt in IdFormat:
        assert isinstance(fmt.resp_base, IdBase)
        assert isinstance(fmt.receipt_base, IdBase)


def test_string_is_opaque_but_trimmed() -> None:
    assert resp_key("\0 0AbC\t\0", IdFormat.STRING) == "0AbC"
    assert receipt_key("0abc", IdFormat.STRING) != resp_key("0AbC", IdFormat.STRING)


def test_zero() -> None:
    assert resp_key("0000", IdFormat.HEX) == receipt_key("0", IdFormat.DECIMAL) == "0"


def test_uuid_like_ids_with_or_without_dashes() -> None:
    u = uuid.UUID("550e8400-e29b-41d4-a716-446655440000")
    with_dashes = resp_key(str(u).upper(), IdFormat.HEX)
    assert with_dashes == receipt_key(u.hex, IdFormat.HEX) == str(u.int)
    assert receipt_key(str(u.int), IdFormat.HEX_RESP_DEC_RECEIPT) == with_dashes


@pytest.mark.parametrize(
    ("raw", "base"),
    [
        ("", IdBase.STRING),
        (" \0 ", IdBase.HEX),
        ("12a", IdBase.DECIMAL),
        ("-12", IdBase.DECIMAL),
        ("+12", IdBase.DECIMAL),
        ("1_000", IdBase.DECIMAL),
        ("1 000", IdBase.DECIMAL),
        ("\u0661\u0662", IdBase.DECIMAL),  # Arabic-Indic digits: int() takes them, we don't
        ("0x1A", IdBase.HEX),
        ("12g", IdBase.HEX),
        ("-ab", IdBase.HEX),
        ("ab-", IdBase.HEX),
        ("ab--cd", IdBase.HEX),
        ("1" * (MAX_ID_LENGTH + 1), IdBase.DECIMAL),
        ("a" * (MAX_ID_LENGTH + 1), IdBase.STRING),
    ],
)
def test_invalid_ids_raise_message_id_error(raw: str, base: IdBase) -> None:
    with pytest.raises(MessageIdError):
        id_key(raw, base)


def test_message_id_error_is_a_value_error() -> None:
    assert issubclass(MessageIdError, ValueError)


@given(st.integers(min_value=0, max_value=2**256))
def test_hex_resp_and_decimal_receipt_meet(n: int) -> None:
    fmt = IdFormat.HEX_RESP_DEC_RECEIPT
    assert resp_key(f"{n:X}", fmt) == receipt_key(str(n), fmt) == str(n)
    fmt = IdFormat.DEC_RESP_HEX_RECEIPT
    assert resp_key(str(n), fmt) == receipt_key(f"{n:x}", fmt) == str(n)


@given(
    st.integers(min_value=0, max_value=2**128),
    st.integers(0, 8),
    st.integers(0, 8),
    st.booleans(),
    st.booleans(),
)
def test_leading_zeros_and_case_do_not_matter(
    n: int, zeros_a: int, zeros_b: int, upper_a: bool, upper_b: bool
) -> None:
    a = "0" * zeros_a + (f"{n:X}" if upper_a else f"{n:x}")
    b = "0" * zeros_b + (f"{n:X}" if upper_b else f"{n:x}")
    assert resp_key(a, IdFormat.HEX) == receipt_key(b, IdFormat.HEX)
    assert resp_key("0" * zeros_a + str(n), IdFormat.DECIMAL) == receipt_key(
        "0" * zeros_b + str(n), IdFormat.DECIMAL
    )


@given(st.integers(min_value=0, max_value=2**64), st.integers(min_value=0, max_value=2**64))
def test_different_numbers_never_collide(a: int, b: int) -> None:
    if a != b:
        assert resp_key(f"{a:x}", IdFormat.HEX) != receipt_key(str(b), IdFormat.DECIMAL)


@given(st.text(max_size=MAX_ID_LENGTH + 10), st.sampled_from(list(IdFormat)))
def test_arbitrary_text_only_raises_message_id_error(raw: str, fmt: IdFormat) -> None:
    for fn in (resp_key, receipt_key):
        try:
            key = fn(raw, fmt)
        except MessageIdError:
            continue
        assert key
        assert key == key.strip().strip("\0")
