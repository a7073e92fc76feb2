"""What becomes of a message after admission: carrier ids, retries, final states.

``mark_submitted``, ``requeue``, ``mark_final`` (and the part states of messages in
parts) are the SQL; :func:`apply_outcomes` writes everything the MT pipeline learnt since
its last flush in ONE transaction.

The pipeline used to write its outcomes with one call per kind (carrier ids, requeues,
partner receipts, part states, final states, processed receipts): six commits, and a
kill between any two left the journal half-way. Two such halves were duplicates seen
by partners: a receipt journaled and its message made final, but the carrier receipt
that caused it not yet marked processed, is applied again at the next start; and a
message made final twice (a carrier that repeats a receipt, two binds racing) queued
a partner receipt each time.

Written as one work item (one savepoint of the writer's batch) the flush is all or
nothing, and the partner receipt of a final outcome is queued only if that outcome was
the one that made the message final (``mark_final`` applies the first final outcome
only): a message gets one partner receipt however often it is made final.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from smppgw.store import inbound
from smppgw.store.bulk import JSON_COLUMN, insert_rows, json_list, json_rows, select_rows
from smppgw.store.journal import ms
from smppgw.store.quota_batch import settle_many
from smppgw.store.records import FINAL_STATES

if TYPE_CHECKING:
    import sqlite3
    from collections.abc import Sequence

    from smppgw.store.records import FinalOutcome, NewReceipt, Requeue, Submitted

__all__ = [
    "OutcomeBatch",
    "apply_outcomes",
    "mark_final",
    "mark_submitted",
    "record_carrier_refs",
    "record_part_states",
    "requeue",
]


@dataclass(frozen=True, slots=True)
class OutcomeBatch:
    """One flush of the pipeline. ``receipts[i]`` is the partner receipt owed if
    ``finals[i]`` makes its message final (None: the partner asked for none)."""

    submitted: list[Submitted] = field(default_factory=list)
    requeues: list[Requeue] = field(default_factory=list)
    part_states: list[tuple[str, str, str]] = field(default_factory=list)
    finals: list[FinalOutcome] = field(default_factory=list)
    receipts: list[NewReceipt | None] = field(default_factory=list)
    processed_inbound: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        if len(self.receipts) != len(self.finals):
            raise ValueError("one receipt (or None) per final outcome")

    @property
    def rows(self) -> int:
        return (
            len(self.submitted)
            + len(self.requeues)
            + len(self.part_states)
            + len(self.finals)
            + len(self.processed_inbound)
        )


def apply_outcomes(conn: sqlite3.Connection, batch: OutcomeBatch, now: float) -> list[int | None]:
    """Returns, per final outcome, the outbox id of its partner receipt; None when no
    receipt was queued (none asked, or the message was already final).

    The same as ``mark_submitted``, ``requeue``, ``record_part_states`` and ``mark_final``
    one after the other, with one saving: a message accepted by the carrier and made
    final in the same flush (no receipt asked: the common case) is written once, by the
    final update, which takes its carrier id along, instead of twice
    (``tests/test_store_bulk.py`` holds the two ways to the same rows).
    """
    t = ms(now)
    carried: dict[int, list[object]] = {}
    if batch.submitted:
        latest = record_carrier_refs(conn, batch.submitted, t)
        if batch.finals:
            for o in batch.finals:
                entry = latest.pop(o.message_id, None)
                if entry is not None:
                    carried[o.message_id] = entry
        _set_submitted(conn, latest, t)
    if batch.requeues:
        requeue(conn, batch.requeues, now)
    if batch.part_states:
        record_part_states(conn, batch.part_states)
    applied = mark_final(conn, batch.finals, now, carried) if batch.finals else []
    owed = [
        (index, receipt)
        for index, (receipt, made_final) in enumerate(zip(batch.receipts, applied, strict=True))
        if receipt is not None and made_final
    ]
    receipt_ids: list[int | None] = [None] * len(batch.finals)
    if owed:
        ids = inbound.enqueue_receipts(conn, [r for _, r in owed], now)
        for (index, _), receipt_id in zip(owed, ids, strict=True):
            receipt_ids[index] = receipt_id
    if batch.processed_inbound:
        inbound.mark_inbound_processed(conn, batch.processed_inbound, now)
    return receipt_ids


_COL0, _COL1, _COL2, _COL3 = (JSON_COLUMN.format(n) for n in range(4))

# The hot updates, one statement a batch (``store/bulk.py``). Each must look its rows up
# by primary key, one per JSON row: ``+state`` keeps the planner off the partial index
# on ``state``, which it otherwise prefers (a scan of every unfinished message per
# batch). ``tests/test_store_bulk.py`` checks the plans.
SUBMITTED_SQL = (
    "UPDATE mt_message SET state = 'submitted', smsc = v.smsc,"
    " carrier_id = coalesce(v.carrier_id, mt_message.carrier_id), updated_at = ?"
    f" FROM (SELECT {_COL0} AS id, {_COL1} AS smsc, {_COL2} AS carrier_id"
    " FROM json_each(?)) AS v"
    " WHERE mt_message.id = v.id AND +mt_message.state IN ('accepted', 'submitted')"
)
#: The messages of a batch that are still open (the ones :data:`SUBMITTED_SQL` changes).
OPEN_IDS_SQL = (
    "SELECT json_group_array(id) FROM mt_message"
    " WHERE id IN (SELECT value FROM json_each(?)) AND +state IN ('accepted', 'submitted')"
)
#: ``[id, state, reservation_id]`` of a batch's messages (one row: ``select_rows``).
FINAL_READ_SQL = (
    "SELECT json_group_array(json_array(id, state, reservation_id)) FROM mt_message"
    " WHERE id IN (SELECT value FROM json_each(?))"
)
_COL4, _COL5 = JSON_COLUMN.format(4), JSON_COLUMN.format(5)
#: A final state, and the carrier of a message sent in the same flush (NULL: unchanged).
FINAL_SQL = (
    "UPDATE mt_message SET state = v.state, final_status = v.status, error = v.error,"
    " smsc = coalesce(v.smsc, mt_message.smsc),"
    " carrier_id = coalesce(v.carrier_id, mt_message.carrier_id),"
    " updated_at = ?, next_attempt_at = NULL"
    f" FROM (SELECT {_COL0} AS id, {_COL1} AS state, {_COL2} AS status,"
    f" {_COL3} AS error, {_COL4} AS smsc, {_COL5} AS carrier_id FROM json_each(?)) AS v"
    " WHERE mt_message.id = v.id"
)


def mark_submitted(conn: sqlite3.Connection, updates: Sequence[Submitted], now: float) -> int:
    """Record carrier ids; an unfinished message becomes ``submitted``.

    Returns the number of messages whose row changed (a final message keeps its state,
    but its carrier id mapping is still recorded so a late receipt can be matched).
    """
    t = ms(now)
    latest = record_carrier_refs(conn, updates, t)
    changed = _set_submitted(conn, latest, t)
    return sum(1 for u in updates if u.message_id in changed)


def record_carrier_refs(
    conn: sqlite3.Connection, updates: Sequence[Submitted], t: int
) -> dict[int, list[object]]:
    """Write the carrier references (how receipts find their message); returns per
    message what one update a row, in order, would leave on it: ``[id, the last SMSC
    named, the carrier id of the last part 0 (None: none)]``."""
    # A part accepted without an id has no reference a receipt could find; one row for
    # it would be replaced by the next such part's (the key is the id).
    insert_rows(
        conn,
        "INSERT OR REPLACE INTO carrier_ref (smsc, carrier_id, message_id, part_no, submitted_at)",
        [(u.smsc, u.carrier_id, u.message_id, u.part_no, t) for u in updates if u.carrier_id],
    )
    latest: dict[int, list[object]] = {}
    for u in updates:
        entry = latest.setdefault(u.message_id, [u.message_id, u.smsc, None])
        entry[1] = u.smsc
        if u.part_no == 0:
            entry[2] = u.carrier_id
    return latest


def _set_submitted(conn: sqlite3.Connection, latest: dict[int, list[object]], t: int) -> set[int]:
    """Unfinished messages among ``latest`` become ``submitted``; returns their ids."""
    if not latest:
        return set()
    changed = set(select_rows(conn, OPEN_IDS_SQL, (json_list(latest),)))
    conn.execute(SUBMITTED_SQL, (t, json_rows(latest.values())))
    return changed


def mark_final(
    conn: sqlite3.Connection,
    outcomes: Sequence[FinalOutcome],
    now: float,
    carried: dict[int, list[object]] | None = None,
) -> list[bool]:
    """Move messages to a final state; returns, per outcome, whether it was applied.

    ``carried``: ``record_carrier_refs``'s entries of messages sent in the same flush,
    whose ``submitted`` update this one takes over (see ``apply_outcomes``).

    A message already final is left as it is (first final outcome wins, in the journal
    and within ``outcomes``), so a duplicate or late receipt cannot rewrite history or
    settle a reservation twice. The states are read in one query and written in one
    statement (this runs for every message the gateway sends; see ``store/bulk.py``).
    """
    for o in outcomes:
        if o.state not in FINAL_STATES:
            raise ValueError(f"{o.state!r} is not a final state")
    if not outcomes:
        return []
    t = ms(now)
    current = {
        int(r[0]): (str(r[1]), r[2])
        for r in select_rows(conn, FINAL_READ_SQL, (json_list(o.message_id for o in outcomes),))
    }
    applied: list[bool] = []
    updates: list[tuple[object, ...]] = []  # (id, state, final_status, error, smsc, carrier)
    settles: list[tuple[int, int]] = []
    for o in outcomes:
        found = current.get(o.message_id)
        ok = found is not None and found[0] in _OPEN_STATES
        applied.append(ok)
        if not ok or found is None:
            continue
        was, reservation_id = found
        current[o.message_id] = (o.state.value, reservation_id)
        sent = carried.get(o.message_id) if carried and was != "held" else None
        if sent is None:
            updates.append((o.message_id, o.state.value, o.status, o.error, None, None))
        else:  # what the skipped submitted update would have written first
            updates.append((o.message_id, o.state.value, o.status, o.error, sent[1], sent[2]))
        if reservation_id is not None and o.charge_parts is not None:
            settles.append((int(reservation_id), o.charge_parts))
    if updates:
        conn.execute(FINAL_SQL, (t, json_rows(updates)))
    settle_many(conn, settles, t)
    return applied


#: States a final outcome may leave (the others are final already).
_OPEN_STATES = frozenset({"accepted", "submitted", "held"})


def requeue(conn: sqlite3.Connection, items: Sequence[Requeue], now: float) -> list[int | None]:
    """Put messages back to ``accepted`` with attempts + 1; returns the new attempt counts.

    ``None`` for a message that is unknown or already final (it is not requeued).
    """
    t = ms(now)
    out: list[int | None] = []
    for r in items:
        row = conn.execute(
            "UPDATE mt_message SET state = 'accepted', attempts = attempts + 1,"
            " next_attempt_at = ?, error = ?, updated_at = ?"
            " WHERE id = ? AND state IN ('accepted', 'submitted') RETURNING attempts",
            (ms(r.next_attempt_at), r.error, t, r.message_id),
        ).fetchone()
        out.append(None if row is None else int(row[0]))
    return out


def record_part_states(conn: sqlite3.Connection, items: Sequence[tuple[str, str, str]]) -> None:
    """``(smsc, carrier_id, state)``: a part's final receipt state, kept with its
    carrier reference (see schema v7). The last state given for a part stands."""
    last = {(smsc, carrier_id): state for smsc, carrier_id, state in items}
    if last:
        conn.execute(PART_STATES_SQL, (json_rows((*k, v) for k, v in last.items()),))


PART_STATES_SQL = (
    "UPDATE carrier_ref SET receipt_state = v.state"
    f" FROM (SELECT {_COL0} AS smsc, {_COL1} AS carrier_id, {_COL2} AS state"
    " FROM json_each(?)) AS v"
    " WHERE carrier_ref.smsc = v.smsc AND carrier_ref.carrier_id = v.carrier_id"
)
