"""The SQL of operators' reports: what was sent, delivered, failed and charged in a period.

Read-only queries over the journal, run on a connection from ``message_log.open_readonly``
(the CLI) or a reader: they never write, so they are safe while the daemon runs.

What a message counts as, so that every figure can be checked against the journal:

- a message belongs to the period of its ``created_at`` (when we accepted it), and its
  figures are its state *now*: a report of last month run today shows last month's
  messages with the receipts that came since;
- ``messages``/``parts``: every message we accepted (``part_count`` parts);
- ``at_carrier``: a carrier accepted it: state ``submitted`` or later with a carrier id
  (a message put back to ``accepted`` after a lost response is not counted); its carrier
  parts are the distinct parts that got a carrier id;
- ``delivered``, ``failed``, ``expired``, ``rejected``: its final state;
  ``pending``: ``accepted``, ``held`` or ``submitted`` (no final state yet);
- ``charged_parts``: parts its settled reservation charged (``charged * parts / amount``,
  exact because ``amount = parts * unit_cost``; an order with ``unit_cost`` 0 charges
  nothing and shows 0); ``charged_money``: what it charged a *postpaid* order, whose
  ``unit_cost`` is the price of a part in minor units. A prepaid order counts parts and
  has no price per part (``price_minor``, where the file has it, is what the whole
  order was sold for), so its messages have no money figure.

Period bounds are integer milliseconds since the epoch, ``since`` inclusive, ``until``
exclusive, as the tables keep times.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import sqlite3
    from collections.abc import Sequence

__all__ = [
    "DIMENSIONS",
    "FailingNumber",
    "Figures",
    "OrderBalance",
    "failing_numbers",
    "figures_by",
    "mo_by_short_code",
    "order_balances",
    "recipients_by",
]

#: The columns a report may group MT messages by (names, never user text, go in SQL).
DIMENSIONS: dict[str, str] = {
    "partner": "partner",
    "order": "order_id",
    "smsc": "smsc",
    "short_code": "source_addr",
}

_AT_CARRIER = (
    "(m.carrier_id IS NOT NULL"
    " AND m.state IN ('submitted', 'delivered', 'failed', 'expired', 'rejected'))"
)
_PENDING = "('accepted', 'held', 'submitted')"


@dataclass(frozen=True, slots=True)
class Figures:
    """The counts of one group of messages (see the module docstring for each)."""

    messages: int = 0
    parts: int = 0
    at_carrier: int = 0
    at_carrier_parts: int = 0
    delivered: int = 0
    delivered_parts: int = 0
    failed: int = 0
    failed_parts: int = 0
    expired: int = 0
    expired_parts: int = 0
    rejected: int = 0
    rejected_parts: int = 0
    pending: int = 0
    pending_parts: int = 0
    charged_parts: int = 0
    charged_money: int = 0


def _figure_sums() -> str:
    """The aggregate select list over ``base``, in :class:`Figures`' field order."""
    out = [
        "COUNT(*)",
        "SUM(part_count)",
        "SUM(at_carrier)",
        "SUM(CASE WHEN at_carrier THEN carrier_parts ELSE 0 END)",
    ]
    for state in ("delivered", "failed", "expired", "rejected"):
        out.append(f"SUM(state = '{state}')")
        out.append(f"SUM(CASE WHEN state = '{state}' THEN part_count ELSE 0 END)")
    out.append(f"SUM(state IN {_PENDING})")
    out.append(f"SUM(CASE WHEN state IN {_PENDING} THEN part_count ELSE 0 END)")
    out.append("SUM(charged_parts)")
    out.append("SUM(charged_money)")
    return ", ".join(out)


def _base(partner: str | None) -> tuple[str, dict[str, Any]]:
    """One row per message of the period with its derived flags (a CTE named ``base``)."""
    where = "m.created_at >= :since AND m.created_at < :until"
    if partner is not None:
        where += " AND m.partner = :partner"
    sql = (
        "WITH base AS (SELECT m.id, m.partner, m.order_id, m.smsc, m.source_addr,"
        " m.destination_addr, m.state, m.part_count, m.final_status, m.error,"
        f" {_AT_CARRIER} AS at_carrier,"
        " (SELECT COUNT(DISTINCT c.part_no) FROM carrier_ref c WHERE c.message_id = m.id)"
        " AS carrier_parts,"
        " CASE WHEN q.state = 'settled' AND q.amount > 0"
        " THEN q.charged * q.parts / q.amount ELSE 0 END AS charged_parts,"
        " CASE WHEN q.state = 'settled' AND o.kind = 'postpaid'"
        " THEN q.charged ELSE 0 END AS charged_money"
        " FROM mt_message m"
        " LEFT JOIN quota_ledger q ON q.id = m.reservation_id"
        " LEFT JOIN partner_order o ON o.id = q.order_id"
        f" WHERE {where}) "
    )
    return sql, {"partner": partner}


def _figures(r: Sequence[Any]) -> Figures:
    return Figures(*(int(v or 0) for v in r))


def figures_by(
    conn: sqlite3.Connection,
    dimensions: Sequence[str],
    since: int,
    until: int,
    *,
    partner: str | None = None,
) -> list[tuple[tuple[Any, ...], Figures]]:
    """The period's MT messages grouped by ``dimensions`` (keys of :data:`DIMENSIONS`),
    ordered by the key; an empty ``dimensions`` gives one row for the whole period
    (none when it holds no message)."""
    columns = [DIMENSIONS[d] for d in dimensions]  # KeyError for an unknown dimension
    sql, params = _base(partner)
    keys = ", ".join(columns)
    select = f"{keys}, " if keys else ""
    sql += f"SELECT {select}{_figure_sums()} FROM base"
    if keys:
        sql += f" GROUP BY {keys} ORDER BY {keys}"
    else:
        sql += " HAVING COUNT(*) > 0"
    params.update(since=since, until=until)
    n = len(columns)
    return [(tuple(r[:n]), _figures(r[n:])) for r in conn.execute(sql, params)]


def recipients_by(
    conn: sqlite3.Connection, since: int, until: int, *, partner: str | None = None
) -> list[tuple[str, str | None, int, Figures]]:
    """Per partner and carrier (the ``smsc`` the router chose by destination prefix):
    how many distinct numbers it sent to, and its figures."""
    sql, params = _base(partner)
    sql += (
        f"SELECT partner, smsc, COUNT(DISTINCT destination_addr), {_figure_sums()}"
        " FROM base GROUP BY partner, smsc ORDER BY partner, smsc"
    )
    params.update(since=since, until=until)
    return [(str(r[0]), r[1], int(r[2]), _figures(r[3:])) for r in conn.execute(sql, params)]


@dataclass(frozen=True, slots=True)
class FailingNumber:
    """A number that got ``min_failures`` or more failed or expired messages and none
    delivered in the period; ``smsc``, ``last_status`` and ``last_error`` are those of
    its latest message."""

    partner: str
    number: str
    messages: int
    failed: int
    expired: int
    pending: int
    smsc: str | None
    last_status: int | None
    last_error: str | None


def failing_numbers(
    conn: sqlite3.Connection,
    since: int,
    until: int,
    min_failures: int,
    *,
    partner: str | None = None,
) -> list[FailingNumber]:
    """Numbers partners should clean from their lists, most messages first.

    Uses SQLite's bare columns: with ``MAX(id)`` the only min/max aggregate, ``smsc``,
    ``final_status`` and ``error`` come from the row holding that max (the latest message).
    """
    if min_failures < 1:
        raise ValueError("a failing number has at least one failure")
    sql, params = _base(partner)
    sql += (
        "SELECT partner, destination_addr, COUNT(*), SUM(state = 'failed'),"
        f" SUM(state = 'expired'), SUM(state IN {_PENDING}), MAX(id), smsc, final_status, error"
        " FROM base GROUP BY partner, destination_addr"
        " HAVING SUM(state = 'delivered') = 0"
        " AND SUM(state IN ('failed', 'expired')) >= :min_failures"
        " ORDER BY partner, COUNT(*) DESC, destination_addr"
    )
    params.update(since=since, until=until, min_failures=min_failures)
    return [
        FailingNumber(
            partner=str(r[0]),
            number=str(r[1]),
            messages=int(r[2]),
            failed=int(r[3]),
            expired=int(r[4]),
            pending=int(r[5]),
            smsc=r[7],
            last_status=None if r[8] is None else int(r[8]),
            last_error=r[9],
        )
        for r in conn.execute(sql, params)
    ]


def mo_by_short_code(
    conn: sqlite3.Connection,
    since: int,
    until: int,
    *,
    short_codes: Sequence[str] | None = None,
) -> dict[str, int]:
    """MO messages journaled in the period per short code (their destination);
    ``short_codes`` limits it to those (a partner's own)."""
    sql = (
        "SELECT destination_addr, COUNT(*) FROM inbound WHERE kind = 'mo'"
        " AND received_at >= ? AND received_at < ?"
    )
    params: list[object] = [since, until]
    if short_codes is not None:
        if not short_codes:
            return {}
        sql += f" AND destination_addr IN ({', '.join('?' * len(short_codes))})"
        params += list(short_codes)
    sql += " GROUP BY destination_addr ORDER BY destination_addr"
    return {str(r[0]): int(r[1]) for r in conn.execute(sql, params)}


@dataclass(frozen=True, slots=True)
class OrderBalance:
    """An order as it stands now, and the same sums recomputed from its quota ledger.

    ``reserved`` and ``spent`` are the order's running sums; ``ledger_reserved`` (open
    reservations) and ``ledger_spent`` (what settled reservations charged) must equal
    them: a difference means the ledger and the order disagree. Amounts are in the
    order's unit: parts for prepaid, minor units of money for postpaid.
    """

    id: int
    partner: str
    kind: str
    limit: int
    unit_cost: int
    reserved: int
    spent: int
    starts_at: int | None
    expires_at: int | None
    ledger_reserved: int
    ledger_spent: int
    #: What the order was sold for, when the file has the ``price_minor`` column (schema 5)
    #: and the order a price; it is recorded for invoices, the charge is ``unit_cost``'s.
    price_minor: int | None = None

    @property
    def remaining(self) -> int:
        return self.limit - self.reserved - self.spent


def order_balances(
    conn: sqlite3.Connection, since: int, until: int, *, partner: str | None = None
) -> list[OrderBalance]:
    """Orders that matter to the period: active during part of it, or paying for one of
    its messages; ``partner`` keeps that partner's orders and those that paid for it."""
    paid = (
        "SELECT order_id FROM mt_message WHERE order_id IS NOT NULL"
        " AND created_at >= :since AND created_at < :until"
    )
    mine = "1"
    if partner is not None:
        paid += " AND partner = :partner"
        mine = "o.partner = :partner"
    columns = {str(r[1]) for r in conn.execute("PRAGMA table_info(partner_order)")}
    price = "o.price_minor" if "price_minor" in columns else "NULL"
    sql = (
        "SELECT o.id, o.partner, o.kind, o.quota_limit, o.unit_cost, o.reserved, o.spent,"
        f" o.starts_at, o.expires_at, COALESCE(l.reserved, 0), COALESCE(l.spent, 0), {price}"
        " FROM partner_order o LEFT JOIN (SELECT order_id,"
        " SUM(CASE WHEN state = 'reserved' THEN amount ELSE 0 END) AS reserved,"
        " SUM(CASE WHEN state = 'settled' THEN charged ELSE 0 END) AS spent"
        " FROM quota_ledger GROUP BY order_id) l ON l.order_id = o.id"
        f" WHERE ({mine} AND (o.starts_at IS NULL OR o.starts_at < :until)"
        " AND (o.expires_at IS NULL OR o.expires_at > :since))"
        f" OR o.id IN ({paid}) ORDER BY o.id"
    )
    params = {"since": since, "until": until, "partner": partner}
    return [
        OrderBalance(
            id=int(r[0]),
            partner=str(r[1]),
            kind=str(r[2]),
            limit=int(r[3]),
            unit_cost=int(r[4]),
            reserved=int(r[5]),
            spent=int(r[6]),
            starts_at=None if r[7] is None else int(r[7]),
            expires_at=None if r[8] is None else int(r[8]),
            ledger_reserved=int(r[9]),
            ledger_spent=int(r[10]),
            price_minor=None if r[11] is None else int(r[11]),
        )
        for r in conn.execute(sql, params)
    ]
