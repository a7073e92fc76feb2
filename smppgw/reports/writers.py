"""Write report tables as a terminal table, CSV, Excel (.xlsx) or JSON.

Each writer reads a table's rows once, in order, so the log can be a generator: CSV and
Excel stream it (Excel in openpyxl's ``write_only`` mode, which keeps memory flat for
big reports); the terminal table needs every row for its column widths.

Several tables (``recipients``): one Excel sheet each; in CSV the first goes to the
file named and each other to ``<stem>-<table name><suffix>`` beside it, since a CSV file
holds one table.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

    from smppgw.reports.tables import Cell, Column, Table

__all__ = ["csv_paths", "table_json", "write_csv", "write_text", "write_xlsx"]


def _text(cell: Cell, column: Column) -> str:
    if cell is None:
        return "-" if column.kind != "text" else ""
    if column.kind == "rate" and isinstance(cell, float):
        return f"{cell * 100:.1f}%"
    if isinstance(cell, datetime):
        return cell.isoformat(sep=" ", timespec="seconds")
    return str(cell)


def _line(cells: Sequence[str], widths: Sequence[int], columns: Sequence[Column]) -> str:
    parts = [
        cell.ljust(w) if col.kind in ("text", "time") else cell.rjust(w)
        for cell, w, col in zip(cells, widths, columns, strict=True)
    ]
    return "  ".join(parts).rstrip() + "\n"


def write_text(tables: Sequence[Table], out: TextIO) -> None:
    """Aligned columns for a terminal: numbers right, text left, the total under a rule."""
    for n, table in enumerate(tables):
        if n:
            out.write("\n")
        out.write(f"{table.title}\n")
        columns = table.columns
        rows = [[_text(c, col) for c, col in zip(r, columns, strict=True)] for r in table.rows]
        total = (
            None
            if table.total is None
            else [_text(c, col) for c, col in zip(table.total, columns, strict=True)]
        )
        everything = [[c.title for c in columns], *rows, *([total] if total else [])]
        widths = [max(len(r[i]) for r in everything) for i in range(len(columns))]
        out.write(_line(everything[0], widths, columns))
        for row in rows:
            out.write(_line(row, widths, columns))
        if total is not None:
            out.write("  ".join("-" * w for w in widths) + "\n")
            out.write(_line(total, widths, columns))
        if not rows:
            out.write("(nothing in the period)\n")


def _plain(cell: Cell) -> str | int | float | None:
    """A CSV/JSON value: times as ISO text, rates as a fraction rounded to 4 places."""
    if isinstance(cell, datetime):
        return cell.isoformat(sep=" ", timespec="seconds")
    if isinstance(cell, float):
        return round(cell, 4)
    return cell


def csv_paths(tables: Sequence[Table], path: Path) -> list[Path]:
    """Where :func:`write_csv` puts each table."""
    return [
        path if i == 0 else path.with_name(f"{path.stem}-{t.name}{path.suffix or '.csv'}")
        for i, t in enumerate(tables)
    ]


def write_csv(tables: Sequence[Table], path: Path) -> list[Path]:
    """One CSV per table (UTF-8, a header of column names, the total as the last row)."""
    import csv

    paths = csv_paths(tables, path)
    for table, target in zip(tables, paths, strict=True):
        with target.open("w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow([c.name for c in table.columns])
            for row in table.rows:
                writer.writerow([_plain(c) for c in row])
            if table.total is not None:
                writer.writerow([_plain(c) for c in table.total])
    return paths


def write_xlsx(tables: Sequence[Table], path: Path) -> None:
    """One sheet per table, header bold, rates as percents, times as Excel dates."""
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.styles import Font

    book = Workbook(write_only=True)
    bold = Font(bold=True)

    def cells(sheet: Any, table: Table, row: Sequence[Cell], *, strong: bool = False) -> list[Any]:
        out: list[Any] = []
        for value, column in zip(row, table.columns, strict=True):
            cell = WriteOnlyCell(sheet, value=value)
            if column.kind == "rate":
                cell.number_format = "0.0%"
            elif column.kind == "time":
                cell.number_format = "yyyy-mm-dd hh:mm:ss"
            if strong:
                cell.font = bold
            out.append(cell)
        return out

    for table in tables:
        sheet = book.create_sheet(title=table.name[:31])
        sheet.append(cells(sheet, table, [c.name for c in table.columns], strong=True))
        for row in table.rows:
            sheet.append(cells(sheet, table, row))
        if table.total is not None:
            sheet.append(cells(sheet, table, table.total, strong=True))
    book.save(path)


def table_json(table: Table) -> dict[str, object]:
    """A table as JSON-ready data: rows as objects keyed by column name."""
    names = [c.name for c in table.columns]
    return {
        "name": table.name,
        "title": table.title,
        "columns": names,
        "rows": [dict(zip(names, map(_plain, r), strict=True)) for r in table.rows],
        "total": None
        if table.total is None
        else dict(zip(names, map(_plain, table.total), strict=True)),
    }
