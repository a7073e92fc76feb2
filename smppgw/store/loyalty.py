"""The SQL of the points and redemption scenarios: codes, gifts, attempts, confirmations.

Every function takes the open connection of a scenario step (``Context.conn``) and runs
inside its transaction, in the store's single writer thread: a read followed by a write
here cannot interleave with another step. The guards are written into the SQL anyway
(``WHERE used_by IS NULL``, ``WHERE assigned_to IS NULL`` and a rowcount check), so that
a code is credited once and a gift serial is given once even if a caller forgets that.
Times are epoch seconds in and out; the tables hold integer milliseconds.

The functions decide nothing (the handlers do); they say what is and what changed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from smppgw.store.journal import ms

if TYPE_CHECKING:
    import sqlite3

__all__ = [
    "Code",
    "Gift",
    "GiftStock",
    "Pending",
    "StatementLine",
    "add_wrong_code",
    "assign_gift",
    "delete_pending",
    "find_code",
    "free_code_count",
    "free_gift",
    "get_pending",
    "gift_stock",
    "mark_code_used",
    "members_with_activity",
    "purge_expired_pending",
    "put_pending",
    "record_code_query",
    "record_event",
    "take_free_gift",
    "wrong_codes",
]


def _sec(value: Any) -> float | None:
    return None if value is None else int(value) / 1000


# ------------------------------------------------------------------------ codes


@dataclass(frozen=True, slots=True)
class Code:
    """A scratch-card code as the inventory has it (times in epoch seconds)."""

    code: str
    campaign: str
    points: int
    valid_from: float | None
    valid_to: float | None
    used_by: str | None
    used_at: float | None
    query_count: int
    last_query_at: float | None
    last_query_by: str | None

    def valid_at(self, now: float) -> bool:
        """Whether ``now`` is within the code's own dates (bounds inclusive)."""
        if self.valid_from is not None and now < self.valid_from:
            return False
        return not (self.valid_to is not None and now > self.valid_to)


_CODE_COLUMNS = (
    "code, campaign, points, valid_from, valid_to, used_by, used_at, query_count,"
    " last_query_at, last_query_by"
)


def find_code(conn: sqlite3.Connection, code: str) -> Code | None:
    """The code as stored (the inventory holds codes upper-case and trimmed)."""
    row = conn.execute(
        f"SELECT {_CODE_COLUMNS} FROM code_inventory WHERE code = ?", (code,)
    ).fetchone()
    if row is None:
        return None
    return Code(
        code=str(row[0]),
        campaign=str(row[1]),
        points=int(row[2]),
        valid_from=_sec(row[3]),
        valid_to=_sec(row[4]),
        used_by=row[5],
        used_at=_sec(row[6]),
        query_count=int(row[7]),
        last_query_at=_sec(row[8]),
        last_query_by=row[9],
    )


def mark_code_used(conn: sqlite3.Connection, code: str, member_id: str, now: float) -> bool:
    """Mark an unused code used by ``member_id``; False if it was already used (or is
    unknown): the caller must then not credit it."""
    cur = conn.execute(
        "UPDATE code_inventory SET used_by = ?, used_at = ? WHERE code = ? AND used_by IS NULL",
        (member_id, ms(now), code),
    )
    return cur.rowcount == 1


def record_code_query(conn: sqlite3.Connection, code: str, msisdn: str, now: float) -> int:
    """Count one more query of an already used code (the anti-counterfeit trail: a code
    sent again is a copied card or a curious owner); the new count."""
    row = conn.execute(
        "UPDATE code_inventory SET query_count = query_count + 1, last_query_at = ?,"
        " last_query_by = ? WHERE code = ? RETURNING query_count",
        (ms(now), msisdn, code),
    ).fetchone()
    return 0 if row is None else int(row[0])


def free_code_count(conn: sqlite3.Connection, campaign: str | None = None) -> int:
    """Codes not used yet (of one campaign, or all): what is left to print or sell."""
    if campaign is None:
        row = conn.execute("SELECT count(*) FROM code_inventory WHERE used_by IS NULL")
    else:
        row = conn.execute(
            "SELECT count(*) FROM code_inventory WHERE used_by IS NULL AND campaign = ?",
            (campaign,),
        )
    return int(row.fetchone()[0])


def wrong_codes(conn: sqlite3.Connection, msisdn: str, day: str) -> int:
    """Wrong codes ``msisdn`` sent on ``day`` (local ``YYYY-MM-DD``)."""
    row = conn.execute(
        "SELECT wrong FROM code_attempt WHERE msisdn = ? AND day = ?", (msisdn, day)
    ).fetchone()
    return 0 if row is None else int(row[0])


def add_wrong_code(conn: sqlite3.Connection, msisdn: str, day: str) -> int:
    """Count one more wrong code for ``msisdn`` on ``day``; the new count."""
    row = conn.execute(
        "INSERT INTO code_attempt (msisdn, day, wrong) VALUES (?, ?, 1)"
        " ON CONFLICT (msisdn, day) DO UPDATE SET wrong = wrong + 1 RETURNING wrong",
        (msisdn, day),
    ).fetchone()
    return int(row[0])


# ------------------------------------------------------------------------ gifts


@dataclass(frozen=True, slots=True)
class Gift:
    """A gift of the inventory (a virtual card: serial and PIN)."""

    id: int
    gift_type: str
    cost_points: int
    serial: str
    pin: str | None
    assigned_to: str | None = None
    assigned_at: float | None = None


def free_gift(conn: sqlite3.Connection, gift_type: str) -> Gift | None:
    """The next free gift of a type (oldest first), not taken yet: a look before deciding
    (its cost, whether there is stock). Take it with :func:`assign_gift`."""
    row = conn.execute(
        "SELECT id, gift_type, cost_points, serial, pin FROM gift_inventory"
        " WHERE gift_type = ? AND assigned_to IS NULL ORDER BY id LIMIT 1",
        (gift_type,),
    ).fetchone()
    if row is None:
        return None
    return Gift(int(row[0]), str(row[1]), int(row[2]), str(row[3]), row[4])


def assign_gift(conn: sqlite3.Connection, gift_id: int, member_id: str, now: float) -> bool:
    """Give gift ``gift_id`` to ``member_id``; False if it was given already (so no two
    members ever get the same serial)."""
    cur = conn.execute(
        "UPDATE gift_inventory SET assigned_to = ?, assigned_at = ?"
        " WHERE id = ? AND assigned_to IS NULL",
        (member_id, ms(now), gift_id),
    )
    return cur.rowcount == 1


def take_free_gift(
    conn: sqlite3.Connection, gift_type: str, member_id: str, now: float
) -> Gift | None:
    """Take the next free gift of a type for ``member_id``; None when none is left."""
    gift = free_gift(conn, gift_type)
    if gift is None or not assign_gift(conn, gift.id, member_id, now):
        return None
    return Gift(gift.id, gift.gift_type, gift.cost_points, gift.serial, gift.pin, member_id, now)


@dataclass(frozen=True, slots=True)
class GiftStock:
    """How many gifts of a type are left and given: when to ask the provider for more."""

    gift_type: str
    free: int
    assigned: int


def gift_stock(conn: sqlite3.Connection) -> list[GiftStock]:
    """The stock of every gift type, by type."""
    rows = conn.execute(
        "SELECT gift_type, sum(assigned_to IS NULL), sum(assigned_to IS NOT NULL)"
        " FROM gift_inventory GROUP BY gift_type ORDER BY gift_type"
    ).fetchall()
    return [GiftStock(str(t), int(f), int(a)) for t, f, a in rows]


# --------------------------------------------------------------- confirmations


@dataclass(frozen=True, slots=True)
class Pending:
    """A question a scenario asked a subscriber and waits for (``DOI CARD50`` -> ``Y``)."""

    msisdn: str
    scenario: str
    action: str
    payload: dict[str, Any]
    expires_at: float


def put_pending(
    conn: sqlite3.Connection,
    msisdn: str,
    scenario: str,
    action: str,
    payload: dict[str, Any],
    expires_at: float,
) -> None:
    """Ask (again): one open question per number and scenario, the newest wins."""
    conn.execute(
        "INSERT INTO pending_confirmation (msisdn, scenario, action, payload, expires_at)"
        " VALUES (?,?,?,?,?) ON CONFLICT (msisdn, scenario) DO UPDATE SET"
        " action = excluded.action, payload = excluded.payload,"
        " expires_at = excluded.expires_at",
        (msisdn, scenario, action, json.dumps(payload, sort_keys=True), ms(expires_at)),
    )


def get_pending(conn: sqlite3.Connection, msisdn: str, scenario: str, now: float) -> Pending | None:
    """The open question, or None if there is none or it expired (an answer that comes
    too late must not act on a balance the subscriber no longer has in mind)."""
    row = conn.execute(
        "SELECT action, payload, expires_at FROM pending_confirmation"
        " WHERE msisdn = ? AND scenario = ? AND expires_at > ?",
        (msisdn, scenario, ms(now)),
    ).fetchone()
    if row is None:
        return None
    return Pending(msisdn, scenario, str(row[0]), json.loads(row[1]), int(row[2]) / 1000)


def delete_pending(conn: sqlite3.Connection, msisdn: str, scenario: str) -> bool:
    """Close the question (answered, cancelled or expired); False if there was none."""
    cur = conn.execute(
        "DELETE FROM pending_confirmation WHERE msisdn = ? AND scenario = ?", (msisdn, scenario)
    )
    return cur.rowcount == 1


def purge_expired_pending(conn: sqlite3.Connection, now: float) -> int:
    """Drop expired questions (housekeeping; :func:`get_pending` ignores them anyway)."""
    return conn.execute(
        "DELETE FROM pending_confirmation WHERE expires_at <= ?", (ms(now),)
    ).rowcount


# ---------------------------------------------------------------- statements


@dataclass(frozen=True, slots=True)
class StatementLine:
    """A member whose points moved in a period, and their balance at its end."""

    member_id: str
    msisdn: str
    balance: int


def members_with_activity(
    conn: sqlite3.Connection, start: float, end: float
) -> list[StatementLine]:
    """Members with points_ledger rows in ``[start, end)``, each with the balance of
    their last ledger row before ``end`` (the balance "to the end of the month", even
    when the statement is made a few minutes into the next one)."""
    rows = conn.execute(
        "SELECT m.member_id, m.msisdn, l.balance_after FROM points_ledger l"
        " JOIN member m ON m.member_id = l.member_id"
        " WHERE l.id IN (SELECT max(id) FROM points_ledger"
        "   WHERE created_at < ? AND member_id IN (SELECT member_id FROM points_ledger"
        "     WHERE created_at >= ? AND created_at < ?)"
        "   GROUP BY member_id)"
        " ORDER BY m.member_id",
        (ms(end), ms(start), ms(end)),
    ).fetchall()
    return [StatementLine(str(a), str(b), int(c)) for a, b, c in rows]


# -------------------------------------------------------------------- events


def record_event(
    conn: sqlite3.Connection, kind: str, subject: str | None, payload: dict[str, Any], now: float
) -> None:
    """Note a business event (a lucky draw won, a win with no stock left) for the
    operator's reports; marked processed: it is a record, not work for the engine."""
    conn.execute(
        "INSERT INTO event (kind, subject, payload, created_at, processed_at) VALUES (?,?,?,?,?)",
        (kind, subject, json.dumps(payload, sort_keys=True), ms(now), ms(now)),
    )
