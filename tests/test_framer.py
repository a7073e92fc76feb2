"""The framer cuts any chunking of a byte stream into exactly the PDUs that were sent.

- Any split of a concatenation of valid PDUs (random points, byte at a time, all at once)
  gives back exactly those PDUs' octets, in order, and nothing more.
- ``command_length`` below 16 or above the maximum is a ``FramingError`` with
  ``ESME_RINVCMDLEN``, carrying the ``sequence_number`` when the header is whole; it is
  sticky.
- Memory is bounded: consumed octets are dropped, so feeding a long stream in small chunks
  keeps the buffer within a small multiple of one PDU.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pdu_strategies import any_pdu

from smppgw.protocol.codec import decode_pdu, encode_pdu
from smppgw.protocol.errors import FramingError
from smppgw.protocol.framer import DEFAULT_MAX_COMMAND_LENGTH, Framer
from smppgw.protocol.pdus import EnquireLink, Pdu, SubmitSm
from smppgw.protocol.status import CommandStatus

_pdu_lists = st.lists(any_pdu, min_size=1, max_size=6)


def _feed_in_chunks(framer: Framer, stream: bytes, cuts: list[int]) -> list[bytes]:
    out: list[bytes] = []
    last = 0
    for cut in [*sorted(cuts), len(stream)]:
        framer.feed(stream[last:cut])
        out.extend(framer.frames())
        last = cut
    return out


@settings(max_examples=100)
@given(_pdu_lists, st.lists(st.integers(min_value=0, max_value=1 << 20), max_size=20))
def test_any_chunking_yields_exactly_the_pdus(pdus: list[Pdu], raw_cuts: list[int]) -> None:
    wires = [encode_pdu(p) for p in pdus]
    stream = b"".join(wires)
    framer = Framer()
    frames = _feed_in_chunks(framer, stream, [c % (len(stream) + 1) for c in raw_cuts])
    assert frames == wires
    assert [decode_pdu(f) for f in frames] == pdus
    assert framer.buffered == 0
    assert framer.next_frame() is None


@settings(max_examples=100)
@given(_pdu_lists)
def test_byte_at_a_time(pdus: list[Pdu]) -> None:
    wires = [encode_pdu(p) for p in pdus]
    stream = b"".join(wires)
    framer = Framer()
    frames: list[bytes] = []
    for i in range(len(stream)):
        framer.feed(stream[i : i + 1])
        frame = framer.next_frame()
        if frame is not None:
            frames.append(frame)
            assert framer.next_frame() is None  # one octet completes at most one PDU
    assert frames == wires


@settings(max_examples=100)
@given(_pdu_lists, st.binary(min_size=1, max_size=15))
def test_trailing_partial_pdu_is_kept(pdus: list[Pdu], partial: bytes) -> None:
    """Octets of an unfinished PDU stay buffered, whatever they are (under 16 octets)."""
    wires = [encode_pdu(p) for p in pdus]
    partial = b"\x00\x00\x01\x00" + partial  # a plausible command_length of 256
    framer = Framer()
    framer.feed(b"".join(wires) + partial)
    assert framer.frames() == wires
    assert framer.buffered == len(partial)
    assert framer.next_frame() is None


def test_empty_feed_and_nothing_buffered() -> None:
    framer = Framer()
    framer.feed(b"")
    assert framer.next_frame() is None
    assert framer.frames() == []
    framer.feed(b"\x00\x00\x00")  # not even a command_length yet
    assert framer.next_frame() is None
    assert framer.buffered == 3


def test_exact_maximum_is_accepted() -> None:
    pdu = SubmitSm(short_message=b"x" * 200)
    wire = encode_pdu(pdu)
    framer = Framer(max_command_length=len(wire))
    framer.feed(wire * 2)
    assert framer.frames() == [wire, wire]


@pytest.mark.parametrize("length", [0, 1, 15, DEFAULT_MAX_COMMAND_LENGTH + 1, 0xFFFFFFFF])
def test_bad_command_length_is_sticky_rinvcmdlen(length: int) -> None:
    good = encode_pdu(EnquireLink(sequence_number=1))
    bad_header = length.to_bytes(4, "big") + bytes.fromhex("00000015 00000000 0000002a")
    framer = Framer()
    framer.feed(good + bad_header + good)
    assert framer.next_frame() == good  # PDUs before the bad one still come out
    with pytest.raises(FramingError) as info:
        framer.next_frame()
    assert info.value.command_status == CommandStatus.ESME_RINVCMDLEN
    assert info.value.sequence_number == 42
    # Sticky: the stream cannot be trusted any more, whatever comes next.
    framer.feed(good)
    for _ in range(3):
        with pytest.raises(FramingError):
            framer.next_frame()
    with pytest.raises(FramingError):
        framer.frames()


@pytest.mark.parametrize("available", [4, 8, 15])
def test_bad_length_before_the_header_is_whole(available: int) -> None:
    """Only command_length was read: the error has no sequence_number to carry."""
    framer = Framer()
    framer.feed((15).to_bytes(4, "big") + b"\xff" * (available - 4))
    with pytest.raises(FramingError) as info:
        framer.next_frame()
    assert info.value.command_status == CommandStatus.ESME_RINVCMDLEN
    assert info.value.sequence_number is None


@pytest.mark.parametrize("maximum", [16, 100])
def test_custom_maximum(maximum: int) -> None:
    framer = Framer(max_command_length=maximum)
    framer.feed(encode_pdu(SubmitSm(short_message=b"x" * 100)))
    with pytest.raises(FramingError) as info:
        framer.next_frame()
    assert info.value.command_status == CommandStatus.ESME_RINVCMDLEN


def test_maximum_below_a_header_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 16"):
        Framer(max_command_length=15)


@given(st.binary(max_size=200), st.lists(st.integers(min_value=1, max_value=50), max_size=10))
def test_garbage_yields_frames_or_framing_error(stream: bytes, sizes: list[int]) -> None:
    """Whatever arrives, the framer returns octet strings or raises FramingError."""
    framer = Framer(max_command_length=128)
    pos = 0
    got = 0
    try:
        for size in [*sizes, len(stream)]:
            framer.feed(stream[pos : pos + size])
            pos += size
            for frame in framer.frames():
                assert 16 <= len(frame) <= 128
                assert int.from_bytes(frame[:4], "big") == len(frame)
                got += len(frame)
    except FramingError as exc:
        assert exc.command_status == CommandStatus.ESME_RINVCMDLEN  # noqa: PT017
        return
    assert got + framer.buffered == min(pos, len(stream))


def test_memory_is_bounded_by_consumed_bytes_being_dropped() -> None:
    """10,000 PDUs through the framer in 7-octet chunks: the buffer stays small."""
    wire = encode_pdu(SubmitSm(source_addr="8055", destination_addr="84912345678"))
    stream = wire * 10_000
    framer = Framer()
    biggest = 0
    count = 0
    for i in range(0, len(stream), 7):
        framer.feed(stream[i : i + 7])
        while framer.next_frame() is not None:
            count += 1
        biggest = max(biggest, len(framer._buffer))  # white box: the real allocation
    assert count == 10_000
    assert biggest <= 2 * len(wire) + 7


def test_memory_with_large_feeds() -> None:
    """One big feed is held until consumed, then dropped on the next feed."""
    wire = encode_pdu(EnquireLink())
    framer = Framer()
    framer.feed(wire * 1000)
    assert len(framer.frames()) == 1000
    framer.feed(wire[:5])
    assert len(framer._buffer) == 5
    assert framer.buffered == 5
