"""The batch quota paths (``quota_batch.py``) against the message-by-message rules.

Admission reserves a whole batch in one update when it fits on one order, and final
outcomes settle in one pass; both must end exactly where reserving and settling one
message at a time (``quota.reserve``, ``quota.settle``) ends: the same order for each
message, the same refusals, the same sums on every order.
"""

from __future__ import annotations

import sqlite3
import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from smppgw.store import journal, outcomes, quota, schema
from smppgw.store.journal import JournalState
from smppgw.store.records import (
    FinalOutcome,
    MessageState,
    NewMessage,
    NewOrder,
    OrderKind,
    QuotaRefusal,
    Reservation,
)

NOW = 1_800_000_000.0

orders_strategy = st.lists(
    st.tuples(st.sampled_from(["child", "parent"]), st.integers(0, 12), st.integers(1, 3)),
    max_size=4,
)
batch_strategy = st.lists(st.one_of(st.none(), st.integers(1, 4)), min_size=1, max_size=12)


def _db(directory: str, name: str, orders: list[tuple[str, int, int]]) -> sqlite3.Connection:
    path = str(Path(directory) / name)
    conn = sqlite3.connect(path, isolation_level=None)
    schema.migrate(conn, path)
    for n, (partner, limit, unit_cost) in enumerate(orders):
        kind = OrderKind.PREPAID if unit_cost == 1 else OrderKind.POSTPAID
        order = NewOrder(partner=partner, kind=kind, limit=limit * unit_cost, unit_cost=unit_cost)
        quota.create_order(conn, order, NOW - 100 + n)
    return conn


def _sums(conn: sqlite3.Connection) -> list[tuple[int, int, int]]:
    return conn.execute("SELECT id, reserved, spent FROM partner_order ORDER BY id").fetchall()


def _msg() -> NewMessage:
    return NewMessage(partner="child", source_addr="S", destination_addr="849", body=b"x")


@settings(max_examples=150, deadline=None)
@given(orders_strategy, batch_strategy, st.data())
def test_batch_reservation_and_settlement_match_one_by_one(
    orders: list[tuple[str, int, int]], parts: list[int | None], data: st.DataObject
) -> None:
    chain = ("child", "parent")
    with tempfile.TemporaryDirectory() as directory:
        batch_db = _db(directory, "batch.db", orders)
        one_db = _db(directory, "one.db", orders)
        batch_db.execute("BEGIN")
        ids = journal.admit(
            batch_db, JournalState(1), [_msg()] * len(parts), parts, NOW, [chain] * len(parts)
        )
        batch_db.execute("COMMIT")
        one_db.execute("BEGIN")
        expected: list[Reservation | QuotaRefusal | None] = []
        for p in parts:
            if p is None:
                expected.append(None)
                continue
            held: Reservation | QuotaRefusal | None = None
            for payer in chain:
                held = quota.reserve(one_db, payer, p, NOW)
                if not isinstance(held, QuotaRefusal) or held.reason != "no_order":
                    break
            expected.append(held)
        one_db.execute("COMMIT")
        assert _sums(batch_db) == _sums(one_db)
        stored = dict(batch_db.execute("SELECT id, order_id FROM mt_message").fetchall())
        for got, want in zip(ids, expected, strict=True):
            if isinstance(want, QuotaRefusal):
                assert got == want
            else:
                assert isinstance(got, int)
                assert stored[got] == (None if want is None else want.order_id)

        # Settle: random outcomes, some repeated; the first final outcome wins.
        part_of = {i: p or 1 for i, p in zip(ids, parts, strict=True) if isinstance(i, int)}
        accepted = list(part_of)
        picks = data.draw(
            st.lists(st.sampled_from(accepted), max_size=20) if accepted else st.just([])
        )
        finals = []
        for message_id in picks:
            charge = data.draw(st.integers(0, part_of[message_id]))
            finals.append(FinalOutcome(message_id, MessageState.DELIVERED, None, None, charge))
        batch_db.execute("BEGIN")
        applied = outcomes.mark_final(batch_db, finals, NOW)
        batch_db.execute("COMMIT")
        seen: set[int] = set()
        assert applied == [not (o.message_id in seen or seen.add(o.message_id)) for o in finals]
        by_message = {
            message_id: r.reservation_id
            for message_id, r in zip(ids, expected, strict=True)
            if isinstance(r, Reservation) and isinstance(message_id, int)
        }
        one_db.execute("BEGIN")
        done: set[int] = set()
        for o in finals:
            if o.message_id in done:
                continue
            done.add(o.message_id)
            rid = by_message.get(o.message_id)
            if rid is not None and o.charge_parts is not None:
                quota.settle(one_db, rid, o.charge_parts, NOW)
        one_db.execute("COMMIT")
        assert _sums(batch_db) == _sums(one_db)
        batch_db.close()
        one_db.close()


def test_a_reservation_settled_already_is_not_settled_again(tmp_path: Path) -> None:
    conn = _db(str(tmp_path), "j.db", [("child", 10, 1)])
    conn.execute("BEGIN")
    [first, second] = journal.admit(conn, JournalState(1), [_msg(), _msg()], [2, 3], NOW)
    (rid,) = conn.execute("SELECT reservation_id FROM mt_message WHERE id = ?", (first,)).fetchone()
    quota.settle(conn, rid, 0, NOW)  # released (as by an operator's cancel)
    finals = [
        FinalOutcome(m, MessageState.DELIVERED, None, None, charge_parts=p)
        for m, p in ((first, 2), (second, 3))
    ]
    assert outcomes.mark_final(conn, finals, NOW) == [True, True]
    conn.execute("COMMIT")
    assert _sums(conn) == [(1, 0, 3)]


_CHAINS = [("child", "parent"), ("parent",), ("other",), ("child",)]


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["child", "parent", "other"]), st.integers(0, 12), st.integers(1, 3)
        ),
        max_size=5,
    ),
    st.lists(
        st.tuples(
            st.sampled_from(range(len(_CHAINS))),
            st.lists(st.one_of(st.none(), st.integers(1, 4)), min_size=1, max_size=6),
        ),
        min_size=1,
        max_size=4,
    ),
)
def test_merged_admissions_of_several_sessions_match_one_by_one(
    orders: list[tuple[str, int, int]], batches: list[tuple[int, list[int | None]]]
) -> None:
    """Sessions' batches merged in one commit (``admit_many``), with payer chains that
    may share payers: each message ends where reserving one by one, in order, puts it."""
    with tempfile.TemporaryDirectory() as directory:
        merged_db = _db(directory, "merged.db", orders)
        one_db = _db(directory, "one.db", orders)
        payloads = [
            ([_msg()] * len(parts), parts, [_CHAINS[c]] * len(parts), NOW) for c, parts in batches
        ]
        merged_db.execute("BEGIN")
        got = journal.admit_many(JournalState(1), merged_db, payloads)  # type: ignore[arg-type]
        merged_db.execute("COMMIT")
        one_db.execute("BEGIN")
        want: list[list[object]] = []
        for c, parts in batches:
            row: list[object] = []
            for p in parts:
                held: Reservation | QuotaRefusal | None = None
                if p is not None:
                    for payer in _CHAINS[c]:
                        held = quota.reserve(one_db, payer, p, NOW)
                        if not isinstance(held, QuotaRefusal) or held.reason != "no_order":
                            break
                row.append(held)
            want.append(row)
        one_db.execute("COMMIT")
        assert _sums(merged_db) == _sums(one_db)
        order_of = dict(merged_db.execute("SELECT id, order_id FROM mt_message").fetchall())
        assert [len(r) for r in got] == [len(r) for r in want]
        for got_row, want_row in zip(got, want, strict=True):
            for g, w in zip(got_row, want_row, strict=True):
                if isinstance(w, QuotaRefusal):
                    assert g == w
                else:
                    assert isinstance(g, int)
                    assert order_of[g] == (None if w is None else w.order_id)
        merged_db.close()
        one_db.close()
