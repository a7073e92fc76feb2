"""Loyalty members: the rows the registration, points and redemption scenarios share.

Functions take the open connection of a scenario step (``Context.conn``) and run inside
its transaction; they decide nothing (the handlers do).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from smppgw.store.journal import ms

if TYPE_CHECKING:
    import sqlite3

__all__ = [
    "Member",
    "add_points",
    "delete_member",
    "find_member",
    "insert_member",
    "member_by_id",
    "search_members",
    "update_member",
]

_COLUMNS = (
    "member_id, msisdn, name, province, fields, points, created_at, updated_at, monthly_spend"
)


@dataclass(frozen=True, slots=True)
class Member:
    member_id: str
    msisdn: str
    name: str | None
    province: str | None
    fields: dict[str, Any]
    points: int
    created_at: float
    updated_at: float
    monthly_spend: int | None = None


def _json(fields: dict[str, Any]) -> str:
    return json.dumps(fields, ensure_ascii=False, sort_keys=True)


def _member(r: Any) -> Member:
    return Member(
        member_id=str(r[0]),
        msisdn=str(r[1]),
        name=r[2],
        province=r[3],
        fields=json.loads(r[4] or "{}"),
        points=int(r[5]),
        created_at=int(r[6]) / 1000,
        updated_at=int(r[7]) / 1000,
        monthly_spend=None if r[8] is None else int(r[8]),
    )


def find_member(conn: sqlite3.Connection, msisdn: str) -> Member | None:
    row = conn.execute(f"SELECT {_COLUMNS} FROM member WHERE msisdn = ?", (msisdn,)).fetchone()
    return None if row is None else _member(row)


def member_by_id(conn: sqlite3.Connection, member_id: str) -> Member | None:
    row = conn.execute(
        f"SELECT {_COLUMNS} FROM member WHERE member_id = ?", (member_id,)
    ).fetchone()
    return None if row is None else _member(row)


def insert_member(
    conn: sqlite3.Connection,
    *,
    member_id: str,
    msisdn: str,
    name: str | None,
    province: str | None,
    fields: dict[str, Any],
    now: float,
) -> bool:
    """Insert a member; False if the ID is taken (the caller draws another)."""
    cur = conn.execute(
        "INSERT INTO member (member_id, msisdn, name, province, fields, created_at, updated_at)"
        " VALUES (?,?,?,?,?,?,?) ON CONFLICT (member_id) DO NOTHING",
        (
            member_id,
            msisdn,
            name,
            province,
            json.dumps(fields, ensure_ascii=False),
            ms(now),
            ms(now),
        ),
    )
    return cur.rowcount == 1


def update_member(
    conn: sqlite3.Connection, member_id: str, changes: dict[str, Any], now: float
) -> bool:
    """Change name, province, msisdn or fields of a member; False if there is none."""
    allowed = {"name", "province", "msisdn", "fields"}
    unknown = set(changes) - allowed
    if unknown:
        raise ValueError(f"cannot change {sorted(unknown)}; only {sorted(allowed)}")
    sets = []
    values: list[Any] = []
    for key, value in changes.items():
        sets.append(f"{key} = ?")
        values.append(_json(value) if key == "fields" else value)
    sets.append("updated_at = ?")
    values += [ms(now), member_id]
    cur = conn.execute(f"UPDATE member SET {', '.join(sets)} WHERE member_id = ?", values)
    return cur.rowcount == 1


def delete_member(conn: sqlite3.Connection, member_id: str) -> bool:
    """Delete a member and their points history (gifts keep their assignment text)."""
    conn.execute("DELETE FROM points_ledger WHERE member_id = ?", (member_id,))
    conn.execute("UPDATE gift_inventory SET assigned_to = NULL WHERE assigned_to = ?", (member_id,))
    cur = conn.execute("DELETE FROM member WHERE member_id = ?", (member_id,))
    return cur.rowcount == 1


def search_members(
    conn: sqlite3.Connection,
    *,
    msisdn: str | None = None,
    member_id: str | None = None,
    field: tuple[str, str] | None = None,
    limit: int = 100,
) -> list[Member]:
    """Members by number, ID, or a field's value (``name``, ``province`` or a key of
    the imported ``fields``), newest first."""
    where: list[str] = []
    args: list[object] = []
    if msisdn:
        where.append("msisdn = ?")
        args.append(msisdn)
    if member_id:
        where.append("member_id = ?")
        args.append(member_id)
    if field is not None:
        key, value = field
        if key in ("name", "province"):
            where.append(f"{key} = ?")
        else:
            where.append("json_extract(fields, ?) = ?")
            args.append(f"$.{key}")
        args.append(value)
    sql = f"SELECT {_COLUMNS} FROM member"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY created_at DESC LIMIT ?"
    args.append(limit)
    return [_member(r) for r in conn.execute(sql, args).fetchall()]


def add_points(
    conn: sqlite3.Connection, member_id: str, delta: int, reason: str, ref: str | None, now: float
) -> int | None:
    """Add ``delta`` points (negative to deduct) and write the ledger row; the new balance,
    or None when a deduction would go below zero (nothing changed)."""
    cur = conn.execute(
        "UPDATE member SET points = points + ?, updated_at = ? WHERE member_id = ?"
        " AND points + ? >= 0 RETURNING points",
        (delta, ms(now), member_id, delta),
    )
    row = cur.fetchone()
    if row is None:
        return None
    balance = int(row[0])
    conn.execute(
        "INSERT INTO points_ledger (member_id, delta, balance_after, reason, ref, created_at)"
        " VALUES (?,?,?,?,?,?)",
        (member_id, delta, balance, reason, ref, ms(now)),
    )
    return balance
