"""The quota ledger for a whole batch at once: the same rules as ``quota.py``, fewer
statements.

Admission reserved, and every final outcome settled, one message at a time: five
statements a message between them (an order update and a ledger insert; a ledger read,
an order update and a ledger update), about 15 microseconds of the writer's thread
each time, and the writer's thread is the gateway's narrowest resource (it shares the
interpreter lock with every session). Here:

- :func:`reserve_run` holds the parts of a run of messages with the same payer on the
  order that the first of them would get, in ONE conditional update (the same
  ``quota_limit - reserved - spent >= amount`` guard), and writes their ledger rows in
  one multi-row insert (``store/bulk.py``). When the run does not fit on that order
  whole, it returns None and the caller reserves message by message
  (``quota.reserve``): then a message may land on the next order, or be refused,
  exactly as before.
- :func:`settle_many` reads the reservations in one query, updates the ledger rows in
  one statement and each order once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from smppgw.store.bulk import JSON_COLUMN, insert_rows, json_list, json_rows, select_rows
from smppgw.store.records import Reservation

if TYPE_CHECKING:
    import sqlite3
    from collections.abc import Sequence

__all__ = ["reserve_run", "settle_many"]

#: Settles a batch of ledger rows, looked up by primary key (``tests/test_store_bulk.py``).
SETTLE_SQL = (
    "UPDATE quota_ledger SET state = 'settled', charged = v.charged, settled_at = ?"
    f" FROM (SELECT {JSON_COLUMN.format(0)} AS id, {JSON_COLUMN.format(1)} AS charged"
    " FROM json_each(?)) AS v WHERE quota_ledger.id = v.id"
)


#: ``[id, order_id, parts, amount, state]`` of ledger rows (one row: ``select_rows``).
LEDGER_READ_SQL = (
    "SELECT json_group_array(json_array(id, order_id, parts, amount, state))"
    " FROM quota_ledger WHERE id IN (SELECT value FROM json_each(?))"
)


def reserve_run(
    conn: sqlite3.Connection, order_id: int, parts: Sequence[int], now_ms: int
) -> list[Reservation] | None:
    """Reserve every ``parts[i]`` on ``order_id``, or nothing (None) if they do not all
    fit. The caller chose the order as ``quota.reserve`` would for the first message."""
    total = sum(parts)
    row = conn.execute(
        "UPDATE partner_order SET reserved = reserved + ? * unit_cost"
        " WHERE id = ? AND quota_limit - reserved - spent >= ? * unit_cost"
        " RETURNING unit_cost",
        (total, order_id, total),
    ).fetchone()
    if row is None:
        return None
    unit_cost = int(row[0])
    # The writer is the only one inserting, inside this transaction: the next rowids are
    # max + 1, max + 2, ... (what SQLite would choose); naming them saves a statement
    # per row to learn each id.
    (top,) = conn.execute("SELECT coalesce(max(id), 0) FROM quota_ledger").fetchone()
    out = [Reservation(int(top) + 1 + i, order_id, p, p * unit_cost) for i, p in enumerate(parts)]
    insert_rows(
        conn,
        "INSERT INTO quota_ledger (id, order_id, parts, amount, state, created_at)",
        [(r.reservation_id, order_id, r.parts, r.amount, "reserved", now_ms) for r in out],
    )
    return out


def settle_many(conn: sqlite3.Connection, items: Sequence[tuple[int, int]], now_ms: int) -> None:
    """Settle ``(reservation_id, charge_parts)`` pairs like ``quota.settle`` one by one
    would: a reservation settled already (before, or earlier in ``items``) is left.

    Raises:
        KeyError: unknown reservation.
        ValueError: ``charge_parts`` outside ``0..parts``.
    """
    if not items:
        return
    ids = json_list(rid for rid, _ in items)
    ledger = {
        int(r[0]): (int(r[1]), int(r[2]), int(r[3]), str(r[4]))
        for r in select_rows(conn, LEDGER_READ_SQL, (ids,))
    }
    per_order: dict[int, list[int]] = {}
    updates: list[tuple[int, int]] = []
    for rid, charge_parts in items:
        entry = ledger.get(rid)
        if entry is None:
            raise KeyError(f"no quota reservation {rid}")
        order_id, parts, amount, state = entry
        if state == "settled":
            continue
        if not 0 <= charge_parts <= parts:
            raise ValueError(f"charge {charge_parts} parts of a {parts}-part reservation")
        cost = amount * charge_parts // parts  # amount is parts * unit_cost: exact
        ledger[rid] = (order_id, parts, amount, "settled")
        sums = per_order.setdefault(order_id, [0, 0])
        sums[0] += amount
        sums[1] += cost
        updates.append((rid, cost))
    if updates:
        conn.execute(SETTLE_SQL, (now_ms, json_rows(updates)))
    conn.executemany(
        "UPDATE partner_order SET reserved = reserved - ?, spent = spent + ? WHERE id = ?",
        [(released, spent, order_id) for order_id, (released, spent) in per_order.items()],
    )
