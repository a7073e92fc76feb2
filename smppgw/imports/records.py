"""Validators: raw rows of an operator's file -> typed records, and every bad row.

One validator per kind of file (members, spend, codes, gifts, profiles). Each is fed
rows one at a time (:meth:`Validator.add`) so a file is checked while it streams, and
keeps the good rows as records (the frozen dataclasses of
:mod:`smppgw.store.inventory`, which writes them) and the bad ones as
:class:`RowError` ``(line, column, reason)``. A row with several bad cells gets one error
per cell, so the operator fixes the file in one pass rather than one error per attempt.

What is checked here is what the file alone can tell: formats, ranges, required
columns, duplicate keys inside the file. What depends on the store (a code already in
the inventory, a member that does not exist) is checked when writing.

Normalisation, and why:

* msisdn: spaces, dashes, dots, brackets and a leading ``+`` are removed; a leading
  ``0`` (national format) becomes the country code; an Excel *number* cell that does
  not start with the country code gets it prefixed, because Excel drops the leading 0
  of ``0912345678`` when the column is numeric. Then digits only, of a sane length.
* dates: ``YYYY-MM-DD``, ``DD/MM/YYYY`` (the operators' locale) or an Excel date cell,
  in the configured time zone (the machine's by default); a ``valid_to`` date means
  "through the end of that day".
* codes: whitespace removed and upper-cased, the way the points scenario reads a code
  typed in an SMS (``ab 12`` and ``AB12`` are the same card).
* money and points: integers in minor units; ``150,000`` and ``150 000`` are read as
  thousands groups, ``1.5`` is refused (never silently rounded).
"""

from __future__ import annotations

import abc
import datetime as dt
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

from smppgw.store.inventory import (
    CodeRecord,
    GiftRecord,
    MemberRecord,
    ProfileRecord,
    RowError,
    SpendRecord,
)

if TYPE_CHECKING:
    from smppgw.imports.tabular import Cell, Row

__all__ = [
    "KINDS",
    "CodeRecord",
    "CodesValidator",
    "GiftRecord",
    "GiftsValidator",
    "MemberRecord",
    "MembersValidator",
    "ProfileRecord",
    "ProfilesValidator",
    "RowError",
    "SpendRecord",
    "SpendValidator",
    "ValidationOptions",
    "Validator",
    "make_validator",
    "parse_msisdn",
]

R = TypeVar("R")

#: Errors kept in memory per import; beyond it they are only counted.
ERROR_CAP = 1000


@dataclass(frozen=True, slots=True)
class ValidationOptions:
    """Settings the file does not carry.

    Attributes:
        country_code: replaces a leading ``0`` of a national number.
        min_digits / max_digits: an msisdn's length after normalisation.
        campaign: the codes' campaign when the file has no ``campaign`` value.
        tz: the zone of dates in the file; None is the machine's local zone.
    """

    country_code: str = "84"
    min_digits: int = 10
    max_digits: int = 15
    campaign: str | None = None
    tz: dt.tzinfo | None = None


class _Bad(ValueError):
    """A cell's value is wrong; the message is the reason shown to the operator."""


# ---------------------------------------------------------------------- cell parsers


def _text(cell: Cell) -> str | None:
    """A cell as trimmed text; None when blank. Excel's integral floats lose the ``.0``."""
    if cell is None:
        return None
    if isinstance(cell, bool):
        return "true" if cell else "false"
    if isinstance(cell, float) and cell.is_integer():
        return str(int(cell))
    if isinstance(cell, dt.datetime | dt.date):
        return cell.isoformat()
    text = str(cell).strip()
    return text or None


_MSISDN_JUNK = str.maketrans("", "", " \t-.()/\u00a0")


def parse_msisdn(cell: Cell, options: ValidationOptions) -> str:
    """The number in international digits-only form (see the module docstring)."""
    numeric = isinstance(cell, int | float) and not isinstance(cell, bool)
    text = _text(cell)
    if text is None:
        raise _Bad("missing")
    digits = text.translate(_MSISDN_JUNK)
    if digits.startswith("+"):
        digits = digits[1:]
    elif digits.startswith("00"):
        digits = digits[2:]
    elif digits.startswith("0"):
        digits = options.country_code + digits[1:]
    elif numeric and not digits.startswith(options.country_code):
        digits = options.country_code + digits
    if not digits.isascii() or not digits.isdigit():
        raise _Bad(f"{text!r} is not a phone number (digits only)")
    if len(digits) < options.min_digits:
        raise _Bad(f"{text!r} is too short ({len(digits)} digits, at least {options.min_digits})")
    if len(digits) > options.max_digits:
        raise _Bad(f"{text!r} is too long ({len(digits)} digits, at most {options.max_digits})")
    return digits


_GROUPED = re.compile(r"-?\d{1,3}(?:[, ]\d{3})+")


def parse_int(cell: Cell, *, minimum: int | None = 0) -> int:
    """An integer amount or count (see the module docstring)."""
    if isinstance(cell, bool):
        raise _Bad(f"{cell!r} is not a whole number")
    if isinstance(cell, int):
        value = cell
    elif isinstance(cell, float):
        if not cell.is_integer():
            raise _Bad(f"{cell!r} is not a whole number")
        value = int(cell)
    else:
        text = _text(cell)
        if text is None:
            raise _Bad("missing")
        compact = text.replace("_", "").replace("\u00a0", " ")
        if _GROUPED.fullmatch(compact):
            compact = compact.replace(",", "").replace(" ", "")
        if not re.fullmatch(r"[+-]?\d+", compact):
            raise _Bad(f"{text!r} is not a whole number")
        value = int(compact)
    if minimum is not None and value < minimum:
        raise _Bad(f"{value} is below {minimum}")
    return value


_ISO_DATE = re.compile(r"(\d{4})-(\d{1,2})-(\d{1,2})(?:[ T](\d{1,2}):(\d{2})(?::(\d{2}))?)?")
_DMY_DATE = re.compile(r"(\d{1,2})/(\d{1,2})/(\d{4})(?: (\d{1,2}):(\d{2})(?::(\d{2}))?)?")


def parse_datetime(cell: Cell) -> tuple[dt.datetime, bool]:
    """A naive datetime and whether the cell had a time of day."""
    if isinstance(cell, dt.datetime):
        return cell.replace(tzinfo=None), cell.time() != dt.time()
    if isinstance(cell, dt.date):
        return dt.datetime(cell.year, cell.month, cell.day), False
    text = _text(cell)
    if text is None:
        raise _Bad("missing")
    iso = _ISO_DATE.fullmatch(text)
    dmy = _DMY_DATE.fullmatch(text)
    if iso:
        y, m, d, hh, mm, ss = iso.groups()
    elif dmy:
        d, m, y, hh, mm, ss = dmy.groups()
    else:
        raise _Bad(f"{text!r} is not a date (YYYY-MM-DD or DD/MM/YYYY)")
    try:
        value = dt.datetime(int(y), int(m), int(d), int(hh or 0), int(mm or 0), int(ss or 0))
    except ValueError:
        raise _Bad(f"{text!r} is not a calendar date") from None
    return value, hh is not None


def to_ms(value: dt.datetime, tz: dt.tzinfo | None) -> int:
    """Epoch milliseconds of a naive local datetime in ``tz`` (None: the machine's)."""
    aware = value.replace(tzinfo=tz) if tz is not None else value.astimezone()
    return round(aware.timestamp() * 1000)


def parse_date_ms(cell: Cell, tz: dt.tzinfo | None, *, end_of_day: bool = False) -> int:
    """Milliseconds of a date cell; a bare date with ``end_of_day`` is its last ms."""
    value, has_time = parse_datetime(cell)
    if end_of_day and not has_time:
        return to_ms(value + dt.timedelta(days=1), tz) - 1
    return to_ms(value, tz)


_MONTH = re.compile(r"(\d{4})-(\d{1,2})|(\d{1,2})/(\d{4})")


def parse_month(cell: Cell) -> str:
    """``YYYY-MM`` from ``YYYY-MM``, ``MM/YYYY`` or an Excel date cell."""
    if isinstance(cell, dt.date):
        return f"{cell.year:04d}-{cell.month:02d}"
    text = _text(cell)
    if text is None:
        raise _Bad("missing")
    match = _MONTH.fullmatch(text)
    if not match:
        raise _Bad(f"{text!r} is not a month (YYYY-MM)")
    year, month = (match.group(1), match.group(2)) if match.group(1) else match.group(4, 3)
    if not 1 <= int(month) <= 12:
        raise _Bad(f"{text!r} is not a month (YYYY-MM)")
    return f"{int(year):04d}-{int(month):02d}"


_TRUE = {"1", "true", "yes", "y", "x", "co", "có"}
_FALSE = {"0", "false", "no", "n", "khong", "không"}


def parse_bool(cell: Cell) -> bool:
    if isinstance(cell, bool):
        return cell
    text = _text(cell)
    if text is None:
        raise _Bad("missing")
    if text.lower() in _TRUE:
        return True
    if text.lower() in _FALSE:
        return False
    raise _Bad(f"{text!r} is not yes/no (use 1/0, true/false, yes/no)")


# ---------------------------------------------------------------------- validators


class _Cells:
    """One row's cells and the errors found in them so far."""

    def __init__(self, row: Row) -> None:
        self.row = row
        self.errors: list[RowError] = []

    def bad(self, column: str | None, reason: str) -> None:
        self.errors.append(RowError(self.row.line, column, reason))

    def text(self, column: str, *, required: bool = False) -> str | None:
        value = _text(self.row.values.get(column))
        if value is None and required:
            self.bad(column, "missing")
        return value

    def parse(self, column: str, parse: _Parser[R], *, required: bool = True) -> R | None:
        cell = self.row.values.get(column)
        if _text(cell) is None and not required:
            return None
        try:
            return parse(cell)
        except _Bad as exc:
            self.bad(column, str(exc))
            return None


if TYPE_CHECKING:
    from collections.abc import Callable

    _Parser = Callable[[Cell], R]


@dataclass(eq=False)
class Validator(abc.ABC, Generic[R]):
    """Feed rows with :meth:`add`; read :attr:`records`, :attr:`errors`, :attr:`error_count`.

    Subclasses declare ``required`` (column groups: a group is satisfied when any of its
    columns is in the header) and implement :meth:`_parse`. A missing required column
    is one error on line 1, and then rows are only counted: 500k "missing" errors would
    bury the one that matters.
    """

    options: ValidationOptions = field(default_factory=ValidationOptions)
    records: list[R] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)
    error_count: int = 0
    rows_read: int = 0
    _header_checked: bool = False
    _header_bad: bool = False
    _seen: dict[object, int] = field(default_factory=dict)

    kind: ClassVar[str] = ""
    required: ClassVar[tuple[tuple[str, ...], ...]] = ()

    def add(self, row: Row) -> None:
        self.rows_read += 1
        if not self._header_checked:
            self._header_checked = True
            self._check_header(set(row.values))
        if self._header_bad:
            return
        cells = _Cells(row)
        if row.extra:
            cells.bad(None, f"{row.extra} cell(s) beyond the last header column")
        record = self._parse(cells)
        if cells.errors or record is None:
            self._refuse(cells.errors or [RowError(row.line, None, "refused")])
        else:
            self.records.append(record)

    def _check_header(self, present: set[str]) -> None:
        for group in self.required:
            if not present.intersection(group):
                wanted = " or ".join(group)
                self._refuse([RowError(1, group[0], f"the header has no column {wanted}")])
                self._header_bad = True

    def _refuse(self, errors: list[RowError]) -> None:
        self.error_count += len(errors)
        room = ERROR_CAP - len(self.errors)
        if room > 0:
            self.errors.extend(errors[:room])

    @property
    def bad_rows(self) -> int:
        return self.rows_read - len(self.records)

    def _unique(self, cells: _Cells, column: str, key: object, shown: str) -> None:
        """Refuse ``key`` when an earlier row of the file had it."""
        first = self._seen.setdefault(key, cells.row.line)
        if first != cells.row.line:
            cells.bad(column, f"{shown} is also on line {first}")

    @abc.abstractmethod
    def _parse(self, cells: _Cells) -> R | None:
        """One row's record, or None when a cell was refused (``cells.bad``)."""


_MEMBER_COLUMNS = frozenset({"msisdn", "member_id", "name", "province"})


class MembersValidator(Validator[MemberRecord]):
    """msisdn (required), member_id, name, province; other columns go to ``fields``."""

    kind = "members"
    required = (("msisdn",),)

    def _parse(self, cells: _Cells) -> MemberRecord | None:
        msisdn = cells.parse("msisdn", self._msisdn)
        member_id = cells.text("member_id")
        if msisdn is not None:
            self._unique(cells, "msisdn", ("msisdn", msisdn), msisdn)
        if member_id is not None:
            self._unique(cells, "member_id", ("member_id", member_id), member_id)
        extra = tuple(
            (name, text)
            for name, cell in cells.row.values.items()
            if name not in _MEMBER_COLUMNS and (text := _text(cell)) is not None
        )
        if msisdn is None:
            return None
        return MemberRecord(
            line=cells.row.line,
            msisdn=msisdn,
            member_id=member_id,
            name=cells.text("name"),
            province=cells.text("province"),
            fields=extra,
        )

    def _msisdn(self, cell: Cell) -> str:
        return parse_msisdn(cell, self.options)


class SpendValidator(Validator[SpendRecord]):
    """member_id or msisdn, month (YYYY-MM), amount (minor units, >= 0)."""

    kind = "spend"
    required = (("member_id", "msisdn"), ("month",), ("amount",))

    def _parse(self, cells: _Cells) -> SpendRecord | None:
        member_id = cells.text("member_id")
        msisdn = None
        if member_id is None:
            if _text(cells.row.values.get("msisdn")) is None:
                cells.bad("member_id", "missing (give member_id or msisdn)")
            else:
                msisdn = cells.parse("msisdn", self._msisdn)
        month = cells.parse("month", parse_month)
        amount = cells.parse("amount", parse_int)
        who = member_id or msisdn
        if who is not None and month is not None:
            self._unique(cells, "month", (who, month), f"{who} {month}")
        if month is None or amount is None or who is None:
            return None
        return SpendRecord(cells.row.line, month, amount, member_id=member_id, msisdn=msisdn)

    def _msisdn(self, cell: Cell) -> str:
        return parse_msisdn(cell, self.options)


class CodesValidator(Validator[CodeRecord]):
    """code, points (>= 0), campaign (or the option), valid_from / valid_to (dates)."""

    kind = "codes"
    required = (("code",), ("points",))

    def _check_header(self, present: set[str]) -> None:
        super()._check_header(present)
        if self.options.campaign is None and "campaign" not in present:
            self._refuse([RowError(1, "campaign", "no campaign column: give --campaign NAME")])
            self._header_bad = True

    def _parse(self, cells: _Cells) -> CodeRecord | None:
        raw = cells.text("code", required=True)
        # As the points scenario reads a typed code (``code_of``): the words joined,
        # upper-cased. A code stored with a space inside could never be matched.
        code = "".join(raw.split()).upper() if raw is not None else None
        points = cells.parse("points", parse_int)
        campaign = cells.text("campaign") or self.options.campaign
        if campaign is None:
            cells.bad("campaign", "missing (or give --campaign NAME)")
        tz = self.options.tz
        valid_from = cells.parse("valid_from", lambda c: parse_date_ms(c, tz), required=False)
        valid_to = cells.parse(
            "valid_to", lambda c: parse_date_ms(c, tz, end_of_day=True), required=False
        )
        if valid_from is not None and valid_to is not None and valid_to < valid_from:
            cells.bad("valid_to", "is before valid_from")
        if code is not None:
            self._unique(cells, "code", code, code)
        if code is None or points is None or campaign is None:
            return None
        return CodeRecord(cells.row.line, code, points, campaign, valid_from, valid_to)


class GiftsValidator(Validator[GiftRecord]):
    """gift_type, serial, pin (optional), cost_points (>= 0)."""

    kind = "gifts"
    required = (("gift_type",), ("serial",), ("cost_points",))

    def _parse(self, cells: _Cells) -> GiftRecord | None:
        gift_type = cells.text("gift_type", required=True)
        serial = cells.text("serial", required=True)
        cost = cells.parse("cost_points", parse_int)
        if gift_type is not None and serial is not None:
            self._unique(cells, "serial", (gift_type, serial), f"{gift_type} {serial}")
        if gift_type is None or serial is None or cost is None:
            return None
        return GiftRecord(cells.row.line, gift_type, serial, cost, pin=cells.text("pin"))


_SPEND_MONTHS = ("spend_m1", "spend_m2", "spend_m3")


class ProfilesValidator(Validator[ProfileRecord]):
    """msisdn, arpu_3m (or spend_m1..m3 averaged), balance, opted_out.

    With the three monthly columns, a blank month counts as 0 (a subscriber who spent
    nothing that month); all three blank is refused: nothing is known.
    """

    kind = "profiles"
    required = (("msisdn",), ("arpu_3m", *_SPEND_MONTHS))

    def _check_header(self, present: set[str]) -> None:
        super()._check_header(present)
        missing = [m for m in _SPEND_MONTHS if m not in present]
        if "arpu_3m" not in present and missing and not self._header_bad:
            self._refuse([RowError(1, missing[0], "no arpu_3m, so spend_m1..3 are all needed")])
            self._header_bad = True

    def _parse(self, cells: _Cells) -> ProfileRecord | None:
        msisdn = cells.parse("msisdn", self._msisdn)
        if "arpu_3m" in cells.row.values:
            arpu = cells.parse("arpu_3m", parse_int)
        else:
            months = [cells.parse(m, parse_int, required=False) for m in _SPEND_MONTHS]
            if all(_text(cells.row.values.get(m)) is None for m in _SPEND_MONTHS):
                cells.bad("spend_m1", "missing (spend_m1..3 are all blank)")
            total = sum(m or 0 for m in months)
            arpu = (2 * total + 3) // 6  # total / 3, halves rounded up
        balance = cells.parse("balance", lambda c: parse_int(c, minimum=None), required=False)
        opted_out = cells.parse("opted_out", parse_bool, required=False)
        if msisdn is not None:
            self._unique(cells, "msisdn", msisdn, msisdn)
        if msisdn is None or arpu is None:
            return None
        return ProfileRecord(cells.row.line, msisdn, arpu, balance, opted_out)

    def _msisdn(self, cell: Cell) -> str:
        return parse_msisdn(cell, self.options)


KINDS: dict[str, type[Validator[Any]]] = {
    v.kind: v
    for v in (MembersValidator, SpendValidator, CodesValidator, GiftsValidator, ProfilesValidator)
}


def make_validator(kind: str, options: ValidationOptions | None = None) -> Validator[Any]:
    """A fresh validator for ``kind`` (one of :data:`KINDS`)."""
    try:
        cls = KINDS[kind]
    except KeyError:
        raise ValueError(f"unknown import kind {kind!r} (use {', '.join(KINDS)})") from None
    return cls(options or ValidationOptions())
