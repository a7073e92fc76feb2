"""Order states as the operator sees them (``order list``): a cancelled order says so,
an order that ran out of time says expired, and a cancel of an ended order changes
nothing."""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING

from smppgw.store import schema
from smppgw.store.admin_queries import cancel_order, list_orders
from smppgw.store.quota import create_order
from smppgw.store.records import NewOrder, OrderKind

if TYPE_CHECKING:
    from pathlib import Path

NOW = 1_800_000_000.0


def _conn(tmp_path: Path) -> sqlite3.Connection:
    path = str(tmp_path / "orders.db")
    conn = sqlite3.connect(path, isolation_level=None)
    schema.migrate(conn, path)
    return conn


def test_cancelled_expired_and_active_orders_are_told_apart(tmp_path: Path) -> None:
    conn = _conn(tmp_path)
    order = NewOrder(partner="acme", kind=OrderKind.PREPAID, limit=10)
    active = create_order(conn, order, NOW)
    cancelled = create_order(conn, order, NOW)
    short = NewOrder(partner="acme", kind=OrderKind.PREPAID, limit=10, expires_at=NOW + 5)
    ran_out = create_order(conn, short, NOW)

    assert cancel_order(conn, cancelled, NOW + 1) is True
    assert cancel_order(conn, cancelled, NOW + 2) is False  # ended already
    assert cancel_order(conn, ran_out, NOW + 10) is False  # expired before the cancel

    rows = {r.id: r for r in list_orders(conn, partner="acme", include_ended=True, now=NOW + 10)}
    assert rows[active].state == "active"
    assert rows[active].cancelled_at is None
    assert rows[cancelled].state == "cancelled"
    assert rows[cancelled].cancelled_at == rows[cancelled].expires_at == NOW + 1
    assert rows[ran_out].state == "expired"
    assert rows[ran_out].cancelled_at is None
    open_now = list_orders(conn, partner="acme", include_ended=False, now=NOW + 10)
    assert [r.id for r in open_now] == [active]
