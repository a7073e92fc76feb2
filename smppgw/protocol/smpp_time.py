"""SMPP time strings (SMPP 3.4, section 7.1.1): ``validity_period``, ``schedule_delivery_time``.

Both fields are C-Octet strings of exactly 16 characters, or empty for "not set":

- **Absolute** ``YYMMDDhhmmsstnnp`` (7.1.1.1): a local date and time, ``t`` tenths of a
  second, ``nn`` the offset of that local time from UTC in quarter hours, and ``p`` ``+``
  (ahead of UTC) or ``-`` (behind). ``"230615143000004+"`` is 2023-06-15 14:30:00.0 at
  UTC+01:00. Parsed to a timezone-aware :class:`~datetime.datetime`, so comparing it with
  any other aware ``now`` is right whatever zone the partner wrote it in.
- **Relative** ``YYMMDDhhmmss000R`` (7.1.1.2): a duration from "now" (the SMSC's receipt
  of the PDU) in years, months, days, hours, minutes and seconds.
  ``"000002120000000R"`` is 2 days and 12 hours. Parsed to :class:`RelativeTime`; since
  months and years have no fixed length it stays symbolic until
  :meth:`RelativeTime.resolve` is given a ``now``. This module never reads a clock.

Errors: a bad value raises :class:`SmppTimeError`, a :class:`PduDecodeError` (the peer
sent it) that is *also* a :class:`ValueError`. It carries ``command_status``: the status
the session answers the offending ``submit_sm`` with, chosen by the ``field`` argument
(``ESME_RINVEXPIRY`` for ``validity_period``, ``ESME_RINVSCHED`` for
``schedule_delivery_time``), so the caller never maps it by hand.

Tolerances (each one seen from real ESMEs, none ambiguous):

- ``nn`` up to 56 (14 hours), beyond the spec's 48, because UTC+13/+14 zones (Tonga,
  Samoa, Kiribati) exist and refusing their partners' messages helps no one.
- In a relative time the ``tnn`` digits are ignored (the spec says ``000``).
- Two-digit years are 2000-2099: an SMPP time is always near the present.
"""

from __future__ import annotations

import calendar
import enum
import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Final, Literal

from smppgw.protocol.errors import PduDecodeError
from smppgw.protocol.status import CommandStatus

__all__ = [
    "MAX_OFFSET_QUARTERS",
    "MAX_RELATIVE_SECONDS",
    "RelativeTime",
    "SmppTimeError",
    "TimeField",
    "ValidityFormat",
    "format_smpp_time",
    "parse_smpp_time",
    "relative_until",
    "resolve_smpp_time",
]


class ValidityFormat(enum.StrEnum):
    """How a partner's ``validity_period`` is written in the submit_sm to a carrier."""

    #: ``YYMMDDhhmmss000+`` in UTC (what Kannel sends): exact whatever the delay.
    ABSOLUTE = "absolute"
    #: ``000DDhhmmss000R``, the time left when the part is sent: for an SMSC whose clock
    #: or time zone handling cannot be trusted.
    RELATIVE = "relative"
    #: Not sent: for an SMSC that refuses the field (the gateway still expires messages
    #: it could not send in time).
    OMIT = "omit"


#: The two PDU fields holding an SMPP time; the name decides the error status.
TimeField = Literal["validity_period", "schedule_delivery_time"]

_STATUS_FOR_FIELD: Final[dict[str, int]] = {
    "validity_period": CommandStatus.ESME_RINVEXPIRY,
    "schedule_delivery_time": CommandStatus.ESME_RINVSCHED,
}

#: Largest accepted ``nn``: 56 quarter hours is UTC+14, the farthest real zone.
MAX_OFFSET_QUARTERS: Final = 56

_LENGTH: Final = 16
# ASCII digits only: ``str.isdigit`` and ``int`` accept other scripts' digits.
_SHAPE: Final = re.compile(r"[0-9]{15}[+\-R]", re.ASCII)


class SmppTimeError(PduDecodeError, ValueError):
    """An SMPP time string is malformed; ``command_status`` is the answer to send.

    A :class:`ValueError` as well, so code that validates values generically (config,
    an HTTP API) can catch it without knowing the SMPP error family.
    """

    def __init__(self, msg: str, *, field: TimeField) -> None:
        super().__init__(f"{field}: {msg}", command_status=_STATUS_FOR_FIELD[field])
        self.field = field


@dataclass(frozen=True, slots=True)
class RelativeTime:
    """A relative SMPP time: a duration counted from when the SMSC receives the PDU.

    Each component is what the string holds (0-99); they are not normalised
    (``hours=36`` stays 36) so that formatting gives back the partner's string.
    """

    years: int = 0
    months: int = 0
    days: int = 0
    hours: int = 0
    minutes: int = 0
    seconds: int = 0

    def __post_init__(self) -> None:
        for name in ("years", "months", "days", "hours", "minutes", "seconds"):
            value = getattr(self, name)
            if not 0 <= value <= 99:
                raise ValueError(f"RelativeTime.{name} must be 0-99 (two digits), got {value}")

    def resolve(self, now: datetime) -> datetime:
        """The absolute time this duration ends at, counted from ``now``.

        Years and months move the calendar (the day is clamped to the month's length:
        Jan 31 + 1 month is Feb 28/29); days and smaller are then added as a timedelta.
        ``now`` should be aware; a naive ``now`` gives a naive result.
        """
        month_index = now.month - 1 + self.months
        year = now.year + self.years + month_index // 12
        month = month_index % 12 + 1
        day = min(now.day, calendar.monthrange(year, month)[1])
        moved = now.replace(year=year, month=month, day=day)
        return moved + timedelta(
            days=self.days, hours=self.hours, minutes=self.minutes, seconds=self.seconds
        )


def _two(s: str, i: int) -> int:
    return int(s[i : i + 2])


def parse_smpp_time(value: str, *, field: TimeField) -> datetime | RelativeTime | None:
    """Parse an SMPP time string: an aware datetime, a :class:`RelativeTime`, or None if empty.

    ``field`` names the PDU field the value came from; it picks the ``command_status`` of
    the :class:`SmppTimeError` raised for a malformed value. It is keyword-only and has no
    default so that a caller cannot answer an expiry error with the schedule status.
    """
    if value == "":
        return None
    if len(value) != _LENGTH:
        raise SmppTimeError(
            f"must be empty or {_LENGTH} characters, got {len(value)}: {value!r}", field=field
        )
    if _SHAPE.fullmatch(value) is None:
        raise SmppTimeError(
            f"must be 15 digits then '+', '-' or 'R' (YYMMDDhhmmsstnnp), got {value!r}",
            field=field,
        )
    yy, mo, dd, hh, mi, ss = (_two(value, i) for i in range(0, 12, 2))
    sign = value[15]
    if sign == "R":
        return RelativeTime(yy, mo, dd, hh, mi, ss)
    tenths = int(value[12])
    quarters = _two(value, 13)
    if quarters > MAX_OFFSET_QUARTERS:
        raise SmppTimeError(
            f"UTC offset {quarters} quarter hours is out of range 00-{MAX_OFFSET_QUARTERS}"
            f" in {value!r}",
            field=field,
        )
    offset = timedelta(minutes=15 * quarters)
    tz = timezone(-offset if sign == "-" else offset)
    try:
        return datetime(2000 + yy, mo, dd, hh, mi, ss, tenths * 100_000, tzinfo=tz)
    except ValueError as exc:
        raise SmppTimeError(f"not a valid date and time: {value!r} ({exc})", field=field) from None


def format_smpp_time(value: datetime | RelativeTime | None) -> str:
    """Format a value as :func:`parse_smpp_time` reads it; ``None`` gives ``""``.

    An absolute time is written in its own UTC offset when that is a whole number of
    quarter hours within +/-14 h, else converted to UTC (an SMPP time cannot say
    anything else). Sub-tenth precision is truncated. A naive datetime is refused: the
    wire format needs an offset and guessing one would shift deliveries by hours.

    Raises:
        ValueError: a naive datetime, or a year outside 2000-2099.
    """
    if value is None:
        return ""
    if isinstance(value, RelativeTime):
        v = value
        return f"{v.years:02}{v.months:02}{v.days:02}{v.hours:02}{v.minutes:02}{v.seconds:02}000R"
    offset = value.utcoffset()
    if offset is None:
        raise ValueError("an absolute SMPP time needs a timezone-aware datetime")
    quarters, rest = divmod(abs(offset), timedelta(minutes=15))
    if rest or quarters > MAX_OFFSET_QUARTERS:
        value = value.astimezone(UTC)
        offset, quarters = timedelta(0), 0
    if not 2000 <= value.year <= 2099:
        raise ValueError(f"an SMPP time holds years 2000-2099 only, got {value.year}")
    sign = "-" if offset < timedelta(0) else "+"
    return f"{value:%y%m%d%H%M%S}{value.microsecond // 100_000}{quarters:02}{sign}"


#: The longest relative time :func:`relative_until` writes: 99 days 23:59:59.
MAX_RELATIVE_SECONDS = 99 * 86_400 + 86_399


def relative_until(seconds: float) -> RelativeTime:
    """A relative time of ``seconds`` from now, in days, hours, minutes and seconds
    (months and years are not used: their length depends on the SMSC's calendar).

    Rounded up to a whole second, at least 1 (a time already past still asks the SMSC
    for the shortest validity, not its default) and at most :data:`MAX_RELATIVE_SECONDS`.
    """
    whole = min(MAX_RELATIVE_SECONDS, max(1, math.ceil(seconds)))
    days, rest = divmod(whole, 86_400)
    hours, rest = divmod(rest, 3_600)
    minutes, secs = divmod(rest, 60)
    return RelativeTime(days=days, hours=hours, minutes=minutes, seconds=secs)


def resolve_smpp_time(value: datetime | RelativeTime | None, now: datetime) -> datetime | None:
    """The absolute time a parsed value stands for, relative ones counted from ``now``."""
    if isinstance(value, RelativeTime):
        return value.resolve(now)
    return value
