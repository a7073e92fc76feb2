"""The SQL of journal retention: old, finished rows pruned in small batches.

Each function here is one batch, run as one writer item (``Store.run_in_transaction``),
so the writer never stalls for long: the caller loops, passing back the ``cursor`` of
the previous :class:`Batch`, until ``more`` is False. With ``dry_run=True`` the same walk
only counts (it then runs on a read-only connection).

Why a walk by id and not ``WHERE created_at < ?``: ``mt_message``, ``inbound`` and
``event`` have no index on their time column, so such a query scans the whole table
(millions of rows, every run) only to find nothing most of the time. Ids are handed out
in time order, so a batch reads the next ``limit`` rows by primary key after ``cursor``
and stops at the first row younger than the horizon: a batch costs ``limit`` rows,
whatever the table's size. Rows kept in the walked range (unfinished messages,
unprocessed inbound, guarded events) are read again by the next run, which starts at
the lowest id again; there are few of them.

What is never removed (why):

- unfinished or held messages, and a final one a partner's receipt is still owed for
  (``receipt_outbox`` rows are deleted when the partner acknowledges them: every row
  there is pending, and it references its message). A receipt owed longer than its own
  horizon is dropped first (``prune_outbox``): a partner that never binds a receiver
  would otherwise keep its rows, and their messages, for ever;
- the row with the highest id of each table: the writer hands out the next message id
  as ``MAX(id) + 1`` at start-up, so removing the newest row would reuse its id;
- ``partner_order`` rows and any ledger amount: a settled ``quota_ledger`` row whose
  message is gone is merged with the other such rows of its order into one row of the
  same sums (``compact_ledger``). The order's ``reserved``/``spent`` counters are not
  touched, and the report's reconciliation (sums of the ledger per order) stays exact;
- unprocessed inbound rows and events, and keyed events (``event_key``: alerts,
  statements, charge requests, imported spend: their key is what makes them happen
  once) unless a ``keyed`` horizon is given.

Pages freed by a delete go to SQLite's free list and are reused by the next inserts
(``auto_vacuum`` is NONE, the default, in files this store creates): the file stops
growing once the retained window is written, it does not shrink. ``incremental_vacuum``
would need ``auto_vacuum=INCREMENTAL`` set before the first table was created.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from smppgw.store.records import FINAL_STATES

if TYPE_CHECKING:
    import sqlite3
    from collections.abc import Callable, Sequence

__all__ = [
    "ARCHIVE_COLUMNS",
    "FK_SCAN_BUDGET",
    "Batch",
    "compact_ledger",
    "prune_events",
    "prune_inbound",
    "prune_log",
    "prune_messages",
    "prune_outbox",
]

#: The ``mt_message`` columns an archive line holds, in order.
ARCHIVE_COLUMNS = (
    "id",
    "partner",
    "source_addr",
    "destination_addr",
    "data_coding",
    "esm_class",
    "registered_delivery",
    "priority",
    "body",
    "part_count",
    "state",
    "smsc",
    "carrier_id",
    "attempts",
    "order_id",
    "reservation_id",
    "created_at",
    "updated_at",
    "final_status",
    "error",
)

#: Rows SQLite may scan in ``receipt_outbox`` for one batch of message deletes. That
#: table has no index on ``message_id``, so the foreign-key check of each deleted
#: message scans it whole: a batch deletes at most ``budget / outbox rows`` messages.
FK_SCAN_BUDGET = 2_000_000
_MIN_MESSAGE_BATCH = 20

_FINAL = tuple(sorted(s.value for s in FINAL_STATES))


@dataclass(frozen=True, slots=True)
class Batch:
    """What one batch did (or, in a dry run, would do).

    Attributes:
        deleted: rows removed from the batch's main table (messages, ledger rows
            merged away, inbound, log or event rows).
        cursor: pass it to the next batch.
        more: whether the next batch may find more.
        detail: per-table counts of dependent rows (``mt_part``, ``carrier_ref``).
        note: why the walk stopped early, for the log (e.g. an outbox too large).
    """

    deleted: int
    cursor: int
    more: bool
    detail: tuple[tuple[str, int], ...] = ()
    note: str | None = None


def _max_id(conn: sqlite3.Connection, table: str) -> int:
    row = conn.execute(f"SELECT COALESCE(MAX(id), 0) FROM {table}").fetchone()
    return int(row[0])


def _walk(
    conn: sqlite3.Connection, sql: str, cursor: int, limit: int, before_ms: int, max_id: int
) -> tuple[list[Any], int, bool]:
    """The next ``limit`` rows by id after ``cursor`` (``sql`` selects ``id, time, ...``),
    cut at the first row at or past the horizon or the table's newest row.

    Returns ``(rows older than the horizon, new cursor, more)``.
    """
    rows = conn.execute(sql, (cursor, limit)).fetchall()
    out: list[Any] = []
    for row in rows:
        if int(row[0]) >= max_id or int(row[1]) >= before_ms:
            return out, cursor, False
        out.append(row)
        cursor = int(row[0])
    return out, cursor, len(rows) == limit


def prune_messages(
    conn: sqlite3.Connection,
    *,
    before_ms: int,
    cursor: int = 0,
    limit: int = 5000,
    archive: Callable[[Sequence[tuple[Any, ...]]], None] | None = None,
    dry_run: bool = False,
) -> Batch:
    """Delete final MT messages created and last changed before ``before_ms``, with
    their ``mt_part`` and ``carrier_ref`` rows; at most ``limit`` walked per batch.

    ``archive`` is called with the rows about to go (``ARCHIVE_COLUMNS``) inside the
    batch's transaction: if it raises, nothing of the batch is deleted.
    """
    outbox = int(conn.execute("SELECT COUNT(*) FROM receipt_outbox").fetchone()[0])
    if outbox:
        limit = min(limit, FK_SCAN_BUDGET // outbox)
        if limit < _MIN_MESSAGE_BATCH:
            note = (
                f"{outbox} receipts owed to partners: deleting messages would scan them"
                " for every message (no index on receipt_outbox.message_id); skipped"
            )
            return Batch(0, cursor, False, note=note)
    walked, new_cursor, more = _walk(
        conn,
        "SELECT id, created_at, state, updated_at FROM mt_message WHERE id > ? ORDER BY id LIMIT ?",
        cursor,
        limit,
        before_ms,
        _max_id(conn, "mt_message"),
    )
    ids = [int(r[0]) for r in walked if r[2] in _FINAL and int(r[3]) < before_ms]
    if ids:
        owed = {
            int(r[0])
            for r in conn.execute(
                "SELECT message_id FROM receipt_outbox WHERE message_id BETWEEN ? AND ?",
                (ids[0], ids[-1]),
            )
        }
        ids = [i for i in ids if i not in owed]
    if not ids:
        return Batch(0, new_cursor, more)
    if dry_run:
        return Batch(len(ids), new_cursor, more)
    params = [(i,) for i in ids]
    if archive is not None:
        columns = ", ".join(ARCHIVE_COLUMNS)
        rows: list[tuple[Any, ...]] = []
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            rows.extend(
                tuple(r)
                for r in conn.execute(
                    f"SELECT {columns} FROM mt_message WHERE id IN ({marks}) ORDER BY id",
                    chunk,
                )
            )
        archive(rows)
    before = conn.total_changes
    conn.executemany("DELETE FROM mt_part WHERE message_id = ?", params)
    parts = conn.total_changes - before
    conn.executemany("DELETE FROM carrier_ref WHERE message_id = ?", params)
    refs = conn.total_changes - before - parts
    conn.executemany("DELETE FROM mt_message WHERE id = ?", params)
    deleted = conn.total_changes - before - parts - refs
    return Batch(deleted, new_cursor, more, (("mt_part", parts), ("carrier_ref", refs)))


def compact_ledger(
    conn: sqlite3.Connection,
    *,
    before_ms: int,
    cursor: int = 0,
    limit: int = 5000,
    dry_run: bool = False,
) -> Batch:
    """Merge settled ledger rows no message refers to any more, per order, into one.

    The merged row keeps the sums (``parts``, ``amount``, ``charged``) and the first
    row's id, so the next run merges it again with what has aged since: an order ends
    with about one such row. Rows a message still refers to, and reservations not
    settled, are left alone (``settle`` and the reports read them through the message).
    """
    walked, new_cursor, more = _walk(
        conn,
        # No filter in SQL: LIMIT must bound the rows read, not the rows found.
        "SELECT q.id, q.created_at, q.order_id, q.parts, q.amount, q.charged, q.settled_at,"
        " q.state = 'settled' AND NOT EXISTS"
        " (SELECT 1 FROM mt_message m WHERE m.reservation_id = q.id)"
        " FROM quota_ledger q WHERE q.id > ? ORDER BY q.id LIMIT ?",
        cursor,
        limit,
        before_ms,
        _max_id(conn, "quota_ledger"),
    )
    groups: dict[int, list[Any]] = {}
    for row in walked:
        if row[7] and row[6] is not None and int(row[6]) < before_ms:
            groups.setdefault(int(row[2]), []).append(row)
    merged = 0
    for rows in groups.values():
        if len(rows) < 2:
            continue
        merged += len(rows) - 1
        if dry_run:
            continue
        keep = int(rows[0][0])
        conn.execute(
            "UPDATE quota_ledger SET parts = ?, amount = ?, charged = ?, created_at = ?,"
            " settled_at = ? WHERE id = ?",
            (
                sum(int(r[3]) for r in rows),
                sum(int(r[4]) for r in rows),
                sum(int(r[5] or 0) for r in rows),
                min(int(r[1]) for r in rows),
                max(int(r[6]) for r in rows),
                keep,
            ),
        )
        conn.executemany("DELETE FROM quota_ledger WHERE id = ?", [(r[0],) for r in rows[1:]])
    return Batch(merged, new_cursor, more)


def prune_inbound(
    conn: sqlite3.Connection,
    *,
    before_ms: int,
    cursor: int = 0,
    limit: int = 5000,
    dry_run: bool = False,
) -> Batch:
    """Delete processed inbound rows (MO, carrier receipts) received before the horizon.

    Their ``(smsc, dedup_key)`` is the guard against a carrier's redelivery, which comes
    within minutes: the horizon must be far longer (the settings refuse less than a day).
    """
    walked, new_cursor, more = _walk(
        conn,
        "SELECT id, received_at, processed_at FROM inbound WHERE id > ? ORDER BY id LIMIT ?",
        cursor,
        limit,
        before_ms,
        _max_id(conn, "inbound"),
    )
    ids = [(int(r[0]),) for r in walked if r[2] is not None]
    if ids and not dry_run:
        conn.executemany("DELETE FROM inbound WHERE id = ?", ids)
    return Batch(len(ids), new_cursor, more)


def prune_outbox(
    conn: sqlite3.Connection,
    *,
    before_ms: int,
    cursor: int = 0,
    limit: int = 5000,
    dry_run: bool = False,
) -> Batch:
    """Delete receipts and MO that waited in a partner's outbox since before the
    horizon: that partner has not taken them (no receiver bind, or it refuses them).
    Outbox ids are never reused (AUTOINCREMENT), so even the newest row may go. The
    batch's ``detail`` counts them per partner (``receipt_outbox:<partner>``), for the
    log an operator reads."""
    walked, new_cursor, more = _walk(
        conn,
        "SELECT id, created_at, partner FROM receipt_outbox WHERE id > ? ORDER BY id LIMIT ?",
        cursor,
        limit,
        before_ms,
        _max_id(conn, "receipt_outbox") + 1,
    )
    by_partner: dict[str, int] = {}
    for row in walked:
        by_partner[str(row[2])] = by_partner.get(str(row[2]), 0) + 1
    if walked and not dry_run:
        conn.executemany("DELETE FROM receipt_outbox WHERE id = ?", [(r[0],) for r in walked])
    detail = tuple((f"receipt_outbox:{p}", n) for p, n in sorted(by_partner.items()))
    return Batch(len(walked), new_cursor, more, detail)


def prune_log(
    conn: sqlite3.Connection,
    *,
    before_ms: int,
    cursor: int = 0,
    limit: int = 5000,
    dry_run: bool = False,
) -> Batch:
    """Delete ``message_log`` rows created before the horizon (indexed by time)."""
    newest = _max_id(conn, "message_log")
    if dry_run:
        row = conn.execute(
            "SELECT COUNT(*) FROM message_log WHERE created_at < ? AND id < ?",
            (before_ms, newest),
        ).fetchone()
        return Batch(int(row[0]), cursor, False)
    ids = [
        (int(r[0]),)
        for r in conn.execute(
            "SELECT id FROM message_log WHERE created_at < ? AND id < ? ORDER BY created_at"
            " LIMIT ?",
            (before_ms, newest, limit),
        )
    ]
    if ids:
        conn.executemany("DELETE FROM message_log WHERE id = ?", ids)
    return Batch(len(ids), cursor, len(ids) == limit)


def prune_events(
    conn: sqlite3.Connection,
    *,
    before_ms: int,
    keyed_before_ms: int | None = None,
    cursor: int = 0,
    limit: int = 5000,
    dry_run: bool = False,
) -> Batch:
    """Delete processed events created before the horizon; keyed ones only before
    ``keyed_before_ms`` (None: never), since their key is what stops an alert, a
    statement or an imported event from happening again."""
    walked, new_cursor, more = _walk(
        conn,
        "SELECT id, created_at, processed_at, event_key FROM event WHERE id > ?"
        " ORDER BY id LIMIT ?",
        cursor,
        limit,
        before_ms,
        _max_id(conn, "event"),
    )
    ids = [
        (int(r[0]),)
        for r in walked
        if r[2] is not None
        and (r[3] is None or (keyed_before_ms is not None and int(r[1]) < keyed_before_ms))
    ]
    if ids and not dry_run:
        conn.executemany("DELETE FROM event WHERE id = ?", ids)
    return Batch(len(ids), new_cursor, more)
