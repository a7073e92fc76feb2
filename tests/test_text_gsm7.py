"""GSM 03.38: the tables character by character, strict encoding, tolerant decoding, packing."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smppgw.protocol.errors import PduEncodeError
from smppgw.protocol.text import TextDecodeError, TextEncodeError, gsm7

# 3GPP TS 23.038 section 6.2.1, the default alphabet, written out from the spec's table
# as (septet, Unicode code point), independently of the module's string. 0x1B is the
# escape and has no character of its own.
SPEC_BASIC: list[tuple[int, int]] = [
    (0x00, 0x0040), (0x01, 0x00A3), (0x02, 0x0024), (0x03, 0x00A5),
    (0x04, 0x00E8), (0x05, 0x00E9), (0x06, 0x00F9), (0x07, 0x00EC),
    (0x08, 0x00F2), (0x09, 0x00C7), (0x0A, 0x000A), (0x0B, 0x00D8),
    (0x0C, 0x00F8), (0x0D, 0x000D), (0x0E, 0x00C5), (0x0F, 0x00E5),
    (0x10, 0x0394), (0x11, 0x005F), (0x12, 0x03A6), (0x13, 0x0393),
    (0x14, 0x039B), (0x15, 0x03A9), (0x16, 0x03A0), (0x17, 0x03A8),
    (0x18, 0x03A3), (0x19, 0x0398), (0x1A, 0x039E),
    (0x1C, 0x00C6), (0x1D, 0x00E6), (0x1E, 0x00DF), (0x1F, 0x00C9),
    (0x20, 0x0020), (0x21, 0x0021), (0x22, 0x0022), (0x23, 0x0023),
    (0x24, 0x00A4), (0x25, 0x0025), (0x26, 0x0026), (0x27, 0x0027),
    (0x28, 0x0028), (0x29, 0x0029), (0x2A, 0x002A), (0x2B, 0x002B),
    (0x2C, 0x002C), (0x2D, 0x002D), (0x2E, 0x002E), (0x2F, 0x002F),
    (0x30, 0x0030), (0x31, 0x0031), (0x32, 0x0032), (0x33, 0x0033),
    (0x34, 0x0034), (0x35, 0x0035), (0x36, 0x0036), (0x37, 0x0037),
    (0x38, 0x0038), (0x39, 0x0039), (0x3A, 0x003A), (0x3B, 0x003B),
    (0x3C, 0x003C), (0x3D, 0x003D), (0x3E, 0x003E), (0x3F, 0x003F),
    (0x40, 0x00A1), (0x41, 0x0041), (0x42, 0x0042), (0x43, 0x0043),
    (0x44, 0x0044), (0x45, 0x0045), (0x46, 0x0046), (0x47, 0x0047),
    (0x48, 0x0048), (0x49, 0x0049), (0x4A, 0x004A), (0x4B, 0x004B),
    (0x4C, 0x004C), (0x4D, 0x004D), (0x4E, 0x004E), (0x4F, 0x004F),
    (0x50, 0x0050), (0x51, 0x0051), (0x52, 0x0052), (0x53, 0x0053),
    (0x54, 0x0054), (0x55, 0x0055), (0x56, 0x0056), (0x57, 0x0057),
    (0x58, 0x0058), (0x59, 0x0059), (0x5A, 0x005A), (0x5B, 0x00C4),
    (0x5C, 0x00D6), (0x5D, 0x00D1), (0x5E, 0x00DC), (0x5F, 0x00A7),
    (0x60, 0x00BF), (0x61, 0x0061), (0x62, 0x0062), (0x63, 0x0063),
    (0x64, 0x0064), (0x65, 0x0065), (0x66, 0x0066), (0x67, 0x0067),
    (0x68, 0x0068), (0x69, 0x0069), (0x6A, 0x006A), (0x6B, 0x006B),
    (0x6C, 0x006C), (0x6D, 0x006D), (0x6E, 0x006E), (0x6F, 0x006F),
    (0x70, 0x0070), (0x71, 0x0071), (0x72, 0x0072), (0x73, 0x0073),
    (0x74, 0x0074), (0x75, 0x0075), (0x76, 0x0076), (0x77, 0x0077),
    (0x78, 0x0078), (0x79, 0x0079), (0x7A, 0x007A), (0x7B, 0x00E4),
    (0x7C, 0x00F6), (0x7D, 0x00F1), (0x7E, 0x00FC), (0x7F, 0x00E0),
]  # fmt: skip

# 23.038 section 6.2.1.1, the extension table: septet after 0x1B -> code point.
SPEC_EXTENSION: list[tuple[int, int]] = [
    (0x0A, 0x000C), (0x14, 0x005E), (0x28, 0x007B), (0x29, 0x007D), (0x2F, 0x005C),
    (0x3C, 0x005B), (0x3D, 0x007E), (0x3E, 0x005D), (0x40, 0x007C), (0x65, 0x20AC),
]  # fmt: skip

GSM_CHARS = "".join(chr(cp) for _, cp in SPEC_BASIC) + "".join(chr(cp) for _, cp in SPEC_EXTENSION)
gsm_text = st.text(alphabet=st.sampled_from(GSM_CHARS))


def test_spec_table_is_complete() -> None:
    assert [code for code, _ in SPEC_BASIC] == [c for c in range(128) if c != 0x1B]
    assert len({cp for _, cp in SPEC_BASIC} | {cp for _, cp in SPEC_EXTENSION}) == 137


@pytest.mark.parametrize(("septet", "code_point"), SPEC_BASIC)
def test_basic_table(septet: int, code_point: int) -> None:
    char = chr(code_point)
    assert gsm7.BASIC_TABLE[septet] == char
    assert gsm7.encode(char) == bytes([septet])
    assert gsm7.decode(bytes([septet])) == char
    assert gsm7.septet_length(char) == 1


@pytest.mark.parametrize(("septet", "code_point"), SPEC_EXTENSION)
def test_extension_table(septet: int, code_point: int) -> None:
    char = chr(code_point)
    assert gsm7.EXTENSION_TABLE[septet] == char
    assert gsm7.encode(char) == bytes([0x1B, septet])
    assert gsm7.decode(bytes([0x1B, septet])) == char
    assert gsm7.septet_length(char) == 2


def test_tables_have_nothing_else() -> None:
    assert len(gsm7.EXTENSION_TABLE) == len(SPEC_EXTENSION)
    encodable = {chr(cp) for cp in range(0x2100) if gsm7.is_encodable(chr(cp))}
    assert encodable == set(GSM_CHARS)


def test_at_sign_is_zero() -> None:
    assert gsm7.encode("@@") == b"\x00\x00"


@pytest.mark.parametrize(
    ("text", "char", "index"),
    [("abc`d", "`", 3), ("\x1b", "\x1b", 0), ("ok\t", "\t", 2), ("€ ç", "ç", 2), ("😀", "😀", 0)],
)
def test_unencodable_names_char_and_index(text: str, char: str, index: int) -> None:
    with pytest.raises(TextEncodeError) as info:
        gsm7.encode(text)
    assert info.value.char == char
    assert info.value.index == index
    assert repr(char) in str(info.value)
    assert f"index {index}" in str(info.value)
    assert isinstance(info.value, ValueError)
    assert isinstance(info.value, PduEncodeError)
    assert not gsm7.is_encodable(text)
    with pytest.raises(TextEncodeError):
        gsm7.septet_length(text)


def test_septet_length_counts_extension_twice() -> None:
    assert gsm7.septet_length("") == 0
    assert gsm7.septet_length("a€b") == 4
    assert gsm7.septet_length("{}[]") == 8


@pytest.mark.parametrize(
    ("data", "text"),
    [
        (b"\x1b\x41", "A"),  # unknown extension: the basic character
        (b"\x1b\x00", "@"),
        (b"\x1b\x1b", " "),  # escape to a further table: a space
        (b"a\x1b", "a "),  # lone escape at the end
        (b"\x80", "\ufffd"),  # not a septet
        (b"a\xffb", "a\ufffdb"),
        (b"\x1b\xc1", "\ufffd"),
        (b"\x1b\x1b\x1b\x65", " €"),
    ],
)
def test_decode_is_tolerant(data: bytes, text: str) -> None:
    assert gsm7.decode(data) == text


@given(gsm_text)
def test_round_trip(text: str) -> None:
    encoded = gsm7.encode(text)
    assert len(encoded) == gsm7.septet_length(text)
    assert gsm7.decode(encoded) == text


@given(st.binary())
def test_decode_never_raises(data: bytes) -> None:
    gsm7.decode(data)


def test_pack_known_vectors() -> None:
    # 23.038 / the classic "hellohello" example.
    assert gsm7.pack_septets(gsm7.encode("hellohello")).hex() == "e8329bfd4697d9ec37"
    assert gsm7.unpack_septets(bytes.fromhex("e8329bfd4697d9ec37"), 10) == gsm7.encode("hellohello")
    # One fill bit after a 6-octet UDH: the first septet starts at bit 1.
    assert gsm7.pack_septets(b"\x41", fill_bits=1) == bytes([0x41 << 1])


def test_unpack_drops_cr_padding() -> None:
    seven = gsm7.encode("1234567")
    packed = gsm7.pack_septets(seven + b"\r")  # the sender pads 7 spare bits with CR
    assert len(packed) == 7
    assert gsm7.unpack_septets(packed) == seven
    assert gsm7.unpack_septets(packed, 8) == seven + b"\r"


@given(st.binary(max_size=300).map(lambda b: bytes(x & 0x7F for x in b)), st.integers(0, 6))
def test_pack_round_trip(septets: bytes, fill_bits: int) -> None:
    packed = gsm7.pack_septets(septets, fill_bits)
    assert len(packed) == (fill_bits + 7 * len(septets) + 7) // 8
    assert gsm7.unpack_septets(packed, len(septets), fill_bits) == septets


def test_pack_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match=r"0\.\.127"):
        gsm7.pack_septets(b"\x80")
    with pytest.raises(ValueError, match="fill_bits"):
        gsm7.pack_septets(b"a", fill_bits=7)
    with pytest.raises(ValueError, match="fill_bits"):
        gsm7.unpack_septets(b"a", fill_bits=-1)
    with pytest.raises(TextDecodeError):
        gsm7.unpack_septets(b"\x00", 2)
