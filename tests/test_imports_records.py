"""Validators: good rows become records, every bad row is reported with its line."""

from __future__ import annotations

import datetime as dt
from fractions import Fraction
from typing import Any

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from smppgw.imports.records import (
    CodeRecord,
    MemberRecord,
    ProfileRecord,
    SpendRecord,
    ValidationOptions,
    Validator,
    make_validator,
    parse_msisdn,
)
from smppgw.imports.tabular import Row

UTC = ValidationOptions(tz=dt.UTC)

subscriber = st.text("0123456789", min_size=9, max_size=9).filter(lambda s: s[0] != "0")


def _spaced(draw: st.DrawFn, digits: str) -> str:
    """The same number as operators type it: spaces, dashes, dots here and there."""
    out = []
    for ch in digits:
        out.append(ch)
        out.append(draw(st.sampled_from(["", "", "", " ", "-", "."])))
    return "".join(out).strip(" -.")


@st.composite
def written_msisdn(draw: st.DrawFn) -> tuple[object, str]:
    """(a cell as found in a file, the normalised number it stands for)."""
    national = draw(subscriber)
    expected = "84" + national
    form = draw(st.sampled_from(["national", "plus", "intl", "excel_int", "excel_lost_zero"]))
    if form == "national":
        return " " + _spaced(draw, "0" + national) + " ", expected
    if form == "plus":
        return "+" + _spaced(draw, expected), expected
    if form == "intl":
        return expected, expected
    if form == "excel_int":
        return int(expected), expected
    # Excel dropped the leading 0 of a numeric column; a national number that itself
    # starts with the country code is ambiguous then, and read as international.
    assume(not national.startswith("84"))
    return int(national), expected


@given(written_msisdn())
def test_msisdn_forms_normalise(case: tuple[object, str]) -> None:
    cell, expected = case
    assert parse_msisdn(cell, ValidationOptions()) == expected


@pytest.mark.parametrize(
    ("cell", "reason"),
    [
        ("09123", "too short"),
        ("0912345678901234", "too long"),
        ("0912abc678", "not a phone number"),
        ("", "missing"),
    ],
)
def test_msisdn_refused(cell: str, reason: str) -> None:
    validator = make_validator("members")
    validator.add(Row(2, {"msisdn": cell}))
    assert validator.records == []
    assert len(validator.errors) == 1
    assert validator.errors[0].line == 2
    assert validator.errors[0].column == "msisdn"
    assert reason in validator.errors[0].reason


@st.composite
def member_rows(draw: st.DrawFn) -> list[dict[str, object]]:
    numbers = draw(st.lists(subscriber, min_size=1, max_size=15, unique=True))
    rows: list[dict[str, object]] = []
    for i, national in enumerate(numbers):
        rows.append(
            {
                "msisdn": "0" + national,
                "member_id": draw(st.sampled_from([None, f"M{i:05d}"])),
                "name": draw(st.one_of(st.none(), st.text(min_size=1, max_size=20))),
                "province": draw(st.sampled_from([None, "Hà Nội", "hcm"])),
                "tier": draw(st.sampled_from([None, "gold", 3])),
            }
        )
    return rows


def _feed(
    kind: str, rows: list[dict[str, object]], options: ValidationOptions = UTC
) -> Validator[Any]:
    validator = make_validator(kind, options)
    for i, values in enumerate(rows):
        validator.add(Row(i + 2, dict(values)))
    return validator


@given(member_rows())
def test_valid_member_rows_always_validate(rows: list[dict[str, object]]) -> None:
    validator = make_validator("members")
    for i, values in enumerate(rows):
        validator.add(Row(i + 2, values))
    assert validator.errors == []
    assert [r.line for r in validator.records] == list(range(2, len(rows) + 2))
    for record, values in zip(validator.records, rows, strict=True):
        assert isinstance(record, MemberRecord)
        assert record.msisdn == "84" + str(values["msisdn"])[1:]
        assert record.member_id == values["member_id"]
        assert dict(record.fields) == (
            {} if values["tier"] is None else {"tier": str(values["tier"])}
        )


corruptions = st.sampled_from(
    [
        ("msisdn", "12ab"),
        ("msisdn", None),
        ("msisdn", "0123"),
    ]
)


@given(member_rows(), st.data(), corruptions)
def test_a_broken_member_row_is_reported_by_line(
    rows: list[dict[str, object]], data: st.DataObject, corruption: tuple[str, object]
) -> None:
    index = data.draw(st.integers(0, len(rows) - 1))
    column, value = corruption
    rows[index][column] = value
    validator = make_validator("members")
    for i, values in enumerate(rows):
        validator.add(Row(i + 2, values))
    assert [(e.line, e.column) for e in validator.errors] == [(index + 2, column)]
    assert validator.error_count == 1
    assert len(validator.records) == len(rows) - 1


def test_duplicates_inside_the_file() -> None:
    validator = make_validator("members")
    validator.add(Row(2, {"msisdn": "0912345678", "member_id": "A"}))
    validator.add(Row(3, {"msisdn": "84912345678", "member_id": "B"}))
    validator.add(Row(4, {"msisdn": "0912000000", "member_id": "A"}))
    assert [str(e) for e in validator.errors] == [
        "line 3, msisdn: 84912345678 is also on line 2",
        "line 4, member_id: A is also on line 2",
    ]
    assert len(validator.records) == 1


def test_missing_required_column_is_one_error() -> None:
    validator = make_validator("gifts")
    for line in range(2, 100):
        validator.add(Row(line, {"gift_type": "card", "serial": str(line)}))
    assert [(e.line, e.column) for e in validator.errors] == [(1, "cost_points")]
    assert validator.rows_read == 98
    assert validator.records == []


@given(st.dates(dt.date(1990, 1, 1), dt.date(2090, 12, 31)), st.integers(0, 1000))
def test_code_dates_in_every_accepted_form_agree(day: dt.date, points: int) -> None:
    forms: list[object] = [
        day.isoformat(),
        f"{day.day:02d}/{day.month:02d}/{day.year}",
        f"{day.day}/{day.month}/{day.year}",
        dt.datetime(day.year, day.month, day.day),
    ]
    start = int(dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC).timestamp() * 1000)
    for form in forms:
        validator = _feed(
            "codes",
            [{"code": " ab-1 2 ", "points": str(points), "valid_from": form, "valid_to": form}],
            ValidationOptions(tz=dt.UTC, campaign="tet"),
        )
        assert validator.errors == []
        [record] = validator.records
        assert record == CodeRecord(2, "AB-12", points, "tet", start, start + 86_400_000 - 1)


@pytest.mark.parametrize(
    ("values", "column", "reason"),
    [
        ({"code": "A", "points": "-1"}, "points", "below 0"),
        ({"code": "A", "points": "1.5"}, "points", "whole number"),
        ({"code": "", "points": "1"}, "code", "missing"),
        ({"code": "A", "points": "1", "valid_from": "2025-02-30"}, "valid_from", "calendar"),
        ({"code": "A", "points": "1", "valid_to": "12/31/2025"}, "valid_to", "calendar"),
        ({"code": "A", "points": "1", "valid_to": "soon"}, "valid_to", "not a date"),
        (
            {"code": "A", "points": "1", "valid_from": "2025-02-02", "valid_to": "2025-02-01"},
            "valid_to",
            "before valid_from",
        ),
    ],
)
def test_bad_codes(values: dict[str, object], column: str, reason: str) -> None:
    validator = _feed("codes", [values], ValidationOptions(campaign="tet"))
    [error] = validator.errors
    assert (error.line, error.column) == (2, column)
    assert reason in error.reason


def test_codes_campaign_from_file_or_option() -> None:
    rows: list[dict[str, object]] = [
        {"code": "a", "points": 1, "campaign": "summer"},
        {"code": "b", "points": "1,000", "campaign": None},
    ]
    validator = _feed("codes", rows, ValidationOptions(campaign="tet"))
    assert [(r.code, r.points, r.campaign) for r in validator.records] == [
        ("A", 1, "summer"),
        ("B", 1000, "tet"),
    ]
    refused = _feed("codes", [{"code": "a", "points": 1}])
    assert [e.column for e in refused.errors] == ["campaign"]


def test_spend_rows() -> None:
    rows: list[dict[str, object]] = [
        {"member_id": "M1", "msisdn": None, "month": "2025-01", "amount": "150 000"},
        {"member_id": None, "msisdn": "0912345678", "month": "02/2025", "amount": 90000},
        {"member_id": None, "msisdn": None, "month": "2025-03", "amount": 1},
        {"member_id": "M1", "msisdn": None, "month": "2025-1", "amount": 2},
        {"member_id": "M2", "msisdn": None, "month": "2025-13", "amount": 2},
        {"member_id": "M2", "msisdn": None, "month": dt.datetime(2025, 4, 1), "amount": -3},
    ]
    validator = _feed("spend", rows)
    assert validator.records == [
        SpendRecord(2, "2025-01", 150000, member_id="M1"),
        SpendRecord(3, "2025-02", 90000, msisdn="84912345678"),
    ]
    assert [(e.line, e.column) for e in validator.errors] == [
        (4, "member_id"),
        (5, "month"),
        (6, "month"),
        (7, "amount"),
    ]


@given(st.integers(0, 10**9), st.integers(0, 10**9), st.integers(0, 10**9))
def test_profiles_average_three_months(a: int, b: int, c: int) -> None:
    rows: list[dict[str, object]] = [
        {"msisdn": "0912345678", "spend_m1": a, "spend_m2": str(b), "spend_m3": c}
    ]
    [record] = _feed("profiles", rows).records
    assert isinstance(record, ProfileRecord)
    assert record.arpu_3m == round(Fraction(a + b + c, 3))


def test_profiles_flags_and_balance() -> None:
    rows: list[dict[str, object]] = [
        {"msisdn": "0912345678", "arpu_3m": "50,000", "balance": "-100", "opted_out": "yes"},
        {"msisdn": "0912000000", "arpu_3m": 1, "balance": None, "opted_out": None},
        {"msisdn": "0912000001", "arpu_3m": 1, "balance": None, "opted_out": "maybe"},
    ]
    validator = _feed("profiles", rows)
    assert validator.records == [
        ProfileRecord(2, "84912345678", 50000, -100, True),
        ProfileRecord(3, "84912000000", 1, None, None),
    ]
    assert [(e.line, e.column) for e in validator.errors] == [(4, "opted_out")]


def test_profiles_need_arpu_or_three_months() -> None:
    validator = _feed("profiles", [{"msisdn": "0912345678", "spend_m1": 1, "spend_m2": 2}])
    assert [(e.line, e.column) for e in validator.errors] == [(1, "spend_m3")]


def test_unknown_kind() -> None:
    with pytest.raises(ValueError, match="unknown import kind"):
        make_validator("vouchers")


@given(st.text(max_size=12))
def test_parse_msisdn_never_raises_anything_else(text: str) -> None:
    assume(text.strip())
    validator = make_validator("members")
    validator.add(Row(2, {"msisdn": text}))
    assert len(validator.records) + len(validator.errors) == 1
