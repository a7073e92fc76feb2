"""MT messages as an operator looks them up: "my customer never got the OTP".

Read-only queries for ``smppgw messages`` (on a read-only connection, safe while the
daemon runs). :func:`find_messages` lists a period's messages, newest first, by
destination, partner or state; :func:`message_trace` is one message's whole story: the
journal row, each part's carrier id and receipt, and whether its partner is still owed
a receipt.

Which index answers: a partner's messages by ``mt_message_by_partner`` (partner,
created_at), the others by ``mt_message_by_created`` over the period, then filtered:
the destination has no index of its own, since every admission would pay for it, so a
search by number alone reads the period's rows (keep the period short on a big file).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import sqlite3

__all__ = [
    "MessageRow",
    "MessageTrace",
    "PartRow",
    "by_carrier_id",
    "find_messages",
    "message_trace",
]

_COLUMNS = (
    "id, partner, source_addr, destination_addr, state, part_count, smsc, carrier_id,"
    " attempts, created_at, updated_at, final_status, error, order_id, protocol_id, user_ref"
)


@dataclass(frozen=True, slots=True)
class MessageRow:
    """One journaled MT message (times in epoch seconds)."""

    id: int
    partner: str
    source_addr: str
    destination_addr: str
    state: str
    part_count: int
    smsc: str | None
    carrier_id: str | None
    attempts: int
    created_at: float
    updated_at: float
    final_status: int | None
    error: str | None
    order_id: int | None
    protocol_id: int
    user_ref: int | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class PartRow:
    """A part a carrier accepted: its id there, when, and its receipt's state if one came."""

    part_no: int
    smsc: str
    carrier_id: str
    submitted_at: float
    receipt_state: str | None


@dataclass(frozen=True, slots=True)
class MessageTrace:
    message: MessageRow
    parts: tuple[PartRow, ...]
    #: Receipts the partner has not acknowledged yet (an acknowledged one is deleted):
    #: (stat, queued at).
    receipts_owed: tuple[tuple[str, float], ...]

    def as_dict(self) -> dict[str, Any]:
        return {
            **self.message.as_dict(),
            "parts": [asdict(p) for p in self.parts],
            "receipts_owed": [{"stat": s, "queued_at": t} for s, t in self.receipts_owed],
        }


def _row(r: Any) -> MessageRow:
    return MessageRow(
        id=int(r[0]),
        partner=str(r[1]),
        source_addr=str(r[2]),
        destination_addr=str(r[3]),
        state=str(r[4]),
        part_count=int(r[5]),
        smsc=r[6],
        carrier_id=r[7],
        attempts=int(r[8]),
        created_at=int(r[9]) / 1000,
        updated_at=int(r[10]) / 1000,
        final_status=r[11],
        error=r[12],
        order_id=r[13],
        protocol_id=int(r[14]),
        user_ref=r[15],
    )


def find_messages(
    conn: sqlite3.Connection,
    *,
    since: float,
    until: float | None = None,
    destination: str | None = None,
    partner: str | None = None,
    state: str | None = None,
    limit: int = 100,
) -> list[MessageRow]:
    """Messages accepted in ``[since, until)`` (epoch seconds), newest first."""
    where = ["created_at >= ?"]
    params: list[object] = [round(since * 1000)]
    if until is not None:
        where.append("created_at < ?")
        params.append(round(until * 1000))
    for column, value in (
        ("destination_addr", destination),
        ("partner", partner),
        ("state", state),
    ):
        if value is not None:
            where.append(f"{column} = ?")
            params.append(value)
    params.append(limit)
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM mt_message WHERE {' AND '.join(where)}"
        " ORDER BY created_at DESC, id DESC LIMIT ?",
        params,
    ).fetchall()
    return [_row(r) for r in rows]


def message_trace(conn: sqlite3.Connection, message_id: int) -> MessageTrace | None:
    """One message with its parts at carriers and the receipts still owed; None if the
    journal does not hold it (never accepted, or removed by retention)."""
    row = conn.execute(f"SELECT {_COLUMNS} FROM mt_message WHERE id = ?", (message_id,)).fetchone()
    if row is None:
        return None
    parts = conn.execute(
        "SELECT part_no, smsc, carrier_id, submitted_at, receipt_state FROM carrier_ref"
        " WHERE message_id = ? ORDER BY submitted_at, part_no",
        (message_id,),
    ).fetchall()
    owed = conn.execute(
        "SELECT stat, created_at FROM receipt_outbox WHERE message_id = ? ORDER BY id",
        (message_id,),
    ).fetchall()
    return MessageTrace(
        _row(row),
        tuple(PartRow(int(p[0]), str(p[1]), str(p[2]), int(p[3]) / 1000, p[4]) for p in parts),
        tuple((str(o[0]), int(o[1]) / 1000) for o in owed),
    )


def by_carrier_id(conn: sqlite3.Connection, keys: list[tuple[str, str]]) -> list[int]:
    """Our messages a carrier knows by these ``(carrier, id key)`` pairs (the key as
    ``protocol.message_id`` reduces the carrier's id), each once, in the order given."""
    found: list[int] = []
    for smsc, key in keys:
        row = conn.execute(
            "SELECT message_id FROM carrier_ref WHERE smsc = ? AND carrier_id = ?", (smsc, key)
        ).fetchone()
        if row is not None and int(row[0]) not in found:
            found.append(int(row[0]))
    return found
