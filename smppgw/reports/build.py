"""Turn the store's report queries into tables with totals (no SQL here).

Each builder takes a read-only connection and a :class:`Period` and returns the
tables of one ``smppgw report`` kind. Totals are sums of the rows (every figure is a
count of messages or parts), so a report's total row is the journal's total for the
period: the tests check exactly that against the rows they journaled.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import TYPE_CHECKING

from smppgw.reports.tables import (
    FIGURE_COLUMNS,
    Cell,
    Column,
    Table,
    delivery_rate,
    figure_cells,
    sum_figures,
)
from smppgw.store import message_log
from smppgw.store import reports as q

if TYPE_CHECKING:
    import sqlite3
    from collections.abc import Callable, Iterator, Sequence

__all__ = ["KINDS", "Period", "build"]

NOT_ROUTED = "(not routed)"
NO_ORDER = "(no order)"


@dataclass(frozen=True, slots=True)
class Period:
    """``[since, until)`` in epoch milliseconds; ``offset`` is the operator's local time
    (``scenarios.utc_offset``), used to show times."""

    since: int
    until: int
    offset: timedelta = timedelta(0)
    partner: str | None = None
    #: Short codes whose MO count (the partner's own when ``partner`` is given).
    short_codes: tuple[str, ...] | None = None
    #: Failed or expired messages (none delivered) that make a number "always failing".
    min_failures: int = 3

    def local(self, millis: int | float | None) -> datetime | None:
        """A naive local datetime (Excel cells cannot hold a time zone)."""
        if millis is None:
            return None
        utc = datetime.fromtimestamp(millis / 1000, UTC)
        return utc.astimezone(timezone(self.offset)).replace(tzinfo=None)


def _totalled(
    name: str,
    title: str,
    keys: tuple[Column, ...],
    rows: Sequence[tuple[Sequence[Cell], q.Figures]],
    extra: tuple[Column, ...] = (),
    extra_cells: Sequence[Sequence[Cell]] = (),
) -> Table:
    """A figures table: key cells, the figures, then ``extra`` columns, and a total row
    (extra columns are totalled when they are counts)."""
    body: list[list[Cell]] = []
    for i, (key, figures) in enumerate(rows):
        body.append([*key, *figure_cells(figures), *(extra_cells[i] if extra else ())])
    total: list[Cell] = ["total", *([None] * (len(keys) - 1))]
    total += figure_cells(sum_figures(f for _, f in rows))
    for j, column in enumerate(extra):
        values = [cells[j] for cells in extra_cells]
        total.append(sum(v for v in values if isinstance(v, int)) if column.kind == "int" else None)
    return Table(name, title, (*keys, *FIGURE_COLUMNS, *extra), body, total)


def partners(conn: sqlite3.Connection, period: Period) -> list[Table]:
    """Per partner (a scenario's replies are partner ``scenario:<name>``)."""
    rows = q.figures_by(conn, ["partner"], period.since, period.until, partner=period.partner)
    return [
        _totalled(
            "partners",
            "Per partner",
            (Column("partner", "partner", "text"),),
            [((key[0],), f) for key, f in rows],
        )
    ]


_ORDER_KEYS = (
    Column("order", "order", "text"),
    Column("partner", "partner", "text"),
    Column("kind", "kind", "text"),
    Column("unit_cost", "unit cost"),
    Column("price", "price"),
    Column("limit", "limit"),
    Column("reserved", "reserved"),
    Column("spent", "spent"),
    Column("remaining", "remaining"),
    Column("remaining_parts", "remaining parts"),
    Column("ledger", "ledger", "text"),
)


def orders(conn: sqlite3.Connection, period: Period) -> list[Table]:
    """Per order: its balance now (limit, reserved, spent, remaining, in the order's
    unit) beside the period's figures of the messages it paid for. The ledger column
    says ``ok`` when the order's running sums equal its quota ledger's."""
    balances = q.order_balances(conn, period.since, period.until, partner=period.partner)
    figures = dict(
        q.figures_by(conn, ["order"], period.since, period.until, partner=period.partner)
    )
    rows: list[tuple[Sequence[Cell], q.Figures]] = []
    for b in balances:
        ledger = (
            "ok"
            if (b.reserved, b.spent) == (b.ledger_reserved, b.ledger_spent)
            else f"differs: reserved {b.ledger_reserved}, spent {b.ledger_spent}"
        )
        remaining_parts = b.remaining // b.unit_cost if b.unit_cost else None
        key: list[Cell] = [b.id, b.partner, b.kind, b.unit_cost, b.price_minor, b.limit]
        key += [b.reserved, b.spent, b.remaining, remaining_parts, ledger]
        rows.append((key, figures.pop((b.id,), q.Figures())))
    # Messages of an order outside the list cannot exist (order_balances takes every
    # order that paid for the period), but messages without an order (no quota) do.
    for (order_id, *_), f in sorted(
        figures.items(), key=lambda kv: (kv[0][0] is None, kv[0][0] or 0)
    ):
        label: Cell = NO_ORDER if order_id is None else order_id
        rows.append(([label, *([None] * (len(_ORDER_KEYS) - 1))], f))
    return [_totalled("orders", "Per order", _ORDER_KEYS, rows)]


def carriers(conn: sqlite3.Connection, period: Period) -> list[Table]:
    """Per carrier (SMSC) the router chose; never-routed messages have none."""
    rows = q.figures_by(conn, ["smsc"], period.since, period.until, partner=period.partner)
    return [
        _totalled(
            "carriers",
            "Per carrier",
            (Column("carrier", "carrier", "text"),),
            [((key[0] or NOT_ROUTED,), f) for key, f in rows],
        )
    ]


def short_codes(conn: sqlite3.Connection, period: Period) -> list[Table]:
    """Per short code: MT sent from it (its source address) and MO received on it."""
    mt = dict(
        q.figures_by(conn, ["short_code"], period.since, period.until, partner=period.partner)
    )
    mo = q.mo_by_short_code(conn, period.since, period.until, short_codes=period.short_codes)
    codes = sorted({str(k[0]) for k in mt} | set(mo))
    rows = [((code,), mt.get((code,), q.Figures())) for code in codes]
    return [
        _totalled(
            "short_codes",
            "Per short code (source of MT, destination of MO)",
            (Column("short_code", "short code", "text"),),
            rows,
            extra=(Column("mo", "MO received"),),
            extra_cells=[[mo.get(code, 0)] for code in codes],
        )
    ]


_RECIPIENT_COLUMNS = (
    Column("partner", "partner", "text"),
    Column("carrier", "carrier", "text"),
    Column("numbers", "numbers"),
    Column("messages", "msgs"),
    Column("delivered", "delivered"),
    Column("failed", "failed"),
    Column("expired", "expired"),
    Column("rejected", "rejected"),
    Column("pending", "pending"),
    Column("delivery_rate", "dlv rate", "rate"),
)

_FAILING_COLUMNS = (
    Column("partner", "partner", "text"),
    Column("number", "number", "text"),
    Column("messages", "msgs"),
    Column("failed", "failed"),
    Column("expired", "expired"),
    Column("pending", "pending"),
    Column("carrier", "carrier", "text"),
    Column("last_status", "last status"),
    Column("last_error", "last error", "text"),
)


def _recipient_cells(f: q.Figures) -> list[Cell]:
    return [f.messages, f.delivered, f.failed, f.expired, f.rejected, f.pending, delivery_rate(f)]


def _failing_cells(n: q.FailingNumber) -> list[Cell]:
    carrier = n.smsc or NOT_ROUTED
    counts = [n.messages, n.failed, n.expired, n.pending]
    return [n.partner, n.number, *counts, carrier, n.last_status, n.last_error]


def recipients(conn: sqlite3.Connection, period: Period) -> list[Table]:
    """Per partner and carrier: numbers reached and the delivery rate; then the numbers
    that always fail, for partners to clean their lists."""
    by_carrier = q.recipients_by(conn, period.since, period.until, partner=period.partner)
    body: list[list[Cell]] = [
        [partner, smsc or NOT_ROUTED, numbers, *_recipient_cells(f)]
        for partner, smsc, numbers, f in by_carrier
    ]
    # Distinct numbers do not add up across rows (one number, several partners).
    total: list[Cell] = ["total", None, None]
    total += _recipient_cells(sum_figures(f for *_, f in by_carrier))
    first = Table(
        "by_carrier", "Recipients per partner and carrier", _RECIPIENT_COLUMNS, body, total
    )
    failing = q.failing_numbers(
        conn, period.since, period.until, period.min_failures, partner=period.partner
    )
    second = Table(
        "failing",
        f"Numbers with {period.min_failures} or more failures and no delivery",
        _FAILING_COLUMNS,
        [_failing_cells(n) for n in failing],
    )
    return [first, second]


_LOG_COLUMNS = (
    Column("id", "id"),
    Column("created_at", "time", "time"),
    Column("direction", "dir", "text"),
    Column("msisdn", "msisdn", "text"),
    Column("short_code", "short code", "text"),
    Column("scenario", "scenario", "text"),
    Column("outcome", "outcome", "text"),
    Column("state", "state", "text"),
    Column("member_id", "member", "text"),
    Column("correlation", "correlation", "text"),
    Column("message_id", "message"),
    Column("body", "text", "text"),
)


def log(conn: sqlite3.Connection, period: Period) -> list[Table]:
    """The scenarios' MO/MT log of the period (``message_log``), streamed row by row."""

    def rows() -> Iterator[list[Cell]]:
        for r in message_log.iter_log(conn, since=period.since / 1000, until=period.until / 1000):
            yield [
                r.id,
                period.local(r.created_at * 1000),
                r.direction,
                r.msisdn,
                r.short_code,
                r.scenario,
                r.outcome,
                r.state,
                r.member_id,
                r.correlation,
                r.message_id,
                r.body,
            ]

    return [Table("log", "MO/MT log", _LOG_COLUMNS, rows())]


#: ``smppgw report KIND`` -> its builder.
KINDS: dict[str, Callable[[sqlite3.Connection, Period], list[Table]]] = {
    "partners": partners,
    "orders": orders,
    "carriers": carriers,
    "short-codes": short_codes,
    "recipients": recipients,
    "log": log,
}


def build(kind: str, conn: sqlite3.Connection, period: Period) -> list[Table]:
    """The tables of report ``kind`` (a key of :data:`KINDS`)."""
    return KINDS[kind](conn, period)
