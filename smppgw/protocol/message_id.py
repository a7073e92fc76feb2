"""Message-id normalisation: match a delivery receipt to the ``submit_sm_resp`` it answers.

A carrier gives us its id for a message twice: in ``submit_sm_resp.message_id``, and
later in the delivery receipt (the ``receipted_message_id`` TLV and/or the ``id:`` field
of the receipt text). Many carriers do not write it the same way twice: hex in the
response and decimal in the receipt (or the reverse), upper case once and lower case
the other time, with or without leading zeros. Lost DLRs are the first complaint about
gateways, and most of them are this mismatch, so the rule is configured per carrier as
an :class:`IdFormat` and both sides are reduced to one canonical *key*.

Formats (what an operator writes in a carrier's config, ``id_format: hex``):

============================  =====================  ==================
``IdFormat``                  in ``submit_sm_resp``  in the receipt
============================  =====================  ==================
``string`` (the default)      opaque text            the same text
``hex``                       hexadecimal            hexadecimal
``decimal``                   decimal                decimal
``hex_resp_dec_receipt``      hexadecimal            decimal
``dec_resp_hex_receipt``      decimal                hexadecimal
============================  =====================  ==================

Rules:

- Every id is first trimmed of surrounding whitespace and NULs (some SMSCs pad).
- ``string``: the trimmed text *is* the key, case and leading zeros kept: an opaque id
  carries no number, and ``"Ab0"`` and ``"ab0"`` may well be different messages.
- Numeric formats: the id is read as an unsigned number, so case and leading zeros stop
  mattering, and the key is that number in decimal. Hex may have ``-`` between digit
  groups, so a UUID-like id matches with or without its dashes. Numbers have no size
  limit (a 128-bit id is fine), but an id is at most :data:`MAX_ID_LENGTH` characters.

Examples (the same key means "the same message")::

    resp_key("0A1B", IdFormat.HEX_RESP_DEC_RECEIPT)    == "2587"
    receipt_key("2587", IdFormat.HEX_RESP_DEC_RECEIPT) == "2587"
    resp_key("00000a1b", IdFormat.HEX) == receipt_key("A1B", IdFormat.HEX) == "2587"
    resp_key("0042", IdFormat.DECIMAL) == receipt_key("42", IdFormat.DECIMAL) == "42"
    resp_key(" Ab-01 ", IdFormat.STRING) == "Ab-01"

The ``receipted_message_id`` TLV is, by SMPP 3.4 (5.3.2.12), the id as the SMSC gave it
in ``submit_sm_resp``; a carrier that follows the spec there but writes the text ``id:``
differently is matched by passing the TLV to :func:`resp_key` and the text to
:func:`receipt_key`. Lower-level callers can use :func:`id_key` with an :class:`IdBase`.

A malformed id for a numeric format raises :class:`MessageIdError`, a ``ValueError``.
"""

from __future__ import annotations

import enum
import re
from typing import Final

__all__ = [
    "MAX_ID_LENGTH",
    "IdBase",
    "IdFormat",
    "MessageIdError",
    "id_key",
    "receipt_key",
    "resp_key",
]

#: Longest id accepted, after trimming. SMPP's ``message_id`` is at most 64 characters
#: (a 65-octet C string); 128 leaves room for the decimal form of a 64-hex-digit id and
#: keeps ``int`` conversions far from Python's 4300-digit limit.
MAX_ID_LENGTH: Final = 128

# ASCII only: ``int()`` would also accept other scripts' digits, ``_`` and spaces.
_DECIMAL: Final = re.compile(r"[0-9]+", re.ASCII)
_HEX: Final = re.compile(r"[0-9A-Fa-f]+(?:-[0-9A-Fa-f]+)*", re.ASCII)
# Whitespace as ``str.isspace`` sees it, and NULs, on both ends.
_TRIMMED: Final = re.compile(r"[\s\0]*(.*?)[\s\0]*", re.DOTALL)


class MessageIdError(ValueError):
    """An id cannot be read in the format configured for its carrier."""


class IdBase(enum.StrEnum):
    """How one side (response or receipt) writes an id."""

    STRING = "string"
    HEX = "hex"
    DECIMAL = "decimal"


class IdFormat(enum.StrEnum):
    """A carrier's id convention: how it writes ids in ``submit_sm_resp`` and in receipts.

    A ``StrEnum`` so that the config value is the member's value (``"hex"``).
    """

    STRING = "string"
    HEX = "hex"
    DECIMAL = "decimal"
    HEX_RESP_DEC_RECEIPT = "hex_resp_dec_receipt"
    DEC_RESP_HEX_RECEIPT = "dec_resp_hex_receipt"

    @property
    def resp_base(self) -> IdBase:
        """How this carrier writes the id in ``submit_sm_resp``."""
        return _BASES[self][0]

    @property
    def receipt_base(self) -> IdBase:
        """How this carrier writes the id in its delivery receipts."""
        return _BASES[self][1]


_BASES: Final[dict[IdFormat, tuple[IdBase, IdBase]]] = {
    IdFormat.STRING: (IdBase.STRING, IdBase.STRING),
    IdFormat.HEX: (IdBase.HEX, IdBase.HEX),
    IdFormat.DECIMAL: (IdBase.DECIMAL, IdBase.DECIMAL),
    IdFormat.HEX_RESP_DEC_RECEIPT: (IdBase.HEX, IdBase.DECIMAL),
    IdFormat.DEC_RESP_HEX_RECEIPT: (IdBase.DECIMAL, IdBase.HEX),
}


def _trim(raw: str) -> str:
    # Most ids arrive clean: skip the regex (one per submit_sm_resp) when nothing to trim.
    if raw and raw.isalnum():
        return raw
    match = _TRIMMED.fullmatch(raw)
    return raw if match is None else match.group(1)  # the pattern matches every string


def id_key(raw: str, base: IdBase) -> str:
    """The canonical key of ``raw`` written in ``base``; see the module rules.

    Raises:
        MessageIdError: ``raw`` is empty or too long after trimming, or is not a number
            in a numeric ``base``.
    """
    text = _trim(raw)
    if not text:
        raise MessageIdError(f"empty message id {raw!r}")
    if len(text) > MAX_ID_LENGTH:
        raise MessageIdError(
            f"message id of {len(text)} characters is longer than {MAX_ID_LENGTH}: {text[:20]!r}..."
        )
    if base == IdBase.STRING:
        return text
    if base == IdBase.DECIMAL:
        if _DECIMAL.fullmatch(text) is None:
            raise MessageIdError(f"message id {text!r} is not a decimal number")
        return str(int(text))
    if _HEX.fullmatch(text) is None:
        raise MessageIdError(f"message id {text!r} is not a hexadecimal number")
    return str(int(text.replace("-", ""), 16))


def resp_key(raw: str, fmt: IdFormat) -> str:
    """The key of an id as the carrier gave it in ``submit_sm_resp``."""
    return id_key(raw, fmt.resp_base)


def receipt_key(raw: str, fmt: IdFormat) -> str:
    """The key of an id as the carrier wrote it in a receipt (text ``id:`` or TLV)."""
    return id_key(raw, fmt.receipt_base)
