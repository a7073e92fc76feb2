"""Reading MT messages back from the journal: one by id, a batch of ids, by a
carrier's id (a receipt), the unfinished ones (a restart), those scheduled far ahead,
those waiting for a receipt too long, those held for a moderator.

Kept apart from ``journal.py`` (which writes them) so that each stays readable in one
go; every function here only reads, on a reader connection.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from smppgw.store.bulk import json_list
from smppgw.store.journal import ms, sec
from smppgw.store.records import CarrierLookup, MessageState, StoredMessage

if TYPE_CHECKING:
    import sqlite3
    from collections.abc import Sequence

__all__ = [
    "far_scheduled",
    "get_message",
    "held_messages",
    "lookup_carrier",
    "messages_by_id",
    "part_states",
    "queued_by_addresses",
    "stale_submitted",
    "unfinished_messages",
]


_MESSAGE_COLUMNS = (
    "m.id, m.partner, m.source_addr, m.source_ton, m.source_npi, m.destination_addr,"
    " m.dest_ton, m.dest_npi, m.data_coding, m.esm_class, m.registered_delivery, m.priority,"
    " m.body, m.part_count, m.state, m.smsc, m.carrier_id, m.attempts, m.order_id,"
    " m.reservation_id, m.created_at, m.updated_at, m.next_attempt_at, m.expires_at,"
    " m.final_status, m.error, m.tlvs, m.protocol_id, m.user_ref"
)


def _parts_of(conn: sqlite3.Connection, message_id: int) -> tuple[bytes, ...]:
    rows = conn.execute(
        "SELECT payload FROM mt_part WHERE message_id = ? ORDER BY part_no", (message_id,)
    ).fetchall()
    return tuple(bytes(r[0]) for r in rows)


def _message(conn: sqlite3.Connection, r: Any) -> StoredMessage:
    part_count = int(r[13])
    msg_id = int(r[0])
    return StoredMessage(
        id=msg_id,
        partner=str(r[1]),
        source_addr=str(r[2]),
        source_ton=int(r[3]),
        source_npi=int(r[4]),
        destination_addr=str(r[5]),
        dest_ton=int(r[6]),
        dest_npi=int(r[7]),
        data_coding=int(r[8]),
        esm_class=int(r[9]),
        registered_delivery=int(r[10]),
        priority=int(r[11]),
        body=bytes(r[12]),
        parts=_parts_of(conn, msg_id) if part_count > 1 else (),
        part_count=part_count,
        state=MessageState(r[14]),
        smsc=None if r[15] is None else str(r[15]),
        carrier_id=None if r[16] is None else str(r[16]),
        attempts=int(r[17]),
        order_id=None if r[18] is None else int(r[18]),
        reservation_id=None if r[19] is None else int(r[19]),
        created_at=int(r[20]) / 1000,
        updated_at=int(r[21]) / 1000,
        next_attempt_at=sec(r[22]),
        expires_at=sec(r[23]),
        final_status=None if r[24] is None else int(r[24]),
        error=None if r[25] is None else str(r[25]),
        tlvs=b"" if r[26] is None else bytes(r[26]),
        protocol_id=int(r[27]),
        user_ref=None if r[28] is None else int(r[28]),
    )


def get_message(conn: sqlite3.Connection, message_id: int) -> StoredMessage | None:
    r = conn.execute(
        f"SELECT {_MESSAGE_COLUMNS} FROM mt_message m WHERE m.id = ?", (message_id,)
    ).fetchone()
    return None if r is None else _message(conn, r)


def messages_by_id(conn: sqlite3.Connection, message_ids: Sequence[int]) -> list[StoredMessage]:
    """The messages of ``message_ids`` that exist, in the order given (the scheduled
    messages read back when due, ``gateway/far_ahead.py``)."""
    found: dict[int, StoredMessage] = {}
    for start in range(0, len(message_ids), 500):
        chunk = json_list(message_ids[start : start + 500])
        for r in conn.execute(
            f"SELECT {_MESSAGE_COLUMNS} FROM mt_message m"
            " WHERE m.id IN (SELECT value FROM json_each(?))",
            (chunk,),
        ):
            found[int(r[0])] = _message(conn, r)
    return [found[i] for i in message_ids if i in found]


def lookup_carrier(conn: sqlite3.Connection, smsc: str, carrier_id: str) -> CarrierLookup | None:
    """Map a carrier's message id (from a receipt) back to our message and part."""
    r = conn.execute(
        f"SELECT c.part_no, {_MESSAGE_COLUMNS} FROM carrier_ref c"
        " JOIN mt_message m ON m.id = c.message_id"
        " WHERE c.smsc = ? AND c.carrier_id = ?",
        (smsc, carrier_id),
    ).fetchone()
    if r is None:
        return None
    return CarrierLookup(message=_message(conn, r[1:]), part_no=int(r[0]))


#: A message scheduled far ahead, untouched: recovered as its id only.
#: ``IS NOT NULL``: a message with no time is not far (``NOT (... AND NULL > ?)`` is
#: NULL, which left every unscheduled message out of recovery: the chaos test found it).
_FAR = (
    "m.state = 'accepted' AND m.attempts = 0"
    " AND m.next_attempt_at IS NOT NULL AND m.next_attempt_at > ?"
)


def unfinished_messages(
    conn: sqlite3.Connection, far_after: float | None = None
) -> list[StoredMessage]:
    """Every message not in a final state, highest priority first, then oldest first;
    with ``far_after`` (wall-clock seconds), not those :func:`far_scheduled` gives."""
    where = "m.state IN ('accepted', 'submitted')"
    params: tuple[int, ...] = ()
    if far_after is not None:
        where, params = f"{where} AND NOT ({_FAR})", (ms(far_after),)
    rows = conn.execute(
        f"SELECT {_MESSAGE_COLUMNS} FROM mt_message m WHERE {where} ORDER BY m.priority DESC, m.id",
        params,
    ).fetchall()
    return [_message(conn, r) for r in rows]


def far_scheduled(conn: sqlite3.Connection, far_after: float) -> list[tuple[float, int]]:
    """``(due, id)`` of the untouched messages scheduled after ``far_after`` (wall-clock
    seconds), earliest first: what a restart keeps as ids only (``gateway/far_ahead.py``)
    rather than reading every message of a campaign for tomorrow whole."""
    rows = conn.execute(
        f"SELECT m.next_attempt_at, m.id FROM mt_message m WHERE {_FAR}"
        " ORDER BY m.next_attempt_at, m.id",
        (ms(far_after),),
    )
    return [(due / 1000, int(message_id)) for due, message_id in rows]


def stale_submitted(
    conn: sqlite3.Connection, smsc: str, before: float, limit: int
) -> list[StoredMessage]:
    """Messages at carrier ``smsc`` still waiting for a receipt since before ``before``
    (oldest first, at most ``limit``)."""
    rows = conn.execute(
        f"SELECT {_MESSAGE_COLUMNS} FROM mt_message m WHERE m.state = 'submitted'"
        " AND m.smsc = ? AND m.updated_at < ? ORDER BY m.updated_at LIMIT ?",
        (smsc, ms(before), limit),
    ).fetchall()
    return [_message(conn, r) for r in rows]


def part_states(
    conn: sqlite3.Connection, message_ids: Sequence[int]
) -> dict[int, dict[int, str | None]]:
    """Per message, its parts the carrier accepted and each part's receipt state so
    far (None: no final receipt yet): ``{message_id: {part_no: state}}``."""
    out: dict[int, dict[int, str | None]] = {}
    for start in range(0, len(message_ids), 500):
        chunk = list(message_ids[start : start + 500])
        marks = ",".join("?" * len(chunk))
        for message_id, part_no, state in conn.execute(
            "SELECT message_id, part_no, receipt_state FROM carrier_ref"
            f" WHERE message_id IN ({marks})",
            chunk,
        ):
            out.setdefault(int(message_id), {})[int(part_no)] = state
    return out


def held_messages(conn: sqlite3.Connection, limit: int) -> list[StoredMessage]:
    """Messages waiting for moderation, oldest first (through their own index: left to
    itself, the planner scans the whole journal for them in id order)."""
    rows = conn.execute(
        f"SELECT {_MESSAGE_COLUMNS} FROM mt_message m INDEXED BY mt_message_held"
        " WHERE m.state = 'held' ORDER BY m.id LIMIT ?",
        (limit,),
    ).fetchall()
    return [_message(conn, r) for r in rows]


def queued_by_addresses(
    conn: sqlite3.Connection, partner: str, source_addr: str, destination_addr: str, limit: int
) -> list[StoredMessage]:
    """A partner's messages from ``source_addr`` (any case) to ``destination_addr`` that
    no carrier was given yet (``accepted`` and never tried, or ``held``), oldest first,
    at most ``limit``: what a ``cancel_sm`` without a message id cancels.

    Each state through its own partial index (``INDEXED BY``, so the planner cannot take
    the partner's whole history instead): the unfinished messages and the held ones."""
    found: list[StoredMessage] = []
    # Each WHERE repeats its index's own condition: SQLite takes a partial index only
    # for a query whose terms include the index's as written.
    unfinished = "m.state IN ('accepted', 'submitted') AND m.state = 'accepted'"
    for index, state in (
        ("mt_message_unfinished", unfinished),
        ("mt_message_held", "m.state = 'held'"),
    ):
        rows = conn.execute(
            f"SELECT {_MESSAGE_COLUMNS} FROM mt_message m INDEXED BY {index}"
            f" WHERE {state} AND m.attempts = 0 AND m.partner = ?"
            " AND m.source_addr = ? COLLATE NOCASE AND m.destination_addr = ?"
            " ORDER BY m.id LIMIT ?",
            (partner, source_addr, destination_addr, limit),
        ).fetchall()
        found.extend(_message(conn, r) for r in rows)
    found.sort(key=lambda m: m.id)
    return found[:limit]
