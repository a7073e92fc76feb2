"""A report as the writers see it: named tables of typed columns, rows and a total.

One shape for every report keeps the writers (text, CSV, Excel, JSON) ignorant of what
they write: a column says its kind (a count, a rate, a time, text) and each writer
renders that kind its own way (a percent in the terminal, a number with a percent
format in Excel, a decimal in CSV).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Literal

from smppgw.store.reports import Figures

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

__all__ = [
    "FIGURE_COLUMNS",
    "Cell",
    "Column",
    "Table",
    "delivery_rate",
    "figure_cells",
    "sum_figures",
]

#: A value in a table; times are naive local datetimes (Excel has no time zones).
Cell = str | int | float | datetime | None

Kind = Literal["int", "text", "rate", "time"]


@dataclass(frozen=True, slots=True)
class Column:
    """``name`` is the machine name (CSV header, JSON key), ``title`` the human header."""

    name: str
    title: str
    kind: Kind = "int"


@dataclass(slots=True)
class Table:
    """``rows`` may be a generator (the log): a writer reads it once, in order.

    ``total`` is the sum of the rows where a sum means something, None elsewhere.
    """

    name: str
    title: str
    columns: tuple[Column, ...]
    rows: Iterable[Sequence[Cell]]
    total: Sequence[Cell] | None = None


#: The figures of a group of messages, in :class:`Figures`' order, then the rate.
FIGURE_COLUMNS: tuple[Column, ...] = (
    Column("messages", "msgs"),
    Column("parts", "parts"),
    Column("at_carrier", "at carrier"),
    Column("at_carrier_parts", "carrier parts"),
    Column("delivered", "delivered"),
    Column("delivered_parts", "dlv parts"),
    Column("failed", "failed"),
    Column("failed_parts", "fail parts"),
    Column("expired", "expired"),
    Column("expired_parts", "exp parts"),
    Column("rejected", "rejected"),
    Column("rejected_parts", "rej parts"),
    Column("pending", "pending"),
    Column("pending_parts", "pend parts"),
    Column("charged_parts", "charged parts"),
    Column("charged_money", "charged money"),
    Column("delivery_rate", "dlv rate", "rate"),
)

_FIELDS = tuple(f.name for f in dataclasses.fields(Figures))
assert tuple(c.name for c in FIGURE_COLUMNS[:-1]) == _FIELDS


def delivery_rate(f: Figures) -> float | None:
    """Delivered among the messages a carrier settled (delivered, failed or expired):
    rejected ones never reached a number and pending ones have no answer yet."""
    settled = f.delivered + f.failed + f.expired
    return None if settled == 0 else f.delivered / settled


def figure_cells(f: Figures) -> list[Cell]:
    """One row's figure cells, matching :data:`FIGURE_COLUMNS`."""
    cells: list[Cell] = [getattr(f, name) for name in _FIELDS]
    cells.append(delivery_rate(f))
    return cells


def sum_figures(items: Iterable[Figures]) -> Figures:
    """Field by field sum: every figure is a count of messages or parts, so it adds up."""
    totals = dict.fromkeys(_FIELDS, 0)
    for f in items:
        for name in _FIELDS:
            totals[name] += getattr(f, name)
    return Figures(**totals)
