"""Points end to end on a real store: every outcome's reply and the rows after it, the
monthly statement, the shipped demo file, and the invariants under random MO traffic."""

from __future__ import annotations

import random
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import trio
import yaml
from hypothesis import event, given, settings
from hypothesis import strategies as st
from scenario_fixtures import SUBSCRIBER, ScenarioRig, scenario, scenario_rig

from smppgw.scenarios.builtin.points import Points
from smppgw.scenarios.config import ScenarioFile
from smppgw.scenarios.engine import EngineSettings
from smppgw.scenarios.handler import Context, Extra
from smppgw.scenarios.registry import KeywordTable, build_scenario

OTHER = "84987654321"
NOW = 1_790_000_000.0  # the rig's clock: 2026-09-21 14:13:20 UTC
NOW_TEXT = "14:13 21/09/2026"
DAY = 86_400.0
DEMO = Path(__file__).resolve().parent.parent / "scenarios"


def points_file(**settings_: Any) -> ScenarioFile:
    return scenario(
        name="points",
        handler="points",
        commands={"credit": {"keywords": ["TD", "TICHDIEM"]}, "balance": {"keywords": ["DIEM"]}},
        sender={"reply": "8055", "brandname": "ACME"},
        campaign={"starts": "2026-01-01", "ends": "2027-12-31"},
        settings=settings_,
    )


POINTS = points_file()


def ms(seconds: float) -> int:
    return round(seconds * 1000)


async def add_member(rig: ScenarioRig, member_id: str, msisdn: str = SUBSCRIBER) -> None:
    await rig.store.run_in_transaction(
        lambda conn: conn.execute(
            "INSERT INTO member (member_id, msisdn, created_at, updated_at) VALUES (?,?,0,0)",
            (member_id, msisdn),
        )
    )


async def add_codes(rig: ScenarioRig, *rows: tuple[Any, ...]) -> None:
    """Codes as ``(code, points)`` or ``(code, points, campaign, valid_from, valid_to)``."""
    full = [(*r, "C1", None, None)[:5] if len(r) == 2 else r for r in rows]
    await rig.store.run_in_transaction(
        lambda conn: conn.executemany(
            "INSERT INTO code_inventory (code, points, campaign, valid_from, valid_to)"
            " VALUES (?,?,?,?,?)",
            full,
        )
    )


async def add_gifts(rig: ScenarioRig, gift_type: str, cost: int, *serials: str) -> None:
    await rig.store.run_in_transaction(
        lambda conn: conn.executemany(
            "INSERT INTO gift_inventory (gift_type, cost_points, serial, pin) VALUES (?,?,?,?)",
            [(gift_type, cost, s, f"PIN-{s}") for s in serials],
        )
    )


async def snapshot(rig: ScenarioRig) -> dict[str, list[tuple[Any, ...]]]:
    """Every row a scenario step may write (to show that a redelivery wrote none)."""
    tables = {
        "member": "SELECT * FROM member ORDER BY member_id",
        "code": "SELECT * FROM code_inventory ORDER BY code",
        "gift": "SELECT * FROM gift_inventory ORDER BY id",
        "ledger": "SELECT * FROM points_ledger ORDER BY id",
        "attempt": "SELECT * FROM code_attempt ORDER BY msisdn, day",
        "pending": "SELECT * FROM pending_confirmation ORDER BY msisdn",
        "log": "SELECT count(*) FROM message_log",
        "mt": "SELECT count(*) FROM mt_message",
        "event": "SELECT count(*) FROM event",
    }
    return {name: await rig.query(sql) for name, sql in tables.items()}


async def check_ledger(rig: ScenarioRig) -> None:
    """Balances are the ledger's sums, never negative, and each ledger row's
    balance_after is the running sum."""
    rows = await rig.query(
        "SELECT m.member_id, m.points, coalesce(sum(l.delta), 0) FROM member m"
        " LEFT JOIN points_ledger l ON l.member_id = m.member_id GROUP BY m.member_id"
    )
    for member_id, points, total in rows:
        assert points == total >= 0, member_id
    running: dict[str, int] = {}
    for member_id, delta, after in await rig.query(
        "SELECT member_id, delta, balance_after FROM points_ledger ORDER BY id"
    ):
        running[member_id] = running.get(member_id, 0) + delta
        assert running[member_id] == after >= 0


# ------------------------------------------------------------------- credit


async def test_credit_then_balance(tmp_path: Path) -> None:
    async with scenario_rig(tmp_path, POINTS) as rig:
        await add_member(rig, "M1")
        await add_codes(rig, ("ABC123", 10), ("XYZ999", 25))
        assert await rig.mo("td abc123") == [
            "Ban duoc cong 10 diem tu ma ABC123. Tong diem hien tai: 10. Ma hoi vien: M1."
        ]
        assert rig.sent[-1][1].source_addr == "8055"
        assert await rig.mo("TichDiem xyz 999") == [
            "Ban duoc cong 25 diem tu ma XYZ999. Tong diem hien tai: 35. Ma hoi vien: M1."
        ]
        assert await rig.mo("DIEM") == ["Ma hoi vien M1: tong diem hien tai 35."]
        assert await rig.query("SELECT code, used_by, used_at FROM code_inventory") == [
            ("ABC123", "M1", ms(NOW)),
            ("XYZ999", "M1", ms(NOW)),
        ]
        assert await rig.query(
            "SELECT member_id, delta, balance_after, reason, ref FROM points_ledger ORDER BY id"
        ) == [("M1", 10, 10, "code", "ABC123"), ("M1", 25, 35, "code", "XYZ999")]
        assert await rig.query("SELECT points FROM member") == [(35,)]
        log = await rig.query("SELECT direction, outcome, member_id FROM message_log ORDER BY id")
        assert log[:2] == [("mo", "credited", "M1"), ("mt", "credited", "M1")]
        assert log[-1] == ("mt", "balance", "M1")


async def test_redelivered_credit_changes_nothing(tmp_path: Path) -> None:
    async with scenario_rig(tmp_path, POINTS) as rig:
        await add_member(rig, "M1")
        await add_codes(rig, ("ABC123", 10))
        await rig.mo("TD ABC123")
        before = await snapshot(rig)
        assert await rig.redeliver() == []
        assert await snapshot(rig) == before
        assert await rig.query("SELECT points FROM member") == [(10,)]


async def test_own_code_again_is_said_so(tmp_path: Path) -> None:
    async with scenario_rig(tmp_path, POINTS) as rig:
        await add_member(rig, "M1")
        await add_codes(rig, ("ABC123", 10))
        await rig.mo("TD ABC123")
        rig.clock.now = NOW + 60
        assert await rig.mo("TD abc123") == [
            f"Ma ABC123 ban da tich diem luc {NOW_TEXT}, moi ma chi tich duoc mot lan."
            " Tong diem hien tai: 10."
        ]
        assert await rig.query(
            "SELECT used_by, used_at, query_count, last_query_at, last_query_by FROM code_inventory"
        ) == [("M1", ms(NOW), 1, ms(NOW + 60), SUBSCRIBER)]
        assert await rig.query("SELECT count(*), sum(delta) FROM points_ledger") == [(1, 10)]
        assert await rig.query("SELECT count(*) FROM code_attempt") == [(0,)]


async def test_someone_elses_code_is_reported_with_its_trail(tmp_path: Path) -> None:
    async with scenario_rig(tmp_path, POINTS) as rig:
        await add_member(rig, "M1")
        await add_member(rig, "M2", OTHER)
        await add_codes(rig, ("ABC123", 10))
        await rig.mo("TD ABC123")
        rig.clock.now = NOW + DAY
        expected = "Ma ABC123 da duoc su dung luc {} va da duoc kiem tra {} lan."
        assert await rig.mo("TD ABC123", msisdn=OTHER) == [expected.format(NOW_TEXT, 1)]
        assert await rig.mo("TD ABC123", msisdn=OTHER) == [expected.format(NOW_TEXT, 2)]
        assert await rig.query(
            "SELECT used_by, query_count, last_query_at, last_query_by FROM code_inventory"
        ) == [("M1", 2, ms(NOW + DAY), OTHER)]
        assert await rig.query("SELECT member_id, points FROM member ORDER BY member_id") == [
            ("M1", 10),
            ("M2", 0),
        ]


async def test_used_at_is_in_the_operators_time_zone(tmp_path: Path) -> None:
    plus7 = EngineSettings(utc_offset=timedelta(hours=7))
    async with scenario_rig(tmp_path, POINTS, settings=plus7) as rig:
        await add_member(rig, "M1")
        await add_member(rig, "M2", OTHER)
        await add_codes(rig, ("ABC123", 10))
        await rig.mo("TD ABC123")
        [reply] = await rig.mo("TD ABC123", msisdn=OTHER)
        assert "luc 21:13 21/09/2026 " in reply


async def test_unknown_codes_then_the_daily_limit(tmp_path: Path) -> None:
    async with scenario_rig(tmp_path, points_file(wrong_codes_per_day=3)) as rig:
        await add_member(rig, "M1")
        await add_member(rig, "M2", OTHER)
        await add_codes(rig, ("GOOD01", 5))
        for n in range(3):
            assert await rig.mo(f"TD BAD{n}") == [
                f"Ma BAD{n} khong dung. Vui long kiem tra lai ma tren the cao."
            ]
        refused = ["Ban da nhap sai ma 3 lan hom nay. Vui long thu lai vao ngay mai."]
        assert await rig.mo("TD GOOD01") == refused  # not even looked up
        assert await rig.query("SELECT used_by FROM code_attempt, code_inventory") == [(None,)]
        day = datetime.fromtimestamp(NOW, UTC).strftime("%Y-%m-%d")
        assert await rig.query("SELECT msisdn, day, wrong FROM code_attempt") == [
            (SUBSCRIBER, day, 3)
        ]
        assert await rig.mo("TD BAD9", msisdn=OTHER) == [  # the limit is per number
            "Ma BAD9 khong dung. Vui long kiem tra lai ma tren the cao."
        ]
        rig.clock.now = NOW + DAY  # a new day
        assert (await rig.mo("TD GOOD01"))[0].startswith("Ban duoc cong 5 diem")
        outcomes = await rig.query("SELECT outcome FROM message_log WHERE direction = 'mo'")
        assert [o for (o,) in outcomes].count("too_many_wrong") == 1


async def test_expired_code_or_campaign(tmp_path: Path) -> None:
    async with scenario_rig(tmp_path, POINTS) as rig:
        await add_member(rig, "M1")
        await add_codes(
            rig,
            ("OLD001", 5, "C1", None, ms(NOW - 1)),
            ("NEW001", 5, "C1", ms(NOW + 1), None),
            ("NOW001", 5, "C1", ms(NOW - 1), ms(NOW + DAY)),
        )
        expired = "Ma {} khong con trong thoi gian tich diem cua chuong trinh."
        assert await rig.mo("TD OLD001") == [expired.format("OLD001")]
        assert await rig.mo("TD NEW001") == [expired.format("NEW001")]
        rig.clock.now = datetime(2028, 1, 1, tzinfo=UTC).timestamp()  # the campaign is over
        assert await rig.mo("TD NOW001") == [expired.format("NOW001")]
        assert await rig.query("SELECT count(*) FROM code_inventory WHERE used_by IS NULL") == [
            (3,)
        ]
        assert await rig.query("SELECT count(*), max(wrong) FROM code_attempt") == [(0, None)]
        assert await rig.query("SELECT points FROM member") == [(0,)]


async def test_not_registered_and_bad_format(tmp_path: Path) -> None:
    async with scenario_rig(tmp_path, POINTS) as rig:
        await add_codes(rig, ("ABC123", 10))
        not_member = f"So {SUBSCRIBER} chua dang ky hoi vien. Vui long dang ky truoc khi tich diem."
        assert await rig.mo("TD ABC123") == [not_member]
        assert await rig.mo("DIEM") == [not_member]
        assert await rig.mo("TD") == ["Sai cu phap. Soan: TD <ma the> gui 8055."]
        assert await rig.query("SELECT count(*) FROM member") == [(0,)]
        assert await rig.query("SELECT used_by, query_count FROM code_inventory") == [(None, 0)]


async def test_auto_register_makes_the_member_only_on_a_credit(tmp_path: Path) -> None:
    auto = points_file(auto_register=True, member_id={"pattern": "AC{digits:6}"})
    async with scenario_rig(tmp_path, auto) as rig:
        await add_codes(rig, ("ABC123", 10))
        assert await rig.mo("TD WRONG1") == [
            "Ma WRONG1 khong dung. Vui long kiem tra lai ma tren the cao."
        ]
        assert await rig.query("SELECT count(*) FROM member") == [(0,)]
        [reply] = await rig.mo("TD ABC123")
        [(member_id, msisdn, points)] = await rig.query(
            "SELECT member_id, msisdn, points FROM member"
        )
        assert (msisdn, points) == (SUBSCRIBER, 10)
        assert member_id.startswith("AC")
        assert len(member_id) == 8
        assert reply == (
            f"Ban duoc cong 10 diem tu ma ABC123. Tong diem hien tai: 10. Ma hoi vien: {member_id}."
        )


async def test_codes_of_another_campaign_are_unknown(tmp_path: Path) -> None:
    async with scenario_rig(tmp_path, points_file(code_campaigns=["TET"])) as rig:
        await add_member(rig, "M1")
        await add_codes(rig, ("TET001", 5, "TET", None, None), ("HE0001", 5, "HE", None, None))
        assert (await rig.mo("TD TET001"))[0].startswith("Ban duoc cong 5 diem")
        assert await rig.mo("TD HE0001") == [
            "Ma HE0001 khong dung. Vui long kiem tra lai ma tren the cao."
        ]
        assert await rig.query("SELECT wrong FROM code_attempt") == [(1,)]


# --------------------------------------------------------------- instant win

WON = "Chuc mung! Ma {} trung thuong {}. So serial: {}, ma PIN: {}."


async def test_a_listed_code_wins_a_gift_under_the_brandname(tmp_path: Path) -> None:
    lucky = points_file(instant_win={"codes": ["lucky1"], "gift_type": "CARD10"})
    async with scenario_rig(tmp_path, lucky) as rig:
        await add_member(rig, "M1")
        await add_codes(rig, ("LUCKY1", 10), ("PLAIN1", 10))
        await add_gifts(rig, "CARD10", 0, "S1")
        assert (await rig.mo("TD PLAIN1"))[0].startswith("Ban duoc cong")
        credited, won = await rig.mo("TD LUCKY1")
        assert credited.startswith("Ban duoc cong 10 diem tu ma LUCKY1")
        assert won == WON.format("LUCKY1", "CARD10", "S1", "PIN-S1")
        assert rig.sent[-1][1].source_addr == "ACME"
        assert await rig.query("SELECT serial, assigned_to, assigned_at FROM gift_inventory") == [
            ("S1", "M1", ms(NOW))
        ]
        assert await rig.query("SELECT kind, subject FROM event") == [("instant_win", SUBSCRIBER)]
        assert await rig.query(
            "SELECT outcome FROM message_log WHERE direction = 'mt' ORDER BY id"
        ) == [("credited",), ("credited",), ("won",)]


async def test_a_win_with_no_stock_left_is_no_win(tmp_path: Path) -> None:
    lucky = points_file(instant_win={"odds": 1.0, "gift_type": "CARD10", "gift_name": "the 10k"})
    async with scenario_rig(tmp_path, lucky) as rig:
        await add_member(rig, "M1")
        await add_codes(rig, ("A00001", 1), ("A00002", 1))
        await add_gifts(rig, "CARD10", 0, "S1")
        assert (await rig.mo("TD A00001"))[1] == WON.format("A00001", "the 10k", "S1", "PIN-S1")
        [credited] = await rig.mo("TD A00002")
        assert credited.startswith("Ban duoc cong 1 diem")
        assert await rig.query("SELECT count(*) FROM gift_inventory WHERE assigned_to IS NULL") == [
            (0,)
        ]
        assert await rig.query("SELECT kind FROM event ORDER BY id") == [
            ("instant_win",),
            ("instant_win_no_stock",),
        ]
        assert await rig.query("SELECT points FROM member") == [(2,)]


async def test_zero_odds_never_win(tmp_path: Path) -> None:
    never = points_file(instant_win={"odds": 0.0, "gift_type": "CARD10"})
    async with scenario_rig(tmp_path, never) as rig:
        await add_member(rig, "M1")
        await add_codes(rig, ("A00001", 1))
        await add_gifts(rig, "CARD10", 0, "S1")
        assert len(await rig.mo("TD A00001")) == 1
        assert await rig.query("SELECT assigned_to FROM gift_inventory") == [(None,)]


# ----------------------------------------------------------------- statement


async def statement(rig: ScenarioRig, month: str) -> list[Extra]:
    loaded = rig.engine.table.scenarios["points"]
    assert isinstance(loaded.handler, Points)
    handler = loaded.handler

    def run(conn: Any) -> list[Extra]:
        ctx = Context(
            conn, rig.clock.now, random.Random(1), loaded.file, rig.engine.settings.utc_offset
        )
        return handler.statement(ctx, month)

    return await rig.store.run_in_transaction(run)


async def test_statement_of_a_month_has_the_balance_at_its_end(tmp_path: Path) -> None:
    plus7 = EngineSettings(utc_offset=timedelta(hours=7))
    async with scenario_rig(tmp_path, POINTS, settings=plus7) as rig:
        await add_member(rig, "M1")
        await add_member(rig, "M2", OTHER)
        await add_member(rig, "M3", "84900000003")
        await add_codes(rig, ("S1", 10), ("S2", 5), ("O1", 7), ("A1", 3))
        rig.clock.now = datetime(2026, 8, 31, 12, tzinfo=UTC).timestamp()
        await rig.mo("TD A1", msisdn="84900000003")  # August only
        rig.clock.now = datetime(2026, 9, 10, tzinfo=UTC).timestamp()
        await rig.mo("TD S1")
        await rig.mo("TD S2", msisdn=OTHER)
        # 20:00 UTC on 30 September is 03:00 on 1 October in UTC+7: October's.
        rig.clock.now = datetime(2026, 9, 30, 20, tzinfo=UTC).timestamp()
        await rig.mo("TD O1")
        extras = await statement(rig, "2026-09")
        assert extras == [
            Extra("statement", {"points": 10, "member_id": "M1", "month": "09/2026"}, SUBSCRIBER),
            Extra("statement", {"points": 5, "member_id": "M2", "month": "09/2026"}, OTHER),
        ]
        assert [e.values["points"] for e in await statement(rig, "2026-10")] == [17]
        assert await statement(rig, "2026-12") == []
        template = rig.engine.table.scenarios["points"].template("statement")
        assert template is not None
        assert template.format(**extras[0].values) == (
            "Tong diem tich luy cua hoi vien M1 den het thang 09/2026: 10 diem."
        )


async def test_statement_event_sends_them_once_under_the_brandname(tmp_path: Path) -> None:
    async with scenario_rig(tmp_path, POINTS) as rig:
        await add_member(rig, "M1")
        await add_codes(rig, ("S1", 10))
        await rig.mo("TD S1")
        rig.clock.now = datetime(2026, 10, 1, 0, 5, tzinfo=UTC).timestamp()
        sms = ["Tong diem tich luy cua hoi vien M1 den het thang 09/2026: 10 diem."]
        assert await rig.event("statement", "", key="statement-2026-09") == sms  # last month
        assert await rig.event("statement", "", key="statement-2026-09") == []
        assert [(m.source_addr, m.destination_addr) for _, m in rig.sent[-1:]] == [
            ("ACME", SUBSCRIBER)
        ]
        assert await rig.event("statement", "", key="again", month="2026-09") == sms


# ----------------------------------------------------------------- demo file


def demo(name: str) -> ScenarioFile:
    return ScenarioFile.model_validate(yaml.safe_load((DEMO / f"{name}.yaml").read_text()))


def test_demo_files_load_together_and_spell_out_every_reply() -> None:
    loaded = [build_scenario(demo(n), f"{n}.yaml") for n in ("points", "redemption")]
    table = KeywordTable(loaded)
    for keyword in ("TD", "TICHDIEM", "DIEM", "DOI", "Y", "CO", "N", "KHONG"):
        assert table.match("8055", keyword) is not None, keyword
    for scenario_ in loaded:
        assert set(scenario_.file.replies) == {*type(scenario_.handler).default_replies, "error"}
    assert loaded[0].file.sender.brandname == "ACME"


async def test_demo_points_file_credits(tmp_path: Path) -> None:
    async with scenario_rig(tmp_path, demo("points")) as rig:
        await add_member(rig, "M1")
        await add_codes(rig, ("ABC123", 10))
        assert await rig.mo("TICHDIEM ABC123") == [
            "Ban duoc cong 10 diem tu ma ABC123. Tong diem hien tai: 10. Ma hoi vien: M1."
        ]
        assert await rig.mo("TD") == ["Sai cu phap. Soan: TD <ma the> gui 8055."]


# ---------------------------------------------------------------- invariants

CODES = ["C1", "C2", "C3", "C4"]
NUMBERS = [SUBSCRIBER, OTHER, "84900000003"]
ACTIONS = st.lists(
    st.tuples(
        st.sampled_from(NUMBERS),
        st.one_of(
            st.sampled_from([*CODES, "BAD"]).map(lambda c: f"TD {c}"),
            st.just("DIEM"),
            st.just("redeliver"),
            st.just("tomorrow"),
        ),
    ),
    min_size=5,
    max_size=30,
)


@settings(max_examples=25, deadline=None)
@given(ACTIONS)
def test_codes_are_credited_at_most_once_whatever_the_traffic(
    actions: list[tuple[str, str]],
) -> None:
    auto = points_file(auto_register=True, wrong_codes_per_day=2)

    async def body(tmp: Path) -> None:
        async with scenario_rig(tmp, auto) as rig:
            await add_codes(rig, *[(c, 1 + i) for i, c in enumerate(CODES)])
            delivered = False
            for msisdn, action in actions:
                if action == "redeliver":
                    if delivered:
                        before = await snapshot(rig)
                        assert await rig.redeliver() == []
                        assert await snapshot(rig) == before
                elif action == "tomorrow":
                    rig.clock.now += DAY
                else:
                    await rig.mo(action, msisdn=msisdn)
                    delivered = True
            credits = await rig.query(
                "SELECT ref, count(*) FROM points_ledger WHERE reason = 'code' GROUP BY ref"
            )
            assert all(n == 1 for _, n in credits)
            used = await rig.query("SELECT code FROM code_inventory WHERE used_by IS NOT NULL")
            assert sorted(used) == sorted((ref,) for ref, _ in credits)
            await check_ledger(rig)
            event(f"codes credited: {min(len(credits), 2)}+")

    with tempfile.TemporaryDirectory() as tmp:
        trio.run(body, Path(tmp))
