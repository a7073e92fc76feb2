"""Receiving concatenated messages: the UDH parser and the bounded Reassembler."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smppgw.protocol.concat import (
    IEI_PORTS_16BIT,
    InformationElement,
    Part,
    Reassembled,
    Reassembler,
    SegmentError,
    UdhError,
    incoming_part,
    parse_udh,
    split_message,
)
from smppgw.protocol.errors import PduDecodeError
from smppgw.protocol.status import CommandStatus
from smppgw.protocol.text import SplitMode, choose_encoding, decode_text

# --------------------------------------------------------------------------- UDH parser


def test_parse_udh_keeps_every_element() -> None:
    # 16-bit ports 5000 -> 16000, then 8-bit concat, then an unknown IE 0x70.
    message = bytes.fromhex("10 050413883e80 0003070201 7003aabbcc") + b"hello"
    header, payload = parse_udh(message)
    assert payload == b"hello"
    assert [e.iei for e in header.elements] == [0x05, 0x00, 0x70]
    assert header.elements[2] == InformationElement(0x70, b"\xaa\xbb\xcc")
    assert header.ports == (5000, 16000)
    assert header.concat is not None
    assert (header.concat.reference, header.concat.total, header.concat.seq) == (7, 2, 1)


def test_parse_udh_16bit_reference_and_8bit_ports() -> None:
    header, payload = parse_udh(bytes.fromhex("0a 0804beef0302 0402 1020") + b"x")
    assert payload == b"x"
    assert header.concat is not None
    assert (header.concat.reference, header.concat.wide) == (0xBEEF, True)
    assert header.ports == (0x10, 0x20)


def test_empty_udh_is_valid() -> None:
    header, payload = parse_udh(b"\x00abc")
    assert (header.elements, header.concat, header.ports, payload) == ((), None, None, b"abc")


def test_last_concat_element_counts() -> None:
    header, _ = parse_udh(bytes.fromhex("0a 0003010201 0003090302"))
    assert header.concat is not None
    assert (header.concat.reference, header.concat.seq) == (9, 2)


@pytest.mark.parametrize("ie", ["000301 00 01", "000301 02 00", "000301 02 03", "08040001 02 05"])
def test_impossible_concat_values_are_ignored(ie: str) -> None:
    # 23.040 9.2.3.24.1: a receiver ignores such an IE; the part stands alone.
    data = bytes.fromhex(ie)
    header, _ = parse_udh(bytes([len(data)]) + data + b"x")
    assert header.concat is None
    assert len(header.elements) == 1


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        ("", "empty"),
        ("05 000301", "exceeds"),
        ("01 00", "no length octet"),
        ("03 0003 01", "runs past"),
        ("04 0002 0101", "length 2, not 3"),
        ("05 0803 010101", "length 3, not 4"),
        ("04 0502 1234", "length 2, not 4"),
        ("02 7005", "runs past"),
    ],
)
def test_malformed_udh(message: str, reason: str) -> None:
    with pytest.raises(UdhError, match=reason) as info:
        parse_udh(bytes.fromhex(message))
    assert info.value.command_status == CommandStatus.ESME_RINVESMCLASS
    assert isinstance(info.value, ValueError)
    assert isinstance(info.value, PduDecodeError)


@given(st.binary(max_size=300))
def test_parse_udh_only_raises_udh_error(data: bytes) -> None:
    try:
        _, payload = parse_udh(data)
    except UdhError:
        return
    assert len(payload) < len(data)


@given(
    st.binary(max_size=64),
    st.booleans(),
    st.none() | st.integers(-2, 0x10001),
    st.none() | st.integers(-1, 257),
    st.none() | st.integers(-1, 257),
)
def test_incoming_part_only_raises_our_errors(
    data: bytes, udhi: bool, ref: int | None, total: int | None, seq: int | None
) -> None:
    try:
        part = incoming_part("a", "b", data, udhi=udhi, sar_ref=ref, sar_total=total, sar_seq=seq)
    except (UdhError, SegmentError):
        return
    assert 1 <= part.seq <= part.total <= 255


# --------------------------------------------------------------------------- incoming parts


def test_incoming_part_from_sar() -> None:
    part = incoming_part("src", "dst", b"abc", sar_ref=0x1234, sar_total=3, sar_seq=2)
    assert part == Part("src", "dst", 0x1234, 3, 2, b"abc")
    assert part.key == ("src", "dst", 0x1234, 3)


@pytest.mark.parametrize(
    ("ref", "total", "seq"),
    [(1, 0, 1), (1, 2, 0), (1, 2, 3), (1, 256, 1), (0x10000, 2, 1), (1, None, 1), (None, 2, 1)],
)
def test_impossible_sar_values(ref: int | None, total: int | None, seq: int | None) -> None:
    with pytest.raises(SegmentError) as info:
        incoming_part("a", "b", b"x", sar_ref=ref, sar_total=total, sar_seq=seq)
    assert info.value.command_status == CommandStatus.ESME_RINVOPTPARAMVAL


def test_single_message_is_part_one_of_one_and_keeps_its_ports() -> None:
    part = incoming_part("a", "b", bytes.fromhex("06 0504 0b84 23f0") + b"wap", udhi=True)
    assert (part.total, part.seq, part.payload) == (1, 1, b"wap")
    assert part.elements == (InformationElement(IEI_PORTS_16BIT, bytes.fromhex("0b8423f0")),)
    result = Reassembler().add(part, 0.0)
    assert result == Reassembled("a", "b", 0, 1, b"wap", part.elements)


# --------------------------------------------------------------------------- Reassembler


def parts_of(text: str, mode: SplitMode, reference: int = 5, source: str = "A") -> list[Part]:
    encoded = choose_encoding(text, mode=mode)
    segments = split_message(encoded.payload, encoded.data_coding, mode, reference=reference)
    return [
        incoming_part(
            source,
            "B",
            s.short_message,
            udhi=s.udhi,
            sar_ref=s.sar_ref,
            sar_total=s.sar_total,
            sar_seq=s.sar_seq,
        )
        for s in segments
    ]


@pytest.mark.parametrize("mode", [SplitMode.UDH8, SplitMode.UDH16, SplitMode.SAR])
@given(data=st.data(), text=st.text(min_size=1, max_size=700))
def test_any_order_with_duplicates(mode: SplitMode, data: st.DataObject, text: str) -> None:
    parts = parts_of(text, mode)
    extra = data.draw(st.lists(st.sampled_from(parts), max_size=5))
    shuffled = data.draw(st.permutations(parts + extra))
    reassembler = Reassembler()
    results = [r for p in shuffled if (r := reassembler.add(p, 1.0)) is not None]
    # The model: a duplicate of a held part is ignored; once every part is held the
    # message comes out, and the group is gone (a later copy starts a new one: whole
    # duplicate messages are the journal's business, not this module's).
    expected, held = 0, set()
    for part in shuffled:
        if part.seq not in held:
            held.add(part.seq)
            if len(held) == part.total:
                expected, held = expected + 1, set()
    assert len(results) == expected >= 1
    encoded = choose_encoding(text, mode=mode)
    for result in results:
        assert result.payload == encoded.payload
        assert decode_text(result.payload, encoded.data_coding) == text
    stats = reassembler.statistics()
    assert stats.completed == expected
    assert stats.duplicates == len(shuffled) - expected * len(parts) - len(held)
    assert stats.pending_bytes == sum(len(p.payload) for p in parts if p.seq in held)


def test_duplicates_are_counted_and_first_copy_kept() -> None:
    r = Reassembler()
    assert r.add(Part("a", "b", 1, 2, 1, b"first"), 0.0) is None
    assert r.add(Part("a", "b", 1, 2, 1, b"again"), 0.0) is None
    result = r.add(Part("a", "b", 1, 2, 2, b"-two"), 0.0)
    assert result is not None
    assert result.payload == b"first-two"
    assert r.statistics().duplicates == 1


def test_groups_are_keyed_by_source_destination_reference_total() -> None:
    r = Reassembler()
    assert r.add(Part("a", "b", 1, 2, 1, b"a1"), 0.0) is None
    assert r.add(Part("x", "b", 1, 2, 2, b"x2"), 0.0) is None  # other source
    assert r.add(Part("a", "y", 1, 2, 2, b"y2"), 0.0) is None  # other destination
    assert r.add(Part("a", "b", 2, 2, 2, b"r2"), 0.0) is None  # other reference
    assert r.add(Part("a", "b", 1, 3, 2, b"t2"), 0.0) is None  # other total
    assert r.statistics().pending_groups == 5
    result = r.add(Part("a", "b", 1, 2, 2, b"b2"), 0.0)
    assert result is not None
    assert result.payload == b"a1b2"


def test_expiry() -> None:
    r = Reassembler(timeout=10.0)
    assert r.next_deadline() is None
    r.add(Part("a", "b", 1, 2, 1, b"old"), 100.0)
    r.add(Part("a", "b", 2, 2, 1, b"new"), 105.0)
    assert r.next_deadline() == 110.0
    assert r.expire(109.9) == []
    assert r.expire(110.0) == [("a", "b", 1, 2)]
    assert r.next_deadline() == 115.0
    # A trickle of parts does not keep a group alive: the deadline is from the first.
    assert r.expire(114.0) == []
    stats = r.statistics()
    assert (stats.expired, stats.pending_groups, stats.pending_bytes) == (1, 1, 3)


def test_late_part_does_not_complete_an_expired_group() -> None:
    r = Reassembler(timeout=10.0)
    r.add(Part("a", "b", 1, 2, 1, b"one"), 0.0)
    # expire() was not called, but add() sees the group is past its deadline.
    assert r.add(Part("a", "b", 1, 2, 2, b"two"), 10.0) is None
    stats = r.statistics()
    assert (stats.expired, stats.pending_groups, stats.pending_bytes) == (1, 1, 3)
    result = r.add(Part("a", "b", 1, 2, 1, b"uno"), 11.0)
    assert result is not None
    assert result.payload == b"unotwo"


def test_eviction_by_group_count() -> None:
    r = Reassembler(max_groups=3)
    for ref in range(10):
        r.add(Part("peer", "b", ref, 2, 1, b"x"), float(ref))
    stats = r.statistics()
    assert (stats.pending_groups, stats.evicted, stats.pending_bytes) == (3, 7, 3)
    # The oldest went: reference 9 still completes, reference 0 does not.
    assert r.add(Part("peer", "b", 9, 2, 2, b"y"), 9.0) is not None
    assert r.add(Part("peer", "b", 0, 2, 2, b"y"), 9.0) is None


def test_eviction_by_bytes() -> None:
    r = Reassembler(max_bytes=1000)
    for ref in range(20):
        r.add(Part("peer", "b", ref, 3, 1, b"z" * 150), 0.0)
        assert r.statistics().pending_bytes <= 1000
    stats = r.statistics()
    assert (stats.pending_groups, stats.evicted) == (6, 14)
    # A group larger than the whole budget is evicted at once.
    assert r.add(Part("big", "b", 1, 2, 1, b"z" * 2000), 0.0) is None
    assert r.statistics().pending_bytes <= 1000


@given(st.lists(st.tuples(st.integers(0, 50), st.integers(1, 4), st.binary(max_size=200))))
def test_bounds_hold_under_any_traffic(traffic: list[tuple[int, int, bytes]]) -> None:
    r = Reassembler(max_groups=8, max_bytes=2000, timeout=5.0)
    for now, (ref, seq, payload) in enumerate(traffic):
        r.add(Part("peer", "b", ref, 4, seq, payload), float(now))
        stats = r.statistics()
        assert stats.pending_groups <= 8
        assert stats.pending_bytes <= 2000
    r.expire(float(len(traffic) + 5))
    assert r.statistics().pending_groups == 0
    assert r.statistics().pending_bytes == 0


def test_reassembler_rejects_bad_settings() -> None:
    with pytest.raises(ValueError, match="positive"):
        Reassembler(timeout=0)
