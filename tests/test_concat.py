"""Splitting long messages into segments: UDH 8/16-bit, sar_* TLVs, message_payload."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smppgw.protocol.concat import ConcatError, Segment, concat_udh, parse_udh, split_message
from smppgw.protocol.errors import PduEncodeError
from smppgw.protocol.text import (
    DC_BINARY,
    DC_DEFAULT,
    DC_UCS2,
    SplitMode,
    choose_encoding,
    decode_text,
    gsm7,
)

GSM_CHARS = gsm7.BASIC_TABLE.replace("\x1b", "") + "".join(gsm7.EXTENSION_TABLE.values())
EXTENSION_HEAVY = st.text(alphabet=st.sampled_from("a€{}[]^~|\\\x0c"), max_size=800)
UDH_MODES = [SplitMode.UDH8, SplitMode.UDH16, SplitMode.SAR]


def udh_bytes(segment: Segment) -> bytes:
    return segment.short_message[: segment.short_message[0] + 1] if segment.udhi else b""


def user_data(segment: Segment) -> bytes:
    if segment.udhi:
        return parse_udh(segment.short_message)[1]
    return segment.short_message


def fits_one_sms(segment: Segment, data_coding: int) -> bool:
    """Whether the part fits the 140 octets (1120 bits) of the air interface.

    sar_* parts are counted with the 8-bit UDH the SMSC will add to them.
    """
    header = udh_bytes(segment) or (b"\x00" * 6 if segment.sar_total else b"")
    data = user_data(segment)
    header_bits = 8 * len(header)
    if data_coding == DC_DEFAULT:
        fill = (7 - header_bits % 7) % 7
        return header_bits + fill + 7 * len(data) <= 1120
    return header_bits + 8 * len(data) <= 1120


def check_split(text: str, mode: SplitMode, reference: int = 0xAB) -> tuple[Segment, ...]:
    encoded = choose_encoding(text, mode=mode)
    segments = split_message(encoded.payload, encoded.data_coding, mode, reference=reference)
    assert len(segments) == encoded.parts
    total = len(segments)
    decoded = [decode_text(user_data(s), encoded.data_coding) for s in segments]
    # Each part decodes on its own to its share of the text: no pair was cut in two.
    assert "".join(decoded) == text
    assert b"".join(user_data(s) for s in segments) == encoded.payload
    for seq, segment in enumerate(segments, 1):
        assert fits_one_sms(segment, encoded.data_coding)
        data = user_data(segment)
        if encoded.data_coding == DC_UCS2 and data:
            assert not 0xDC <= data[0] <= 0xDF, "part starts with a lone low surrogate"
            assert not 0xD8 <= data[-2] <= 0xDB, "part ends with a lone high surrogate"
        if total == 1:
            assert segment == Segment(encoded.payload)
            continue
        if mode is SplitMode.SAR:
            assert not segment.udhi
            assert (segment.sar_ref, segment.sar_total, segment.sar_seq) == (reference, total, seq)
        else:
            udh, _ = parse_udh(segment.short_message)
            assert udh.concat is not None
            assert (udh.concat.reference, udh.concat.total, udh.concat.seq) == (
                reference,
                total,
                seq,
            )
            assert udh.concat.wide == (mode is SplitMode.UDH16)
    return segments


@pytest.mark.parametrize("mode", UDH_MODES)
@given(text=st.text(max_size=600))
def test_any_text_round_trips(mode: SplitMode, text: str) -> None:
    check_split(text, mode)


@pytest.mark.parametrize("mode", UDH_MODES)
@given(text=st.text(alphabet=st.sampled_from(GSM_CHARS), max_size=800))
def test_gsm_text_round_trips(mode: SplitMode, text: str) -> None:
    check_split(text, mode)


@pytest.mark.parametrize("mode", UDH_MODES)
@given(text=EXTENSION_HEAVY)
def test_extension_heavy_text_round_trips(mode: SplitMode, text: str) -> None:
    for segment in check_split(text, mode):
        data = user_data(segment)
        # An escape ending a part would be an orphan; so would a part starting with
        # the second septet of a pair (decoding each part alone catches that too).
        assert not data or data[-1] != 0x1B


@pytest.mark.parametrize("mode", UDH_MODES)
@given(text=st.text(alphabet=st.sampled_from("ж😀a"), max_size=300))
def test_astral_heavy_text_round_trips(mode: SplitMode, text: str) -> None:
    check_split(text, mode)


def test_udh8_exact_bytes() -> None:
    segments = split_message(b"a" * 161, DC_DEFAULT, SplitMode.UDH8, reference=0x2A)
    assert [s.short_message for s in segments] == [
        bytes.fromhex("0500032a0201") + b"a" * 153,
        bytes.fromhex("0500032a0202") + b"a" * 8,
    ]
    assert all(s.udhi and s.sar_ref is None and s.message_payload is None for s in segments)


def test_udh16_exact_bytes() -> None:
    segments = split_message(b"\x00a" * 71, DC_UCS2, SplitMode.UDH16, reference=0x1234)
    assert [s.short_message for s in segments] == [
        bytes.fromhex("060804123402 01") + b"\x00a" * 66,
        bytes.fromhex("060804123402 02") + b"\x00a" * 5,
    ]


def test_sar_segments() -> None:
    segments = split_message(b"\xff" * 200, DC_BINARY, SplitMode.SAR, reference=0xBEEF)
    assert segments == (
        Segment(b"\xff" * 134, sar_ref=0xBEEF, sar_total=2, sar_seq=1),
        Segment(b"\xff" * 66, sar_ref=0xBEEF, sar_total=2, sar_seq=2),
    )


def test_short_message_is_one_plain_segment() -> None:
    for mode in UDH_MODES:
        assert split_message(b"hi", DC_DEFAULT, mode, reference=1) == (Segment(b"hi"),)


def test_message_payload_mode() -> None:
    payload = b"a" * 5000
    assert split_message(payload, DC_DEFAULT, SplitMode.PAYLOAD) == (
        Segment(b"", message_payload=payload),
    )
    assert split_message(b"x" * 0xFFFF, DC_BINARY, SplitMode.PAYLOAD)[0].message_payload
    with pytest.raises(ConcatError, match="65535"):
        split_message(b"x" * 0x10000, DC_BINARY, SplitMode.PAYLOAD)


def test_255_parts_and_no_more() -> None:
    assert len(split_message(b"a" * 153 * 255, DC_DEFAULT, SplitMode.UDH8)) == 255
    with pytest.raises(ConcatError, match="256 parts") as info:
        split_message(b"a" * (153 * 255 + 1), DC_DEFAULT, SplitMode.UDH8)
    assert isinstance(info.value, ValueError)
    assert isinstance(info.value, PduEncodeError)


@pytest.mark.parametrize(
    ("mode", "reference"),
    [(SplitMode.UDH8, 256), (SplitMode.UDH8, -1), (SplitMode.UDH16, 0x10000), (SplitMode.SAR, -1)],
)
def test_reference_out_of_range(mode: SplitMode, reference: int) -> None:
    with pytest.raises(ConcatError, match="reference"):
        split_message(b"a" * 500, DC_DEFAULT, mode, reference=reference)


def test_concat_udh_checks_its_values() -> None:
    assert concat_udh(0xFFFF, 255, 255, wide=True) == bytes.fromhex("060804ffffffff")
    for total, seq in [(0, 0), (2, 0), (2, 3), (256, 1)]:
        with pytest.raises(ConcatError):
            concat_udh(1, total, seq)


@pytest.mark.parametrize("mode", UDH_MODES)
@given(payload=st.lists(st.sampled_from([0x1B, 0x41, 0x65, 0x1B]), max_size=700).map(bytes))
def test_raw_septets_with_escape_runs(mode: SplitMode, payload: bytes) -> None:
    # Peers' payloads may hold escape-escape pairs and lone escapes: runs are cut so that
    # every part decodes on its own exactly as its share of the whole.
    segments = split_message(payload, DC_DEFAULT, mode)
    parts = [user_data(s) for s in segments]
    assert b"".join(parts) == payload
    assert "".join(gsm7.decode(p) for p in parts) == gsm7.decode(payload)
    assert all(fits_one_sms(s, DC_DEFAULT) for s in segments)


@pytest.mark.parametrize("mode", UDH_MODES)
@given(payload=st.binary(max_size=700))
def test_raw_ucs2_octets(mode: SplitMode, payload: bytes) -> None:
    # Odd lengths and lone surrogates from a peer: nothing lost, every part fits.
    segments = split_message(payload, DC_UCS2, mode)
    assert b"".join(user_data(s) for s in segments) == payload
    assert all(fits_one_sms(s, DC_UCS2) for s in segments)
    assert all(len(user_data(s)) % 2 == 0 for s in segments[:-1])
