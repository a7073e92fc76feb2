"""Imports into a real store: all-or-nothing, partial, upserts, refusals the store finds."""

from __future__ import annotations

import datetime as dt
import json
import random
import sqlite3
import tempfile
from pathlib import Path
from typing import Any

import openpyxl
import pytest
from helpers.store_helpers import FakeClock
from hypothesis import given, settings
from hypothesis import strategies as st

from smppgw.imports.records import ValidationOptions
from smppgw.imports.run import ImportFailed, inventory_stats, run_import
from smppgw.scenarios.member_id import MemberIdFormat
from smppgw.store import Store, open_store


def _csv(path: Path, header: str, *rows: str) -> Path:
    path.write_text("\n".join((header, *rows)) + "\n", encoding="utf-8")
    return path


def _rows(store_path: Path, sql: str, *params: object) -> list[tuple[Any, ...]]:
    with sqlite3.connect(store_path) as conn:
        return [tuple(r) for r in conn.execute(sql, params)]


async def test_one_bad_row_imports_nothing_unless_partial(tmp_path: Path) -> None:
    file = _csv(
        tmp_path / "m.csv",
        "msisdn,member_id,name",
        "0912000001,M1,An",
        "0912x,M2,Binh",
        "0912000003,M3,Chi",
    )
    db = tmp_path / "s.db"
    seen: list[int] = []
    async with open_store(db, clock=FakeClock()) as store:
        report = await run_import(store, "members", file, progress=seen.append)
        assert not report.committed
        assert (report.rows_read, report.imported, report.error_count) == (3, 0, 1)
        assert [(e.line, e.column) for e in report.errors] == [(3, "msisdn")]
        assert "NOTHING imported" in str(report)
        assert seen == [3]
        assert _rows(db, "SELECT COUNT(*) FROM member") == [(0,)]

        report = await run_import(store, "members", file, partial=True)
        assert report.committed
        assert (report.imported, report.error_count, report.ok) == (2, 1, False)
    assert _rows(db, "SELECT member_id, msisdn, name FROM member ORDER BY member_id") == [
        ("M1", "84912000001", "An"),
        ("M3", "84912000003", "Chi"),
    ]


async def test_codes_already_stored_are_refused_skipped_or_left_out(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    first = _csv(tmp_path / "a.csv", "code,points,campaign", "aaa,10,tet", "bbb,20,tet")
    second = _csv(tmp_path / "b.csv", "Code,Points", " bbb ,5", "ccc,5", "ddd,5")
    async with open_store(db) as store:
        assert (await run_import(store, "codes", first)).imported == 2

        refused = await run_import(store, "codes", second, campaign="summer")
        assert not refused.committed
        assert [str(e) for e in refused.errors] == [
            "line 2, code: BBB is already in the inventory (campaign tet)"
        ]
        assert _rows(db, "SELECT COUNT(*) FROM code_inventory") == [(2,)]

        skipped = await run_import(store, "codes", second, campaign="summer", skip_existing=True)
        assert (skipped.imported, skipped.skipped, skipped.ok) == (2, 1, True)
        stats = await inventory_stats(store)
    assert stats["campaigns"] == [
        {"campaign": "summer", "total": 2, "used": 0, "free": 2},
        {"campaign": "tet", "total": 2, "used": 0, "free": 2},
    ]
    # the stored code kept its campaign and points
    assert _rows(db, "SELECT campaign, points FROM code_inventory WHERE code='BBB'") == [
        ("tet", 20)
    ]


async def test_partial_writes_new_codes_and_reports_stored_ones(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    async with open_store(db) as store:
        await run_import(
            store, "codes", _csv(tmp_path / "a.csv", "code,points", "A,1"), campaign="x"
        )
        report = await run_import(
            store,
            "codes",
            _csv(tmp_path / "b.csv", "code,points", "A,1", "B,-1", "C,1"),
            campaign="x",
            partial=True,
        )
    assert report.committed
    assert (report.imported, report.error_count) == (1, 2)
    assert [(e.line, e.column) for e in report.errors] == [(2, "code"), (3, "points")]
    assert _rows(db, "SELECT code FROM code_inventory ORDER BY code") == [("A",), ("C",)]


async def test_members_update_keeps_id_and_points(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    async with open_store(db, clock=FakeClock()) as store:
        await run_import(
            store,
            "members",
            _csv(
                tmp_path / "a.csv",
                "msisdn,member_id,name,province,tier",
                "0912000001,M1,An,HN,gold",
            ),
        )
        await store.run_in_transaction(
            lambda conn: conn.execute("UPDATE member SET points = 70 WHERE member_id = 'M1'")
        )
        update = _csv(tmp_path / "b.csv", "msisdn,name,province,shop", "84912000001,An Nguyen,,Q1")
        report = await run_import(store, "members", update)
        assert (report.imported, report.updated) == (0, 1)
        clash = await run_import(
            store,
            "members",
            _csv(tmp_path / "c.csv", "msisdn,member_id", "0912000001,M9", "0912000002,M1"),
        )
    assert [str(e) for e in clash.errors] == [
        "line 2, member_id: 84912000001 is already member M1, not M9",
        "line 3, member_id: member_id M1 already belongs to 84912000001",
    ]
    [(member_id, name, province, fields, points)] = _rows(
        db, "SELECT member_id, name, province, fields, points FROM member"
    )
    assert (member_id, name, province, points) == ("M1", "An Nguyen", "HN", 70)
    assert json.loads(fields) == {"tier": "gold", "shop": "Q1"}


async def test_generated_member_ids_avoid_taken_ones(tmp_path: Path) -> None:
    fmt = MemberIdFormat("{province}{digits:4}", {"ha noi": "HN"}, "VN")
    taken = fmt.new(random.Random(7), "Ha Noi")  # what seed 7 draws first
    db = tmp_path / "s.db"
    async with open_store(db) as store:
        await run_import(
            store, "members", _csv(tmp_path / "a.csv", "msisdn,member_id", f"0912000009,{taken}")
        )
        report = await run_import(
            store,
            "members",
            _csv(tmp_path / "b.csv", "msisdn,province", "0912000001,Hà Nội", "0912000002,"),
            member_ids=fmt,
            rng=random.Random(7),
        )
    assert report.imported == 2
    ids = dict(_rows(db, "SELECT msisdn, member_id FROM member"))
    assert ids["84912000009"] == taken
    assert ids["84912000001"].startswith("HN")
    assert ids["84912000001"] != taken
    assert ids["84912000002"].startswith("VN")
    assert len(set(ids.values())) == 3


async def test_spend_history_and_latest_month(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    async with open_store(db, clock=FakeClock()) as store:
        await run_import(
            store, "members", _csv(tmp_path / "m.csv", "msisdn,member_id", "0912000001,M1")
        )
        first = _csv(
            tmp_path / "a.csv",
            "member_id,msisdn,month,amount",
            "M1,,2025-02,200",
            ",0912000001,2025-01,100",
        )
        assert (await run_import(store, "spend", first)).imported == 2
        again = _csv(tmp_path / "b.csv", "msisdn,month,amount", "0912000001,2025-02,250")
        report = await run_import(store, "spend", again)
        assert (report.imported, report.updated) == (0, 1)
        unknown = await run_import(
            store, "spend", _csv(tmp_path / "c.csv", "member_id,month,amount", "M7,2025-03,1")
        )
    assert [str(e) for e in unknown.errors] == ["line 2, member_id: no member M7"]
    assert _rows(db, "SELECT monthly_spend FROM member") == [(250,)]
    events = _rows(
        db,
        "SELECT subject, payload, processed_at IS NOT NULL FROM event"
        " WHERE kind = 'monthly_spend' ORDER BY json_extract(payload, '$.month')",
    )
    assert [(s, json.loads(p), done) for s, p, done in events] == [
        ("84912000001", {"month": "2025-01", "amount": 100}, 1),
        ("84912000001", {"month": "2025-02", "amount": 250}, 1),
    ]


async def test_gifts_and_free_counts(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    file = _csv(
        tmp_path / "g.csv",
        "gift_type,serial,pin,cost_points",
        "card50,S1,1111,500",
        "card50,S2,,500",
        "card100,S1,2222,1000",
    )
    async with open_store(db) as store:
        assert (await run_import(store, "gifts", file)).imported == 3
        again = await run_import(store, "gifts", file)
        assert [e.line for e in again.errors] == [2, 3, 4]
        await store.run_in_transaction(
            lambda conn: conn.execute(
                "INSERT INTO member (member_id, msisdn, created_at, updated_at)"
                " VALUES ('M1', '84912000001', 0, 0)"
            )
        )
        await store.run_in_transaction(
            lambda conn: conn.execute(
                "UPDATE gift_inventory SET assigned_to = 'M1' WHERE serial = 'S2'"
            )
        )
        stats = await inventory_stats(store)
    assert stats["gifts"] == [
        {"gift_type": "card100", "total": 1, "free": 1},
        {"gift_type": "card50", "total": 2, "free": 1},
    ]
    assert _rows(db, "SELECT pin FROM gift_inventory WHERE serial = 'S2'") == [(None,)]


async def test_profiles_upsert_and_balance_history(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    async with open_store(db) as store:
        first = _csv(
            tmp_path / "a.csv",
            "msisdn,spend_m1,spend_m2,spend_m3,balance,opted_out",
            "0912000001,100,200,301,5000,no",
        )
        assert (await run_import(store, "profiles", first, clock=lambda: 1.0)).imported == 1
        second = _csv(tmp_path / "b.csv", "msisdn,arpu_3m,balance", "0912000001,90,")
        report = await run_import(store, "profiles", second, clock=lambda: 2.0)
        assert report.updated == 1
        third = _csv(tmp_path / "c.csv", "msisdn,arpu_3m,balance,opted_out", "0912000001,90,4000,1")
        await run_import(store, "profiles", third, clock=lambda: 3.0)
    assert _rows(db, "SELECT arpu_3m, balance, opted_out, updated_at FROM subscriber_profile") == [
        (90, 4000, 1, 3000)
    ]
    assert _rows(db, "SELECT delta, balance_after, reason FROM balance_ledger ORDER BY id") == [
        (5000, 5000, "import"),
        (-1000, 4000, "import"),
    ]


async def test_xlsx_members_with_number_cells(tmp_path: Path) -> None:
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["MSISDN", "Name", "Joined"])
    sheet.append([912000001, "An", dt.datetime(2024, 1, 31)])  # Excel dropped the 0
    sheet.append([84912000002, "Binh", None])
    path = tmp_path / "members.xlsx"
    book.save(path)
    db = tmp_path / "s.db"
    async with open_store(db) as store:
        report = await run_import(store, "members", path)
    assert (report.imported, report.ok) == (2, True)
    rows = _rows(db, "SELECT msisdn, name, fields FROM member ORDER BY msisdn")
    assert [(m, n, json.loads(f)) for m, n, f in rows] == [
        ("84912000001", "An", {"joined": "2024-01-31T00:00:00"}),
        ("84912000002", "Binh", {}),
    ]


async def test_unreadable_file_and_unknown_kind(tmp_path: Path) -> None:
    async with open_store(tmp_path / "s.db") as store:
        with pytest.raises(ImportFailed, match="unknown file type"):
            await run_import(store, "codes", tmp_path / "codes.pdf")
        with pytest.raises(ImportFailed, match="unknown import kind"):
            await run_import(store, "vouchers", tmp_path / "x.csv")
        with pytest.raises(ImportFailed, match="No such file"):
            await run_import(store, "codes", tmp_path / "missing.csv")


code_rows = st.lists(
    st.tuples(
        st.text("ABCDEFGHJKLMNPQRSTUVWXYZ0123456789", min_size=4, max_size=10),
        st.integers(0, 10**6),
    ),
    min_size=1,
    max_size=30,
    unique_by=lambda r: r[0],
)


@settings(max_examples=15)
@given(code_rows, st.data())
async def test_valid_code_files_import_whole_and_a_broken_row_imports_nothing(
    rows: list[tuple[str, int]], data: st.DataObject
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        lines = [f"{code.lower()},{points}" for code, points in rows]
        store: Store
        async with open_store(base / "s.db") as store:
            opts = ValidationOptions(campaign="c")
            good = await run_import(
                store, "codes", _csv(base / "good.csv", "code,points", *lines), options=opts
            )
            assert (good.imported, good.ok) == (len(rows), True)
            broken_at = data.draw(st.integers(0, len(rows) - 1))
            broken = list(lines)
            broken[broken_at] = f"NEW{broken_at},{data.draw(st.sampled_from(['-1', 'x', '']))}"
            fresh = [f"Z{line}" for line in broken]  # all new codes, one bad row
            report = await run_import(
                store, "codes", _csv(base / "bad.csv", "code,points", *fresh), options=opts
            )
            assert not report.committed
            assert [(e.line, e.column) for e in report.errors] == [(broken_at + 2, "points")]
        assert _rows(base / "s.db", "SELECT COUNT(*) FROM code_inventory") == [(len(rows),)]
