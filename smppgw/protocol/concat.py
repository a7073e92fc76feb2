"""Concatenated messages: splitting long ones into parts, and reassembling incoming parts.

Theory of operation
-------------------
Sending: encode the text (:func:`smppgw.protocol.text.choose_encoding`), then
:func:`split_message` cuts the payload along :func:`smppgw.protocol.text.part_bounds`
(never inside a GSM escape pair or a surrogate pair) and returns plain
:class:`Segment` values. The PDU layer copies them into ``submit_sm`` fields: the
short_message, esm_class UDHI (0x40) when :attr:`Segment.udhi` is set, the ``sar_*``
TLVs, or the ``message_payload`` TLV. This module knows no PDU class on purpose.
The caller chooses the reference number, so that it can keep a counter per
destination and replay a journaled message with the same reference.

Receiving: :func:`incoming_part` turns what a peer sent (a short_message with or
without UDH, parsed by :mod:`smppgw.protocol.udh`; ``sar_*`` values) into a
:class:`Part`; :class:`Reassembler` collects parts
until their message is whole. A message that was never split is a part 1 of 1 and comes
straight back, so a caller can feed every message through it.

The reassembler holds a remote peer's data, so it is bounded: a group expires
``timeout`` seconds after its *first* part (a trickle of parts cannot keep it alive),
and past ``max_groups`` groups or ``max_bytes`` buffered octets the oldest group is
evicted. Both are counted in :meth:`Reassembler.statistics`. Time is the ``now`` the
caller passes: this module reads no clock.
"""

from __future__ import annotations

from dataclasses import dataclass

from smppgw.protocol.errors import PduDecodeError, PduEncodeError
from smppgw.protocol.status import CommandStatus
from smppgw.protocol.text.parts import (
    MAX_PARTS,
    MAX_PAYLOAD,
    SplitMode,
    part_bounds,
    unit_kind,
)
from smppgw.protocol.udh import (
    IEI_CONCAT_8BIT,
    IEI_CONCAT_16BIT,
    IEI_PORTS_8BIT,
    IEI_PORTS_16BIT,
    ConcatInfo,
    InformationElement,
    UdhError,
    UserDataHeader,
    parse_udh,
)

__all__ = [
    "IEI_CONCAT_8BIT",
    "IEI_CONCAT_16BIT",
    "IEI_PORTS_8BIT",
    "IEI_PORTS_16BIT",
    "ConcatError",
    "ConcatInfo",
    "InformationElement",
    "Part",
    "Reassembled",
    "Reassembler",
    "ReassemblerStatistics",
    "Segment",
    "SegmentError",
    "UdhError",
    "UserDataHeader",
    "concat_udh",
    "incoming_part",
    "parse_udh",
    "split_message",
]


class ConcatError(PduEncodeError, ValueError):
    """A message cannot be split as asked: too many parts, or a reference out of range."""

    def __init__(self, msg: str) -> None:
        super().__init__(msg, command_status=CommandStatus.ESME_RINVMSGLEN)


class SegmentError(PduDecodeError, ValueError):
    """A peer's ``sar_*`` values are impossible (a part 0, or part 3 of 2)."""

    def __init__(self, msg: str) -> None:
        super().__init__(msg, command_status=CommandStatus.ESME_RINVOPTPARAMVAL)


def concat_udh(reference: int, total: int, seq: int, *, wide: bool = False) -> bytes:
    """The UDH of one part: ``05 00 03 ref total seq`` or ``06 08 04 refhi reflo total seq``.

    Raises:
        ConcatError: a value out of range.
    """
    if not 1 <= total <= MAX_PARTS or not 1 <= seq <= total:
        raise ConcatError(f"part {seq} of {total} is out of range (1..{MAX_PARTS})")
    if wide:
        _check_reference(reference, 0xFFFF)
        return bytes((6, IEI_CONCAT_16BIT, 4, reference >> 8, reference & 0xFF, total, seq))
    _check_reference(reference, 0xFF)
    return bytes((5, IEI_CONCAT_8BIT, 3, reference, total, seq))


def _check_reference(reference: int, maximum: int) -> None:
    if not 0 <= reference <= maximum:
        raise ConcatError(f"reference {reference} is out of range 0..{maximum}")


# --------------------------------------------------------------------------- splitting


@dataclass(frozen=True, slots=True)
class Segment:
    """One submit_sm's worth of a message, in plain values for the PDU layer to copy.

    Attributes:
        short_message: the short_message field, UDH included when ``udhi`` is set
            (empty when the data travels in ``message_payload``).
        udhi: set esm_class UDHI (0x40).
        sar_ref, sar_total, sar_seq: the ``sar_*`` TLV values, or None.
        message_payload: the ``message_payload`` TLV value, or None.
    """

    short_message: bytes
    udhi: bool = False
    sar_ref: int | None = None
    sar_total: int | None = None
    sar_seq: int | None = None
    message_payload: bytes | None = None


def split_message(
    payload: bytes,
    data_coding: int,
    mode: SplitMode = SplitMode.UDH8,
    *,
    reference: int = 0,
    room: SplitMode | None = None,
) -> tuple[Segment, ...]:
    """Cut an encoded payload into the segments to submit.

    A payload that fits one SMS is one plain segment (no UDH, no TLV) in every mode
    except ``PAYLOAD``, which always sends the whole payload in ``message_payload``.

    Args:
        payload: the encoded text (GSM unpacked) or binary data.
        data_coding: its data_coding, which decides capacities and safe cut points.
        mode: UDH with an 8- or 16-bit reference, ``sar_*`` TLVs, or ``message_payload``.
        reference: the concatenation reference: 0..255 for ``UDH8``, 0..65535 otherwise.
        room: cut as parts of this mode hold (default: ``mode``'s own room). The gateway
            journals parts with an 8-bit UDH cut to ``UDH16``'s room when some carrier
            wants a 16-bit reference, so that one cut fits every carrier.

    Raises:
        ConcatError: more than 255 parts, a payload over 65535 octets in ``PAYLOAD``
            mode, or a reference out of range.
    """
    if mode is SplitMode.PAYLOAD:
        if len(payload) > MAX_PAYLOAD:
            raise ConcatError(f"payload of {len(payload)} octets exceeds {MAX_PAYLOAD}")
        return (Segment(b"", message_payload=payload),)
    _check_reference(reference, 0xFF if mode is SplitMode.UDH8 else 0xFFFF)
    bounds = part_bounds(payload, unit_kind(data_coding), room or mode)
    total = len(bounds)
    if total == 1:
        return (Segment(payload),)
    if total > MAX_PARTS:
        raise ConcatError(f"message needs {total} parts, more than {MAX_PARTS}")
    if mode is SplitMode.SAR:
        return tuple(
            Segment(payload[start:end], sar_ref=reference, sar_total=total, sar_seq=seq)
            for seq, (start, end) in enumerate(bounds, 1)
        )
    wide = mode is SplitMode.UDH16
    return tuple(
        Segment(concat_udh(reference, total, seq, wide=wide) + payload[start:end], udhi=True)
        for seq, (start, end) in enumerate(bounds, 1)
    )


# --------------------------------------------------------------------------- reassembly


@dataclass(frozen=True, slots=True)
class Part:
    """One received part, identified by its group key and its sequence number.

    ``elements`` are the part's UDH information elements other than concatenation
    (port addressing, ...), kept so that the whole message can be routed by them.
    """

    source: str
    destination: str
    reference: int
    total: int
    seq: int
    payload: bytes
    elements: tuple[InformationElement, ...] = ()

    @property
    def key(self) -> tuple[str, str, int, int]:
        """The group this part belongs to: (source, destination, reference, total)."""
        return (self.source, self.destination, self.reference, self.total)


def incoming_part(
    source: str,
    destination: str,
    short_message: bytes,
    *,
    udhi: bool = False,
    sar_ref: int | None = None,
    sar_total: int | None = None,
    sar_seq: int | None = None,
) -> Part:
    """Read what a peer sent as a :class:`Part`; a message never split is part 1 of 1.

    The UDH is used when ``udhi`` is set and holds a valid concatenation IE; otherwise
    the three ``sar_*`` values when all are given; otherwise the message stands alone.
    For ``message_payload`` messages pass the payload as ``short_message``.

    Raises:
        UdhError: ``udhi`` is set and the UDH is malformed.
        SegmentError: the ``sar_*`` values are impossible, or only some are given.
    """
    elements: tuple[InformationElement, ...] = ()
    payload = short_message
    if udhi:
        udh, payload = parse_udh(short_message)
        elements = tuple(
            e for e in udh.elements if e.iei not in (IEI_CONCAT_8BIT, IEI_CONCAT_16BIT)
        )
        if udh.concat is not None:
            c = udh.concat
            return Part(source, destination, c.reference, c.total, c.seq, payload, elements)
    sar = (sar_ref, sar_total, sar_seq)
    if sar_ref is not None and sar_total is not None and sar_seq is not None:
        if not 0 <= sar_ref <= 0xFFFF or not 1 <= sar_total <= MAX_PARTS:
            raise SegmentError(f"sar_msg_ref_num {sar_ref} / sar_total_segments {sar_total}")
        if not 1 <= sar_seq <= sar_total:
            raise SegmentError(f"sar_segment_seqnum {sar_seq} of {sar_total}")
        return Part(source, destination, sar_ref, sar_total, sar_seq, payload, elements)
    if any(value is not None for value in sar):
        raise SegmentError("sar_msg_ref_num, sar_total_segments and sar_segment_seqnum go together")
    return Part(source, destination, 0, 1, 1, payload, elements)


@dataclass(frozen=True, slots=True)
class Reassembled:
    """A whole message: its parts' payloads joined in order.

    The payloads are joined *before* decoding, so that an escape or surrogate pair a
    sloppy sender cut in two comes back whole. ``elements`` are those of part 1.
    """

    source: str
    destination: str
    reference: int
    total: int
    payload: bytes
    elements: tuple[InformationElement, ...]


@dataclass(frozen=True, slots=True)
class ReassemblerStatistics:
    """Counters since creation, and what is pending now."""

    pending_groups: int
    pending_bytes: int
    completed: int
    duplicates: int
    expired: int
    evicted: int


@dataclass(slots=True)
class _Group:
    deadline: float
    parts: dict[int, Part]
    size: int


class Reassembler:
    """Collects parts, in any order, into whole messages; sans-I/O and bounded.

    Args:
        timeout: seconds after its first part that an incomplete group is dropped.
        max_groups: incomplete groups held at most; the oldest is evicted beyond.
        max_bytes: payload octets held at most; the oldest groups are evicted beyond.

    The caller calls :meth:`expire` at :meth:`next_deadline` (or whenever it likes);
    :meth:`add` also drops an expired group before adding to its key, so a late part
    never completes a group that has timed out. ``now`` must not go backwards.
    """

    def __init__(
        self, *, timeout: float = 300.0, max_groups: int = 10_000, max_bytes: int = 8 << 20
    ) -> None:
        if timeout <= 0 or max_groups < 1 or max_bytes < 1:
            raise ValueError("timeout, max_groups and max_bytes must be positive")
        self._timeout = timeout
        self._max_groups = max_groups
        self._max_bytes = max_bytes
        # Insertion order is creation order, hence deadline order: the oldest group is
        # always first, for eviction and for expiry alike.
        self._groups: dict[tuple[str, str, int, int], _Group] = {}
        self._bytes = 0
        self._completed = 0
        self._duplicates = 0
        self._expired = 0
        self._evicted = 0

    def add(self, part: Part, now: float) -> Reassembled | None:
        """Add one part; return the whole message if this part completed it.

        A part whose sequence number its group already holds is a duplicate (a peer
        retrying after a lost response): it is ignored and counted, the first copy kept.
        """
        if part.total == 1:
            self._completed += 1
            return Reassembled(
                part.source, part.destination, part.reference, 1, part.payload, part.elements
            )
        key = part.key
        group = self._groups.get(key)
        if group is not None and group.deadline <= now:
            self._drop(key)
            self._expired += 1
            group = None
        if group is None:
            group = _Group(deadline=now + self._timeout, parts={}, size=0)
            self._groups[key] = group
        elif part.seq in group.parts:
            self._duplicates += 1
            return None
        group.parts[part.seq] = part
        group.size += len(part.payload)
        self._bytes += len(part.payload)
        if len(group.parts) == part.total:
            self._drop(key)
            self._completed += 1
            ordered = [group.parts[seq] for seq in range(1, part.total + 1)]
            return Reassembled(
                part.source,
                part.destination,
                part.reference,
                part.total,
                b"".join(p.payload for p in ordered),
                ordered[0].elements,
            )
        self._enforce_bounds()
        return None

    def expire(self, now: float) -> list[tuple[str, str, int, int]]:
        """Drop the groups whose deadline has come; return their keys (to log them)."""
        expired: list[tuple[str, str, int, int]] = []
        while self._groups:
            key, group = next(iter(self._groups.items()))
            if group.deadline > now:
                break
            self._drop(key)
            expired.append(key)
        self._expired += len(expired)
        return expired

    def next_deadline(self) -> float | None:
        """When the oldest incomplete group expires, or None if there is none."""
        for group in self._groups.values():
            return group.deadline
        return None

    def statistics(self) -> ReassemblerStatistics:
        """The counters, for a metrics collector to read at scrape time."""
        return ReassemblerStatistics(
            pending_groups=len(self._groups),
            pending_bytes=self._bytes,
            completed=self._completed,
            duplicates=self._duplicates,
            expired=self._expired,
            evicted=self._evicted,
        )

    def _drop(self, key: tuple[str, str, int, int]) -> None:
        group = self._groups.pop(key)
        self._bytes -= group.size

    def _enforce_bounds(self) -> None:
        while self._groups and (
            len(self._groups) > self._max_groups or self._bytes > self._max_bytes
        ):
            self._drop(next(iter(self._groups)))
            self._evicted += 1
