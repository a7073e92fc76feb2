"""The opt-out list: numbers whose subscribers refused marketing messages.

Plain synchronous functions of a ``sqlite3.Connection`` (writes inside the writer's
transaction, reads on any connection). A row is ``(msisdn, scope)``: ``msisdn`` in
international digits (``84912345678``), ``scope`` the partner whose marketing the
subscriber refused, or ``""`` for every partner's. Admission checks a marketing
message's destination against the rows of its partner, its parents and ``""``
(:func:`opted_out`, one query a batch); transactional traffic (OTPs, notifications) is
never checked. The list only grows from the subscriber's own MO, the operator's CLI and
imports; it is never pruned by retention (an opt-out has no age).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from smppgw.store.bulk import insert_rows, json_list, select_rows

if TYPE_CHECKING:
    import sqlite3
    from collections.abc import Iterable, Sequence

__all__ = [
    "ALL_PARTNERS",
    "OptOut",
    "add_opt_outs",
    "count_opt_outs",
    "list_opt_outs",
    "opted_out",
    "refuses",
    "remove_opt_outs",
]

#: The scope of an opt-out from every partner's marketing.
ALL_PARTNERS = ""

#: Numbers a batch looks up one by one; above, in one statement.
_POINT_LOOKUPS = 4
_POINT_SQL = "SELECT scope FROM opt_out WHERE msisdn = ?"
_LOOKUP_SQL = (
    "SELECT json_group_array(json_array(msisdn, scope)) FROM opt_out"
    " WHERE msisdn IN (SELECT value FROM json_each(?))"
)


@dataclass(frozen=True, slots=True)
class OptOut:
    """One row of the list. ``created_at`` in epoch seconds."""

    msisdn: str
    scope: str
    source: str
    created_at: float

    def as_dict(self) -> dict[str, object]:
        return {
            "msisdn": self.msisdn,
            "scope": self.scope or "all",
            "source": self.source,
            "created_at": self.created_at,
        }


def add_opt_outs(
    conn: sqlite3.Connection, entries: Iterable[tuple[str, str]], source: str, now: float
) -> int:
    """Add ``(msisdn, scope)`` rows; ones already listed keep their first source and
    time. Returns how many were new."""
    rows = [(m, s, source, round(now * 1000)) for m, s in dict.fromkeys(entries)]
    if not rows:
        return 0
    before = conn.total_changes
    insert_rows(conn, "INSERT OR IGNORE INTO opt_out (msisdn, scope, source, created_at)", rows)
    return conn.total_changes - before


def remove_opt_outs(
    conn: sqlite3.Connection, msisdns: Sequence[str], scope: str | None = ALL_PARTNERS
) -> int:
    """Take ``msisdns`` off the list for ``scope`` (None: every scope); returns the
    rows removed."""
    if not msisdns:
        return 0
    sql = "DELETE FROM opt_out WHERE msisdn IN (SELECT value FROM json_each(?))"
    params: list[object] = [json_list(msisdns)]
    if scope is not None:
        sql += " AND scope = ?"
        params.append(scope)
    return conn.execute(sql, params).rowcount


def opted_out(conn: sqlite3.Connection, msisdns: Iterable[str]) -> dict[str, set[str]]:
    """The scopes each of ``msisdns`` opted out of (numbers not listed are absent).

    Admission asks this for every batch of a marketing partner, so its cost is paid on
    the hot path: a few numbers are looked up one by one (about 4 us each), more in one
    JSON step (``store/bulk.py``: 11-16 us however few, 18 for 16)."""
    keys = list(dict.fromkeys(msisdns))
    found: dict[str, set[str]] = {}
    if len(keys) <= _POINT_LOOKUPS:
        for key in keys:
            for (scope,) in conn.execute(_POINT_SQL, (key,)):
                found.setdefault(key, set()).add(str(scope))
        return found
    for msisdn, scope in select_rows(conn, _LOOKUP_SQL, (json_list(keys),)):
        found.setdefault(str(msisdn), set()).add(str(scope))
    return found


def refuses(scopes: set[str] | None, payers: Sequence[str]) -> bool:
    """Whether a number's opt-out ``scopes`` (:func:`opted_out`) refuse a message that
    ``payers`` (its partner, then its parents) send: every partner's, or one of them."""
    if not scopes:
        return False
    return ALL_PARTNERS in scopes or not scopes.isdisjoint(payers)


def list_opt_outs(
    conn: sqlite3.Connection,
    *,
    msisdn: str | None = None,
    scope: str | None = None,
    limit: int = 100,
) -> list[OptOut]:
    """Rows of the list, newest first, optionally of one number and/or one scope."""
    sql = "SELECT msisdn, scope, source, created_at FROM opt_out WHERE 1"
    params: list[object] = []
    if msisdn is not None:
        sql += " AND msisdn = ?"
        params.append(msisdn)
    if scope is not None:
        sql += " AND scope = ?"
        params.append(scope)
    sql += " ORDER BY created_at DESC, msisdn LIMIT ?"
    params.append(limit)
    return [
        OptOut(str(m), str(s), str(src), int(t) / 1000)
        for m, s, src, t in conn.execute(sql, params).fetchall()
    ]


def count_opt_outs(conn: sqlite3.Connection) -> dict[str, int]:
    """Rows per scope (``""``: every partner's marketing)."""
    return {
        str(scope): int(n)
        for scope, n in conn.execute("SELECT scope, count(*) FROM opt_out GROUP BY scope")
    }
