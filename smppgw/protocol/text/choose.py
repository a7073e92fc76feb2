"""Choosing the cheapest encoding for a text, and encoding/decoding by data_coding.

Carriers bill per SMS, so the right encoding is the one that takes the fewest parts.
GSM 03.38 (160 septets per SMS) wins whenever the text fits its alphabet; one character
outside it (an emoji, a Vietnamese ``ệ``, a curly quote) switches the whole message to
UCS2 (70 per SMS), which can more than double the bill. Hence two opt-in escapes:

- Latin-1 (140 per SMS), only when the caller says the carrier delivers it faithfully,
  and only when it takes fewer parts than GSM (a text full of ``{}[]`` takes two septets
  per bracket in GSM but one octet in Latin-1);
- diacritics stripping (:func:`strip_diacritics`), for senders who would rather lose the
  accents than pay double: ``Tiếng Việt`` becomes ``Tieng Viet``.

Ties go to GSM, the one every handset reads, then to Latin-1; a faithful encoding
beats a stripped one at the same price.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

from smppgw.protocol.text import gsm7, latin1, ucs2
from smppgw.protocol.text.errors import TextEncodeError
from smppgw.protocol.text.parts import (
    DC_DEFAULT,
    DC_IA5,
    DC_LATIN1,
    DC_UCS2,
    SplitMode,
    UnitKind,
    count_parts,
    unit_kind,
)

__all__ = ["EncodedText", "choose_encoding", "decode_text", "encode_text", "strip_diacritics"]


@dataclass(frozen=True, slots=True)
class EncodedText:
    """A text encoded for sending.

    Attributes:
        data_coding: the SMPP data_coding to send with.
        payload: the encoded octets (GSM unpacked, one septet per octet).
        parts: how many SMS it takes on the air interface, in the split mode asked for.
        units: septets for GSM (extension characters count two), UTF-16 code units for
            UCS2, octets otherwise.
        text: the text that was encoded: the input, or its stripped form.
    """

    data_coding: int
    payload: bytes
    parts: int
    units: int
    text: str


# Characters that NFD does not decompose into a base letter and marks, but that have an
# obvious plain-letter reading. đ/Đ are the ones that matter: Vietnamese uses them
# constantly and Unicode treats them as letters of their own. The typographic
# punctuation that word processors put into marketing texts follows.
_EXPLICIT: dict[str, str] = {
    "đ": "d",
    "Đ": "D",
    "ł": "l",
    "Ł": "L",
    "\u0131": "i",  # dotless i
    "\u2018": "'",
    "\u2019": "'",
    "\u201a": "'",
    "\u201c": '"',
    "\u201d": '"',
    "\u201e": '"',
    "\u2013": "-",
    "\u2014": "-",
    "\u2026": "...",
    "\u00a0": " ",
}


def _plain(char: str) -> str | None:
    """The GSM-encodable plain form of one character, or None if it has none."""
    explicit = _EXPLICIT.get(char)
    if explicit is not None:
        return explicit
    base = "".join(ch for ch in unicodedata.normalize("NFD", char) if not unicodedata.combining(ch))
    # An empty base is a lone combining mark: dropping it is what "strip" means.
    return base if gsm7.is_encodable(base) else None


def strip_diacritics(text: str) -> str:
    """Replace each accented letter by its plain letter: ``Tiếng Việt`` -> ``Tieng Viet``.

    Letters lose their combining marks under NFD (``ế`` -> ``e``, ``ç`` -> ``c``, and
    ``é`` -> ``e`` too, although GSM has ``é``: a text stripped throughout reads better
    than one half stripped, ``Ha Noi`` rather than ``Hà Noi``). Letters that NFD does not
    decompose use :data:`_EXPLICIT` (``đ`` -> ``d``); a character with no GSM plain form
    (``ж``, an emoji) stays as it is. A lone combining mark is dropped.
    """
    out: list[str] = []
    for char in unicodedata.normalize("NFC", text):
        plain = _plain(char)
        out.append(char if plain is None else plain)
    return "".join(out)


def _units(payload: bytes, data_coding: int) -> int:
    return len(payload) // 2 if unit_kind(data_coding) is UnitKind.UCS2 else len(payload)


def encode_text(text: str, data_coding: int, mode: SplitMode = SplitMode.UDH8) -> EncodedText:
    """Encode ``text`` for a data_coding the caller has fixed.

    GSM-alphabet codings use GSM 03.38, UCS2 codings UTF-16BE, 0x03 Latin-1 and 0x01
    (IA5) ASCII. Other codings carry octets, not text: encode those yourself.

    Raises:
        TextEncodeError: ``text`` does not fit the coding.
        ValueError: ``data_coding`` is not a text coding we know.
    """
    kind = unit_kind(data_coding)
    if kind is UnitKind.SEPTET:
        payload = gsm7.encode(text)
    elif kind is UnitKind.UCS2:
        payload = ucs2.encode(text)
    elif data_coding == DC_LATIN1:
        payload = latin1.encode(text)
    elif data_coding == DC_IA5:
        if not text.isascii():
            index = next(i for i, ch in enumerate(text) if not ch.isascii())
            raise TextEncodeError("ia5", text[index], index)
        payload = text.encode("ascii")
    else:
        raise ValueError(f"data_coding 0x{data_coding:02X} is not a text coding")
    return EncodedText(
        data_coding=data_coding,
        payload=payload,
        parts=count_parts(payload, data_coding, mode),
        units=_units(payload, data_coding),
        text=text,
    )


def decode_text(payload: bytes, data_coding: int) -> str:
    """Decode a peer's payload by its data_coding; never raises.

    GSM and UCS2 codings decode tolerantly (see their modules), IA5 as ASCII with
    U+FFFD for octets above 0x7F, and every other coding as Latin-1: for binary data that
    is not text, but it is a lossless one octet, one character reading for logs.
    """
    kind = unit_kind(data_coding)
    if kind is UnitKind.SEPTET:
        return gsm7.decode(payload)
    if kind is UnitKind.UCS2:
        return ucs2.decode(payload)
    if data_coding == DC_IA5:
        return payload.decode("ascii", errors="replace")
    return latin1.decode(payload)


def choose_encoding(
    text: str,
    *,
    allow_latin1: bool = False,
    strip_accents: bool = False,
    mode: SplitMode = SplitMode.UDH8,
) -> EncodedText:
    """Encode ``text`` in the encoding that takes the fewest SMS.

    Args:
        text: the text to send.
        allow_latin1: the carrier delivers data_coding 3 faithfully (a carrier option).
        strip_accents: when the text does not fit GSM, send it without its diacritics if
            that makes it fit (see :func:`strip_diacritics`). When even the stripped
            text does not fit, the original is sent, accents and all: stripping would
            lose them for nothing.
        mode: how the parts will travel, which changes their capacity.

    Raises:
        TextEncodeError: ``text`` holds a lone surrogate, which no encoding can carry.
    """
    # In order of preference: min() below keeps the first of equals. A faithful
    # encoding of the text comes before a stripped one at the same price.
    candidates: list[EncodedText] = []
    fits_gsm = gsm7.is_encodable(text)
    if fits_gsm:
        candidates.append(encode_text(text, DC_DEFAULT, mode))
    if allow_latin1 and latin1.is_encodable(text):
        candidates.append(encode_text(text, DC_LATIN1, mode))
    if strip_accents and not fits_gsm:
        # Only here: a text that fits GSM keeps its accents.
        stripped = strip_diacritics(text)
        if gsm7.is_encodable(stripped):
            candidates.append(encode_text(stripped, DC_DEFAULT, mode))
    if not candidates:
        # UCS2 never beats GSM or Latin-1: even a text of extension characters only
        # takes 76 characters per GSM part against 67 in UCS2.
        return encode_text(text, DC_UCS2, mode)
    return min(candidates, key=lambda encoded: encoded.parts)
