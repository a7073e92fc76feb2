"""Reading operators' files: CSV dialects, Excel sheets, headers and line numbers."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

import openpyxl
import pytest

from smppgw.imports.tabular import TabularError, normalize_header, read_rows

if TYPE_CHECKING:
    from pathlib import Path


def test_header_normalisation() -> None:
    assert normalize_header("  Member   ID ") == "member_id"
    assert normalize_header("MSISDN") == "msisdn"
    assert normalize_header(None) == ""


@pytest.mark.parametrize(
    ("raw", "delimiter"),
    [(b"", ","), (b"\xef\xbb\xbf", ","), (b"\xef\xbb\xbf", ";"), (b"", ";")],
)
def test_csv_bom_and_delimiter(tmp_path: Path, raw: bytes, delimiter: str) -> None:
    text = f"Msisdn{delimiter}Full Name\n0912{delimiter}Nguyễn Văn An\n"
    path = tmp_path / "m.csv"
    path.write_bytes(raw + text.encode())
    rows = list(read_rows(path))
    assert [(r.line, r.values) for r in rows] == [
        (2, {"msisdn": "0912", "full_name": "Nguyễn Văn An"})
    ]


def test_csv_line_numbers_count_blank_and_multiline_records(tmp_path: Path) -> None:
    path = tmp_path / "c.csv"
    path.write_text('code,note\nA,"two\nlines"\n\n,\nB,x\nC\n', encoding="utf-8")
    rows = list(read_rows(path))
    assert [(r.line, r.values["code"]) for r in rows] == [(2, "A"), (6, "B"), (7, "C")]
    assert rows[2].values["note"] is None  # a short row is padded with blanks


def test_csv_extra_cells_are_flagged(tmp_path: Path) -> None:
    path = tmp_path / "c.csv"
    path.write_text("code,points\nA,1,oops\nB,2,\n", encoding="utf-8")
    assert [r.extra for r in read_rows(path)] == [1, 0]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "empty"),
        (b"code,code\nA,B\n", "appears twice"),
        (b"code,,points\nA,B,1\n", "no name"),
        (b"code\n\xff\xfe\n", "not UTF-8"),
    ],
)
def test_csv_refused(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "c.csv"
    path.write_bytes(content)
    with pytest.raises(TabularError, match=message):
        list(read_rows(path))


def test_unknown_suffix(tmp_path: Path) -> None:
    with pytest.raises(TabularError, match="unknown file type"):
        read_rows(tmp_path / "c.ods")


def test_xlsx_first_and_named_sheet(tmp_path: Path) -> None:
    book = openpyxl.Workbook()
    first = book.active
    first.title = "Members"
    first.append(["MSISDN", "Joined"])
    first.append([84912345678, dt.datetime(2024, 5, 1)])
    first.append([None, None])  # blank row: skipped, keeps its number
    first.append(["0912000111", None])
    other = book.create_sheet("Codes")
    other.append(["code"])
    other.append(["X1"])
    path = tmp_path / "book.xlsx"
    book.save(path)

    rows = list(read_rows(path))
    assert [(r.line, r.values) for r in rows] == [
        (2, {"msisdn": 84912345678, "joined": dt.datetime(2024, 5, 1)}),
        (4, {"msisdn": "0912000111", "joined": None}),
    ]
    assert [r.values for r in read_rows(path, sheet="Codes")] == [{"code": "X1"}]
    with pytest.raises(TabularError, match="no sheet 'Gifts'"):
        list(read_rows(path, sheet="Gifts"))


def test_not_an_xlsx(tmp_path: Path) -> None:
    path = tmp_path / "fake.xlsx"
    path.write_text("code\nA\n")
    with pytest.raises(TabularError, match="not a readable"):
        list(read_rows(path))
