"""Choosing the cheapest encoding, and part counts at the exact boundaries."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smppgw.protocol.text import (
    DC_BINARY,
    DC_DEFAULT,
    DC_IA5,
    DC_LATIN1,
    DC_UCS2,
    SplitMode,
    TextEncodeError,
    UnitKind,
    choose_encoding,
    count_parts,
    decode_text,
    encode_text,
    strip_diacritics,
    unit_kind,
)


def gsm_parts(text: str, mode: SplitMode = SplitMode.UDH8) -> int:
    encoded = choose_encoding(text, mode=mode)
    assert encoded.data_coding == DC_DEFAULT
    return encoded.parts


def ucs2_parts(text: str, mode: SplitMode = SplitMode.UDH8) -> int:
    encoded = choose_encoding(text, mode=mode)
    assert encoded.data_coding == DC_UCS2
    return encoded.parts


@pytest.mark.parametrize(
    ("length", "parts"),
    [(0, 1), (1, 1), (160, 1), (161, 2), (153 * 2, 2), (153 * 2 + 1, 3), (153 * 255, 255)],
)
def test_gsm_boundaries(length: int, parts: int) -> None:
    assert gsm_parts("a" * length) == parts


@pytest.mark.parametrize(("length", "parts"), [(160, 1), (161, 2), (152 * 2, 2), (152 * 2 + 1, 3)])
def test_gsm_boundaries_16bit_reference(length: int, parts: int) -> None:
    assert gsm_parts("a" * length, SplitMode.UDH16) == parts


def test_gsm_extension_counts_two() -> None:
    assert gsm_parts("€" * 80) == 1
    assert gsm_parts("a" * 159 + "€") == 2  # 161 septets
    encoded = choose_encoding("a{")
    assert (encoded.units, encoded.payload) == (3, b"a\x1b\x28")


def test_escape_pair_at_position_153_moves_to_next_part() -> None:
    # Septets 1..152 plain, then an escape pair at 153-154: it cannot straddle, so part 1
    # holds 152 septets and the rest needs 306 - 152 = 154 > 153 septets: three parts.
    text = "a" * 152 + "€" + "a" * 152
    assert len(choose_encoding(text).payload) == 306
    assert gsm_parts(text) == 3
    assert gsm_parts("a" * 151 + "€" + "a" * 153) == 2  # the pair ends part 1 exactly


@pytest.mark.parametrize(("length", "parts"), [(70, 1), (71, 2), (67 * 2, 2), (67 * 2 + 1, 3)])
def test_ucs2_boundaries(length: int, parts: int) -> None:
    assert ucs2_parts("ж" * length) == parts


@pytest.mark.parametrize(("length", "parts"), [(70, 1), (71, 2), (66 * 2, 2), (66 * 2 + 1, 3)])
def test_ucs2_boundaries_16bit_reference(length: int, parts: int) -> None:
    assert ucs2_parts("ж" * length, SplitMode.UDH16) == parts


def test_surrogate_pair_is_not_split() -> None:
    assert choose_encoding("😀" * 35).parts == 1  # 70 code units
    assert choose_encoding("ж" + "😀" * 35).parts == 2
    # 66 units, then a pair at units 67-68: it moves to part 2 (66 + 68 units).
    encoded = choose_encoding("ж" * 66 + "😀" + "ж" * 66)
    assert encoded.units == 134
    assert encoded.parts == 3


@pytest.mark.parametrize(
    ("length", "mode", "parts"),
    [
        (140, SplitMode.UDH8, 1),
        (141, SplitMode.UDH8, 2),
        (268, SplitMode.UDH8, 2),
        (269, SplitMode.UDH8, 3),
        (266, SplitMode.UDH16, 2),
        (267, SplitMode.UDH16, 3),
        (268, SplitMode.SAR, 2),
        (269, SplitMode.PAYLOAD, 3),
    ],
)
def test_octet_boundaries(length: int, mode: SplitMode, parts: int) -> None:
    assert count_parts(b"\xff" * length, DC_BINARY, mode) == parts
    assert count_parts(b"\xff" * length, DC_LATIN1, mode) == parts


def test_gsm_preferred_when_it_fits() -> None:
    encoded = choose_encoding("Hello @ 5€", allow_latin1=True)
    assert encoded.data_coding == DC_DEFAULT
    assert (encoded.parts, encoded.units) == (1, 11)
    assert encoded.text == "Hello @ 5€"


def test_ucs2_when_gsm_cannot() -> None:
    encoded = choose_encoding("Привет")
    assert (encoded.data_coding, encoded.units, encoded.parts) == (DC_UCS2, 6, 1)
    assert encoded.payload == "Привет".encode("utf-16-be")


def test_latin1_only_when_allowed_and_cheaper() -> None:
    text = "ça va"  # ç is not in GSM
    assert choose_encoding(text).data_coding == DC_UCS2
    assert choose_encoding(text, allow_latin1=True).data_coding == DC_LATIN1
    brackets = "{" * 100  # 200 septets (2 SMS) in GSM, 100 octets (1 SMS) in Latin-1
    assert choose_encoding(brackets).data_coding == DC_DEFAULT
    assert choose_encoding(brackets, allow_latin1=True).data_coding == DC_LATIN1
    assert choose_encoding("{" * 10, allow_latin1=True).data_coding == DC_DEFAULT  # a tie


def test_vietnamese_stripped_to_gsm() -> None:
    text = "Đường phố Hà Nội đẹp lắm, cảm ơn bạn!"
    assert choose_encoding(text).data_coding == DC_UCS2
    encoded = choose_encoding(text, strip_accents=True)
    assert encoded.data_coding == DC_DEFAULT
    assert encoded.text == "Duong pho Ha Noi dep lam, cam on ban!"
    assert encoded.payload.decode("ascii") == encoded.text


def test_strip_diacritics() -> None:
    assert strip_diacritics("é ü Ñ ç ệ Ø ß @") == "e u N c e Ø ß @"
    assert strip_diacritics("e\u0301 a\u0323") == "e a"  # decomposed input
    assert strip_diacritics("\u0301x") == "x"  # a lone mark goes
    assert strip_diacritics("đĐ \u201cquoted\u201d \u2013 ok\u2026") == 'dD "quoted" - ok...'
    assert strip_diacritics("жx") == "жx"


def test_strip_is_not_used_when_it_does_not_help() -> None:
    # The emoji keeps the text in UCS2 anyway: the accents stay.
    encoded = choose_encoding("Việt 😀", strip_accents=True)
    assert (encoded.data_coding, encoded.text) == (DC_UCS2, "Việt 😀")


def test_gsm_text_keeps_its_accents() -> None:
    encoded = choose_encoding("Café à Paris", strip_accents=True)
    assert (encoded.data_coding, encoded.text) == (DC_DEFAULT, "Café à Paris")


def test_faithful_latin1_beats_stripped_gsm_at_equal_price() -> None:
    encoded = choose_encoding("ça", allow_latin1=True, strip_accents=True)
    assert (encoded.data_coding, encoded.text) == (DC_LATIN1, "ça")
    long_text = "ç" + "a" * 150  # Latin-1: 2 SMS; stripped GSM: 1 SMS
    encoded = choose_encoding(long_text, allow_latin1=True, strip_accents=True)
    assert (encoded.data_coding, encoded.parts) == (DC_DEFAULT, 1)


def test_lone_surrogate_raises_our_error() -> None:
    with pytest.raises(TextEncodeError):
        choose_encoding("a\udc00")


@given(st.text(), st.booleans(), st.booleans())
def test_choice_decodes_back(text: str, allow_latin1: bool, strip: bool) -> None:
    encoded = choose_encoding(text, allow_latin1=allow_latin1, strip_accents=strip)
    assert decode_text(encoded.payload, encoded.data_coding) == encoded.text
    if not strip:
        assert encoded.text == text
    assert encoded.parts == count_parts(encoded.payload, encoded.data_coding)
    ucs2_cost = count_parts(text.encode("utf-16-be"), DC_UCS2)
    assert encoded.parts <= ucs2_cost


def test_encode_text_by_data_coding() -> None:
    assert encode_text("a", DC_IA5).payload == b"a"
    with pytest.raises(TextEncodeError):
        encode_text("é", DC_IA5)
    assert encode_text("é", 0xF0).payload == b"\x05"  # GSM with message class 0
    with pytest.raises(ValueError, match="not a text coding"):
        encode_text("a", DC_BINARY)


@pytest.mark.parametrize(
    ("data_coding", "kind"),
    [
        (0x00, UnitKind.SEPTET),
        (0x01, UnitKind.OCTET),
        (0x03, UnitKind.OCTET),
        (0x04, UnitKind.OCTET),
        (0x08, UnitKind.UCS2),
        (0xC8, UnitKind.SEPTET),
        (0xE8, UnitKind.UCS2),
        (0xF1, UnitKind.SEPTET),
        (0xF5, UnitKind.OCTET),
    ],
)
def test_unit_kind(data_coding: int, kind: UnitKind) -> None:
    assert unit_kind(data_coding) is kind


def test_decode_text() -> None:
    assert decode_text(b"\x00", DC_DEFAULT) == "@"
    assert decode_text(b"\x00@", DC_UCS2) == "@"
    assert decode_text(b"\xe9", DC_LATIN1) == "é"
    assert decode_text(b"a\xe9", DC_IA5) == "a\ufffd"
    assert decode_text(b"\xff", DC_BINARY) == "\xff"
