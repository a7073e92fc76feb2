"""SMPP time strings (SMPP 3.4, 7.1.1): parse, format, round trips, typed errors."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smppgw.protocol.errors import PduDecodeError
from smppgw.protocol.smpp_time import (
    MAX_OFFSET_QUARTERS,
    MAX_RELATIVE_SECONDS,
    RelativeTime,
    SmppTimeError,
    TimeField,
    format_smpp_time,
    parse_smpp_time,
    relative_until,
    resolve_smpp_time,
)
from smppgw.protocol.status import CommandStatus

VP: TimeField = "validity_period"
SDT: TimeField = "schedule_delivery_time"


def test_empty_means_not_set() -> None:
    assert parse_smpp_time("", field=VP) is None
    assert format_smpp_time(None) == ""


def test_absolute_example() -> None:
    got = parse_smpp_time("230615143000704+", field=VP)
    assert got == datetime(2023, 6, 15, 14, 30, 0, 700_000, tzinfo=timezone(timedelta(hours=1)))
    assert isinstance(got, datetime)
    assert got.utcoffset() == timedelta(hours=1)


def test_absolute_negative_offset_is_behind_utc() -> None:
    got = parse_smpp_time("230615143000020-", field=SDT)
    assert got == datetime(2023, 6, 15, 19, 30, tzinfo=UTC)


def test_relative_example() -> None:
    assert parse_smpp_time("000002120000000R", field=VP) == RelativeTime(days=2, hours=12)
    assert format_smpp_time(RelativeTime(days=2, hours=12)) == "000002120000000R"


def test_relative_ignores_tnn_digits() -> None:
    assert parse_smpp_time("000000010000123R", field=VP) == RelativeTime(hours=1)


def test_relative_resolve_calendar_months_clamp() -> None:
    now = datetime(2024, 1, 31, 10, 0, tzinfo=UTC)
    assert RelativeTime(months=1).resolve(now) == datetime(2024, 2, 29, 10, 0, tzinfo=UTC)
    assert RelativeTime(years=1, months=13, days=1, hours=2, minutes=3, seconds=4).resolve(
        now
    ) == datetime(2026, 3, 1, 12, 3, 4, tzinfo=UTC)


def test_resolve_smpp_time() -> None:
    now = datetime(2024, 5, 1, tzinfo=UTC)
    absolute = datetime(2024, 6, 1, tzinfo=UTC)
    assert resolve_smpp_time(None, now) is None
    assert resolve_smpp_time(absolute, now) == absolute
    assert resolve_smpp_time(RelativeTime(minutes=90), now) == now + timedelta(minutes=90)


@pytest.mark.parametrize(
    ("field", "status"),
    [(VP, CommandStatus.ESME_RINVEXPIRY), (SDT, CommandStatus.ESME_RINVSCHED)],
)
@pytest.mark.parametrize(
    "bad",
    [
        "2306151430000",  # too short
        "230615143000004+0",  # too long
        "230615143000004*",  # bad sign
        "2306151430000O4+",  # letter O
        "231315143000004+",  # month 13
        "230230143000004+",  # Feb 30
        "230615243000004+",  # hour 24
        "230615146000004+",  # minute 60
        "230615143060004+",  # second 60
        "230615143000057+",  # offset 57 quarters
        "23061514300\u0660004+",  # Arabic-Indic zero: not an ASCII digit
    ],
)
def test_malformed_raises_typed_error_with_status(bad: str, field: TimeField, status: int) -> None:
    with pytest.raises(SmppTimeError) as info:
        parse_smpp_time(bad, field=field)
    assert info.value.command_status == status
    assert info.value.field == field
    assert isinstance(info.value, PduDecodeError)
    assert isinstance(info.value, ValueError)


def test_offset_beyond_spec_up_to_utc_plus_14_is_tolerated() -> None:
    got = parse_smpp_time("240101000000056+", field=VP)
    assert isinstance(got, datetime)
    assert got.utcoffset() == timedelta(hours=14)


def test_format_refuses_naive_and_out_of_range_years() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        format_smpp_time(datetime(2024, 1, 1))
    with pytest.raises(ValueError, match="2000-2099"):
        format_smpp_time(datetime(1999, 1, 1, tzinfo=UTC))


def test_format_converts_odd_offsets_to_utc() -> None:
    odd = timezone(timedelta(hours=5, minutes=7))
    assert format_smpp_time(datetime(2024, 1, 1, 12, 7, tzinfo=odd)) == "240101070000000+"
    far = timezone(timedelta(hours=-15))
    assert format_smpp_time(datetime(2024, 1, 1, 0, 0, tzinfo=far)) == "240101150000000+"


def test_format_truncates_to_tenths() -> None:
    dt = datetime(2024, 1, 1, 0, 0, 0, 999_999, tzinfo=UTC)
    assert format_smpp_time(dt) == "240101000000900+"


def test_relative_time_validates_components() -> None:
    with pytest.raises(ValueError, match="hours"):
        RelativeTime(hours=100)
    with pytest.raises(ValueError, match="days"):
        RelativeTime(days=-1)


@st.composite
def absolute_times(draw: st.DrawFn) -> datetime:
    quarters = draw(st.integers(-MAX_OFFSET_QUARTERS, MAX_OFFSET_QUARTERS))
    tz = timezone(timedelta(minutes=15 * quarters))
    naive = draw(st.datetimes(datetime(2000, 1, 1), datetime(2099, 12, 31, 23, 59, 59)))
    tenths = draw(st.integers(0, 9))
    return naive.replace(microsecond=tenths * 100_000, tzinfo=tz)


@given(absolute_times())
def test_absolute_round_trip_all_quarter_hour_offsets(dt: datetime) -> None:
    text = format_smpp_time(dt)
    assert len(text) == 16
    back = parse_smpp_time(text, field=VP)
    assert back == dt
    assert isinstance(back, datetime)
    assert back.utcoffset() == dt.utcoffset()  # written in its own zone, not moved to UTC


@pytest.mark.parametrize("quarters", range(-48, 49))
def test_every_spec_offset_round_trips(quarters: int) -> None:
    dt = datetime(2031, 7, 9, 8, 7, 6, 500_000, tzinfo=timezone(timedelta(minutes=15 * quarters)))
    text = format_smpp_time(dt)
    assert text[13:15] == f"{abs(quarters):02}"
    assert text[15] == ("-" if quarters < 0 else "+")
    assert parse_smpp_time(text, field=SDT) == dt


_two = st.integers(0, 99)


@given(st.builds(RelativeTime, _two, _two, _two, _two, _two, _two))
def test_relative_round_trip(rel: RelativeTime) -> None:
    text = format_smpp_time(rel)
    assert len(text) == 16
    assert text.endswith("000R")
    assert parse_smpp_time(text, field=VP) == rel


def _error_of(text: str, field: TimeField) -> SmppTimeError | None:
    """Parse, letting only our error escape (any other exception fails the test)."""
    try:
        parse_smpp_time(text, field=field)
    except SmppTimeError as exc:
        return exc
    return None


@given(st.text(max_size=20))
def test_arbitrary_text_only_raises_smpp_time_error(text: str) -> None:
    error = _error_of(text, SDT)
    assert error is None or error.command_status == CommandStatus.ESME_RINVSCHED


@given(st.text(alphabet="0123456789+-R", min_size=16, max_size=16))
def test_near_miss_strings_only_raise_smpp_time_error(text: str) -> None:
    error = _error_of(text, VP)
    assert error is None or error.command_status == CommandStatus.ESME_RINVEXPIRY


@given(st.floats(min_value=-1e6, max_value=2 * MAX_RELATIVE_SECONDS, allow_nan=False))
def test_relative_until_is_the_duration_rounded_up_within_bounds(seconds: float) -> None:
    rel = relative_until(seconds)
    assert (rel.years, rel.months) == (0, 0)  # their length is the SMSC's calendar
    now = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
    resolved = rel.resolve(now)
    assert resolved is not None
    span = (resolved - now).total_seconds()
    expected = min(MAX_RELATIVE_SECONDS, max(1, math.ceil(seconds)))
    assert span == expected
    text = format_smpp_time(rel)
    assert text.endswith("000R")
    assert parse_smpp_time(text, field="validity_period") == rel
