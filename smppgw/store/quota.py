"""The SQL of partners' orders and the quota ledger.

Counts are SMS *parts*, money is integer minor units. An order has a ``quota_limit``, a
``unit_cost`` per part (1 for prepaid, the price for postpaid), and two running sums:
``reserved`` (held at admission for messages in flight) and ``spent`` (settled).

Why it can never over-spend, even with many sessions admitting at once: the check and
the increment are ONE statement, ``UPDATE ... SET reserved = reserved + :amount WHERE
quota_limit - reserved - spent >= :amount``, run inside the single writer's transaction.
There is no read-then-write window for a concurrent caller to slip into, and the table's
``CHECK (reserved + spent <= quota_limit)`` would abort anything that did.

Which order pays when several are active (earliest expiry first, then oldest) is a
mechanical default that a caller can override by naming the order.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from smppgw.store.records import (
    NewOrder,
    Order,
    OrderKind,
    QuotaRefusal,
    RefusalReason,
    Reservation,
    Settlement,
)

if TYPE_CHECKING:
    import sqlite3

__all__ = [
    "active_orders",
    "create_order",
    "get_order",
    "orders_of",
    "paying_orders",
    "release_orphans",
    "reserve",
    "settle",
]

_ACTIVE = "(starts_at IS NULL OR starts_at <= :now) AND (expires_at IS NULL OR expires_at > :now)"


def _ms(seconds: float) -> int:
    return round(seconds * 1000)


def create_order(conn: sqlite3.Connection, order: NewOrder, now: float) -> int:
    if order.limit < 0 or order.unit_cost < 0:
        raise ValueError("an order's limit and unit cost must not be negative")
    if order.kind is OrderKind.PREPAID and order.unit_cost != 1:
        raise ValueError("a prepaid order counts parts: its unit cost is 1")
    cur = conn.execute(
        "INSERT INTO partner_order (partner, kind, quota_limit, unit_cost, starts_at,"
        " expires_at, created_at) VALUES (?,?,?,?,?,?,?)",
        (
            order.partner,
            order.kind.value,
            order.limit,
            order.unit_cost,
            None if order.starts_at is None else _ms(order.starts_at),
            None if order.expires_at is None else _ms(order.expires_at),
            _ms(now),
        ),
    )
    return int(cur.lastrowid or 0)


def paying_orders(
    conn: sqlite3.Connection,
    partner: str,
    now: float,
    order_id: int | None = None,
    *,
    known_orders: dict[str, list[int]] | None = None,
) -> list[int]:
    """The active orders of ``partner`` in the order they pay (earliest expiry first,
    then oldest); only ``order_id`` if named. ``known_orders``: see :func:`reserve`."""
    cached = known_orders.get(partner) if known_orders is not None and order_id is None else None
    if cached is not None:
        return cached
    params: dict[str, Any] = {"partner": partner, "now": _ms(now)}
    sql = f"SELECT id FROM partner_order WHERE partner = :partner AND {_ACTIVE}"
    if order_id is not None:
        sql += " AND id = :order_id"
        params["order_id"] = order_id
    candidates = [
        int(r[0])
        for r in conn.execute(sql + " ORDER BY expires_at IS NULL, expires_at, id", params)
    ]
    if known_orders is not None and order_id is None:
        known_orders[partner] = candidates
    return candidates


def reserve(
    conn: sqlite3.Connection,
    partner: str,
    parts: int,
    now: float,
    order_id: int | None = None,
    *,
    known_orders: dict[str, list[int]] | None = None,
) -> Reservation | QuotaRefusal:
    """Hold ``parts`` on an active order of ``partner``, or say why not.

    ``known_orders`` caches each partner's active orders across the calls of one
    transaction (a batch of admissions): the list cannot change under it, and an order
    that runs out is simply passed over by the conditional update below.
    """
    if parts <= 0:
        raise ValueError("reserve at least one part")
    params: dict[str, Any] = {"partner": partner, "now": _ms(now), "parts": parts}
    candidates = paying_orders(conn, partner, now, order_id, known_orders=known_orders)
    if not candidates:
        return QuotaRefusal(RefusalReason.NO_ORDER)
    for candidate in candidates:
        params["id"] = candidate
        row = conn.execute(
            "UPDATE partner_order SET reserved = reserved + :parts * unit_cost"
            " WHERE id = :id AND quota_limit - reserved - spent >= :parts * unit_cost"
            " RETURNING :parts * unit_cost",
            params,
        ).fetchone()
        if row is not None:
            amount = int(row[0])
            cur = conn.execute(
                "INSERT INTO quota_ledger (order_id, parts, amount, state, created_at)"
                " VALUES (?,?,?,'reserved',?)",
                (candidate, parts, amount, params["now"]),
            )
            return Reservation(int(cur.lastrowid or 0), candidate, parts, amount)
    return QuotaRefusal(RefusalReason.EXHAUSTED)


def settle(
    conn: sqlite3.Connection, reservation_id: int, charge_parts: int, now: float
) -> Settlement:
    """Charge ``charge_parts`` of a reservation and release the rest. Idempotent.

    Raises:
        KeyError: unknown reservation.
        ValueError: ``charge_parts`` outside ``0..parts``.
    """
    row = conn.execute(
        "SELECT order_id, parts, amount, state, charged FROM quota_ledger WHERE id = ?",
        (reservation_id,),
    ).fetchone()
    if row is None:
        raise KeyError(f"no quota reservation {reservation_id}")
    order_id, parts, amount, state, charged = (
        int(row[0]),
        int(row[1]),
        int(row[2]),
        str(row[3]),
        row[4],
    )
    if state == "settled":
        done = int(charged or 0)
        return Settlement(reservation_id, done, amount - done, repeated=True)
    if not 0 <= charge_parts <= parts:
        raise ValueError(f"charge {charge_parts} parts of a {parts}-part reservation")
    cost = amount * charge_parts // parts  # amount is parts * unit_cost: exact
    conn.execute(
        "UPDATE partner_order SET reserved = reserved - ?, spent = spent + ? WHERE id = ?",
        (amount, cost, order_id),
    )
    conn.execute(
        "UPDATE quota_ledger SET state = 'settled', charged = ?, settled_at = ? WHERE id = ?",
        (cost, _ms(now), reservation_id),
    )
    return Settlement(reservation_id, cost, amount - cost)


def release_orphans(conn: sqlite3.Connection, now: float) -> int:
    """Release reservations that no journaled message refers to.

    A crash between admission (reserve) and journaling leaves such a reservation. Run it
    only at start-up, before any session admits, or it would release a reservation whose
    message is about to be journaled.
    """
    ids = [
        int(r[0])
        for r in conn.execute(
            "SELECT q.id FROM quota_ledger q WHERE q.state = 'reserved' AND NOT EXISTS"
            " (SELECT 1 FROM mt_message m WHERE m.reservation_id = q.id)"
        ).fetchall()
    ]
    for reservation_id in ids:
        settle(conn, reservation_id, 0, now)
    return len(ids)


def _order(r: Any) -> Order:
    return Order(
        id=int(r[0]),
        partner=str(r[1]),
        kind=OrderKind(r[2]),
        limit=int(r[3]),
        unit_cost=int(r[4]),
        reserved=int(r[5]),
        spent=int(r[6]),
        starts_at=None if r[7] is None else r[7] / 1000,
        expires_at=None if r[8] is None else r[8] / 1000,
        created_at=int(r[9]) / 1000,
    )


_ORDER_COLUMNS = (
    "id, partner, kind, quota_limit, unit_cost, reserved, spent, starts_at, expires_at, created_at"
)


def get_order(conn: sqlite3.Connection, order_id: int) -> Order | None:
    r = conn.execute(
        f"SELECT {_ORDER_COLUMNS} FROM partner_order WHERE id = ?", (order_id,)
    ).fetchone()
    return None if r is None else _order(r)


def orders_of(conn: sqlite3.Connection, partner: str) -> list[Order]:
    rows = conn.execute(
        f"SELECT {_ORDER_COLUMNS} FROM partner_order WHERE partner = ? ORDER BY id", (partner,)
    ).fetchall()
    return [_order(r) for r in rows]


def active_orders(conn: sqlite3.Connection, now: float) -> list[Order]:
    """Every order active at ``now`` (started, not expired), for the quota gauges."""
    rows = conn.execute(
        f"SELECT {_ORDER_COLUMNS} FROM partner_order WHERE {_ACTIVE} ORDER BY partner, id",
        {"now": _ms(now)},
    ).fetchall()
    return [_order(r) for r in rows]
