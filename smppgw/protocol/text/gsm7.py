"""The GSM 03.38 (3GPP TS 23.038) default alphabet, as SMPP carries it with data_coding 0.

SMPP sends GSM text *unpacked*: one septet per octet, ``@`` being 0x00. The 7-bit
*packing* of the air interface is the SMSC's business; :func:`pack_septets` and
:func:`unpack_septets` are here for the few SMSCs and UDH cases that want packed octets.

The ten characters of the extension table (``^{}\\[~]|€`` and form feed) take two
septets: the escape 0x1B, then their code. They therefore count twice towards the 160
septets of a message (:func:`septet_length`), and an escape pair must never be cut in two
when a message is split (see :mod:`smppgw.protocol.text.parts`).

Encoding is strict (:class:`TextEncodeError` names the character and its index), because
sending the wrong character is worse than choosing another alphabet. Decoding is
tolerant, because a peer's message must be delivered even when slightly wrong:

- an escape followed by a code the extension table does not define decodes as that
  code's character in the basic table, as 23.038 asks of a receiver;
- escape, escape (the code reserved for a further extension table) decodes as a space,
  as 23.038 asks "until another extension table is defined"; a lone escape at the end
  also decodes as a space;
- an octet above 0x7F cannot be a septet. We decode it as U+FFFD rather than masking
  the top bit: a masked octet would silently become a *different* plausible character
  (often from Latin-1 text mislabelled as GSM), while U+FFFD shows that data was lost.
"""

from __future__ import annotations

from smppgw.protocol.text.errors import TextDecodeError, TextEncodeError

__all__ = [
    "BASIC_TABLE",
    "ESCAPE",
    "EXTENSION_TABLE",
    "decode",
    "encode",
    "is_encodable",
    "pack_septets",
    "septet_length",
    "unpack_septets",
]

#: The escape to the extension table (23.038 6.2.1.1).
ESCAPE = 0x1B

#: The basic table, indexed by septet. Index 0x1B is the escape, not a character: it is
#: held as U+001B here only to keep the indices right, and is neither encoded nor decoded
#: as itself.
BASIC_TABLE = (
    "@£$¥èéùìòÇ\nØø\rÅå"
    "Δ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ"
    " !\"#¤%&'()*+,-./"
    "0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNO"
    "PQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmno"
    "pqrstuvwxyzäöñüà"
)
assert len(BASIC_TABLE) == 128

#: The extension table (23.038 6.2.1.1): septet after the escape -> character.
EXTENSION_TABLE: dict[int, str] = {
    0x0A: "\x0c",  # form feed (page break)
    0x14: "^",
    0x28: "{",
    0x29: "}",
    0x2F: "\\",
    0x3C: "[",
    0x3D: "~",
    0x3E: "]",
    0x40: "|",
    0x65: "€",
}

_EXTENSION_CHARS = frozenset(EXTENSION_TABLE.values())

# Encoding goes through str.translate, which runs in C: every encodable character maps to
# the one or two code points U+0000..U+007F of its septets; every ASCII character that is
# *not* encodable maps to U+0080 so that it, like any unmapped non-ASCII character, makes
# the result non-ASCII. ``translated.isascii()`` then answers "encodable?" in one pass.
_UNENCODABLE = "\x80"
_ENCODE_TABLE: dict[int, str] = {code: _UNENCODABLE for code in range(128)}
_ENCODE_TABLE.update({ord(ch): chr(i) for i, ch in enumerate(BASIC_TABLE) if i != ESCAPE})
_ENCODE_TABLE.update({ord(ch): chr(ESCAPE) + chr(code) for code, ch in EXTENSION_TABLE.items()})

# Decoding of escape-free octets also runs through translate, on their Latin-1 reading.
_DECODE_TABLE: dict[int, str] = {i: ch for i, ch in enumerate(BASIC_TABLE)}
_DECODE_TABLE.update({i: "\ufffd" for i in range(128, 256)})


def is_encodable(text: str) -> bool:
    """Whether every character of ``text`` is in the basic or extension table."""
    return text.translate(_ENCODE_TABLE).isascii()


def encode(text: str) -> bytes:
    """Encode ``text`` as unpacked GSM 03.38 septets, one per octet.

    Raises:
        TextEncodeError: a character is in neither table; the error names the first one
            and its index.
    """
    translated = text.translate(_ENCODE_TABLE)
    if not translated.isascii():
        for index, char in enumerate(text):
            if not char.translate(_ENCODE_TABLE).isascii():
                raise TextEncodeError("gsm7", char, index)
    return translated.encode("ascii")


def septet_length(text: str) -> int:
    """The number of septets ``text`` takes: extension characters count two.

    Raises:
        TextEncodeError: ``text`` is not encodable, as for :func:`encode`.
    """
    return len(encode(text))


def decode(data: bytes) -> str:
    """Decode unpacked GSM 03.38 septets; never raises (see the module notes)."""
    if ESCAPE not in data:
        return data.decode("latin-1").translate(_DECODE_TABLE)
    out: list[str] = []
    i = 0
    n = len(data)
    while i < n:
        septet = data[i]
        if septet != ESCAPE:
            out.append(_DECODE_TABLE[septet])
            i += 1
            continue
        if i + 1 >= n:
            out.append(" ")  # a lone escape at the very end
            break
        code = data[i + 1]
        if code in EXTENSION_TABLE:
            out.append(EXTENSION_TABLE[code])
        elif code == ESCAPE:
            out.append(" ")  # escape to a further extension table: none is defined
        else:
            out.append(_DECODE_TABLE[code])  # unknown extension: the basic character
        i += 2
    return "".join(out)


def pack_septets(septets: bytes, fill_bits: int = 0) -> bytes:
    """Pack septets (values 0..127) into octets, least significant bit first (23.038 6.1.2.1).

    Args:
        septets: the unpacked septets, as :func:`encode` returns them.
        fill_bits: 0..6 zero bits put before the first septet, so that text after a UDH
            starts on a septet boundary (23.040 9.2.3.24).

    Raises:
        ValueError: a value above 0x7F, or ``fill_bits`` out of range.
    """
    if not 0 <= fill_bits <= 6:
        raise ValueError(f"fill_bits must be 0..6, not {fill_bits}")
    if not septets.isascii():
        raise ValueError("septets must be 0..127")
    bits = fill_bits + 7 * len(septets)
    # One big integer holds the whole bit stream: simple, and fast for 160-septet texts.
    value = 0
    for i, septet in enumerate(septets):
        value |= septet << (fill_bits + 7 * i)
    return value.to_bytes((bits + 7) // 8, "little")


def unpack_septets(data: bytes, count: int | None = None, fill_bits: int = 0) -> bytes:
    """Unpack octets into septets, one per octet; the inverse of :func:`pack_septets`.

    Args:
        data: the packed octets.
        count: how many septets to read. Pass it whenever it is known (the TP-UDL):
            seven spare bits at the end are otherwise indistinguishable from an ``@``.
            When it is ``None``, every whole septet is read, and a final CR that ends
            exactly on an octet boundary is dropped: 23.038 tells senders to fill seven
            spare bits with CR (and to double a wanted final CR there).
        fill_bits: 0..6 bits to skip before the first septet.

    Raises:
        ValueError: ``fill_bits`` out of range.
        TextDecodeError: ``count`` asks for more septets than ``data`` holds.
    """
    if not 0 <= fill_bits <= 6:
        raise ValueError(f"fill_bits must be 0..6, not {fill_bits}")
    available = max(0, (8 * len(data) - fill_bits) // 7)
    if count is None:
        count = available
        pad_cr = count > 0 and (8 * len(data) - fill_bits) % 7 == 0
    else:
        if count > available or count < 0:
            raise TextDecodeError(f"{count} septets asked of {len(data)} octets")
        pad_cr = False
    value = int.from_bytes(data, "little") >> fill_bits
    out = bytes((value >> (7 * i)) & 0x7F for i in range(count))
    if pad_cr and out[-1] == 0x0D:
        out = out[:-1]
    return out
