"""How many SMS a message takes, and where it is cut: capacities per encoding and mode.

One SMS carries 140 octets of user data on the air interface. Without a header that is
160 GSM septets, 70 UCS2 code units or 140 octets. A concatenated part loses room to
its user data header (UDH): 6 octets with an 8-bit reference (153 septets, 67 units,
134 octets), 7 with a 16-bit one (152 septets, 66 units, 133 octets). Septet counts
include the fill bit that aligns the text after the UDH.

The counts here are in the octets of the SMPP encoding, where GSM text is *unpacked*
(one septet per octet), so a capacity of 153 septets is 153 octets of payload.

Cuts never separate what belongs together:

- a GSM escape (0x1B) from the septet after it: the escape and its code are one
  character, and an escape left at the end of a part would decode as a stray space;
- the high and the low half of a UTF-16 surrogate pair.

A part may therefore hold one unit less than its capacity, which is why the number of
parts is computed by cutting (:func:`part_bounds`), not by dividing.

With ``sar_*`` TLVs the parts carry no UDH over SMPP, but the SMSC adds the 8-bit
concatenation header on the air interface, so they get the same room as :attr:`UDH8`
parts (the common practice, Jasmin's among others). A ``message_payload`` goes over SMPP
whole; its part count is the SMSC's split, estimated as :attr:`UDH8`'s.
"""

from __future__ import annotations

import enum

__all__ = [
    "DC_BINARY",
    "DC_DEFAULT",
    "DC_IA5",
    "DC_LATIN1",
    "DC_OCTET",
    "DC_UCS2",
    "MAX_PARTS",
    "MAX_PAYLOAD",
    "SplitMode",
    "UnitKind",
    "count_parts",
    "fits_one_sms",
    "multi_capacity",
    "part_bounds",
    "single_capacity",
    "unit_kind",
]

#: SMPP 3.4 data_coding values (section 5.2.19) that this package treats specially.
DC_DEFAULT = 0x00  # SMSC default alphabet: GSM 03.38 for every SMSC we know
DC_IA5 = 0x01
DC_OCTET = 0x02
DC_LATIN1 = 0x03
DC_BINARY = 0x04
DC_UCS2 = 0x08

#: The concatenation references of SMS (8-bit total and sequence) allow no more parts.
MAX_PARTS = 255
#: The largest ``message_payload`` TLV value (its length field is 16 bits).
MAX_PAYLOAD = 0xFFFF


class UnitKind(enum.Enum):
    """What one unit of a payload is, which decides capacities and safe cut points."""

    SEPTET = "septet"  # unpacked GSM: one octet per septet, escape pairs
    UCS2 = "ucs2"  # UTF-16BE: two octets per unit, surrogate pairs
    OCTET = "octet"  # Latin-1, binary and the rest: one octet, cut anywhere


class SplitMode(enum.Enum):
    """How the parts of a long message travel over SMPP."""

    UDH8 = "udh8"  # UDH with IEI 0x00: 8-bit reference, esm_class UDHI
    UDH16 = "udh16"  # UDH with IEI 0x08: 16-bit reference, esm_class UDHI
    SAR = "sar"  # sar_msg_ref_num / sar_total_segments / sar_segment_seqnum TLVs
    PAYLOAD = "payload"  # one message_payload TLV, the SMSC splits


def unit_kind(data_coding: int) -> UnitKind:
    """The unit kind of a data_coding (SMPP 3.4 5.2.19, GSM 23.038 section 4).

    0x00 and the GSM-alphabet groups (0xC0-0xDF message waiting, 0xF0-0xFF with bit 2
    clear) are septets; 0x08 and 0xE0-0xEF are UCS2. Everything else is octets: for the
    double-byte Asian codings (0x05, 0x0D, 0x0E) that may cut a character in two, which we
    accept as we have no carrier that uses them.
    """
    if data_coding == DC_DEFAULT or 0xC0 <= data_coding <= 0xDF:
        return UnitKind.SEPTET
    if data_coding >= 0xF0:
        return UnitKind.OCTET if data_coding & 0x04 else UnitKind.SEPTET
    if data_coding == DC_UCS2 or 0xE0 <= data_coding <= 0xEF:
        return UnitKind.UCS2
    return UnitKind.OCTET


_SINGLE = {UnitKind.SEPTET: 160, UnitKind.UCS2: 140, UnitKind.OCTET: 140}
_MULTI_UDH8 = {UnitKind.SEPTET: 153, UnitKind.UCS2: 134, UnitKind.OCTET: 134}
# 133 octets hold 66 whole UCS2 units: 132 octets.
_MULTI_UDH16 = {UnitKind.SEPTET: 152, UnitKind.UCS2: 132, UnitKind.OCTET: 133}


def single_capacity(kind: UnitKind) -> int:
    """Payload octets (unpacked septets) of a message that is not concatenated."""
    return _SINGLE[kind]


def fits_one_sms(header_octets: int, user_octets: int, kind: UnitKind) -> bool:
    """Whether a UDH and user data of these sizes (SMPP encoding: GSM unpacked) fit one
    SMS: septets after a header start at a septet boundary (the fill bits)."""
    if kind is UnitKind.SEPTET:
        return -(-header_octets * 8 // 7) + user_octets <= _SINGLE[kind]
    return header_octets + user_octets <= _SINGLE[UnitKind.OCTET]


def multi_capacity(kind: UnitKind, mode: SplitMode) -> int:
    """Payload octets (unpacked septets) of one part of a concatenated message."""
    return (_MULTI_UDH16 if mode is SplitMode.UDH16 else _MULTI_UDH8)[kind]


def _escape_prefix_at(payload: bytes, index: int) -> bool:
    """Whether ``payload[index]`` is an escape that opens a pair (not the second of one).

    In a run of escapes, counted from its start, the 1st, 3rd, ... open a pair: the octet
    before the run is not an escape, so the run starts a fresh character.
    """
    if payload[index] != 0x1B:
        return False
    start = index
    while start > 0 and payload[start - 1] == 0x1B:
        start -= 1
    return (index - start) % 2 == 0


def _safe_end(payload: bytes, end: int, kind: UnitKind) -> int:
    """Move a cut at ``end`` back so that it separates no escape or surrogate pair."""
    if kind is UnitKind.SEPTET:
        if _escape_prefix_at(payload, end - 1):
            return end - 1
    elif kind is UnitKind.UCS2 and 0xD8 <= payload[end - 2] <= 0xDB:
        return end - 2  # the unit before the cut is a high surrogate
    return end


def part_bounds(
    payload: bytes, kind: UnitKind, mode: SplitMode = SplitMode.UDH8
) -> list[tuple[int, int]]:
    """The ``(start, end)`` octet ranges of the parts ``payload`` is cut into.

    A payload that fits one message is one part (an empty payload too). The result is
    what :func:`smppgw.protocol.concat.split_message` cuts along, and its length is what
    :func:`count_parts` returns. ``PAYLOAD`` mode is cut as ``UDH8``: see the module notes.
    """
    n = len(payload)
    if n <= _SINGLE[kind]:
        return [(0, n)]
    cap = multi_capacity(kind, mode)
    bounds: list[tuple[int, int]] = []
    start = 0
    while n - start > cap:
        end = _safe_end(payload, start + cap, kind)
        bounds.append((start, end))
        start = end
    bounds.append((start, n))
    return bounds


def count_parts(payload: bytes, data_coding: int, mode: SplitMode = SplitMode.UDH8) -> int:
    """How many SMS ``payload`` (encoded for ``data_coding``) takes when sent in ``mode``."""
    kind = unit_kind(data_coding)
    if len(payload) <= _SINGLE[kind]:
        return 1
    if kind is UnitKind.SEPTET and 0x1B not in payload:
        return -(-len(payload) // multi_capacity(kind, mode))
    return len(part_bounds(payload, kind, mode))
