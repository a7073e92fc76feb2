"""Typed operations: the MT lifecycle, receipts, inbound dedup, recovery, migrations."""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING

import pytest
from helpers.store_helpers import FakeClock, msg

from smppgw.store import (
    SCHEMA_VERSION,
    FinalOutcome,
    InboundKind,
    MessageState,
    NewInbound,
    NewReceipt,
    Requeue,
    StoreReadFailed,
    Submitted,
    open_store,
)
from smppgw.store.schema import MIGRATIONS, Migration, migrate

if TYPE_CHECKING:
    from pathlib import Path


def _inbound(key: str, kind: InboundKind = InboundKind.MO) -> NewInbound:
    return NewInbound(
        smsc="vt",
        dedup_key=key,
        kind=kind,
        source_addr="84901234567",
        destination_addr="8055",
        body=b"DK AN HN",
    )


async def test_mt_lifecycle(tmp_path: Path) -> None:
    clock = FakeClock()
    async with open_store(tmp_path / "j.db", clock=clock) as store:
        [single, multi] = await store.journal_accept(
            [msg(1, priority=1), msg(2, body=b"ab", parts=(b"\x05a", b"\x05b"))]
        )
        stored = await store.get_message(multi)
        assert stored is not None
        assert stored.parts == (b"\x05a", b"\x05b")
        assert stored.part_count == 2
        assert stored.state is MessageState.ACCEPTED

        clock.advance(1)
        changed = await store.mark_submitted(
            [
                Submitted(single, "vt", "C1"),
                Submitted(multi, "vt", "C2", part_no=0),
                Submitted(multi, "vt", "C3", part_no=1),
            ]
        )
        assert changed == 3
        found = await store.lookup_carrier("vt", "C3")
        assert found is not None
        assert (found.message.id, found.part_no) == (multi, 1)
        assert found.message.carrier_id == "C2"
        assert found.message.state is MessageState.SUBMITTED
        assert found.message.updated_at == clock.now
        # carrier ids are scoped by SMSC
        assert await store.lookup_carrier("mobi", "C3") is None

        assert await store.requeue([Requeue(single, clock.now + 30, "throttled")]) == [1]
        again = await store.get_message(single)
        assert again is not None
        assert (again.state, again.attempts, again.error) == (
            MessageState.ACCEPTED,
            1,
            "throttled",
        )
        assert again.next_attempt_at == clock.now + 30

        applied = await store.mark_final(
            [
                FinalOutcome(single, MessageState.DELIVERED, 0),
                FinalOutcome(single, MessageState.FAILED, 0x45),  # late duplicate
            ]
        )
        assert applied == [True, False]
        done = await store.get_message(single)
        assert done is not None
        assert (done.state, done.final_status, done.next_attempt_at) == (
            MessageState.DELIVERED,
            0,
            None,
        )
        assert await store.requeue([Requeue(single, clock.now)]) == [None]
        with pytest.raises(ValueError, match="not a final state"):
            await store.mark_final([FinalOutcome(multi, MessageState.SUBMITTED)])

        recovery = await store.recover()
        assert [m.id for m in recovery.messages] == [multi]
        assert recovery.messages[0].state is MessageState.SUBMITTED


async def test_recovery_orders_by_priority_then_age(tmp_path: Path) -> None:
    async with open_store(tmp_path / "j.db") as store:
        ids = await store.journal_accept([msg(1), msg(2, priority=9), msg(3)])
    async with open_store(tmp_path / "j.db") as store:
        recovery = await store.recover()
    assert [m.id for m in recovery.messages] == [ids[1], ids[0], ids[2]]


async def test_inbound_is_journaled_once(tmp_path: Path) -> None:
    async with open_store(tmp_path / "j.db") as store:
        first = await store.journal_inbound([_inbound("a"), _inbound("b"), _inbound("a")])
        assert [r.new for r in first] == [True, True, False]
        assert first[2].inbound_id == first[0].inbound_id
        again = await store.journal_inbound([_inbound("b", InboundKind.RECEIPT)])
        assert again[0].new is False
        other_smsc = NewInbound(
            smsc="mobi",
            dedup_key="a",
            kind=InboundKind.MO,
            source_addr="1",
            destination_addr="2",
            body=b"",
        )
        assert (await store.journal_inbound([other_smsc]))[0].new is True

        await store.mark_inbound_processed([first[0].inbound_id])
        recovery = await store.recover()
        assert sorted(i.dedup_key for i in recovery.inbound) == ["a", "b"]
        assert {i.smsc for i in recovery.inbound} == {"vt", "mobi"}


async def test_receipts_outbox(tmp_path: Path) -> None:
    async with open_store(tmp_path / "j.db") as store:
        [m1, m2] = await store.journal_accept([msg(1), msg(2)])
        ids = await store.enqueue_receipts(
            [
                NewReceipt(partner="acme", message_id=m1, stat="DELIVRD", err=0, body=b"id:1"),
                NewReceipt(partner="beta", message_id=m2, stat="UNDELIV", err=1, body=b"id:2"),
                NewReceipt(partner="acme", message_id=m2, stat="EXPIRED", err=0, body=b"id:3"),
            ]
        )
        pending = await store.pending_receipts("acme")
        assert [p.id for p in pending] == [ids[0], ids[2]]
        assert pending[0].stat == "DELIVRD"
        assert [p.id for p in await store.pending_receipts("acme", limit=1)] == [ids[0]]
        assert await store.ack_receipts([ids[0], ids[0]]) == 1
        assert [p.id for p in await store.pending_receipts("acme")] == [ids[2]]


async def test_run_in_transaction_and_read(tmp_path: Path) -> None:
    async with open_store(tmp_path / "j.db") as store:

        def register(conn: sqlite3.Connection) -> int:
            conn.execute(
                "INSERT INTO member (member_id, msisdn, name, created_at, updated_at)"
                " VALUES ('HN001', '84901', 'An', 0, 0)"
            )
            return int(conn.execute("SELECT COUNT(*) FROM member").fetchone()[0])

        assert await store.run_in_transaction(register) == 1
        with pytest.raises(sqlite3.IntegrityError):
            await store.run_in_transaction(register)  # same member id: rolled back alone
        names = await store.read(lambda c: c.execute("SELECT name FROM member").fetchall())
        assert names == [("An",)]
        with pytest.raises(StoreReadFailed, match="readonly"):
            await store.read(lambda c: c.execute("DELETE FROM member"))


async def test_migration_from_v1_and_idempotent_reopen(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    conn = sqlite3.connect(path, isolation_level=None)
    assert migrate(conn, str(path), MIGRATIONS[:1]) == (0, 1)
    conn.close()
    async with open_store(path) as store:
        await store.journal_accept([msg()])
    with sqlite3.connect(path) as check:
        assert check.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        tables = {r[0] for r in check.execute("SELECT name FROM sqlite_master")}
    assert {"member", "mt_message", "carrier_ref", "quota_ledger"} <= tables
    async with open_store(path):
        pass


def test_failed_migration_leaves_file_untouched(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    conn = sqlite3.connect(path, isolation_level=None)
    broken = (*MIGRATIONS, Migration(SCHEMA_VERSION + 1, "bad", "CREATE TABLE x (a);\nBOGUS;"))
    with pytest.raises(sqlite3.OperationalError):
        migrate(conn, str(path), broken)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 0
    assert conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()[0] == 0
    conn.close()


def test_migration_statements_split() -> None:
    for migration in MIGRATIONS:
        statements = migration.statements()
        assert statements
        assert all(sqlite3.complete_statement(s) for s in statements)
    with pytest.raises(ValueError, match="incomplete"):
        Migration(9, "x", "CREATE TABLE y (a)").statements()


async def test_mt_tlvs_survive_the_journal_and_reach_the_sending_view(tmp_path: Path) -> None:
    from smppgw.gateway.outbound import OutboundMessage
    from smppgw.protocol.codec import pack_tlvs, unpack_tlvs
    from smppgw.protocol.tlv import Tag, Tlv

    tlvs = (Tlv(Tag.USSD_SERVICE_OP, b"\x11"), Tlv(Tag.ITS_SESSION_INFO, b"\x01\x02"))
    async with open_store(tmp_path / "j.db") as store:
        [with_tlvs, plain] = await store.journal_accept([msg(1, tlvs=pack_tlvs(tlvs)), msg(2)])
        stored = await store.get_message(with_tlvs)
        assert stored is not None
        assert unpack_tlvs(stored.tlvs) == tlvs
        assert OutboundMessage.of(stored.id, stored).tlvs == tlvs
        other = await store.get_message(plain)
        assert other is not None
        assert other.tlvs == b""
        assert OutboundMessage.of(other.id, other).tlvs == ()


async def test_protocol_id_and_user_ref_survive_the_journal(tmp_path: Path) -> None:
    from smppgw.gateway.outbound import OutboundMessage
    from smppgw.gateway.receipt_state import info_from_stored

    async with open_store(tmp_path / "j.db") as store:
        [special, plain] = await store.journal_accept(
            [msg(1, protocol_id=0x41, user_ref=0xBEEF), msg(2)]
        )
        stored = await store.get_message(special)
        assert stored is not None
        assert (stored.protocol_id, stored.user_ref) == (0x41, 0xBEEF)
        sending = OutboundMessage.of(stored.id, stored)
        assert (sending.protocol_id, sending.user_ref) == (0x41, 0xBEEF)
        assert info_from_stored(stored).user_ref == 0xBEEF
        other = await store.get_message(plain)
        assert other is not None
        assert (other.protocol_id, other.user_ref) == (0, None)


async def test_messages_journaled_before_v12_read_as_protocol_id_0(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    conn = sqlite3.connect(path, isolation_level=None)
    migrate(conn, str(path), MIGRATIONS[:11])
    conn.execute(
        "INSERT INTO mt_message (id, partner, source_addr, source_ton, source_npi,"
        " destination_addr, dest_ton, dest_npi, data_coding, esm_class, registered_delivery,"
        " priority, body, part_count, state, created_at, updated_at)"
        " VALUES (7, 'p', 'S', 5, 0, '849', 1, 1, 0, 0, 1, 0, x'41', 1, 'accepted', 1, 1)"
    )
    conn.close()
    async with open_store(path) as store:
        old = await store.get_message(7)
        assert old is not None
        assert (old.protocol_id, old.user_ref) == (0, None)


def test_unpack_tlvs_refuses_a_truncated_stream() -> None:
    from smppgw.protocol.codec import unpack_tlvs
    from smppgw.protocol.errors import PduDecodeError

    with pytest.raises(PduDecodeError):
        unpack_tlvs(b"\x05\x01\x00\x05ab")


def test_mt_message_carries_only_indexes_a_query_uses(tmp_path: Path) -> None:
    """Every index on the journal's main table costs each admitted message a B-tree
    insert and each small commit a page: ``mt_message_by_order`` served no query and
    went (v11); the reports find a period's paying orders by ``created_at``."""
    path = tmp_path / "j.db"
    conn = sqlite3.connect(path, isolation_level=None)
    migrate(conn, str(path))
    indexes = {
        r[0]
        for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'mt_message'"
            " AND sql IS NOT NULL"
        )
    }
    assert indexes == {
        "mt_message_unfinished",
        "mt_message_by_partner",
        "mt_message_by_reservation",
        "mt_message_by_created",
        # Partial (held messages only), admission writes nothing to it; its readers name
        # it (INDEXED BY), so they fail rather than scan should it go.
        "mt_message_held",
    }
    plan = " ".join(
        str(r[3])
        for r in conn.execute(
            "EXPLAIN QUERY PLAN SELECT order_id FROM mt_message WHERE order_id IS NOT NULL"
            " AND created_at >= 1 AND created_at < 2"
        )
    )
    assert "mt_message_by_created" in plan
    conn.close()
