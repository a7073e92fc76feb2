"""Delivery receipts (SMPP 3.4 Appendix B): canonical format, tolerant parse, states."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smppgw.protocol import receipt as receipt_module
from smppgw.protocol.message_id import IdFormat, receipt_key, resp_key
from smppgw.protocol.receipt import (
    FINAL_STATES,
    MessageState,
    Receipt,
    ReceiptError,
    format_receipt,
    is_final,
    parse_receipt,
    stat_word,
    state_from_stat,
)

# --- message states -----------------------------------------------------------------


def test_message_state_values_match_spec_5_2_28() -> None:
    assert {s.name: s.value for s in MessageState} == {
        "ENROUTE": 1,
        "DELIVERED": 2,
        "EXPIRED": 3,
        "DELETED": 4,
        "UNDELIVERABLE": 5,
        "ACCEPTED": 6,
        "UNKNOWN": 7,
        "REJECTED": 8,
    }


def test_is_final() -> None:
    assert not is_final(MessageState.ENROUTE)
    assert all(is_final(s) for s in MessageState if s is not MessageState.ENROUTE)
    assert is_final(2)
    assert not is_final(0)
    assert not is_final(9)  # SMPP 5.0 SCHEDULED or anything unknown: wait, don't close
    assert MessageState.ENROUTE not in FINAL_STATES


@pytest.mark.parametrize(
    ("word", "state"),
    [
        ("DELIVRD", MessageState.DELIVERED),
        ("EXPIRED", MessageState.EXPIRED),
        ("DELETED", MessageState.DELETED),
        ("UNDELIV", MessageState.UNDELIVERABLE),
        ("ACCEPTD", MessageState.ACCEPTED),
        ("UNKNOWN", MessageState.UNKNOWN),
        ("REJECTD", MessageState.REJECTED),
        ("ENROUTE", MessageState.ENROUTE),
        ("delivered", MessageState.DELIVERED),
        ("Undeliverable", MessageState.UNDELIVERABLE),
        ("FAILED", MessageState.UNDELIVERABLE),
        (" rejected ", MessageState.REJECTED),
    ],
)
def test_state_from_stat(word: str, state: MessageState) -> None:
    assert state_from_stat(word) is state


def test_state_from_stat_unknown_word() -> None:
    assert state_from_stat("WHATEVER") is None
    assert Receipt(message_id="1", stat="WHATEVER").state is MessageState.UNKNOWN


@pytest.mark.parametrize("state", list(MessageState))
def test_stat_word_round_trips(state: MessageState) -> None:
    word = stat_word(state)
    assert len(word) == 7
    assert state_from_stat(word) is state


def test_stat_word_of_unknown_value() -> None:
    assert stat_word(42) == "UNKNOWN"


# --- format ---------------------------------------------------------------------------

FULL = Receipt(
    message_id="0123456789",
    sub=1,
    dlvrd=1,
    submit_date=datetime(2005, 6, 13, 12, 30),
    done_date=datetime(2005, 6, 13, 12, 31, 45),
    stat="DELIVRD",
    err="000",
    text="Hello world",
)


def test_format_canonical() -> None:
    assert format_receipt(FULL) == (
        "id:0123456789 sub:001 dlvrd:001 submit date:0506131230 done date:0506131231"
        " stat:DELIVRD err:000 Text:Hello world"
    )


def test_format_with_seconds() -> None:
    assert "done date:050613123145 " in format_receipt(FULL, seconds=True)


def test_format_leaves_out_none_fields() -> None:
    assert format_receipt(Receipt(message_id="42", stat="REJECTD")) == "id:42 stat:REJECTD"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"message_id": ""},
        {"message_id": "a b"},
        {"stat": "DEL IVRD"},
        {"stat": ""},
        {"err": ""},
        {"sub": -1},
        {"dlvrd": 10**10},
        {"done_date": datetime(1999, 12, 31)},
    ],
)
def test_receipt_validates(kwargs: dict[str, Any]) -> None:
    base: dict[str, Any] = {"message_id": "1", "stat": "DELIVRD"}
    with pytest.raises(ReceiptError):
        Receipt(**(base | kwargs))


# --- parse: real-world dialects ----------------------------------------------------------

D = datetime

REAL_WORLD: list[tuple[str, str | bytes, dict[str, Any]]] = [
    (
        "spec appendix B",
        "id:0123456789 sub:001 dlvrd:001 submit date:0506131230 done date:0506131231"
        " stat:DELIVRD err:000 Text:Hello world",
        {
            "message_id": "0123456789",
            "sub": 1,
            "dlvrd": 1,
            "submit_date": D(2005, 6, 13, 12, 30),
            "done_date": D(2005, 6, 13, 12, 31),
            "stat": "DELIVRD",
            "err": "000",
            "text": "Hello world",
        },
    ),
    (
        "kannel style, lower-case text, undelivered",
        "id:1234567890 sub:001 dlvrd:000 submit date:2301011200 done date:2301011201"
        " stat:UNDELIV err:001 text:Your code is 1234",
        {
            "message_id": "1234567890",
            "dlvrd": 0,
            "stat": "UNDELIV",
            "err": "001",
            "text": "Your code is 1234",
            "state": MessageState.UNDELIVERABLE,
            "error_code": 1,
        },
    ),
    (
        "12-digit dates",
        "id:7220023456 sub:001 dlvrd:001 submit date:230615143012 done date:230615143045"
        " stat:DELIVRD err:000 text:Test",
        {
            "submit_date": D(2023, 6, 15, 14, 30, 12),
            "done_date": D(2023, 6, 15, 14, 30, 45),
        },
    ),
    (
        "upper-case keys, hex id",
        "ID:ABCDEF12 SUB:001 DLVRD:001 SUBMIT DATE:2306151430 DONE DATE:2306151431"
        " STAT:DELIVRD ERR:000 TEXT:HI",
        {
            "message_id": "ABCDEF12",
            "submit_date": D(2023, 6, 15, 14, 30),
            "stat": "DELIVRD",
            "text": "HI",
        },
    ),
    (
        "mixed-case keys (Id:, Stat:, Text:)",
        "Id:77 Sub:001 Dlvrd:001 Submit Date:2306151430 Done Date:2306151431"
        " Stat:DELIVRD Err:000 Text:x",
        {"message_id": "77", "done_date": D(2023, 6, 15, 14, 31), "err": "000", "text": "x"},
    ),
    (
        "missing text, err:0, 128-bit hex id",
        "id:c449ab9744f47b6af1879e49e75e4f40 sub:001 dlvrd:001 submit date:1410310612"
        " done date:1410310612 stat:DELIVRD err:0",
        {
            "message_id": "c449ab9744f47b6af1879e49e75e4f40",
            "err": "0",
            "error_code": 0,
            "text": None,
        },
    ),
    (
        "extra unknown keys before text",
        "id:4C1A5E3F sub:001 dlvrd:001 submit date:2306151430 done date:2306151431"
        " stat:EXPIRED err:000 mcc:234 mnc:10 imsi:234100000000000 Text:Your code",
        {"message_id": "4C1A5E3F", "stat": "EXPIRED", "err": "000", "text": "Your code"},
    ),
    (
        "extra spaces everywhere",
        "  id: 12345  sub:001   dlvrd: 001 submit date: 2306151430 done date:2306151431 "
        " stat: DELIVRD err:000 Text:   hello there  ",
        {
            "message_id": "12345",
            "dlvrd": 1,
            "submit_date": D(2023, 6, 15, 14, 30),
            "stat": "DELIVRD",
            "text": "hello there",
        },
    ),
    (
        "minimal: id and stat only",
        "id:42 stat:REJECTD",
        {
            "message_id": "42",
            "stat": "REJECTD",
            "sub": None,
            "dlvrd": None,
            "submit_date": None,
            "done_date": None,
            "err": None,
            "text": None,
            "state": MessageState.REJECTED,
        },
    ),
    (
        "other field order, stat before sub",
        "id:99 submit date:2306151430 done date:2306151431 stat:ACCEPTD sub:001 dlvrd:000"
        " err:000 text:",
        {"stat": "ACCEPTD", "sub": 1, "dlvrd": 0, "text": "", "state": MessageState.ACCEPTED},
    ),
    (
        "lower-case stat word, enroute",
        "id:5 sub:001 dlvrd:000 stat:enroute err:000",
        {"stat": "ENROUTE", "state": MessageState.ENROUTE},
    ),
    (
        "spelled-out stat, non-numeric err",
        "id:5 stat:DELIVERED err:0x1F",
        {"stat": "DELIVERED", "state": MessageState.DELIVERED, "err": "0x1F", "error_code": None},
    ),
    (
        "underscore keys and 14-digit dates",
        "id:5 submit_date:20230615143012 done_date:20230615143013 stat:DELIVRD",
        {
            "submit_date": D(2023, 6, 15, 14, 30, 12),
            "done_date": D(2023, 6, 15, 14, 30, 13),
        },
    ),
    (
        "all-zero and impossible dates are None, bad counts are None",
        "id:5 sub:XYZ dlvrd: submit date:0000000000 done date:2313451299 stat:DELETED",
        {"sub": None, "dlvrd": None, "submit_date": None, "done_date": None, "stat": "DELETED"},
    ),
    (
        "text that looks like keys stays text",
        "id:5 stat:DELIVRD text:id:6 stat:UNDELIV",
        {"message_id": "5", "stat": "DELIVRD", "text": "id:6 stat:UNDELIV"},
    ),
    (
        "first of duplicate keys wins",
        "id:5 stat:DELIVRD id:6 stat:UNDELIV",
        {"message_id": "5", "stat": "DELIVRD"},
    ),
    (
        "bytes with trailing NUL",
        b"id:0A1B sub:001 dlvrd:001 stat:DELIVRD err:000 text:Ol\xc3\xa1\x00",
        {"message_id": "0A1B", "text": "Ol\u00e1"},
    ),
    (
        "bytes that are not UTF-8 fall back to Latin-1",
        b"id:1 stat:UNDELIV err:000 Text:caf\xe9",
        {"text": "caf\u00e9"},
    ),
    (
        "comma-separated fields",
        "id:1,sub:001,dlvrd:001,stat:DELIVRD,err:000",
        {"message_id": "1", "sub": 1, "stat": "DELIVRD", "err": "000"},
    ),
]


@pytest.mark.parametrize(
    ("text", "expected"), [c[1:] for c in REAL_WORLD], ids=[c[0] for c in REAL_WORLD]
)
def test_real_world_receipts(text: str | bytes, expected: dict[str, Any]) -> None:
    r = parse_receipt(text)
    for name, value in expected.items():
        assert getattr(r, name) == value, name


def test_hex_resp_matches_decimal_receipt_id() -> None:
    r = parse_receipt("id:2587 sub:001 dlvrd:001 stat:DELIVRD err:000")
    fmt = IdFormat.HEX_RESP_DEC_RECEIPT
    assert receipt_key(r.message_id, fmt) == resp_key("0A1B", fmt)


@pytest.mark.parametrize(
    ("text", "missing"),
    [
        ("", "id and stat"),
        ("hello, how are you?", "id and stat"),
        ("id:123 sub:001 dlvrd:001", "stat"),
        ("sub:001 dlvrd:001 stat:DELIVRD", "id"),
        ("id: stat:DELIVRD", "id"),
        ("Text: id:1 stat:DELIVRD", "id and stat"),
        ("identity:1 status:DELIVRD", "id and stat"),
    ],
)
def test_not_a_receipt(text: str, missing: str) -> None:
    with pytest.raises(ReceiptError, match=f"no {missing} in"):
        parse_receipt(text)


# --- properties -------------------------------------------------------------------------

_word = st.text(alphabet="0123456789abcdefABCDEFxyzXYZ-_.", min_size=1, max_size=40)
_dates = st.none() | st.datetimes(D(2000, 1, 1), D(2099, 12, 31, 23, 59))
_texts = st.none() | st.text(max_size=40).map(lambda s: s.strip().rstrip("\0").strip())


@st.composite
def receipts(draw: st.DrawFn, *, seconds: bool) -> Receipt:
    def date() -> datetime | None:
        d = draw(_dates)
        if d is None:
            return None
        return d.replace(microsecond=0) if seconds else d.replace(second=0, microsecond=0)

    return Receipt(
        message_id=draw(_word),
        stat=draw(st.sampled_from(["DELIVRD", "UNDELIV", "ENROUTE", "WEIRD"]) | _word).upper(),
        sub=draw(st.none() | st.integers(0, 999)),
        dlvrd=draw(st.none() | st.integers(0, 999)),
        submit_date=date(),
        done_date=date(),
        err=draw(st.none() | _word),
        text=draw(_texts),
    )


@given(receipts(seconds=False))
def test_round_trip_minutes(r: Receipt) -> None:
    assert parse_receipt(format_receipt(r)) == r


@given(receipts(seconds=True))
def test_round_trip_seconds(r: Receipt) -> None:
    assert parse_receipt(format_receipt(r, seconds=True)) == r
    assert parse_receipt(format_receipt(r, seconds=True).encode()) == r


def _parse_or_none(data: str | bytes) -> Receipt | None:
    """Parse, letting only ReceiptError escape as 'no receipt' (anything else fails)."""
    try:
        return parse_receipt(data)
    except ReceiptError:
        return None


@given(st.text(max_size=200))
def test_arbitrary_text_only_raises_receipt_error(text: str) -> None:
    r = _parse_or_none(text)
    if r is not None:  # whatever it read, formatting it reads back the same
        assert parse_receipt(format_receipt(r, seconds=True)) == r


@given(st.binary(max_size=200))
def test_arbitrary_bytes_only_raise_receipt_error(data: bytes) -> None:
    _parse_or_none(data)


_keyish = st.sampled_from(
    [
        "id:",
        "ID:",
        "sub:",
        "dlvrd:",
        "submit date:",
        "done date:",
        "stat:",
        "Stat:",
        "err:",
        "text:",
        "Text:",
        " ",
        "  ",
        ",",
        "0",
        "12",
        "DELIVRD",
        "2306151430",
        "230615143012",
        "\0",
        ":",
        "x",
    ]
)


@given(st.lists(_keyish, max_size=30).map("".join))
def test_receipt_like_noise_only_raises_receipt_error(text: str) -> None:
    r = _parse_or_none(text)
    if r is not None:
        assert parse_receipt(format_receipt(r, seconds=True)) == r


@st.composite
def dialects(draw: st.DrawFn) -> tuple[Receipt, str]:
    """A receipt written as some SMSC might: any key case, order, spacing, extra keys."""
    r = draw(receipts(seconds=True))
    case = draw(st.sampled_from([str.lower, str.upper, str.title]))
    twelve = draw(st.booleans()) or any(
        d is not None and d.second for d in (r.submit_date, r.done_date)
    )

    def date(d: datetime) -> str:
        return d.strftime("%y%m%d%H%M%S" if twelve else "%y%m%d%H%M")

    fields = [("id", r.message_id), ("stat", draw(st.sampled_from([r.stat, r.stat.lower()])))]
    optional = [
        ("sub", None if r.sub is None else f"{r.sub:03d}"),
        ("dlvrd", None if r.dlvrd is None else str(r.dlvrd)),
        ("submit date", None if r.submit_date is None else date(r.submit_date)),
        ("done date", None if r.done_date is None else date(r.done_date)),
        ("err", r.err),
    ]
    fields += [(k, v) for k, v in optional if v is not None]
    fields += draw(st.lists(st.sampled_from([("mcc", "234"), ("imsi", "2341"), ("x", "")])))
    fields = draw(st.permutations(fields))
    sep = st.sampled_from([" ", "  ", "\t", ", ", ";"])
    after_colon = st.sampled_from(["", " "])
    out = "".join(f"{case(k)}:{draw(after_colon)}{v}{draw(sep)}" for k, v in fields)
    if r.text is not None:
        out += f"{case('text')}:{draw(after_colon)}{r.text}"
    return r, out


@given(dialects())
def test_dialects_parse_to_the_same_receipt(case: tuple[Receipt, str]) -> None:
    r, text = case
    assert parse_receipt(text) == r


_any_word = st.text(min_size=1, max_size=12).filter(lambda w: w.strip() == w)


@st.composite
def canonical_looking(draw: st.DrawFn) -> str:
    """Receipt texts in (or near) the canonical layout, with odd values in every field."""
    digits = st.text(alphabet="0123456789", min_size=1, max_size=14)
    date = st.sampled_from([10, 12]).flatmap(
        lambda n: st.text(alphabet="0123456789", min_size=n, max_size=n)
    )
    fields = [
        f"id:{draw(_word | _word | _any_word)}",
        f"sub:{draw(digits)}",
        f"dlvrd:{draw(digits)}",
        f"submit date:{draw(date | digits)}",
        f"done date:{draw(date | digits)}",
        f"stat:{draw(_word | _any_word)}",
        f"err:{draw(_word | _any_word)}",
    ]
    text = " ".join(fields)
    if draw(st.booleans()):
        pad = st.sampled_from(["", " ", "\t", "  "])
        body = draw(pad) + draw(st.text(max_size=30)) + draw(pad)
        text += f" {draw(st.sampled_from(['Text', 'text']))}:{body}"
    return text


@given(canonical_looking())
def test_the_fast_path_reads_what_the_tolerant_reading_reads(text: str) -> None:
    """parse_receipt reads the canonical layout with one regular expression; for every
    text that it takes, the key-by-key reading must give the same receipt."""
    try:
        slow: Receipt | None = receipt_module._parse_tolerant(receipt_module._decode(text))
    except ReceiptError:
        slow = None
    fast = _parse_or_none(text)
    assert fast == slow


def test_a_nul_is_never_part_of_a_value() -> None:
    """Found by hypothesis: ``stat:\\x00`` was read as a stat that, written again, ended
    in the NUL a C string's end drops, and no longer read back."""
    with pytest.raises(ReceiptError, match="no stat"):
        parse_receipt("stat:\x00 id:id:")
