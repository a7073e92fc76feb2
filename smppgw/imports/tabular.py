"""Rows of an operator's CSV or Excel file, one at a time.

Operators' files come from Excel (saved as .xlsx or as CSV, often with a UTF-8 BOM and,
in locales where ',' is the decimal mark, ';' between fields) and from billing systems
(plain UTF-8 CSV). :func:`read_rows` hides the difference: it yields one :class:`Row`
per non-blank data row, keyed by the normalised header, with the row's 1-based line in
the file (the header is line 1) so every error names a line the operator can find.

It is a generator over a streaming reader (``csv`` on the open file, openpyxl in
``read_only`` mode), so a 500k-row file is never held in memory: the caller decides
what to keep. It blocks on file I/O: call it from a worker thread in the daemon.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import os
    from collections.abc import Generator, Sequence

__all__ = ["Cell", "Row", "TabularError", "normalize_header", "read_rows"]

#: A cell as read: text from CSV; text, numbers, booleans or datetimes from Excel.
Cell = object

_SNIFF_BYTES = 64 * 1024


class TabularError(ValueError):
    """The file as a whole cannot be read (format, encoding, header)."""


@dataclass(frozen=True, slots=True)
class Row:
    """One data row.

    Attributes:
        line: 1-based line (CSV: the record's first physical line; Excel: the row number).
        values: normalised header -> cell; a blank cell is ``None``.
        extra: cells beyond the header's width that were not blank (a shifted row).
    """

    line: int
    values: dict[str, Cell]
    extra: int = 0


def normalize_header(name: object) -> str:
    """``" Member ID "`` -> ``"member_id"``: lower case, trimmed, runs of spaces -> ``_``."""
    text = "" if name is None else str(name)
    return "_".join(text.strip().lower().split())


def read_rows(
    path: str | os.PathLike[str], *, sheet: str | None = None
) -> Generator[Row, None, None]:
    """Yield the data rows of a ``.csv`` or ``.xlsx`` file (see the module docstring).

    Args:
        path: the file; its suffix chooses the reader.
        sheet: for Excel, the sheet's name (default: the first sheet).

    Raises:
        TabularError: unknown suffix, unreadable file, no header, a duplicate or blank
            header name (with a value below it), a missing sheet, bad UTF-8.
    """
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix in (".csv", ".txt"):
        if sheet is not None:
            raise TabularError(f"{p.name}: a CSV file has no sheets")
        return _read_csv(p)
    if suffix in (".xlsx", ".xlsm"):
        return _read_xlsx(p, sheet)
    raise TabularError(f"{p.name}: unknown file type {suffix or '(none)'}: use .csv or .xlsx")


def _headers(cells: Sequence[Cell], source: str) -> list[str]:
    names = [normalize_header(c) for c in cells]
    while names and not names[-1]:
        names.pop()
    if not names:
        raise TabularError(f"{source}: line 1 (the header) is empty")
    seen: set[str] = set()
    for i, name in enumerate(names, start=1):
        if not name:
            raise TabularError(f"{source}: header column {i} has no name")
        if name in seen:
            raise TabularError(f"{source}: header {name!r} appears twice")
        seen.add(name)
    return names


def _row(line: int, names: list[str], cells: Sequence[Cell]) -> Row | None:
    """The row, or None when every cell is blank (such rows are skipped)."""
    values: dict[str, Cell] = {}
    blank = True
    for name, cell in zip(names, cells, strict=False):
        value = None if isinstance(cell, str) and not cell.strip() else cell
        values[name] = value
        blank = blank and value is None
    extra = sum(1 for c in cells[len(names) :] if c is not None and str(c).strip())
    if blank and not extra:
        return None
    for name in names[len(cells) :]:
        values[name] = None
    return Row(line, values, extra)


def _read_csv(path: Path) -> Generator[Row, None, None]:
    line = 1
    try:
        with path.open("r", encoding="utf-8-sig", newline="") as f:
            sample = f.read(_SNIFF_BYTES)
            f.seek(0)
            # The first line decides: Excel in a ';' locale writes ';' everywhere.
            first = sample.split("\n", 1)[0]
            delimiter = ";" if first.count(";") > first.count(",") else ","
            reader = csv.reader(f, delimiter=delimiter)
            header = next(reader, None)
            if header is None:
                raise TabularError(f"{path.name}: the file is empty")
            names = _headers(header, path.name)
            line = reader.line_num + 1
            for cells in reader:
                row = _row(line, names, cells)
                line = reader.line_num + 1
                if row is not None:
                    yield row
    except UnicodeDecodeError as exc:
        # The decoder reads ahead, so the line is where reading stopped, not exact.
        raise TabularError(
            f"{path.name}: not UTF-8 text (near line {line}, {exc.reason}): save it as 'CSV UTF-8'"
        ) from None
    except csv.Error as exc:
        raise TabularError(f"{path.name}: {exc}") from None
    except OSError as exc:
        raise TabularError(f"{path.name}: {exc.strerror or exc}") from None


def _read_xlsx(path: Path, sheet: str | None) -> Generator[Row, None, None]:
    import zipfile

    import openpyxl

    try:
        book = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except (OSError, zipfile.BadZipFile, KeyError, ValueError) as exc:
        raise TabularError(f"{path.name}: not a readable .xlsx file ({exc})") from None
    try:
        if sheet is None:
            ws = book.worksheets[0]
        elif sheet in book.sheetnames:
            ws = book[sheet]
        else:
            raise TabularError(
                f"{path.name}: no sheet {sheet!r} (sheets: {', '.join(book.sheetnames)})"
            )
        # read_only mode yields missing rows as empty ones, so the index is the row number.
        rows = ws.iter_rows(values_only=True)
        header = next(rows, None)
        if header is None:
            raise TabularError(f"{path.name}: the sheet is empty")
        names = _headers(list(header), path.name)
        for line, cells in enumerate(rows, start=2):
            row = _row(line, names, list(cells))
            if row is not None:
                yield row
    finally:
        book.close()
