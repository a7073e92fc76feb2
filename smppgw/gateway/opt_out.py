"""Which number a destination is, as the opt-out list writes it.

Sans-I/O. The list (``store/opt_out.py``) keeps international digits; partners write
the same subscriber as ``84912345678``, ``+84912345678``, ``0084912345678``, national
``0912345678``, or ``912345678`` with TON 2 (national). All of them must find the
subscriber's opt-out, or a refusal is bypassed by writing the number another way.
"""

from __future__ import annotations

__all__ = ["NATIONAL_TON", "opt_out_key"]

#: SMPP 3.4 5.2.5: TON 2 is a national number.
NATIONAL_TON = 2


def opt_out_key(destination: str, ton: int, country_code: str) -> str | None:
    """``destination`` in international digits; None when it is not a phone number
    (an alphanumeric address cannot opt out)."""
    digits = destination.strip().replace(" ", "")
    if digits.startswith("+"):
        digits = digits[1:]
    elif digits.startswith("00"):
        digits = digits[2:]
    elif digits.startswith("0"):
        digits = country_code + digits[1:]
    elif ton == NATIONAL_TON:
        digits = country_code + digits
    if not digits or not digits.isascii() or not digits.isdigit():
        return None
    return digits
