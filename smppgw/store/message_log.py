"""The MO/MT log of the scenarios: search by number or member, export for a period.

Every MO and every reply a scenario step sent is a row (written by ``scenario_tx`` in
the step's transaction), with its scenario, outcome and correlation id. An MT row joins
its journal message for the delivery state the carrier reported.

``open_readonly`` lets the CLI read the file while the daemon runs (WAL: readers do not
block the writer and see only committed steps); it never takes the writer's lock.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from smppgw.store.journal import ms

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

__all__ = ["LogRow", "iter_log", "open_readonly", "search_log"]


@dataclass(frozen=True, slots=True)
class LogRow:
    id: int
    created_at: float
    direction: str
    msisdn: str
    short_code: str | None
    body: str
    scenario: str | None
    outcome: str | None
    member_id: str | None
    correlation: str | None
    message_id: int | None
    state: str | None  # the MT's journal state (delivered, failed...), None for MO

    def as_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__slots__}


_SELECT = (
    "SELECT l.id, l.created_at, l.direction, l.msisdn, l.short_code, l.body, l.scenario,"
    " l.outcome, l.member_id, l.correlation, l.message_id, m.state"
    " FROM message_log l LEFT JOIN mt_message m ON m.id = l.message_id"
)


def _row(r: Any) -> LogRow:
    return LogRow(
        id=int(r[0]),
        created_at=int(r[1]) / 1000,
        direction=str(r[2]),
        msisdn=str(r[3]),
        short_code=r[4],
        body=str(r[5]),
        scenario=r[6],
        outcome=r[7],
        member_id=r[8],
        correlation=r[9],
        message_id=None if r[10] is None else int(r[10]),
        state=r[11],
    )


def open_readonly(path: str | Path) -> sqlite3.Connection:
    """A read-only connection to the journal file (safe while the daemon runs)."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5.0)
    conn.execute("PRAGMA query_only=ON")
    return conn


def search_log(
    conn: sqlite3.Connection,
    *,
    msisdn: str | None = None,
    member_id: str | None = None,
    limit: int = 50,
) -> list[LogRow]:
    """The newest rows of a number or a member (the member's number too: rows logged
    before the member existed carry no member ID), newest first."""
    where: list[str] = []
    args: list[object] = []
    if msisdn:
        where.append("l.msisdn = ?")
        args.append(msisdn)
    if member_id:
        where.append(
            "(l.member_id = ? OR l.msisdn = (SELECT msisdn FROM member WHERE member_id = ?))"
        )
        args += [member_id, member_id]
    sql = _SELECT + (" WHERE " + " AND ".join(where) if where else "")
    sql += " ORDER BY l.id DESC LIMIT ?"
    args.append(limit)
    return [_row(r) for r in conn.execute(sql, args).fetchall()]


def iter_log(
    conn: sqlite3.Connection, *, since: float | None = None, until: float | None = None
) -> Iterator[LogRow]:
    """Every row of a period in order (for the CSV export), streamed."""
    where: list[str] = []
    args: list[object] = []
    if since is not None:
        where.append("l.created_at >= ?")
        args.append(ms(since))
    if until is not None:
        where.append("l.created_at < ?")
        args.append(ms(until))
    sql = _SELECT + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY l.id"
    for r in conn.execute(sql, args):
        yield _row(r)
