"""MO in parts, put back together before the keyword is read.

A subscriber's long text ("DK Nguyen Van An, 12 Le Loi, Quan 1..." or a feedback
message) reaches us as 2-N ``deliver_sm``, each with a concatenation UDH (or the
``sar_*`` TLVs). Read part by part, part 1 ran the scenario with half the text and
every other part got the help reply (its first word is no keyword). Here the parts of
one message wait for each other (each is journaled and acknowledged to the carrier
already) and the scenario gets the whole text once, as one MO.

Exactly once holds as for any MO: the step that handles the whole message marks every
part's ``inbound`` row processed in its own transaction. Parts are kept in memory only:
after a restart the journal's unprocessed parts are replayed in order and meet again.

Bounded: a message whose missing parts do not come within ``timeout`` is handled with
the parts that came (their texts joined in order: better half a message than none),
and so is the oldest waiting message when ``max_groups`` are waiting.

Sans-I/O: the caller feeds parts with the time and asks for the expired ones at
:meth:`MoAssembler.next_deadline`.
"""

from __future__ import annotations

import dataclasses
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from smppgw.protocol.concat import Part, incoming_part
from smppgw.protocol.errors import PduDecodeError
from smppgw.protocol.tlv import Tag, Tlv

if TYPE_CHECKING:
    from smppgw.protocol.pdus import DeliverSm

__all__ = ["MoAssembler", "WholeMo", "part_of"]

#: Octets that fit ``short_message``; a longer whole text goes in ``message_payload``.
_SHORT_MESSAGE_MAX = 254
_PART_TAGS = frozenset(
    {Tag.SAR_MSG_REF_NUM, Tag.SAR_TOTAL_SEGMENTS, Tag.SAR_SEGMENT_SEQNUM, Tag.MESSAGE_PAYLOAD}
)


def part_of(pdu: DeliverSm) -> Part | None:
    """The part ``pdu`` is of a message in 2 or more parts; None for a whole message
    (or one whose UDH or ``sar_*`` values cannot be read: it is handled as it is)."""
    payload = pdu.short_message or pdu.tlv_octets(Tag.MESSAGE_PAYLOAD) or b""
    try:
        part = incoming_part(
            pdu.source_addr.strip(),
            pdu.destination_addr.strip(),
            payload,
            udhi=bool(pdu.esm_class & 0x40),
            sar_ref=pdu.tlv_int(Tag.SAR_MSG_REF_NUM),
            sar_total=pdu.tlv_int(Tag.SAR_TOTAL_SEGMENTS),
            sar_seq=pdu.tlv_int(Tag.SAR_SEGMENT_SEQNUM),
        )
    except (PduDecodeError, ValueError):
        return None
    return part if part.total > 1 else None


@dataclass(frozen=True, slots=True)
class WholeMo:
    """A message put together: ``pdu`` carries the whole text (no UDH, no ``sar_*``);
    ``inbound_ids`` are every part's journal row, the first part's first."""

    inbound_ids: tuple[int, ...]
    pdu: DeliverSm
    complete: bool
    #: A part of a message already handled, come again: only to be marked processed.
    repeat: bool = False


@dataclass(slots=True)
class _Group:
    deadline: float
    total: int
    #: seq -> (inbound id, the part's PDU, its payload without the UDH)
    parts: dict[int, tuple[int, DeliverSm, bytes]] = field(default_factory=dict)
    #: Inbound ids of repeated parts: processed with the message, never on their own.
    repeats: list[int] = field(default_factory=list)


class MoAssembler:
    def __init__(self, *, timeout: float = 60.0, max_groups: int = 10_000) -> None:
        if timeout <= 0 or max_groups < 1:
            raise ValueError("timeout and max_groups must be positive")
        self._timeout = timeout
        self._max_groups = max_groups
        # Insertion order is arrival order, hence deadline order.
        self._groups: dict[tuple[str, str, int, int], _Group] = {}
        #: Messages handled lately (key -> until when): a part of one that comes again
        #: is a repeat, not the start of a new message.
        self._done: OrderedDict[tuple[str, str, int, int], float] = OrderedDict()

    @property
    def waiting(self) -> int:
        """Messages waiting for parts."""
        return len(self._groups)

    def add(self, inbound_id: int, pdu: DeliverSm, part: Part, now: float) -> list[WholeMo]:
        """Keep a part; the messages this completes (or pushes out), ready to handle."""
        ready = self.expire(now)
        while self._done and next(iter(self._done.values())) <= now:
            self._done.popitem(last=False)
        group = self._groups.get(part.key)
        if group is None and part.key in self._done:
            ready.append(WholeMo((inbound_id,), pdu, complete=True, repeat=True))
            return ready
        if group is None:
            group = self._groups[part.key] = _Group(now + self._timeout, part.total)
        if part.seq in group.parts:
            group.repeats.append(inbound_id)
        else:
            group.parts[part.seq] = (inbound_id, pdu, part.payload)
        if len(group.parts) == group.total:
            del self._groups[part.key]
            ready.append(_whole(group, complete=True))
            self._done[part.key] = now + self._timeout
            if len(self._done) > self._max_groups:
                self._done.popitem(last=False)
        while len(self._groups) > self._max_groups:
            oldest = next(iter(self._groups))
            ready.append(_whole(self._groups.pop(oldest), complete=False))
        return ready

    def expire(self, now: float) -> list[WholeMo]:
        """The messages whose missing parts did not come in time, with what came."""
        ready: list[WholeMo] = []
        while self._groups:
            key, group = next(iter(self._groups.items()))
            if group.deadline > now:
                break
            del self._groups[key]
            ready.append(_whole(group, complete=False))
        return ready

    def next_deadline(self) -> float | None:
        for group in self._groups.values():
            return group.deadline
        return None


def _whole(group: _Group, *, complete: bool) -> WholeMo:
    seqs = sorted(group.parts)
    first_id, first, _ = group.parts[seqs[0]]
    text = b"".join(group.parts[s][2] for s in seqs)
    tlvs = tuple(t for t in first.tlvs if t.tag not in _PART_TAGS)
    if len(text) > _SHORT_MESSAGE_MAX:
        tlvs += (Tlv(Tag.MESSAGE_PAYLOAD, text),)
        text = b""
    pdu = dataclasses.replace(
        first, esm_class=first.esm_class & ~0x40, short_message=text, tlvs=tlvs
    )
    ids = (first_id, *(group.parts[s][0] for s in seqs[1:]), *group.repeats)
    return WholeMo(ids, pdu, complete)
