"""The SQL of inbound deliver_sm (MO and receipts, deduplicated) and partner receipts.

Plain synchronous functions of a ``sqlite3.Connection``, run inside the writer's batch
transaction (writes) or on a reader connection (reads); see ``journal.py`` for the MT side.

Exactly-once for inbound PDUs: the carrier redelivers a ``deliver_sm`` whose response it
did not get. The gateway journals it under (smsc, dedup_key) *before* answering;
:func:`journal_inbound` says whether that pair is new, so a redelivery is answered again
but processed only once.

Partner receipts are an outbox: enqueued in the same kind of transaction that records the
outcome, read oldest first, deleted only once the partner acknowledged them, so a receipt
survives a restart and a partner that was not bound.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from smppgw.store.bulk import insert_rows, json_list
from smppgw.store.journal import ms, opt_ms, sec
from smppgw.store.records import (
    InboundKind,
    InboundResult,
    PendingReceipt,
    StoredInbound,
)

if TYPE_CHECKING:
    import sqlite3
    from collections.abc import Iterable, Sequence

    from smppgw.store.records import NewInbound, NewReceipt

__all__ = [
    "ack_receipts",
    "ack_receipts_many",
    "enqueue_receipts",
    "journal_inbound",
    "journal_inbound_many",
    "mark_inbound_processed",
    "pending_receipts",
    "unprocessed_inbound",
]

# ------------------------------------------------------------------ inbound deliver_sm

_INBOUND_COLUMNS = (
    "id, smsc, dedup_key, kind, source_addr, source_ton, source_npi, destination_addr,"
    " dest_ton, dest_npi, data_coding, esm_class, body, carrier_id, received_at, processed_at,"
    " tlvs"
)


def journal_inbound(
    conn: sqlite3.Connection, items: Sequence[NewInbound], now: float
) -> list[InboundResult]:
    """Journal inbound PDUs once per (smsc, dedup_key); say which ones were new.

    Items without a redelivery check (receipts) go in runs, a few statements a run
    (``store/bulk.py``); an MO with one is checked and inserted on its own, in order.
    """
    t = ms(now)
    out: list[InboundResult] = []
    run: list[NewInbound] = []
    for m in items:
        if not m.redelivery_prefixes:
            run.append(m)
            continue
        out.extend(_journal_run(conn, run, t))
        run = []
        earlier = _redelivered(conn, m)
        if earlier is not None:
            out.append(InboundResult(earlier, False))
        else:
            out.extend(_journal_run(conn, [m], t))
    out.extend(_journal_run(conn, run, t))
    return out


INSERT_INBOUND = (
    "INSERT INTO inbound (smsc, dedup_key, kind, source_addr, source_ton, source_npi,"
    " destination_addr, dest_ton, dest_npi, data_coding, esm_class, body, carrier_id,"
    " received_at, tlvs)"
)


def inbound_row(m: NewInbound, t: int) -> tuple[object, ...]:
    """The values of :data:`INSERT_INBOUND` for ``m`` received at ``t`` (ms)."""
    return (
        m.smsc,
        m.dedup_key,
        m.kind.value,
        m.source_addr,
        m.source_ton,
        m.source_npi,
        m.destination_addr,
        m.dest_ton,
        m.dest_npi,
        m.data_coding,
        m.esm_class,
        m.body,
        m.carrier_id,
        t,
        m.tlvs or None,
    )


def _journal_run(
    conn: sqlite3.Connection, items: Sequence[NewInbound], t: int
) -> list[InboundResult]:
    """Insert what is new of ``items``; the first of a (smsc, dedup_key) is new, any
    later one (in ``items`` or journaled before) is not and gets the first one's id.

    But a receipt whose earlier copy was *processed* already is new again: SMSCs reuse
    their message ids (a counter that starts over when the SMSC restarts, or wraps), and
    the receipt for a new message that got an old id must not be taken for the old
    one's. The earlier row keeps its history under another key (:func:`_retire`).
    Applying a true repeat of a receipt again changes nothing: the first final state of
    a message wins (``outcomes.mark_final``), so the partner gets one receipt.
    """
    if not items:
        return []
    inserted = {
        (str(smsc), str(key)): int(row_id)
        for row_id, smsc, key in insert_rows(
            conn,
            INSERT_INBOUND,
            [inbound_row(m, t) for m in items],
            "ON CONFLICT (smsc, dedup_key) DO NOTHING RETURNING id, smsc, dedup_key",
        )
    }
    known = dict(inserted)
    missing = {(m.smsc, m.dedup_key) for m in items} - known.keys()
    receipts: dict[tuple[str, str], NewInbound] = {}
    if missing:  # rare (repeats, reused ids): the usual batch does none of this
        for m in items:
            if _reusable(m):
                receipts.setdefault((m.smsc, m.dedup_key), m)  # the first copy is new
    for smsc, dedup_key in missing:
        row_id, processed_at = conn.execute(
            "SELECT id, processed_at FROM inbound WHERE smsc = ? AND dedup_key = ?",
            (smsc, dedup_key),
        ).fetchone()
        receipt = receipts.get((smsc, dedup_key))
        if receipt is not None and processed_at is not None:
            _retire(conn, int(row_id))
            [(row_id,)] = insert_rows(
                conn, INSERT_INBOUND, [inbound_row(receipt, t)], "RETURNING id"
            )
            inserted[(smsc, dedup_key)] = int(row_id)
        known[(smsc, dedup_key)] = int(row_id)
    out: list[InboundResult] = []
    for m in items:
        pair = (m.smsc, m.dedup_key)
        out.append(InboundResult(known[pair], inserted.pop(pair, None) is not None))
    return out


def _reusable(m: NewInbound) -> bool:
    """A receipt read well enough to have a carrier id (see ``_journal_run``)."""
    return m.kind is InboundKind.RECEIPT and m.carrier_id is not None


def _retire(conn: sqlite3.Connection, row_id: int) -> None:
    """Move a processed receipt's row out of the way of a new one with its key: the
    key gets an ``h<id>:`` prefix (unique, and outside every live key's range)."""
    conn.execute(
        "UPDATE inbound SET dedup_key = 'h' || id || ':' || dedup_key WHERE id = ?", (row_id,)
    )


def _redelivered(conn: sqlite3.Connection, m: NewInbound) -> int | None:
    """The id of an earlier row this MO is a redelivery of (see ``NewInbound``); that
    row is then claimed, so it explains one redelivery only."""
    for prefix in m.redelivery_prefixes:
        rows = conn.execute(
            "SELECT id, dedup_key FROM inbound WHERE smsc = ? AND dedup_key > ? AND dedup_key < ?",
            (m.smsc, prefix + ":", prefix + ";"),
        ).fetchall()
        for row_id, key in rows:
            fields = str(key).split(":")
            gone = len(fields) >= 5 and fields[3] not in m.live_sessions
            if gone and not _answer_read(fields, m):
                # Claimed: one redelivery per copy. The same text once more is the
                # subscriber's (keys stay unique: only the first letter changes).
                conn.execute(
                    "UPDATE inbound SET dedup_key = 'c' || substr(dedup_key, 2) WHERE id = ?",
                    (row_id,),
                )
                return int(row_id)
    return None


def _answer_read(fields: list[str], m: NewInbound) -> bool:
    """The carrier read our answer to this earlier copy (``NewInbound.answers_read``):
    it has no reason to deliver it again, so the same MO now is the subscriber's."""
    read = m.answers_read.get(fields[3])
    return read is not None and fields[4].isdigit() and int(fields[4]) <= read


#: Marks a batch processed, by primary key (``+``: not by the partial index on
#: ``processed_at``; ``tests/test_store_bulk.py`` checks the plan).
PROCESSED_SQL = (
    "UPDATE inbound SET processed_at = ?"
    " WHERE id IN (SELECT value FROM json_each(?)) AND +processed_at IS NULL"
)


def mark_inbound_processed(conn: sqlite3.Connection, ids: Iterable[int], now: float) -> None:
    conn.execute(PROCESSED_SQL, (ms(now), json_list(ids)))


def _inbound(r: Any) -> StoredInbound:
    return StoredInbound(
        id=int(r[0]),
        smsc=str(r[1]),
        dedup_key=str(r[2]),
        kind=InboundKind(r[3]),
        source_addr=str(r[4]),
        source_ton=int(r[5]),
        source_npi=int(r[6]),
        destination_addr=str(r[7]),
        dest_ton=int(r[8]),
        dest_npi=int(r[9]),
        data_coding=int(r[10]),
        esm_class=int(r[11]),
        body=bytes(r[12]),
        carrier_id=None if r[13] is None else str(r[13]),
        received_at=int(r[14]) / 1000,
        processed_at=sec(r[15]),
        tlvs=b"" if r[16] is None else bytes(r[16]),
    )


def unprocessed_inbound(conn: sqlite3.Connection) -> list[StoredInbound]:
    rows = conn.execute(
        f"SELECT {_INBOUND_COLUMNS} FROM inbound WHERE processed_at IS NULL ORDER BY id"
    ).fetchall()
    return [_inbound(r) for r in rows]


# ------------------------------------------------------------------ partner receipts


def enqueue_receipts(
    conn: sqlite3.Connection, receipts: Sequence[NewReceipt], now: float
) -> list[int]:
    """Queue receipts for their partners; returns their outbox ids, in order (the ids
    are AUTOINCREMENT and the rows go in in order, so the sorted ids are theirs)."""
    t = ms(now)
    returned = insert_rows(
        conn,
        "INSERT INTO receipt_outbox (partner, message_id, stat, err, body, done_at, created_at)",
        [(r.partner, r.message_id, r.stat, r.err, r.body, opt_ms(r.done_at), t) for r in receipts],
        "RETURNING id",
    )
    return sorted(int(r[0]) for r in returned)


def pending_receipts(conn: sqlite3.Connection, partner: str, limit: int) -> list[PendingReceipt]:
    """The oldest receipts owed to ``partner`` (they stay until :func:`ack_receipts`)."""
    rows = conn.execute(
        "SELECT id, partner, message_id, stat, err, body, done_at, created_at"
        " FROM receipt_outbox WHERE partner = ? ORDER BY id LIMIT ?",
        (partner, limit),
    ).fetchall()
    return [
        PendingReceipt(
            id=int(r[0]),
            partner=str(r[1]),
            message_id=None if r[2] is None else int(r[2]),
            stat=str(r[3]),
            err=int(r[4]),
            body=bytes(r[5]),
            done_at=sec(r[6]),
            created_at=int(r[7]) / 1000,
        )
        for r in rows
    ]


def journal_inbound_many(
    conn: sqlite3.Connection, payloads: list[tuple[Sequence[NewInbound], float]]
) -> list[list[InboundResult]]:
    """:func:`journal_inbound` for several binds' reads at once (the writer's merge
    function: one savepoint for all of them instead of one each)."""
    return [journal_inbound(conn, items, now) for items, now in payloads]


def ack_receipts_many(conn: sqlite3.Connection, payloads: list[Sequence[int]]) -> list[int]:
    """:func:`ack_receipts` for several partners' acknowledgements at once (merged)."""
    return [ack_receipts(conn, ids) for ids in payloads]


ACK_SQL = "DELETE FROM receipt_outbox WHERE id IN (SELECT value FROM json_each(?))"


def ack_receipts(conn: sqlite3.Connection, ids: Iterable[int]) -> int:
    """Forget receipts the partner acknowledged; returns how many were still pending."""
    before = conn.total_changes
    conn.execute(ACK_SQL, (json_list(ids),))
    return conn.total_changes - before
