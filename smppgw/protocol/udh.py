"""User data headers (3GPP TS 23.040 9.2.3.24): parsing every information element.

A peer's UDH is untrusted input: :func:`parse_udh` checks every length against what is
really there, so malformed headers end in :class:`UdhError` (a ``ValueError`` and a
``PduDecodeError``), never in an ``IndexError``. Every element is kept, known or not,
so that port addressing and the rest can be forwarded with the message.
"""

from __future__ import annotations

from dataclasses import dataclass

from smppgw.protocol.errors import PduDecodeError
from smppgw.protocol.status import CommandStatus

__all__ = [
    "IEI_CONCAT_8BIT",
    "IEI_CONCAT_16BIT",
    "IEI_PORTS_8BIT",
    "IEI_PORTS_16BIT",
    "ConcatInfo",
    "InformationElement",
    "UdhError",
    "UserDataHeader",
    "parse_udh",
]

#: Information element identifiers (3GPP TS 23.040 9.2.3.24).
IEI_CONCAT_8BIT = 0x00
IEI_PORTS_8BIT = 0x04
IEI_PORTS_16BIT = 0x05
IEI_CONCAT_16BIT = 0x08

# The data length each of these IEs must have; other IEs are kept with any length.
_IE_LENGTHS = {IEI_CONCAT_8BIT: 3, IEI_PORTS_8BIT: 2, IEI_PORTS_16BIT: 4, IEI_CONCAT_16BIT: 4}


class UdhError(PduDecodeError, ValueError):
    """A peer's user data header is malformed.

    It answers ``ESME_RINVESMCLASS``: esm_class announced a UDH that the short_message
    does not hold.
    """

    def __init__(self, msg: str) -> None:
        super().__init__(msg, command_status=CommandStatus.ESME_RINVESMCLASS)


@dataclass(frozen=True, slots=True)
class InformationElement:
    """One information element of a UDH: its identifier and data octets."""

    iei: int
    data: bytes


@dataclass(frozen=True, slots=True)
class ConcatInfo:
    """The concatenation IE of a part: ``seq`` of ``total``, under ``reference``."""

    reference: int
    total: int
    seq: int
    wide: bool  # a 16-bit reference (IEI 0x08)


@dataclass(frozen=True, slots=True)
class UserDataHeader:
    """A parsed UDH: every information element in order, and the concatenation one.

    ``concat`` is None when there is no concatenation IE, or when its values are
    impossible (a total of 0, a sequence of 0 or above the total): 23.040 9.2.3.24.1 asks
    a receiver to ignore the IE then, so the part is read as a message of its own.
    When the IE appears more than once, the last one counts (23.040 9.2.3.24).
    """

    elements: tuple[InformationElement, ...]
    concat: ConcatInfo | None

    @property
    def ports(self) -> tuple[int, int] | None:
        """(destination, originator) application ports, if a port IE is present."""
        for element in reversed(self.elements):
            if element.iei in (IEI_PORTS_8BIT, IEI_PORTS_16BIT):
                half = len(element.data) // 2
                return (
                    int.from_bytes(element.data[:half], "big"),
                    int.from_bytes(element.data[half:], "big"),
                )
        return None


def _concat_info(element: InformationElement) -> ConcatInfo | None:
    data = element.data
    if element.iei == IEI_CONCAT_8BIT:
        reference, total, seq, wide = data[0], data[1], data[2], False
    else:
        reference, total, seq, wide = (data[0] << 8) | data[1], data[2], data[3], True
    if total == 0 or not 1 <= seq <= total:
        return None
    return ConcatInfo(reference=reference, total=total, seq=seq, wide=wide)


def parse_udh(short_message: bytes) -> tuple[UserDataHeader, bytes]:
    """Split a short_message sent with esm_class UDHI into its UDH and its payload.

    Every information element is walked and kept, known or not, so that port addressing
    and the rest can be forwarded.

    Raises:
        UdhError: the header is longer than the message, an element runs past the
            header, or a known element (concatenation, ports) has the wrong length.
    """
    if not short_message:
        raise UdhError("UDHI is set but the short_message is empty")
    udhl = short_message[0]
    if udhl + 1 > len(short_message):
        raise UdhError(f"UDH length {udhl} exceeds the {len(short_message) - 1} octets that follow")
    header = short_message[1 : udhl + 1]
    elements: list[InformationElement] = []
    concat: ConcatInfo | None = None
    i = 0
    while i < udhl:
        if i + 2 > udhl:
            raise UdhError(f"information element at offset {i} has no length octet")
        iei, iedl = header[i], header[i + 1]
        if i + 2 + iedl > udhl:
            raise UdhError(f"information element 0x{iei:02X} at offset {i} runs past the UDH")
        expected = _IE_LENGTHS.get(iei)
        if expected is not None and iedl != expected:
            raise UdhError(f"information element 0x{iei:02X} has length {iedl}, not {expected}")
        element = InformationElement(iei, bytes(header[i + 2 : i + 2 + iedl]))
        elements.append(element)
        if iei in (IEI_CONCAT_8BIT, IEI_CONCAT_16BIT):
            concat = _concat_info(element)
        i += 2 + iedl
    return UserDataHeader(tuple(elements), concat), short_message[udhl + 1 :]
