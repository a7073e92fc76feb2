"""Delivery receipt text (SMPP 3.4, Appendix B) and message states (5.2.28).

An SMSC reports a message's fate in a ``deliver_sm`` whose ``short_message`` is, by the
spec's *example* format::

    id:IIIIIIIIII sub:SSS dlvrd:DDD submit date:YYMMDDhhmm done date:YYMMDDhhmm
    stat:DDDDDDD err:E Text:...

The format is only an example in the spec, so every SMSC writes its own dialect:
``Id:``/``ID:``/``Stat:``, 12-digit dates with seconds, ``err:000`` or ``err:0``, no
``text:`` at all, extra keys (``imsi:``, ``mcc:``) in between, double spaces, hex ids.
A receipt that fails to parse is a lost DLR for a paying partner, so
:func:`parse_receipt` is deliberately tolerant, and strict in only two places: it needs
an ``id`` and a ``stat``, without which a receipt cannot be matched or acted on. Any
other field that is missing or unreadable comes back as ``None`` instead of failing the
whole receipt (an unreadable date is informational; a lost receipt is not).

:func:`format_receipt` writes the canonical form for the receipts we send partners.
``None`` fields are left out rather than invented, so ``parse(format(r)) == r`` holds.

Parsing rules:

- Keys are found case-insensitively where a key word stands after whitespace (or at the
  start) and is followed by ``:``; ``submit date`` may also be ``submit_date`` or
  ``submitdate`` (likewise ``done date``). A field's value is the first word after its
  key (words end at whitespace, ``,`` or ``;``, which some SMSCs use as separators);
  the first of duplicate keys wins; unknown keys are skipped.
- ``text:`` ends the header: everything after it, trimmed, is the text, even if it
  looks like keys (it is the start of the user's message and may say anything).
- Dates: ``YYMMDDhhmm``, ``YYMMDDhhmmss`` or ``YYYYMMDDhhmmss``, read as naive
  datetimes in the SMSC's local time (the format carries no zone); years 2000-2099 for
  two digits; all zeros or an impossible date is ``None``.
- ``stat`` is kept as the word sent, upper-cased; :attr:`Receipt.state` maps it, and its
  common variants (``DELIVERED``, ``UNDELIVERABLE``, ``FAILED``...), to
  :class:`MessageState`.
- ``bytes`` are decoded as UTF-8, else Latin-1 (never fails); trailing NULs are dropped.
"""

from __future__ import annotations

import enum
import functools
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Final

__all__ = [
    "FINAL_STATES",
    "MessageState",
    "Receipt",
    "ReceiptError",
    "format_receipt",
    "format_receipt_fields",
    "is_final",
    "is_receipt_word",
    "parse_receipt",
    "stat_word",
    "state_from_stat",
]


class ReceiptError(ValueError):
    """A receipt cannot be parsed (no ``id``/``stat``) or a :class:`Receipt` is invalid."""


class MessageState(enum.IntEnum):
    """The ``message_state`` TLV and ``query_sm_resp`` values (SMPP 3.4, 5.2.28)."""

    ENROUTE = 1
    DELIVERED = 2
    EXPIRED = 3
    DELETED = 4
    UNDELIVERABLE = 5
    ACCEPTED = 6
    UNKNOWN = 7
    REJECTED = 8


#: States after which nothing more will happen to the message. By the spec only
#: ENROUTE is intermediate; note that some carriers send ``ACCEPTD`` as an interim
#: "accepted by the SMSC" receipt, which a per-carrier policy may choose to treat as such.
FINAL_STATES: Final = frozenset(MessageState) - {MessageState.ENROUTE}

_STAT_WORDS: Final[dict[MessageState, str]] = {
    MessageState.ENROUTE: "ENROUTE",
    MessageState.DELIVERED: "DELIVRD",
    MessageState.EXPIRED: "EXPIRED",
    MessageState.DELETED: "DELETED",
    MessageState.UNDELIVERABLE: "UNDELIV",
    MessageState.ACCEPTED: "ACCEPTD",
    MessageState.UNKNOWN: "UNKNOWN",
    MessageState.REJECTED: "REJECTD",
}

#: Every stat word we recognise (upper case) -> state: the spec's seven-letter words,
#: their spelled-out forms, and variants seen from SMSCs and gateways in the field.
_STATES_BY_WORD: Final[dict[str, MessageState]] = {
    **{word: state for state, word in _STAT_WORDS.items()},
    "EN_ROUTE": MessageState.ENROUTE,
    "BUFFRED": MessageState.ENROUTE,
    "BUFFERED": MessageState.ENROUTE,
    "DELIVERED": MessageState.DELIVERED,
    "DELIVRED": MessageState.DELIVERED,
    "DELIVD": MessageState.DELIVERED,
    "EXPIRD": MessageState.EXPIRED,
    "DELETD": MessageState.DELETED,
    "UNDELIVERABLE": MessageState.UNDELIVERABLE,
    "UNDELIVERED": MessageState.UNDELIVERABLE,
    "UNDELIVD": MessageState.UNDELIVERABLE,
    "UNDELV": MessageState.UNDELIVERABLE,
    "FAILED": MessageState.UNDELIVERABLE,
    "ACCEPTED": MessageState.ACCEPTED,
    "REJECTED": MessageState.REJECTED,
    "REJECT": MessageState.REJECTED,
}


def is_final(state: int) -> bool:
    """Whether a ``message_state`` value is final (no further receipt is to be expected).

    Values outside the table are not final: waiting for a later receipt (and expiring
    by our own validity timer) is safer than closing a message on a value we don't know.
    """
    return state in FINAL_STATES


def stat_word(state: int) -> str:
    """The spec's 7-letter ``stat`` word for a state (``DELIVRD``); ``UNKNOWN`` otherwise."""
    try:
        return _STAT_WORDS[MessageState(state)]
    except ValueError:
        return _STAT_WORDS[MessageState.UNKNOWN]


def state_from_stat(word: str) -> MessageState | None:
    """The state a ``stat`` word stands for, any case, or None for a word we don't know."""
    return _STATES_BY_WORD.get(word.strip().upper())


@dataclass(frozen=True, slots=True, kw_only=True)
class Receipt:
    """One delivery receipt. ``None`` means the SMSC did not send (a readable) field.

    Attributes:
        message_id: the SMSC's id of the receipted message, as written (normalise it
            with :mod:`smppgw.protocol.message_id` before matching).
        stat: the stat word as sent, e.g. ``DELIVRD``; see :attr:`state`.
        sub: number of messages originally submitted (``sub:``).
        dlvrd: number of messages delivered (``dlvrd:``).
        submit_date, done_date: naive local times of the SMSC.
        err: the network-specific error code as written (``"000"``, ``"0"``, ``"0x1F"``).
        text: the start of the original message's text, as the SMSC quoted it.
    """

    message_id: str
    stat: str
    sub: int | None = None
    dlvrd: int | None = None
    submit_date: datetime | None = None
    done_date: datetime | None = None
    err: str | None = None
    text: str | None = None

    def __post_init__(self) -> None:
        # A value with a separator in it could not be read back: refuse it here.
        for name in ("message_id", "stat", "err"):
            value = getattr(self, name)
            if value is not None and not is_receipt_word(value):
                raise ReceiptError(
                    f"Receipt.{name} must be one word (no whitespace, ',' or ';'), got {value!r}"
                )
        for name in ("sub", "dlvrd"):
            value = getattr(self, name)
            if value is not None and not 0 <= value <= _MAX_COUNT:
                raise ReceiptError(f"Receipt.{name} must be 0-{_MAX_COUNT}, got {value}")
        for name in ("submit_date", "done_date"):
            value = getattr(self, name)
            if value is not None and not 2000 <= value.year <= 2099:
                raise ReceiptError(f"Receipt.{name} must be in 2000-2099, got {value}")

    @property
    def state(self) -> MessageState:
        """The ``stat`` word as a state; a word we don't recognise is ``UNKNOWN``."""
        state = state_from_stat(self.stat)
        return MessageState.UNKNOWN if state is None else state

    @property
    def error_code(self) -> int | None:
        """``err`` as a number when it is decimal digits (``"000"`` -> 0), else None."""
        if self.err is None or _DIGITS.fullmatch(self.err) is None:
            return None
        return int(self.err)


#: A field value: a run of characters up to whitespace or a "," / ";" separator. Never a
#: NUL: a text ending in one loses it as a C string's terminator, so a value holding one
#: would not read back (hypothesis found ``stat:\x00``).
_WORD: Final = re.compile(r"[^\s,;\x00]+")


def is_receipt_word(value: str) -> bool:
    """Whether ``value`` can be a receipt field's value (``id``, ``stat``, ``err``): one
    word, no whitespace, ``,`` or ``;``, or it could not be read back."""
    return _WORD.fullmatch(value) is not None


_DIGITS: Final = re.compile(r"[0-9]{1,9}", re.ASCII)
_MAX_COUNT: Final = 999_999_999

# A key: a known word after whitespace/start (or ',' / ';'), then optional blanks and ':'.
_KEY: Final = re.compile(
    r"(?<![^\s,;])(id|sub|dlvrd|submit[ _]*date|done[ _]*date|stat|err|text)[ \t]*:",
    re.IGNORECASE,
)
_ALL_DIGITS: Final = re.compile(r"[0-9]+", re.ASCII)
#: The canonical layout (``format_receipt``'s, the spec's appendix B); anything else
#: goes through the tolerant key-by-key reading, which gives the same fields for it.
_CANONICAL: Final = re.compile(
    r"id:([^\s,;\x00]+) sub:([0-9]{1,9}) dlvrd:([0-9]{1,9})"
    r" submit date:([0-9]{10}|[0-9]{12}) done date:([0-9]{10}|[0-9]{12})"
    r" stat:([^\s,;\x00]+) err:([^\s,;\x00]+)(?: [Tt]ext:(.*))?",
    re.DOTALL,
)


def _canonical_key(raw: str) -> str:
    key = raw.lower().replace(" ", "").replace("_", "")
    return {"submitdate": "submit date", "donedate": "done date"}.get(key, key)


def _first_word(value: str) -> str | None:
    match = _WORD.search(value)
    return None if match is None else match.group()


def _count(word: str | None) -> int | None:
    if word is None or _DIGITS.fullmatch(word) is None:
        return None
    return int(word)


@functools.lru_cache(maxsize=1024)
def _date(word: str | None) -> datetime | None:
    """A receipt's date, or None; cached: a burst of receipts shares a few minutes
    (``datetime`` is immutable, so the same object may be handed out again)."""
    if word is None or len(word) not in (10, 12, 14) or _ALL_DIGITS.fullmatch(word) is None:
        return None
    if len(word) == 14:  # YYYYMMDDhhmmss
        year, rest = int(word[:4]), word[4:]
    else:  # YYMMDDhhmm[ss]
        year, rest = 2000 + int(word[:2]), word[2:]
    month, day, hour, minute = (int(rest[i : i + 2]) for i in range(0, 8, 2))
    second = int(rest[8:10] or "0")
    try:
        value = datetime(year, month, day, hour, minute, second)
    except ValueError:  # all zeros, month 13...: a date we cannot read is no date
        return None
    return value if 2000 <= value.year <= 2099 else None


def _decode(data: str | bytes) -> str:
    if isinstance(data, str):
        return data.rstrip("\0")
    try:
        return data.decode("utf-8").rstrip("\0")
    except UnicodeDecodeError:
        return data.decode("latin-1").rstrip("\0")


def parse_receipt(data: str | bytes) -> Receipt:
    """Read a delivery receipt's text, tolerating the dialects of real SMSCs.

    Raises:
        ReceiptError: the text has no ``id`` or no ``stat`` value; the message says which
            and quotes the start of the text.
    """
    text = _decode(data)
    canonical = _CANONICAL.fullmatch(text)
    if canonical is not None:
        # The spec's layout, which nearly every SMSC writes: one match instead of the
        # key-by-key scan below (a receipt for every message sent: this is hot).
        message_id, sub, dlvrd, submitted, done, stat, err, body = canonical.groups()
        return Receipt(
            message_id=message_id,
            stat=stat.upper(),
            sub=int(sub),
            dlvrd=int(dlvrd),
            submit_date=_date(submitted),
            done_date=_date(done),
            err=err,
            text=None if body is None else body.strip(),
        )
    return _parse_tolerant(text)


def _parse_tolerant(text: str) -> Receipt:
    """Key by key, in any order and spelling (``parse_receipt`` without its fast path)."""
    fields: dict[str, str | None] = {}
    matches = list(_KEY.finditer(text))
    for i, match in enumerate(matches):
        key = _canonical_key(match.group(1))
        if key == "text":
            fields.setdefault("text", text[match.end() :].strip())
            break
        end = matches[i + 1].start() if i + 1 < len(matches) else len(text)
        if key not in fields:
            fields[key] = _first_word(text[match.end() : end])

    message_id, stat = fields.get("id"), fields.get("stat")
    if message_id is None or stat is None:
        missing = " and ".join(k for k, v in (("id", message_id), ("stat", stat)) if v is None)
        raise ReceiptError(f"not a delivery receipt: no {missing} in {text[:80]!r}")
    return Receipt(
        message_id=message_id,
        stat=stat.upper(),
        sub=_count(fields.get("sub")),
        dlvrd=_count(fields.get("dlvrd")),
        submit_date=_date(fields.get("submit date")),
        done_date=_date(fields.get("done date")),
        err=fields.get("err"),
        text=fields.get("text"),
    )


def _format_date(value: datetime, seconds: bool) -> str:
    return value.strftime("%y%m%d%H%M%S" if seconds else "%y%m%d%H%M")


def format_receipt_fields(
    message_id: object,
    sub: int,
    dlvrd: int,
    submit_date: str,
    done_date: str,
    stat: str,
    err: int,
    text: str,
) -> str:
    """What :func:`format_receipt` writes for a receipt with every field, from values
    the caller has already checked and dates it has already written (``YYMMDDhhmm``):
    the once-a-message path of the gateway's partner receipts and of the simulator,
    without building and checking a :class:`Receipt` and formatting two datetimes."""
    return (
        f"id:{message_id} sub:{sub:03d} dlvrd:{dlvrd:03d} submit date:{submit_date}"
        f" done date:{done_date} stat:{stat} err:{err:03d} Text:{text}"
    )


def format_receipt(r: Receipt, *, seconds: bool = False) -> str:
    """The canonical receipt text of ``r``; ``None`` fields are left out.

    ``seconds=True`` writes 12-digit dates (``YYMMDDhhmmss``), which some partners want;
    the default is the spec's 10 digits, dropping seconds. ``sub``/``dlvrd`` are written
    with at least 3 digits. The text is written as given: truncating it (the spec quotes
    the first 20 characters) is the caller's choice.
    """
    parts = [f"id:{r.message_id}"]
    if r.sub is not None:
        parts.append(f"sub:{r.sub:03d}")
    if r.dlvrd is not None:
        parts.append(f"dlvrd:{r.dlvrd:03d}")
    if r.submit_date is not None:
        parts.append(f"submit date:{_format_date(r.submit_date, seconds)}")
    if r.done_date is not None:
        parts.append(f"done date:{_format_date(r.done_date, seconds)}")
    parts.append(f"stat:{r.stat}")
    if r.err is not None:
        parts.append(f"err:{r.err}")
    if r.text is not None:
        parts.append(f"Text:{r.text}")
    return " ".join(parts)
