"""The SQL of the admin CLI: read-only lists, order price and cancel, partner accounts.

Why a module of its own: the lists an operator reads (orders with what is left, codes,
gifts, events) are shaped for people, not for the hot path, and run on a read-only
connection (``message_log.open_readonly``) while the daemon writes; the few writes here
(an order with its price, a cancel, a partner account) run in the writer's transaction
(``Store.run_in_transaction``) or, with no daemon, in the CLI's own store.

Times are INTEGER milliseconds in the file and float seconds in the records, as in the
rest of the store. The store decides nothing: whether a partner account is acceptable
is decided in ``smppgw.app.partner_accounts``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

from smppgw.store.journal import ms, opt_ms
from smppgw.store.quota import create_order

if TYPE_CHECKING:
    import sqlite3

    from smppgw.store.records import NewOrder

__all__ = [
    "CodeRow",
    "EventRow",
    "GiftRow",
    "OrderRow",
    "PartnerAccount",
    "add_order",
    "cancel_order",
    "list_codes",
    "list_events",
    "list_gifts",
    "list_orders",
    "partner_accounts",
    "save_partner_account",
]


def _sec(value: Any) -> float | None:
    return None if value is None else int(value) / 1000


class _Row:
    """``as_dict`` for JSON output, shared by the row records."""

    __slots__ = ()

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}  # type: ignore[arg-type]


# ---------------------------------------------------------------------- orders


@dataclass(frozen=True, slots=True)
class OrderRow(_Row):
    """An order as the operator sees it; ``remaining`` is in the order's unit (parts for
    prepaid, money for postpaid), ``state`` one of active, exhausted, expired, future,
    cancelled."""

    id: int
    partner: str
    kind: str
    limit: int
    unit_cost: int
    reserved: int
    spent: int
    remaining: int
    price_minor: int | None
    starts_at: float | None
    expires_at: float | None
    created_at: float
    state: str
    cancelled_at: float | None = None


def _state(
    limit: int, used: int, starts: int | None, expires: int | None, cancelled: bool, now: int
) -> str:
    if cancelled:
        return "cancelled"
    if expires is not None and expires <= now:
        return "expired"
    if starts is not None and starts > now:
        return "future"
    return "exhausted" if used >= limit else "active"


def add_order(
    conn: sqlite3.Connection, order: NewOrder, price_minor: int | None, now: float
) -> int:
    """Create an order (``quota.create_order``) and record its price, in one transaction."""
    if price_minor is not None and price_minor < 0:
        raise ValueError("an order's price must not be negative")
    order_id = create_order(conn, order, now)
    conn.execute("UPDATE partner_order SET price_minor = ? WHERE id = ?", (price_minor, order_id))
    return order_id


def cancel_order(conn: sqlite3.Connection, order_id: int, now: float) -> bool:
    """End an order now: it expires at ``now``, so admission stops reserving from it,
    and ``cancelled_at`` records that the operator ended it (``list_orders`` shows it
    ``cancelled``, not ``expired``).

    Why by expiry rather than a state: the quota code (``quota._ACTIVE``) already skips
    expired orders, so a cancel needs no new rule on the hot path; messages in flight
    keep their reservation and settle as usual. False when it had already ended.
    """
    cur = conn.execute(
        "UPDATE partner_order SET expires_at = :now, cancelled_at = :now WHERE id = :id"
        " AND (expires_at IS NULL OR expires_at > :now)",
        {"id": order_id, "now": ms(now)},
    )
    return cur.rowcount == 1


def list_orders(
    conn: sqlite3.Connection, *, partner: str | None, include_ended: bool, now: float
) -> list[OrderRow]:
    """Orders of one partner or all, oldest first; without ``include_ended`` only those
    that can still pay (not expired, something left)."""
    where: list[str] = []
    args: dict[str, Any] = {"now": ms(now)}
    if partner is not None:
        where.append("partner = :partner")
        args["partner"] = partner
    if not include_ended:
        where.append("(expires_at IS NULL OR expires_at > :now)")
        where.append("quota_limit - reserved - spent > 0")
    sql = (
        "SELECT id, partner, kind, quota_limit, unit_cost, reserved, spent, price_minor,"
        " starts_at, expires_at, created_at, cancelled_at FROM partner_order"
    )
    if where:
        sql += " WHERE " + " AND ".join(where)
    out = []
    for r in conn.execute(sql + " ORDER BY partner, id", args).fetchall():
        limit, reserved, spent = int(r[3]), int(r[5]), int(r[6])
        out.append(
            OrderRow(
                id=int(r[0]),
                partner=str(r[1]),
                kind=str(r[2]),
                limit=limit,
                unit_cost=int(r[4]),
                reserved=reserved,
                spent=spent,
                remaining=limit - reserved - spent,
                price_minor=None if r[7] is None else int(r[7]),
                starts_at=_sec(r[8]),
                expires_at=_sec(r[9]),
                created_at=int(r[10]) / 1000,
                state=_state(limit, reserved + spent, r[8], r[9], r[11] is not None, ms(now)),
                cancelled_at=_sec(r[11]),
            )
        )
    return out


# ---------------------------------------------------------------------- inventories


@dataclass(frozen=True, slots=True)
class CodeRow(_Row):
    code: str
    campaign: str
    points: int
    valid_from: float | None
    valid_to: float | None
    used_by: str | None
    used_at: float | None
    query_count: int


def list_codes(
    conn: sqlite3.Connection, *, campaign: str, used: bool | None, limit: int
) -> list[CodeRow]:
    """Codes of a campaign in code order; ``used`` True/False keeps only used/free ones."""
    sql = (
        "SELECT code, campaign, points, valid_from, valid_to, used_by, used_at, query_count"
        " FROM code_inventory WHERE campaign = ?"
    )
    if used is not None:
        sql += " AND used_at IS NOT NULL" if used else " AND used_at IS NULL"
    rows = conn.execute(sql + " ORDER BY code LIMIT ?", (campaign, limit)).fetchall()
    return [
        CodeRow(
            str(r[0]), str(r[1]), int(r[2]), _sec(r[3]), _sec(r[4]), r[5], _sec(r[6]), int(r[7])
        )
        for r in rows
    ]


@dataclass(frozen=True, slots=True)
class GiftRow(_Row):
    """A gift; the PIN is left out: it is the gift's value, and a list is not the place
    to copy it from."""

    id: int
    gift_type: str
    cost_points: int
    serial: str
    assigned_to: str | None
    assigned_at: float | None


def list_gifts(
    conn: sqlite3.Connection, *, gift_type: str | None, free_only: bool, limit: int
) -> list[GiftRow]:
    where: list[str] = []
    args: list[object] = []
    if gift_type is not None:
        where.append("gift_type = ?")
        args.append(gift_type)
    if free_only:
        where.append("assigned_to IS NULL")
    sql = "SELECT id, gift_type, cost_points, serial, assigned_to, assigned_at FROM gift_inventory"
    if where:
        sql += " WHERE " + " AND ".join(where)
    args.append(limit)
    rows = conn.execute(sql + " ORDER BY gift_type, id LIMIT ?", args).fetchall()
    return [GiftRow(int(r[0]), str(r[1]), int(r[2]), str(r[3]), r[4], _sec(r[5])) for r in rows]


# ---------------------------------------------------------------------- events


@dataclass(frozen=True, slots=True)
class EventRow(_Row):
    id: int
    kind: str
    subject: str | None
    payload: dict[str, Any]
    event_key: str | None
    created_at: float
    processed_at: float | None


def list_events(
    conn: sqlite3.Connection, *, kind: str | None, subject: str | None, limit: int
) -> list[EventRow]:
    """The newest business events, newest first (``subject`` is the number)."""
    where: list[str] = []
    args: list[object] = []
    if kind is not None:
        where.append("kind = ?")
        args.append(kind)
    if subject is not None:
        where.append("subject = ?")
        args.append(subject)
    sql = "SELECT id, kind, subject, payload, event_key, created_at, processed_at FROM event"
    if where:
        sql += " WHERE " + " AND ".join(where)
    args.append(limit)
    out = []
    for r in conn.execute(sql + " ORDER BY id DESC LIMIT ?", args).fetchall():
        try:
            payload = json.loads(r[3] or "{}")
        except ValueError:
            payload = {"_raw": r[3]}
        out.append(
            EventRow(int(r[0]), str(r[1]), r[2], payload, r[4], int(r[5]) / 1000, _sec(r[6]))
        )
    return out


# ---------------------------------------------------------------------- partner accounts


@dataclass(frozen=True, slots=True)
class PartnerAccount(_Row):
    """A partner's DB-managed overrides; None keeps the config's value. ``settings`` is
    set only for a partner added from the CLI (its PartnerSettings fields as JSON)."""

    system_id: str
    password_hash: str | None = None
    enabled: bool | None = None
    settings: dict[str, Any] | None = None
    created_at: float = 0.0
    updated_at: float = 0.0


def partner_accounts(conn: sqlite3.Connection) -> list[PartnerAccount]:
    rows = conn.execute(
        "SELECT system_id, password_hash, enabled, settings, created_at, updated_at"
        " FROM partner_account ORDER BY system_id"
    ).fetchall()
    return [
        PartnerAccount(
            system_id=str(r[0]),
            password_hash=r[1],
            enabled=None if r[2] is None else bool(r[2]),
            settings=None if r[3] is None else json.loads(r[3]),
            created_at=int(r[4]) / 1000,
            updated_at=int(r[5]) / 1000,
        )
        for r in rows
    ]


def save_partner_account(conn: sqlite3.Connection, account: PartnerAccount, now: float) -> None:
    """Insert or replace a partner's row whole (the caller merged what it changes)."""
    conn.execute(
        "INSERT INTO partner_account (system_id, password_hash, enabled, settings, created_at,"
        " updated_at) VALUES (:id, :hash, :enabled, :settings, :now, :now)"
        " ON CONFLICT (system_id) DO UPDATE SET password_hash = :hash, enabled = :enabled,"
        " settings = :settings, updated_at = :now",
        {
            "id": account.system_id,
            "hash": account.password_hash,
            "enabled": None if account.enabled is None else int(account.enabled),
            "settings": None
            if account.settings is None
            else json.dumps(account.settings, ensure_ascii=False, sort_keys=True),
            "now": opt_ms(now),
        },
    )
