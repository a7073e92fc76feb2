"""Hypothesis strategies for hostile SMPP byte streams, and a replayer over real TCP.

Used by ``test_fuzz_partner_port.py`` (a hostile partner) and
``test_fuzz_carrier_side.py`` (a hostile SMSC). A stream is a list of *segments* (what
a peer may put on the wire, good or bad), cut into chunks of random sizes sent with
random pauses (slow loris), ended in one of three ways (linger and read until the other
side closes, close, or reset). Each segment kind is one way a remote peer can be wrong:

- ``pdu``: a valid PDU of any of the 27 classes (``pdu_strategies.any_pdu``), so out of
  state requests (``submit_sm`` before a bind, a second bind, ``deliver_sm`` to an
  SMSC) and responses nobody asked for come naturally;
- ``garbage``: random octets;
- ``truncated``: a valid PDU cut short (its length then swallows what follows);
- ``short_length`` / ``long_length`` / ``huge_length``: a PDU whose ``command_length``
  is below the header, larger than its octets, or near 4 GiB;
- ``unknown_command``: a well framed PDU with a command id no spec defines;
- ``response``: a response PDU with any sequence number (unsolicited);
- ``oversized``: fields past their limits: a C-octet string without its NUL, a
  ``short_message`` longer than ``sm_length`` says, a TLV whose length runs past the
  PDU, a ``message_payload`` of 64 KiB, ``sm_length`` 255 with 10 octets;
- ``bind``: a bind with a random ``system_id`` and password (a brute-force attempt).

:func:`framing_breaks` predicts from the octets alone whether the receiver's framer
must give up (so the test knows a ``generic_nack`` with ``ESME_RINVCMDLEN`` and a close
are owed).
"""

from __future__ import annotations

import os
import socket
import struct
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

import trio
from daemon_fixtures import free_port
from hypothesis import strategies as st
from partner_fixtures import write_partner_config
from pdu_strategies import ALL_PDU_CLASSES, any_pdu, pdus

from smppgw.app.config import load_config
from smppgw.app.daemon import Daemon
from smppgw.protocol.codec import decode_pdu, encode_pdu
from smppgw.protocol.errors import FramingError, PduDecodeError, PduEncodeError
from smppgw.protocol.framer import DEFAULT_MAX_COMMAND_LENGTH, Framer
from smppgw.protocol.pdus import (
    PDU_CLASSES,
    BindReceiver,
    BindTransceiver,
    BindTransmitter,
    Pdu,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Sequence
    from pathlib import Path

__all__ = [
    "Ending",
    "HostileStream",
    "Replay",
    "Segment",
    "decode_all",
    "framing_breaks",
    "hostile_streams",
    "receipts",
    "replay",
    "rss_bytes",
    "segments",
    "tuned_partner_daemon",
]

Ending = Literal["linger", "close", "reset"]

_HEADER = struct.Struct(">IIII")
_RESPONSE_CLASSES = tuple(c for c in ALL_PDU_CLASSES if c.command_id & 0x80000000)
_KNOWN_IDS = frozenset(PDU_CLASSES)


def _frame(command_id: int, body: bytes, *, seq: int = 1, status: int = 0) -> bytes:
    return _HEADER.pack(16 + len(body), command_id, status, seq) + body


@dataclass(frozen=True, slots=True)
class Segment:
    """One piece of a hostile stream: ``kind`` names the fault (see the module)."""

    kind: str
    data: bytes

    def __repr__(self) -> str:  # short in hypothesis' falsifying examples
        shown = self.data[:48].hex()
        more = f"...+{len(self.data) - 48}" if len(self.data) > 48 else ""
        return f"Segment({self.kind!r}, {shown}{more})"


def _encoded(pdu: Pdu) -> bytes | None:
    try:
        return encode_pdu(pdu)
    except PduEncodeError:  # a strategy value over a limit the encoder enforces: skip it
        return None


seqs = st.integers(min_value=0, max_value=0xFFFFFFFF)


def _valid() -> st.SearchStrategy[Segment]:
    return (
        any_pdu.map(_encoded)
        .filter(lambda b: b is not None)
        .map(lambda b: Segment("pdu", b or b""))
    )


def _response() -> st.SearchStrategy[Segment]:
    return (
        st.sampled_from(_RESPONSE_CLASSES)
        .flatmap(pdus)
        .map(_encoded)
        .filter(lambda b: b is not None)
        .map(lambda b: Segment("response", b or b""))
    )


def _truncated() -> st.SearchStrategy[Segment]:
    return st.tuples(_valid(), st.integers(min_value=1, max_value=200)).map(
        lambda t: Segment("truncated", t[0].data[: max(1, len(t[0].data) - t[1])])
    )


def _bad_length() -> st.SearchStrategy[Segment]:
    def relength(kind: str, wire: bytes, length: int) -> Segment:
        return Segment(kind, struct.pack(">I", length) + wire[4:])

    base = _valid().map(lambda s: s.data)
    short = st.tuples(base, st.integers(min_value=0, max_value=15)).map(
        lambda t: relength("short_length", t[0], t[1])
    )
    long = st.tuples(base, st.integers(min_value=1, max_value=300)).map(
        lambda t: relength("long_length", t[0], len(t[0]) + t[1])
    )
    huge = st.tuples(
        base, st.integers(min_value=DEFAULT_MAX_COMMAND_LENGTH + 1, max_value=0xFFFFFFFF)
    ).map(lambda t: relength("huge_length", t[0], t[1]))
    return st.one_of(short, long, huge)


def _unknown_command() -> st.SearchStrategy[Segment]:
    ids = st.integers(min_value=0, max_value=0xFFFFFFFF).filter(lambda i: i not in _KNOWN_IDS)
    return st.tuples(ids, st.binary(max_size=64), seqs).map(
        lambda t: Segment("unknown_command", _frame(t[0], t[1], seq=t[2]))
    )


def _sm_body(sm: bytes, sm_length: int, *, source: bytes = b"ACME\x00") -> bytes:
    """A submit_sm/deliver_sm body: service_type, addresses, flags, then the message."""
    return (
        b"\x00"  # service_type
        + b"\x05\x00"
        + source
        + b"\x01\x01"
        + b"84912345678\x00"
        + b"\x00\x00\x00"  # esm_class, protocol_id, priority_flag
        + b"\x00\x00"  # schedule_delivery_time, validity_period
        + b"\x00\x00\x00\x00"  # registered_delivery .. sm_default_msg_id
        + bytes([sm_length])
        + sm
    )


def _oversized() -> st.SearchStrategy[Segment]:
    seq = st.integers(min_value=1, max_value=0x7FFFFFFF)
    no_nul = st.builds(
        lambda n, s, cid: _frame(cid, b"A" * n, seq=s),
        st.integers(min_value=1, max_value=600),
        seq,
        st.sampled_from([0x00000002, 0x00000004, 0x00000009, 0x00000003]),
    )
    sm_too_long = st.builds(
        lambda n, s: _frame(0x00000004, _sm_body(b"x" * n, min(n, 255) // 2), seq=s),
        st.integers(min_value=10, max_value=600),
        seq,
    )
    sm_short = st.builds(
        lambda s: _frame(0x00000004, _sm_body(b"x" * 10, 255), seq=s),
        seq,
    )
    tlv_past_end = st.builds(
        lambda tag, n, s: _frame(
            0x00000004, _sm_body(b"", 0) + struct.pack(">HH", tag, n) + b"zz", seq=s
        ),
        st.integers(min_value=0, max_value=0xFFFF),
        st.integers(min_value=3, max_value=0xFFFF),
        seq,
    )
    payload_64k = st.builds(
        lambda n, s: _frame(
            0x00000004, _sm_body(b"", 0) + struct.pack(">HH", 0x0424, n) + b"p" * n, seq=s
        ),
        st.sampled_from([0xFFFF, 0x8000, 300]),
        seq,
    )
    long_source = st.builds(
        lambda n, s: _frame(0x00000004, _sm_body(b"hi", 2, source=b"S" * n + b"\x00"), seq=s),
        st.integers(min_value=21, max_value=300),
        seq,
    )
    return st.one_of(no_nul, sm_too_long, sm_short, tlv_past_end, payload_64k, long_source).map(
        lambda b: Segment("oversized", b)
    )


def _bind() -> st.SearchStrategy[Segment]:
    cls = st.sampled_from([BindTransmitter, BindReceiver, BindTransceiver])
    text = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=8)
    return st.builds(
        lambda c, sid, pw, s: Segment(
            "bind", encode_pdu(c(system_id=sid, password=pw), sequence_number=s)
        ),
        cls,
        text,
        text,
        st.integers(min_value=1, max_value=0x7FFFFFFF),
    )


def receipts() -> st.SearchStrategy[Segment]:
    """``deliver_sm`` receipts an SMSC may get wrong: garbled receipt text, ids that
    match nothing or are absurd, a ``receipted_message_id`` TLV of any octets, a
    ``message_state`` of any value or length."""
    word = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=24)
    text = st.one_of(
        st.builds(
            lambda i, stat, err: (
                f"id:{i} sub:001 dlvrd:001 submit date:2611251200 done date:2611251201 "
                f"stat:{stat} err:{err} text:x"
            ),
            word,
            word,
            word,
        ),
        word.map(lambda w: f"id:{w}"),
        word,
    ).map(lambda t: t.encode("latin-1")[:254])
    tlv = st.one_of(
        st.binary(max_size=70).map(lambda v: struct.pack(">HH", 0x001E, len(v)) + v),
        st.binary(max_size=4).map(lambda v: struct.pack(">HH", 0x0427, len(v)) + v),
    )
    return st.builds(
        lambda sm, tlvs, esm, seq: Segment(
            "receipt", _frame(0x00000005, _receipt_body(sm, esm) + b"".join(tlvs), seq=seq)
        ),
        text,
        st.lists(tlv, max_size=3),
        st.sampled_from([0x04, 0x04, 0x08, 0x00, 0xFF]),
        st.integers(min_value=1, max_value=0x7FFFFFFF),
    )


def _receipt_body(sm: bytes, esm_class: int) -> bytes:
    return (
        b"\x00"  # service_type
        + b"\x01\x01"
        + b"84912345678\x00"
        + b"\x05\x00"
        + b"ACME\x00"
        + bytes([esm_class])
        + b"\x00\x00"  # protocol_id, priority_flag
        + b"\x00\x00"  # schedule_delivery_time, validity_period
        + b"\x00\x00\x00\x00"  # registered_delivery .. sm_default_msg_id
        + bytes([len(sm)])
        + sm
    )


def segments() -> st.SearchStrategy[Segment]:
    """One segment of any kind, valid PDUs the most common."""
    return st.one_of(
        _valid(),
        st.binary(min_size=1, max_size=128).map(lambda b: Segment("garbage", b)),
        _truncated(),
        _bad_length(),
        _unknown_command(),
        _response(),
        _oversized(),
        _bind(),
    )


@dataclass(frozen=True, slots=True)
class HostileStream:
    """What one hostile connection does, from connect to its end.

    ``prefix`` goes first and whole (a bind that must succeed, to reach the bound
    states); ``segments`` follow, their octets cut into ``chunk_sizes`` (cycled), the
    first writes each after its pause in ``delays`` (the rest at once, so the total
    pause stays bounded however small the chunks); ``reads``: whether the peer reads while it
    sends (a peer that never reads is a slow reader); ``ending``: see the module.
    """

    segments: tuple[Segment, ...]
    chunk_sizes: tuple[int, ...] = (65536,)
    delays: tuple[float, ...] = (0.0,)
    ending: Ending = "linger"
    reads: bool = True
    prefix: bytes = b""

    @property
    def payload(self) -> bytes:
        return b"".join(s.data for s in self.segments)

    def chunks(self) -> list[tuple[float, bytes]]:
        """(pause before, octets) for every write of this stream."""
        out: list[tuple[float, bytes]] = []
        data = self.payload
        pos = 0
        i = 0
        while pos < len(data):
            size = self.chunk_sizes[i % len(self.chunk_sizes)]
            pause = self.delays[i] if i < len(self.delays) else 0.0
            out.append((pause, data[pos : pos + size]))
            pos += size
            i += 1
        return out


def hostile_streams(
    *,
    max_segments: int = 8,
    max_delay: float = 0.03,
    max_chunks_delayed: int = 12,
    prefix: st.SearchStrategy[bytes] | None = None,
) -> st.SearchStrategy[HostileStream]:
    """Hostile streams; the total pause is bounded (``max_delay`` x
    ``max_chunks_delayed``) so a test can tell a slow peer from a server that hangs."""
    chunk_sizes = st.lists(
        st.one_of(
            st.integers(min_value=1, max_value=16), st.integers(min_value=17, max_value=4096)
        ),
        min_size=1,
        max_size=6,
    ).map(tuple)
    delays = st.lists(
        st.floats(min_value=0, max_value=max_delay), min_size=1, max_size=max_chunks_delayed
    ).map(tuple)

    return st.builds(
        HostileStream,
        st.lists(segments(), min_size=1, max_size=max_segments).map(tuple),
        chunk_sizes,
        delays,
        st.sampled_from(["linger", "linger", "close", "reset"]),
        st.booleans(),
        st.just(b"") if prefix is None else prefix,
    )


def framing_breaks(data: bytes, max_command_length: int = DEFAULT_MAX_COMMAND_LENGTH) -> int | None:
    """The offset of the PDU whose ``command_length`` the receiver must refuse, or None.

    The receiver's framer sees the same octets, so it gives up at the same place."""
    framer = Framer(max_command_length)
    framer.feed(data)
    offset = 0
    try:
        while (frame := framer.next_frame()) is not None:
            offset += len(frame)
    except FramingError:
        return offset
    return None


def frames_before(data: bytes, end: int | None) -> list[bytes]:
    """The whole frames of ``data`` before offset ``end`` (all when None)."""
    framer = Framer(0xFFFFFFFF)
    framer.feed(data if end is None else data[:end])
    return framer.frames()


def decode_all(data: bytes) -> tuple[list[Pdu], bytes]:
    """Every PDU in ``data`` (what a well-behaved side sent us) and the octets left.

    Raises:
        AssertionError: a PDU does not frame or decode: the side under test sent junk.
    """
    framer = Framer()
    framer.feed(data)
    out: list[Pdu] = []
    for frame in framer.frames():
        try:
            out.append(decode_pdu(frame))
        except PduDecodeError as exc:  # pragma: no cover - a failure of the test subject
            raise AssertionError(f"undecodable PDU from the side under test: {exc}") from exc
    rest = data[len(data) - framer.buffered :] if framer.buffered else b""
    return out, rest


@dataclass
class Replay:
    """What happened to one hostile connection."""

    sent: int = 0
    received: bytearray = field(default_factory=bytearray)
    #: the other side closed (EOF or reset) before we did
    closed_by_peer: bool = False
    #: seconds from our last write to the other side's close (linger only)
    close_after: float | None = None
    connect_failed: bool = False


async def replay(
    stream: HostileStream,
    port: int,
    *,
    local_address: str | None = None,
    linger_limit: float = 10.0,
) -> Replay:
    """Play ``stream`` against 127.0.0.1:``port``; never raises for the peer's doing.

    ``linger_limit``: how long a lingering peer waits for the other side to close
    before it gives up (the caller asserts ``close_after`` against its idle timeout).
    """
    result = Replay()
    try:
        tcp = await trio.open_tcp_stream("127.0.0.1", port, local_address=local_address)
    except OSError:
        result.connect_failed = True
        return result
    eof = trio.Event()

    async def reader() -> None:
        try:
            while data := await tcp.receive_some(65536):
                result.received += data
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        result.closed_by_peer = True
        eof.set()

    try:
        async with trio.open_nursery() as nursery:
            if stream.reads:
                nursery.start_soon(reader)
            try:
                if stream.prefix:
                    await tcp.send_all(stream.prefix)
                    result.sent += len(stream.prefix)
                for pause, chunk in stream.chunks():
                    if pause:
                        await trio.sleep(pause)
                    await tcp.send_all(chunk)
                    result.sent += len(chunk)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                result.closed_by_peer = True
            last_write = trio.current_time()
            if stream.ending == "linger":
                if not stream.reads:
                    nursery.start_soon(reader)
                with trio.move_on_after(linger_limit):
                    await eof.wait()
                if eof.is_set():
                    result.close_after = trio.current_time() - last_write
            elif stream.ending == "reset":
                tcp.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            nursery.cancel_scope.cancel()
    finally:
        await trio.aclose_forcefully(tcp)
    return result


def payload_of(items: Sequence[Segment]) -> bytes:
    return b"".join(s.data for s in items)


# -- a partner daemon tuned for hostile peers (shared with test_security.py) --------------


@asynccontextmanager
async def tuned_partner_daemon(
    tmp_path: Path, *, server: str = "", partners: str = ""
) -> AsyncIterator[tuple[Daemon, int]]:
    """``partner_fixtures.partner_daemon`` with more ``server:`` keys (``server``, YAML
    flow-mapping items such as ``"idle_timeout: 1.0, max_sessions: 50"``) and more
    partner entries (``partners``, YAML list items): the hostile tests need short
    timeouts and limits the shared fixture does not set."""
    server_port = free_port()
    path = write_partner_config(tmp_path, sim_port=free_port(), server_port=server_port)
    text = path.read_text()
    listen = f"server: {{listen: '127.0.0.1:{server_port}', window: 64"
    assert listen in text
    if server:
        text = text.replace(listen, f"{listen}, {server}")
    path.write_text(text + partners)
    daemon = Daemon(load_config(path), path, handle_signals=False, grace=1.0)
    async with trio.open_nursery() as nursery:
        await nursery.start(daemon.run)
        try:
            yield daemon, server_port
        finally:
            daemon.request_stop()


def rss_bytes() -> int:
    """This process's resident set now (Linux ``/proc``), for memory bounds."""
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE")
