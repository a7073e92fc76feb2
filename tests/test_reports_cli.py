"""``smppgw report``: every kind through ``smppgw.cli.main`` as text, JSON, CSV and Excel.

A small journal with known messages: local days in the config's ``+07:00``, so a
message at 23:30 local is in the day and one at 00:30 the next day is not.
"""

from __future__ import annotations

import csv
import json
import sqlite3
from datetime import datetime
from typing import TYPE_CHECKING, Any

import openpyxl
import pytest
import trio
from helpers.store_helpers import FakeClock

from smppgw.cli import main
from smppgw.gateway.auth import hash_password
from smppgw.reports.build import Period, build
from smppgw.store import (
    Durability,
    FinalOutcome,
    InboundKind,
    MessageState,
    NewInbound,
    NewMessage,
    NewOrder,
    OrderKind,
    StoreConfig,
    Submitted,
    open_store,
)

if TYPE_CHECKING:
    from pathlib import Path

FAST = StoreConfig(durability=Durability.PROCESS, quick_check=False)
LOCAL_15_JAN_1500 = 1_800_000_000.0  # 2027-01-15 15:00 at +07:00
HOUR = 3600
DAY = ["--since", "2027-01-15", "--until", "2027-01-16"]
BAD = "84900000009"


def _msg(partner: str, number: str, source: str = "8055", parts: int = 1) -> NewMessage:
    return NewMessage(
        partner=partner,
        source_addr=source,
        destination_addr=number,
        body=b"hi",
        parts=tuple(b"p" for _ in range(parts)) if parts > 1 else (),
    )


async def _journal(path: Path) -> None:
    """acme: 3 delivered (one of 2 parts), 3 failed to BAD, 1 pending; bank: 1 delivered
    (postpaid, 350 a part); a late one outside the day; two MO on 8055, one on 9090."""
    clock = FakeClock(LOCAL_15_JAN_1500)
    async with open_store(path, config=FAST, clock=clock) as store:
        await store.create_order(NewOrder(partner="acme", kind=OrderKind.PREPAID, limit=100))
        await store.create_order(
            NewOrder(partner="bank", kind=OrderKind.POSTPAID, limit=35_000, unit_cost=350)
        )

        async def send(msg: NewMessage, state: MessageState | None, route: str = "viettel") -> int:
            [mid] = await store.admit([msg], [len(msg.parts) or 1])
            assert isinstance(mid, int)
            parts = len(msg.parts) or 1
            await store.mark_submitted(
                [Submitted(mid, route, f"c{mid}-{n}", n) for n in range(parts)]
            )
            if state is not None:
                charge = parts if state is MessageState.DELIVERED else 0
                await store.mark_final([FinalOutcome(mid, state, 0, "err 1", charge)])
            return mid

        await send(_msg("acme", "84900000001", parts=2), MessageState.DELIVERED)
        await send(_msg("acme", "84900000002"), MessageState.DELIVERED)
        await send(_msg("acme", "84800000003", source="ACME"), MessageState.DELIVERED, "mobi")
        for _ in range(3):
            await send(_msg("acme", BAD), MessageState.FAILED)
        await send(_msg("acme", "84900000004"), None)
        await send(_msg("bank", "84900000005", source="9090"), MessageState.DELIVERED)
        clock.now = LOCAL_15_JAN_1500 + 8.5 * HOUR  # 23:30 local: still the 15th
        [mid] = await store.journal_accept([_msg("shop", "84900000006")])
        clock.now = LOCAL_15_JAN_1500 + 9.5 * HOUR  # 00:30 the 16th: outside
        await store.journal_accept([_msg("shop", "84900000007")])
        clock.now = LOCAL_15_JAN_1500
        for n, code in enumerate(("8055", "8055", "9090")):
            item = NewInbound(
                smsc="viettel",
                dedup_key=f"mo{n}",
                kind=InboundKind.MO,
                source_addr="84911111111",
                destination_addr=code,
                body=b"DK",
            )
            await store.journal_inbound([item])

        def log(conn: sqlite3.Connection) -> None:
            t = round(LOCAL_15_JAN_1500 * 1000)
            conn.execute(
                "INSERT INTO message_log (direction, msisdn, short_code, body, scenario,"
                " message_id, created_at, outcome) VALUES"
                " ('mo', '84911111111', '8055', 'DK An HN', 'club', NULL, ?, 'registered'),"
                " ('mt', '84911111111', '8055', 'Chao An', 'club', ?, ?, 'registered')",
                (t, mid, t + 1),
            )

        await store.run_in_transaction(log)


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One journal for the module's tests: they only read it."""
    tmp_path = tmp_path_factory.mktemp("reports")
    trio.run(_journal, tmp_path / "j.db")
    path = tmp_path / "c.yaml"
    path.write_text(
        "carriers: [{name: viettel, host: 127.0.0.1, port: 1, system_id: a, password: a}]\n"
        f"store: {{path: '{tmp_path / 'j.db'}'}}\n"
        "scenarios: {utc_offset: '+07:00'}\n"
        "partners:\n"
        f"  - {{system_id: acme, password_hash: '{hash_password('pw')}',"
        " short_codes: ['8055']}\n"
    )
    return path


def _json(capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, Any]:
    capsys.readouterr()
    assert main(["report", *argv]) == 0
    answer: dict[str, Any] = json.loads(capsys.readouterr().out)
    return answer


def test_partners_table_and_json(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    assert main(["report", "partners", *DAY, "-c", str(config)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "Per partner"
    assert lines[1].split()[:3] == ["partner", "msgs", "parts"]
    acme, _bank, _shop, rule, total = lines[2:]
    assert acme.split()[:3] == ["acme", "7", "8"]
    assert set(rule) == {"-", " "}
    assert total.split()[:3] == ["total", "9", "10"]
    assert acme.endswith("50.0%")  # 3 delivered of the 6 a carrier settled

    answer = _json(capsys, "partners", *DAY, "--json", "-c", str(config))
    [table] = answer["tables"]
    rows = {r["partner"]: r for r in table["rows"]}
    assert rows["acme"]["delivered"] == 3
    assert rows["acme"]["delivered_parts"] == 4
    assert rows["acme"]["failed"] == 3
    assert rows["acme"]["pending"] == 1
    assert rows["acme"]["at_carrier"] == 7
    assert rows["acme"]["charged_parts"] == 4
    assert rows["acme"]["charged_money"] == 0  # prepaid: no price per part
    assert rows["bank"]["charged_money"] == 350
    assert rows["shop"]["messages"] == 1  # 23:30 local is in, 00:30 the next day is not
    assert table["total"]["messages"] == 9
    assert rows["acme"]["delivery_rate"] == 0.5


def test_orders_xlsx_read_back(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "orders.xlsx"
    assert main(["report", "orders", *DAY, "--xlsx", str(out), "-c", str(config)]) == 0
    assert capsys.readouterr().out == ""
    book = openpyxl.load_workbook(out)
    sheet = book["orders"]
    rows = [[c.value for c in row] for row in sheet.iter_rows()]
    header = rows[0]
    acme, bank, no_order, total = (dict(zip(header, r, strict=True)) for r in rows[1:])
    assert (acme["order"], acme["partner"], acme["kind"]) == (1, "acme", "prepaid")
    # acme: 8 parts admitted in all, 4 charged, 1 still reserved (the pending one)
    assert (acme["limit"], acme["spent"], acme["reserved"], acme["remaining"]) == (100, 4, 1, 95)
    assert acme["ledger"] == "ok"
    assert (bank["spent"], bank["remaining"], bank["remaining_parts"]) == (350, 34_650, 99)
    assert bank["charged_money"] == 350
    assert no_order["order"] == "(no order)"
    assert no_order["messages"] == 1  # shop's message of 23:30 has no order
    assert total["order"] == "total"
    assert total["messages"] == 9
    assert total["charged_parts"] == 5
    rate_cell = sheet.cell(row=2, column=header.index("delivery_rate") + 1)
    assert rate_cell.number_format == "0.0%"
    assert rate_cell.value == 0.5


def test_recipients_csv_two_files(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "rcpt.csv"
    argv = ["report", "recipients", *DAY, "--csv", str(out), "-c", str(config)]
    assert main(argv) == 0
    assert "rcpt-failing.csv" in capsys.readouterr().err
    with out.open(encoding="utf-8") as f:
        by_carrier = list(csv.DictReader(f))
    pairs = {(r["partner"], r["carrier"]): r for r in by_carrier}
    assert set(pairs) == {
        ("acme", "mobi"),
        ("acme", "viettel"),
        ("bank", "viettel"),
        ("shop", "(not routed)"),
        ("total", ""),
    }
    viettel = pairs[("acme", "viettel")]
    assert (viettel["numbers"], viettel["messages"], viettel["delivered"]) == ("4", "6", "2")
    assert viettel["delivery_rate"] == "0.4"  # 2 delivered, 3 failed
    assert pairs[("shop", "(not routed)")]["delivery_rate"] == ""  # nothing settled yet
    with (tmp_path / "rcpt-failing.csv").open(encoding="utf-8") as f:
        failing = list(csv.DictReader(f))
    assert [(r["partner"], r["number"], r["failed"], r["last_error"]) for r in failing] == [
        ("acme", BAD, "3", "err 1")
    ]
    assert main([*argv, "--min-failures", "4"]) == 0
    with (tmp_path / "rcpt-failing.csv").open(encoding="utf-8") as f:
        assert list(csv.DictReader(f)) == []


def test_carriers_and_short_codes(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    answer = _json(capsys, "carriers", *DAY, "--json", "-c", str(config))
    rows = {r["carrier"]: r["messages"] for r in answer["tables"][0]["rows"]}
    assert rows == {"(not routed)": 1, "mobi": 1, "viettel": 7}

    answer = _json(capsys, "short-codes", *DAY, "--json", "-c", str(config))
    [table] = answer["tables"]
    rows = {r["short_code"]: (r["messages"], r["mo"]) for r in table["rows"]}
    assert rows == {"8055": (7, 2), "9090": (1, 1), "ACME": (1, 0)}
    assert (table["total"]["messages"], table["total"]["mo"]) == (9, 3)

    # a partner's MO are those of the short codes it owns in the config
    answer = _json(capsys, "short-codes", *DAY, "--partner", "acme", "--json", "-c", str(config))
    rows = {r["short_code"]: (r["messages"], r["mo"]) for r in answer["tables"][0]["rows"]}
    assert rows == {"8055": (6, 2), "ACME": (1, 0)}


def test_log_text_and_csv(config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    assert main(["report", "log", *DAY, "-c", str(config)]) == 0
    out = capsys.readouterr().out
    assert "2027-01-15 15:00:00" in out  # local time at +07:00
    assert "DK An HN" in out
    target = tmp_path / "log.csv"
    assert main(["report", "log", *DAY, "--csv", str(target), "-c", str(config)]) == 0
    with target.open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert [(r["direction"], r["state"], r["body"]) for r in rows] == [
        ("mo", "", "DK An HN"),
        ("mt", "accepted", "Chao An"),
    ]
    assert (
        main(["report", "log", "--since", "2027-01-16", "--until", "2027-01-17", "-c", str(config)])
        == 0
    )
    assert "(nothing in the period)" in capsys.readouterr().out


def test_partner_filter(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    answer = _json(capsys, "partners", *DAY, "--partner", "bank", "--json", "-c", str(config))
    [table] = answer["tables"]
    assert [r["partner"] for r in table["rows"]] == ["bank"]
    answer = _json(capsys, "orders", *DAY, "--partner", "bank", "--json", "-c", str(config))
    assert [r["order"] for r in answer["tables"][0]["rows"]] == [2]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["partners", "--since", "2027-13-01", "--until", "2027-01-16"], "YYYY-MM-DD"),
        (["partners", "--since", "2027-01-16", "--until", "2027-01-16"], "after --since"),
        (["log", *DAY, "--partner", "acme"], "no partner"),
        (["partners", *DAY, "--min-failures", "0"], "at least 1"),
    ],
)
def test_refusals(
    config: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    capsys.readouterr()
    assert main(["report", *argv, "-c", str(config)]) == 2
    assert message in capsys.readouterr().err


def test_no_journal_or_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(
        "carriers: [{name: a, host: 127.0.0.1, port: 1, system_id: a, password: a}]\n"
        f"store: {{path: '{tmp_path / 'none.db'}'}}\n"
    )
    assert main(["report", "partners", *DAY, "-c", str(config)]) == 2
    assert "no journal" in capsys.readouterr().err
    assert main(["report", "partners", *DAY, "-c", str(tmp_path / "missing.yaml")]) == 2
    assert "no config file" in capsys.readouterr().err


async def test_reads_while_the_store_is_open(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """As with a running daemon: the writer holds the file, the report reads it."""
    async with open_store(config.parent / "j.db", config=FAST):
        answer = _json(capsys, "partners", *DAY, "--json", "-c", str(config))
    assert answer["tables"][0]["total"]["messages"] == 9


def test_order_price_shown_when_the_file_has_it(config: Path, tmp_path: Path) -> None:
    """``price_minor`` (what an order was sold for) is read when the column exists."""
    copy = tmp_path / "copy.db"
    source = sqlite3.connect(config.parent / "j.db")
    target = sqlite3.connect(copy)
    source.backup(target)
    source.close()
    period = Period(
        since=round((LOCAL_15_JAN_1500 - 15 * HOUR) * 1000),
        until=round((LOCAL_15_JAN_1500 + 9 * HOUR) * 1000),
    )
    [table] = build("orders", target, period)
    assert [r[4] for r in table.rows] == [None, None, None]
    columns = {r[1] for r in target.execute("PRAGMA table_info(partner_order)")}
    if "price_minor" not in columns:
        target.execute("ALTER TABLE partner_order ADD COLUMN price_minor INTEGER")
    target.execute("UPDATE partner_order SET price_minor = 900000 WHERE id = 1")
    target.commit()
    [table] = build("orders", target, period)
    assert [c.name for c in table.columns][4] == "price"
    assert [r[4] for r in table.rows] == [900_000, None, None]
    target.close()


def test_log_xlsx_and_json_together(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The log is streamed into the sheet; JSON asked as well reads the period again."""
    target = tmp_path / "log.xlsx"
    answer = _json(capsys, "log", *DAY, "--xlsx", str(target), "--json", "-c", str(config))
    assert [r["body"] for r in answer["tables"][0]["rows"]] == ["DK An HN", "Chao An"]
    assert answer["tables"][0]["rows"][0]["created_at"] == "2027-01-15 15:00:00"
    sheet = openpyxl.load_workbook(target)["log"]
    rows = [[c.value for c in row] for row in sheet.iter_rows()]
    assert rows[0][:3] == ["id", "created_at", "direction"]
    assert rows[1][1] == datetime(2027, 1, 15, 15, 0)
    assert sheet.cell(row=2, column=2).number_format == "yyyy-mm-dd hh:mm:ss"
    assert len(rows) == 3  # no total row for the log
