"""UCS2 as SMPP means it with data_coding 8: UTF-16BE, no byte order mark.

Strictly UCS2 has no characters beyond the BMP, but every handset and SMSC in use reads
the octets as UTF-16, so an emoji travels as a surrogate pair (two code units, four
octets). Lengths and split points are therefore counted in *code units*, and a split
must never separate the two halves of a pair (see :mod:`smppgw.protocol.text.parts`).

Decoding is tolerant: a peer's malformed octets become U+FFFD instead of an error, so a
message is delivered with a visible mark where data was lost. That covers a lone
surrogate and an odd trailing octet (one half of a code unit, seen from SMSCs that cut
UCS2 messages at an odd length): the half unit decodes as a single U+FFFD.
"""

from __future__ import annotations

from smppgw.protocol.text.errors import TextEncodeError

__all__ = ["code_units", "decode", "encode"]


def encode(text: str) -> bytes:
    """Encode ``text`` as UTF-16BE without BOM; astral characters become surrogate pairs.

    Raises:
        TextEncodeError: ``text`` holds a lone surrogate code point (only possible for a
            ``str`` built from broken data), which has no UTF-16 encoding.
    """
    try:
        return text.encode("utf-16-be")
    except UnicodeEncodeError as exc:
        raise TextEncodeError("ucs2", text[exc.start], exc.start) from None


def decode(data: bytes) -> str:
    """Decode UTF-16BE octets; never raises (see the module notes)."""
    return data.decode("utf-16-be", errors="replace")


def code_units(text: str) -> int:
    """The number of UTF-16 code units of ``text``: astral characters count two."""
    return len(text) + sum(1 for ch in text if ord(ch) > 0xFFFF)
