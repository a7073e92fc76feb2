"""The multi-row statements of the hot path (``store/bulk.py``) against one row at a time.

The writer runs each hot write as one statement a batch instead of one a row (see the
module's docstring for why). These tests hold it to what one statement a row did: the
same rows, in the same order, the same final table; and they check that each hot update
looks its rows up by primary key (a plan that scans the table instead still gives the
right answer, just slower and slower as the journal grows: the first version did).
"""

from __future__ import annotations

import sqlite3
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smppgw.store import inbound, journal, open_store, outcomes, quota, quota_batch, schema
from smppgw.store.bulk import insert_rows
from smppgw.store.journal import JournalState
from smppgw.store.records import (
    FinalOutcome,
    InboundKind,
    InboundResult,
    MessageState,
    NewInbound,
    NewMessage,
    NewOrder,
    NewReceipt,
    OrderKind,
    Requeue,
    Submitted,
)

NOW = 1_800_000_000.0


def _db(directory: str, name: str) -> sqlite3.Connection:
    path = str(Path(directory) / name)
    conn = sqlite3.connect(path, isolation_level=None)
    schema.migrate(conn, path)
    return conn


@settings(max_examples=60, deadline=None)
@given(count=st.integers(0, 300), width=st.integers(1, 40))
def test_insert_rows_inserts_every_row_in_order(count: int, width: int) -> None:
    conn = sqlite3.connect(":memory:")
    columns = ", ".join(f"c{i}" for i in range(width))
    conn.execute(f"CREATE TABLE t (seq INTEGER PRIMARY KEY, {columns})")
    rows = [tuple(f"{r}:{c}" if c % 2 else r * c for c in range(width)) for r in range(count)]
    insert_rows(conn, f"INSERT INTO t ({columns})", rows)
    assert conn.execute(f"SELECT {columns} FROM t ORDER BY seq").fetchall() == rows


def test_insert_rows_keeps_under_the_oldest_parameter_limit() -> None:
    statements: list[str] = []
    conn = sqlite3.connect(":memory:")
    conn.set_trace_callback(statements.append)
    conn.execute("CREATE TABLE t (" + ", ".join(f"c{i}" for i in range(23)) + ")")
    head = "INSERT INTO t (" + ", ".join(f"c{i}" for i in range(23)) + ")"
    insert_rows(conn, head, [tuple(range(23))] * 100)
    inserts = [s for s in statements if s.startswith("INSERT")]
    assert len(inserts) == 4  # 32 + 32 + 32 + 4
    assert conn.execute("SELECT count(*) FROM t").fetchone() == (100,)


def _one_by_one_submitted(conn: sqlite3.Connection, updates: list[Submitted], t: int) -> int:
    """What ``mark_submitted`` did before, one statement a row (the reference)."""
    before = conn.total_changes
    for u in updates:
        conn.execute(
            "INSERT OR REPLACE INTO carrier_ref (smsc, carrier_id, message_id, part_no,"
            " submitted_at) VALUES (?,?,?,?,?)",
            (u.smsc, u.carrier_id, u.message_id, u.part_no, t),
        )
    changed = 0
    for u in updates:
        before = conn.total_changes
        conn.execute(
            "UPDATE mt_message SET state = 'submitted', smsc = ?,"
            " carrier_id = CASE WHEN ? = 0 THEN ? ELSE carrier_id END, updated_at = ?"
            " WHERE id = ? AND state IN ('accepted', 'submitted')",
            (u.smsc, u.part_no, u.carrier_id, t, u.message_id),
        )
        changed += conn.total_changes - before
    return changed


_TABLES = (
    "SELECT id, state, smsc, carrier_id, updated_at, final_status, error FROM mt_message"
    " ORDER BY id",
    "SELECT smsc, carrier_id, message_id, part_no, submitted_at FROM carrier_ref"
    " ORDER BY smsc, carrier_id",
)

submitted_strategy = st.lists(
    st.tuples(
        st.integers(0, 5),  # message (index)
        st.sampled_from(["sim", "vt"]),
        st.sampled_from(["A", "B", "C", "7", "007"]),  # carrier id (numeric-looking too)
        st.integers(0, 2),  # part number
    ),
    max_size=15,
)


_FULL_ROWS = (
    "SELECT id, state, smsc, carrier_id, updated_at, final_status, error, attempts,"
    " next_attempt_at FROM mt_message ORDER BY id",
    *_TABLES[1:],
    "SELECT id, state, charged FROM quota_ledger ORDER BY id",
    "SELECT id, reserved, spent FROM partner_order ORDER BY id",
)


@settings(max_examples=150, deadline=None)
@given(
    updates=submitted_strategy,
    finals=st.lists(
        st.tuples(st.integers(0, 6), st.sampled_from([MessageState.SENT, MessageState.FAILED])),
        max_size=8,
    ),
    requeued=st.sets(st.integers(0, 5), max_size=2),
    earlier=st.sets(st.integers(0, 5), max_size=2),
    held=st.sets(st.integers(0, 5), max_size=2),
)
def test_outcomes_in_one_flush_match_the_steps_one_after_the_other(
    updates: list[tuple[int, str, str, int]],
    finals: list[tuple[int, MessageState]],
    requeued: set[int],
    earlier: set[int],
    held: set[int],
) -> None:
    """``apply_outcomes`` folds a sent message's submitted update into its final one;
    the rows must be what the four steps one after the other leave (messages held,
    final already, requeued in the same flush, unknown, or final twice included)."""
    with tempfile.TemporaryDirectory() as directory:
        dbs = [_db(directory, "flush.db"), _db(directory, "steps.db")]
        for conn in dbs:
            conn.execute("BEGIN")
            quota.create_order(conn, NewOrder(partner="p", kind=OrderKind.PREPAID, limit=99), NOW)
            messages = [
                NewMessage(
                    partner="p", source_addr="S", destination_addr="849", body=b"x", held=i in held
                )
                for i in range(6)
            ]
            ids = journal.admit(conn, JournalState(1), messages, [1] * 6, NOW)
            assert ids == [1, 2, 3, 4, 5, 6]
            done = [FinalOutcome(1 + i, MessageState.FAILED, 8, "x", 0) for i in sorted(earlier)]
            outcomes.mark_final(conn, done, NOW)
            conn.execute("COMMIT")
        batch = outcomes.OutcomeBatch(
            submitted=[Submitted(1 + m, smsc, cid, part) for m, smsc, cid, part in updates],
            requeues=[Requeue(1 + m, NOW + 60, "again") for m in sorted(requeued)],
            finals=[FinalOutcome(1 + m, state, 0, None, 1) for m, state in finals],
            receipts=[None] * len(finals),
        )
        flush, steps = dbs
        for conn in dbs:
            conn.execute("BEGIN")
        got = outcomes.apply_outcomes(flush, batch, NOW + 1)
        outcomes.mark_submitted(steps, batch.submitted, NOW + 1)
        outcomes.requeue(steps, batch.requeues, NOW + 1)
        want = outcomes.mark_final(steps, batch.finals, NOW + 1)
        assert got == [None] * len(want)
        for conn in dbs:
            conn.execute("COMMIT")
        for query in _FULL_ROWS:
            assert flush.execute(query).fetchall() == steps.execute(query).fetchall(), query
        for conn in dbs:
            conn.close()


@settings(max_examples=100, deadline=None)
@given(updates=submitted_strategy, finished=st.sets(st.integers(0, 5)))
def test_mark_submitted_matches_one_update_a_row(
    updates: list[tuple[int, str, str, int]], finished: set[int]
) -> None:
    with tempfile.TemporaryDirectory() as directory:
        dbs = [_db(directory, "bulk.db"), _db(directory, "one.db")]
        for conn in dbs:
            conn.execute("BEGIN")
            messages = [NewMessage(partner="p", source_addr="S", destination_addr="849", body=b"x")]
            ids = journal.admit(conn, JournalState(1), messages * 6, [None] * 6, NOW)
            assert ids == [1, 2, 3, 4, 5, 6]
            failed = [FinalOutcome(1 + i, MessageState.FAILED, 8, "x", None) for i in finished]
            outcomes.mark_final(conn, failed, NOW)
            conn.execute("COMMIT")
        batch = [Submitted(1 + m, smsc, cid, part) for m, smsc, cid, part in updates]
        bulk, one = dbs
        got = outcomes.mark_submitted(bulk, batch, NOW + 1)
        want = _one_by_one_submitted(one, batch, journal.ms(NOW + 1))
        assert got == want
        for query in _TABLES:
            assert bulk.execute(query).fetchall() == one.execute(query).fetchall()
        for conn in dbs:
            conn.close()


def _plan(conn: sqlite3.Connection, sql: str, params: tuple[object, ...]) -> str:
    return " | ".join(str(r[3]) for r in conn.execute(f"EXPLAIN QUERY PLAN {sql}", params))


@pytest.mark.parametrize("analyzed", [False, True])
def test_hot_updates_look_rows_up_by_primary_key(tmp_path: Path, analyzed: bool) -> None:
    """With or without statistics (``PRAGMA optimize`` may leave some), on a journal
    where most messages are final, as on a running gateway."""
    conn = _db(str(tmp_path), "plan.db")
    conn.execute("BEGIN")
    messages = [NewMessage(partner="p", source_addr="S", destination_addr="849", body=b"x")]
    journal.admit(conn, JournalState(1), messages * 500, [None] * 500, NOW)
    finals = [FinalOutcome(i, MessageState.SENT, None, None, None) for i in range(1, 491)]
    outcomes.mark_final(conn, finals, NOW)
    conn.execute("COMMIT")
    if analyzed:
        conn.execute("ANALYZE")
    for sql, table in (
        (outcomes.SUBMITTED_SQL, "mt_message"),
        (outcomes.FINAL_SQL, "mt_message"),
        (quota_batch.SETTLE_SQL, "quota_ledger"),
    ):
        plan = _plan(conn, sql, (0, "[[1, 2, 3, 4]]"))
        assert f"SEARCH {table} USING INTEGER PRIMARY KEY" in plan, plan
        assert f"SCAN {table}" not in plan, plan
        assert f"{table} USING INDEX" not in plan, plan
    for sql, table in (
        (outcomes.OPEN_IDS_SQL, "mt_message"),
        (outcomes.FINAL_READ_SQL, "mt_message"),
        (quota_batch.LEDGER_READ_SQL, "quota_ledger"),
    ):
        plan = _plan(conn, sql, ("[1, 2, 3]",))
        assert f"SEARCH {table} USING INTEGER PRIMARY KEY" in plan, plan
        assert f"SCAN {table}" not in plan, plan


def _one_by_one_inbound(
    conn: sqlite3.Connection, items: list[NewInbound], t: int
) -> list[InboundResult]:
    """What ``journal_inbound`` did for a receipt before: one insert a row (reference)."""
    out = []
    for m in items:
        row = inbound.inbound_row(m, t)
        cur = conn.execute(
            f"{inbound.INSERT_INBOUND} VALUES ({','.join('?' * len(row))})"
            " ON CONFLICT (smsc, dedup_key) DO NOTHING",
            row,
        )
        if cur.rowcount == 1 and cur.lastrowid is not None:
            out.append(InboundResult(int(cur.lastrowid), True))
        else:
            row = conn.execute(
                "SELECT id FROM inbound WHERE smsc = ? AND dedup_key = ?", (m.smsc, m.dedup_key)
            ).fetchone()
            out.append(InboundResult(int(row[0]), False))
    return out


def _receipt(smsc: str, key: str, body: bytes = b"id:1 stat:DELIVRD") -> NewInbound:
    return NewInbound(
        smsc=smsc,
        dedup_key=key,
        kind=InboundKind.RECEIPT,
        source_addr="849",
        destination_addr="ACME",
        body=body,
        carrier_id=key,
    )


inbound_strategy = st.lists(
    st.tuples(st.sampled_from(["sim", "vt"]), st.sampled_from(["1", "2", "3", "04", "x"])),
    max_size=20,
)


@settings(max_examples=100, deadline=None)
@given(before=inbound_strategy, batch=inbound_strategy)
def test_journal_inbound_matches_one_insert_a_row(
    before: list[tuple[str, str]], batch: list[tuple[str, str]]
) -> None:
    """The first of a (smsc, key) is new, every later one (in the batch or journaled
    before) is not and points at the first: the same ids as one insert a row."""
    with tempfile.TemporaryDirectory() as directory:
        bulk, one = _db(directory, "bulk.db"), _db(directory, "one.db")
        t = journal.ms(NOW)
        for conn in (bulk, one):
            _one_by_one_inbound(conn, [_receipt(s, k, b"before") for s, k in before], t)
        items = [_receipt(s, k, f"batch {n}".encode()) for n, (s, k) in enumerate(batch)]
        assert inbound.journal_inbound(bulk, items, NOW) == _one_by_one_inbound(one, items, t)
        query = "SELECT id, smsc, dedup_key, body, carrier_id, received_at FROM inbound ORDER BY id"
        assert bulk.execute(query).fetchall() == one.execute(query).fetchall()
        bulk.close()
        one.close()


def test_receipts_queued_in_bulk_get_their_own_ids_in_order(tmp_path: Path) -> None:
    conn = _db(str(tmp_path), "outbox.db")
    receipts = [
        NewReceipt(partner=f"p{n % 3}", message_id=n, stat="DELIVRD", err=0, body=b"%d" % n)
        for n in range(150)
    ]
    ids = inbound.enqueue_receipts(conn, receipts, NOW)
    rows = dict(conn.execute("SELECT id, message_id FROM receipt_outbox").fetchall())
    assert [rows[i] for i in ids] == list(range(150))
    assert inbound.ack_receipts(conn, [ids[0], ids[0], ids[5], 10**9]) == 2
    # AUTOINCREMENT: a deleted highest id is never handed out again.
    inbound.ack_receipts(conn, ids[-3:])
    [again] = inbound.enqueue_receipts(conn, receipts[:1], NOW)
    assert again == ids[-1] + 1


@pytest.mark.parametrize(
    ("sql", "params", "lookup"),
    [
        (inbound.PROCESSED_SQL, (0, "[1, 2]"), "SEARCH inbound USING INTEGER PRIMARY KEY"),
        (
            outcomes.PART_STATES_SQL,
            ('[["sim", "C1", "DELIVRD"]]',),
            "SEARCH carrier_ref USING PRIMARY KEY (smsc=? AND carrier_id=?)",
        ),
        (inbound.ACK_SQL, ("[1, 2]",), "SEARCH receipt_outbox USING INTEGER PRIMARY KEY"),
    ],
)
def test_receipt_path_updates_look_rows_up_by_key(
    tmp_path: Path, sql: str, params: tuple[object, ...], lookup: str
) -> None:
    conn = _db(str(tmp_path), "plan.db")
    t = journal.ms(NOW)
    items = [_receipt("sim", str(n)) for n in range(300)]
    _one_by_one_inbound(conn, items, t)
    conn.execute("UPDATE inbound SET processed_at = 1 WHERE id > 5")
    conn.execute("ANALYZE")
    plan = _plan(conn, sql, params)
    assert lookup in plan, plan
    assert "SCAN inbound" not in plan, plan
    assert "SCAN carrier_ref" not in plan, plan


async def test_a_receipt_whose_earlier_copy_was_processed_is_new_again(tmp_path: Path) -> None:
    """SMSCs reuse message ids (a counter that starts over at their restart): the
    receipt of a new message that got an old id is not the old receipt repeated."""
    async with open_store(tmp_path / "j.db") as store:
        [old] = await store.journal_inbound([_receipt("sim", "r:F4240:2")])
        assert old.new
        [repeat] = await store.journal_inbound([_receipt("sim", "r:F4240:2")])
        assert (repeat.new, repeat.inbound_id) == (False, old.inbound_id)  # still in hand
        await store.mark_inbound_processed([old.inbound_id])
        first, second = await store.journal_inbound(
            [_receipt("sim", "r:F4240:2", b"new"), _receipt("sim", "r:F4240:2", b"copy")]
        )
        assert first.new
        assert first.inbound_id != old.inbound_id
        assert (second.new, second.inbound_id) == (False, first.inbound_id)
        rows = await store.read(
            lambda c: c.execute(
                "SELECT id, dedup_key, body, processed_at IS NOT NULL FROM inbound ORDER BY id"
            ).fetchall()
        )
        assert rows == [
            (old.inbound_id, f"h{old.inbound_id}:r:F4240:2", b"id:1 stat:DELIVRD", 1),
            (first.inbound_id, "r:F4240:2", b"new", 0),
        ]
        # An MO is not a receipt: a processed one still stops its repeats.
        mo = NewInbound(
            smsc="sim",
            dedup_key="m:1",
            kind=InboundKind.MO,
            source_addr="849",
            destination_addr="8099",
            body=b"hi",
        )
        [mo_first] = await store.journal_inbound([mo])
        await store.mark_inbound_processed([mo_first.inbound_id])
        [mo_again] = await store.journal_inbound([mo])
        assert (mo_again.new, mo_again.inbound_id) == (False, mo_first.inbound_id)
