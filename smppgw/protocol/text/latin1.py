"""ISO-8859-1 (Latin-1), SMPP data_coding 3: one octet per character.

Few carriers deliver it faithfully to handsets, so :mod:`~smppgw.protocol.text.choose`
uses it only when the caller says the carrier does. Every octet is a Latin-1 character,
so decoding cannot fail.
"""

from __future__ import annotations

from smppgw.protocol.text.errors import TextEncodeError

__all__ = ["decode", "encode", "is_encodable"]


def is_encodable(text: str) -> bool:
    """Whether every character of ``text`` is in U+0000..U+00FF."""
    return not text or max(text) <= "\xff"


def encode(text: str) -> bytes:
    """Encode ``text`` as Latin-1.

    Raises:
        TextEncodeError: a character is above U+00FF; the error names the first one.
    """
    try:
        return text.encode("latin-1")
    except UnicodeEncodeError as exc:
        raise TextEncodeError("latin1", text[exc.start], exc.start) from None


def decode(data: bytes) -> str:
    """Decode Latin-1 octets; never raises."""
    return data.decode("latin-1")
