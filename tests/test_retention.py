"""Journal retention: what goes, what must stay, and that the file stops growing.

The hypothesis test builds random journals (messages in every state and of every age,
with quota reservations, carrier ids, owed receipts; inbound rows; events with and
without keys; log rows), prunes at a fixed "now" and checks the rules of
``smppgw.store.retention`` row by row against what was there before.
"""

from __future__ import annotations

import gzip
import sqlite3
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest
import trio
from helpers.store_helpers import FakeClock, msg
from hypothesis import given, settings
from hypothesis import strategies as st

from smppgw.app.retention_models import DAY, RetentionSettings
from smppgw.app.retention_service import prune_store, register_retention_commands
from smppgw.cli import main
from smppgw.store import (
    Durability,
    FinalOutcome,
    InboundKind,
    MessageState,
    NewInbound,
    NewOrder,
    NewReceipt,
    OrderKind,
    StoreConfig,
    Submitted,
    open_store,
)

FAST = StoreConfig(durability=Durability.PROCESS, quick_check=False)
T0 = 1_800_000_000.0
END = T0 + 200 * DAY
SETTINGS = RetentionSettings(messages_days=90, inbound_days=7, log_days=120, events_days=100)
FINAL = {"sent", "delivered", "failed", "expired", "rejected"}

_message = st.tuples(
    st.floats(0, 199.9),  # age offset from T0, in days (sorted below: ids follow time)
    st.sampled_from([s.value for s in MessageState]),
    st.integers(1, 3),  # parts
    st.booleans(),  # receipt owed to the partner
    st.floats(0, 5),  # days until the final state
)
_inbound = st.tuples(st.floats(0, 199.9), st.booleans())  # age, processed
_event = st.tuples(st.floats(0, 199.9), st.booleans(), st.booleans())  # age, keyed, processed


async def _build(store: Any, clock: FakeClock, messages: list[Any], inbound: list[Any]) -> None:
    await store.create_order(NewOrder(partner="acme", kind=OrderKind.PREPAID, limit=10_000))
    for n, (day, state, parts, owed, final_after) in enumerate(sorted(messages)):
        clock.now = T0 + day * DAY
        m = msg(n, parts=tuple(b"p%d" % i for i in range(parts)) if parts > 1 else ())
        if state == "held":
            m = msg(n, held=True)
        (mid,) = await store.admit([m], [parts])
        if state in ("submitted", "sent", "delivered", "failed"):
            await store.mark_submitted(
                [Submitted(mid, "sim", f"c{mid}-{p}", p) for p in range(parts)]
            )
        if state in FINAL:
            clock.now += final_after * DAY
            charge = parts if state in ("sent", "delivered") else 0
            await store.mark_final([FinalOutcome(mid, MessageState(state), charge_parts=charge)])
        if owed:
            await store.enqueue_receipts(
                [NewReceipt(partner="acme", message_id=mid, stat="DELIVRD", err=0, body=b"r")]
            )
    for n, (day, processed) in enumerate(sorted(inbound)):
        clock.now = T0 + day * DAY
        (res,) = await store.journal_inbound([_mo(n)])
        if processed:
            await store.mark_inbound_processed([res.inbound_id])


def _mo(n: int) -> NewInbound:
    return NewInbound(
        smsc="sim",
        dedup_key=f"mo-{n}",
        kind=InboundKind.MO,
        source_addr=f"8491{n:07d}",
        destination_addr="8055",
        body=b"HI",
    )


def _rows(conn: sqlite3.Connection, sql: str) -> dict[int, tuple[Any, ...]]:
    return {int(r[0]): tuple(r[1:]) for r in conn.execute(sql)}


def _snapshot(path: Path) -> dict[str, Any]:
    conn = sqlite3.connect(path)
    try:
        return {
            "mt": _rows(conn, "SELECT id, state, created_at, updated_at FROM mt_message"),
            "owed": {
                int(r[0]): int(r[1])
                for r in conn.execute("SELECT message_id, created_at FROM receipt_outbox")
            },
            "inbound": _rows(conn, "SELECT id, received_at, processed_at FROM inbound"),
            "event": _rows(conn, "SELECT id, created_at, event_key, processed_at FROM event"),
            "log": _rows(conn, "SELECT id, created_at FROM message_log"),
            "orders": conn.execute("SELECT id, reserved, spent FROM partner_order").fetchall(),
            "ledger": conn.execute(
                "SELECT order_id, SUM(CASE WHEN state = 'reserved' THEN amount ELSE 0 END),"
                " SUM(CASE WHEN state = 'settled' THEN charged ELSE 0 END), SUM(parts)"
                " FROM quota_ledger GROUP BY order_id"
            ).fetchall(),
            "orphans": conn.execute(
                "SELECT COUNT(*) FROM mt_part WHERE message_id NOT IN (SELECT id FROM mt_message)"
            ).fetchone()[0]
            + conn.execute(
                "SELECT COUNT(*) FROM carrier_ref"
                " WHERE message_id NOT IN (SELECT id FROM mt_message)"
            ).fetchone()[0],
            "fk": conn.execute("PRAGMA foreign_key_check").fetchall(),
        }
    finally:
        conn.close()


def _add_events_and_log(conn: sqlite3.Connection, events: list[Any], log_days: list[float]) -> int:
    for n, (day, keyed, processed) in enumerate(sorted(events)):
        t = round((T0 + day * DAY) * 1000)
        conn.execute(
            "INSERT INTO event (kind, payload, created_at, event_key, processed_at)"
            " VALUES ('k', '{}', ?, ?, ?)",
            (t, f"key-{n}" if keyed else None, t if processed else None),
        )
    for day in sorted(log_days):
        conn.execute(
            "INSERT INTO message_log (direction, msisdn, body, created_at)"
            " VALUES ('mo', '1', 'x', ?)",
            (round((T0 + day * DAY) * 1000),),
        )
    return 0


def _cut(days: float) -> int:
    return round((END - days * DAY) * 1000)


def _check(before: dict[str, Any], after: dict[str, Any]) -> None:
    mt_cut = _cut(90)
    # A receipt the partner never took is dropped after receipts_owed_days (30), and
    # its message may then go in the same run.
    owed = {mid for mid, queued in before["owed"].items() if queued >= _cut(30)}
    assert set(after["owed"]) == owed
    newest = max(before["mt"], default=0)
    for mid, (state, created, updated) in before["mt"].items():
        prunable = (
            state in FINAL
            and created < mt_cut
            and updated < mt_cut
            and mid not in owed
            and mid != newest
        )
        assert (mid not in after["mt"]) == prunable, (mid, state, created, updated)
    newest = max(before["inbound"], default=0)
    for iid, (received, processed) in before["inbound"].items():
        prunable = processed is not None and received < _cut(7) and iid != newest
        assert (iid not in after["inbound"]) == prunable, (iid, received, processed)
    newest = max(before["event"], default=0)
    for eid, (created, key, processed) in before["event"].items():
        prunable = key is None and processed is not None and created < _cut(100) and eid != newest
        assert (eid not in after["event"]) == prunable, (eid, created, key, processed)
    newest = max(before["log"], default=0)
    for lid, (created,) in before["log"].items():
        assert (lid not in after["log"]) == (created < _cut(120) and lid != newest)
    assert after["orders"] == before["orders"]
    assert after["ledger"] == before["ledger"]  # sums per order, parts included
    assert after["orphans"] == 0
    assert after["fk"] == []


@settings(max_examples=30, deadline=None)
@given(
    messages=st.lists(_message, max_size=40),
    inbound=st.lists(_inbound, max_size=15),
    events=st.lists(_event, max_size=15),
    log_days=st.lists(st.floats(0, 199.9), max_size=10),
    batch=st.sampled_from([100, 5000]),
)
def test_prune_keeps_what_must_stay(
    messages: list[Any], inbound: list[Any], events: list[Any], log_days: list[float], batch: int
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "j.db"
        clock = FakeClock(T0)

        async def run() -> None:
            async with open_store(path, clock=clock, config=FAST) as store:
                await _build(store, clock, messages, inbound)
                await store.run_in_transaction(
                    lambda conn: _add_events_and_log(conn, events, log_days)
                )
                clock.now = END
                recovered = {m.id for m in (await store.recover()).messages}
            before = _snapshot(path)
            async with open_store(path, clock=clock, config=FAST) as store:
                cfg = SETTINGS.model_copy(update={"batch_rows": batch})
                report = await prune_store(store, cfg, clock=clock)
                assert report.counts["mt_message"] == len(before["mt"]) - len(
                    await store.read(lambda c: c.execute("SELECT id FROM mt_message").fetchall())
                )
                assert {m.id for m in (await store.recover()).messages} == recovered
                # MO dedup: every row still there is still a duplicate.
                kept = set(await store.read(_inbound_keys))
                again = await store.journal_inbound([_mo(n) for n in range(len(inbound))])
                for n, result in enumerate(again):
                    assert result.new == (f"mo-{n}" not in kept)
                # Ids never come back: the newest message row stays.
                (new_id,) = await store.journal_accept([msg(999)])
                assert new_id > max(before["mt"], default=0)
            after = _snapshot(path)
            after["mt"].pop(new_id, None)
            _check(before, after)

        trio.run(run)


def _inbound_keys(conn: sqlite3.Connection) -> list[str]:
    return [str(r[0]) for r in conn.execute("SELECT dedup_key FROM inbound")]


def _write_final(store: Any, clock: FakeClock, n: int, start: int) -> Any:
    async def go() -> None:
        body = bytes(range(120))
        for chunk in range(0, n, 1000):
            ids = await store.journal_accept(
                [msg(start + i, body=body) for i in range(chunk, min(n, chunk + 1000))]
            )
            await store.mark_submitted([Submitted(i, "sim", f"c{i}") for i in ids])
            await store.mark_final([FinalOutcome(i, MessageState.DELIVERED) for i in ids])

    return go()


@pytest.mark.parametrize("days", [30.0, None])
def test_receipts_a_partner_never_took_go_after_their_horizon(
    tmp_path: Path, days: float | None
) -> None:
    """A transmitter-only partner asked for receipts and never binds a receiver: its
    outbox, and the messages it keeps, would grow for ever. After receipts_owed_days
    they go (counted per partner for the log); None keeps them."""
    clock = FakeClock(T0)

    async def run() -> tuple[dict[str, int], list[tuple[str, int]]]:
        async with open_store(tmp_path / "j.db", clock=clock, config=FAST) as store:
            ids = await store.journal_accept([msg(n) for n in range(4)])
            await store.mark_final([FinalOutcome(i, MessageState.DELIVERED) for i in ids])
            for n, (partner, mid) in enumerate(
                zip(["acme", "acme", "beta", "acme"], ids, strict=True)
            ):
                clock.now = T0 + (n * 20) * DAY  # queued on days 0, 20, 40, 60
                receipt = NewReceipt(
                    partner=partner, message_id=mid, stat="DELIVRD", err=0, body=b"r"
                )
                await store.enqueue_receipts([receipt])
            clock.now = T0 + 65 * DAY  # owed 65, 45, 25 and 5 days
            cfg = SETTINGS.model_copy(update={"receipts_owed_days": days, "messages_days": 1})
            report = await prune_store(store, cfg, clock=clock)
            left = await store.read(
                lambda c: c.execute("SELECT partner, message_id FROM receipt_outbox").fetchall()
            )
        return report.counts, [(str(p), int(m)) for p, m in left]

    counts, left = trio.run(run)
    if days is None:
        assert len(left) == 4
        assert "receipt_outbox" not in counts
        return
    assert counts["receipt_outbox"] == 2
    assert counts["receipt_outbox:acme"] == 2  # those of days 0 and 20
    assert "receipt_outbox:beta" not in counts
    assert [p for p, _ in left] == ["beta", "acme"]
    assert counts["mt_message"] == 2  # the messages those receipts kept went too


def test_freed_pages_are_reused(tmp_path: Path) -> None:
    """N messages, prune them, N more: the file grows by well under the second N
    (auto_vacuum NONE: the freed pages on the free list take the new rows)."""
    path = tmp_path / "j.db"
    clock = FakeClock(T0)
    n = 20_000

    async def run() -> tuple[int, int, int]:
        async with open_store(path, clock=clock, config=FAST) as store:
            await _write_final(store, clock, n, 0)
        first = path.stat().st_size
        clock.now = T0 + 100 * DAY
        async with open_store(path, clock=clock, config=FAST) as store:
            report = await prune_store(store, SETTINGS, clock=clock)
            assert report.counts["mt_message"] == n - 1  # the newest stays
            freed = await store.read(lambda c: c.execute("PRAGMA freelist_count").fetchone()[0])
            await _write_final(store, clock, n, n)
        return first, path.stat().st_size, int(freed)

    first, second, freed = trio.run(run)
    assert freed > 0
    auto_vacuum = sqlite3.connect(path).execute("PRAGMA auto_vacuum").fetchone()[0]
    assert auto_vacuum == 0  # NONE: what the module docstring's growth bound rests on
    print(f"\nfile after N: {first:,} B; after prune + N more: {second:,} B; freed pages {freed}")
    assert second <= first * 1.25, (first, second)


def test_archive_and_admin_command(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    clock = FakeClock(T0)
    commands: dict[str, Any] = {}

    class Commands:
        def register(self, name: str, command: Any) -> None:
            commands[name] = command

    async def run() -> None:
        async with open_store(path, clock=clock, config=FAST) as store:
            await _write_final(store, clock, 50, 0)
            clock.now = T0 + 100 * DAY
            cfg = SETTINGS.model_copy(update={"archive_dir": tmp_path / "arch"})
            register_retention_commands(Commands(), store, cfg, clock=clock)  # type: ignore[arg-type]
            dry = await commands["retention.run"]({"cmd": "retention.run", "dry_run": True})
            assert dry["report"]["counts"]["mt_message"] == 49
            done = await commands["retention.run"]({"cmd": "retention.run"})
            assert done["ok"]
            assert done["report"]["counts"]["mt_message"] == 49
            assert done["report"]["counts"]["carrier_ref"] == 49

    trio.run(run)
    (archive,) = (tmp_path / "arch").iterdir()
    lines = gzip.decompress(archive.read_bytes()).decode().splitlines()
    assert lines[0].startswith("id,partner,")
    assert [line.split(",")[0] for line in lines[1:]] == [str(i) for i in range(1, 50)]
    assert lines[1].split(",")[8] == bytes(range(120)).hex()


def test_cli_prune_and_dry_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "gw.sqlite"
    clock = FakeClock(time.time() - 100 * DAY)  # the command reads the real clock

    async def make() -> None:
        async with open_store(path, clock=clock, config=FAST) as store:
            await _write_final(store, clock, 30, 0)

    trio.run(make)
    config = tmp_path / "c.yaml"
    config.write_text(
        "carriers: [{name: a, host: 127.0.0.1, port: 1, system_id: a, password: a}]\n"
        f"store: {{path: '{path}'}}\nadmin_socket: '{tmp_path / 'none.sock'}'\n"
    )
    assert main(["prune", "--dry-run", "-c", str(config)]) == 0
    assert "would remove" in capsys.readouterr().out
    assert main(["prune", "-c", str(config)]) == 0
    out = capsys.readouterr().out
    assert "removed" in out
    assert "29" in out
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT COUNT(*) FROM mt_message").fetchone()[0] == 1
    conn.close()


def test_settings_floors() -> None:
    with pytest.raises(ValueError, match="inbound_days"):
        RetentionSettings(inbound_days=0.5)
    assert RetentionSettings(inbound_days=0.0001, short_horizons_for_tests=True).inbound_days
    with pytest.raises(ValueError, match="keyed_events_days"):
        RetentionSettings(events_days=30, keyed_events_days=10)
