"""UCS2 (UTF-16BE, surrogate pairs) and Latin-1."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smppgw.protocol.text import TextEncodeError, latin1, ucs2


def test_ucs2_is_utf16be_without_bom() -> None:
    assert ucs2.encode("Aé") == b"\x00A\x00\xe9"
    assert ucs2.encode("😀") == b"\xd8\x3d\xde\x00"  # a surrogate pair
    assert ucs2.code_units("a😀") == 3


@given(st.text())
def test_ucs2_round_trip(text: str) -> None:
    encoded = ucs2.encode(text)
    assert len(encoded) == 2 * ucs2.code_units(text)
    assert ucs2.decode(encoded) == text


def test_ucs2_decode_tolerates_odd_trailing_octet() -> None:
    assert ucs2.decode(b"\x00A\x00") == "A\ufffd"


def test_ucs2_decode_tolerates_lone_surrogates() -> None:
    assert ucs2.decode(b"\xd8\x3d\x00A") == "\ufffdA"
    assert ucs2.decode(b"\xde\x00") == "\ufffd"


@given(st.binary())
def test_ucs2_decode_never_raises(data: bytes) -> None:
    ucs2.decode(data)


def test_ucs2_lone_surrogate_in_text_is_our_error() -> None:
    with pytest.raises(TextEncodeError) as info:
        ucs2.encode("ab\ud800")
    assert info.value.index == 2


def test_latin1() -> None:
    assert latin1.encode("café") == b"caf\xe9"
    assert latin1.decode(b"caf\xe9") == "café"
    assert latin1.is_encodable("ÿ")
    assert latin1.is_encodable("")
    assert not latin1.is_encodable("€")
    with pytest.raises(TextEncodeError) as info:
        latin1.encode("5 €")
    assert (info.value.char, info.value.index) == ("€", 2)


@given(st.binary())
def test_latin1_round_trip(data: bytes) -> None:
    assert latin1.encode(latin1.decode(data)) == data
