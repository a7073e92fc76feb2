"""Redemption end to end on a real store: every outcome's reply and the rows after it,
the Y/N confirmation and its expiry, and the invariants (no serial given twice, points
never below zero, ledger sums, redelivery writes nothing) under random traffic."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import trio
from hypothesis import event, given, settings
from hypothesis import strategies as st
from scenario_fixtures import SUBSCRIBER, ScenarioRig, scenario, scenario_rig
from test_scenario_points import (
    NOW,
    OTHER,
    add_codes,
    add_gifts,
    add_member,
    check_ledger,
    ms,
    points_file,
    snapshot,
)

from smppgw.store.members import add_points

if TYPE_CHECKING:
    from smppgw.scenarios.config import ScenarioFile

GIFTS = {
    "CARD50": {"gift_type": "CARD50K", "cost_points": 50, "name": "the cao 50.000d"},
    "card 100": {"gift_type": "CARD100K"},  # cost: the inventory's
}


def redemption_file(**settings_: Any) -> ScenarioFile:
    return scenario(
        name="gifts",
        handler="redemption",
        commands={
            "redeem": {"keywords": ["DOI"]},
            "confirm": {"keywords": ["Y", "CO"]},
            "cancel": {"keywords": ["N", "KHONG"]},
        },
        sender={"reply": "8055", "brandname": "ACME"},
        settings={"gifts": GIFTS, **settings_},
    )


AT_ONCE = redemption_file()
CONFIRM = redemption_file(confirm=True, confirm_minutes=10)

REDEEMED = (
    "Ban da doi {} voi {} diem. Diem con lai: {}."
    " Thong tin qua se duoc gui trong tin nhan tiep theo."
)
GIFT = "Qua {} cua ban: so serial {}, ma PIN PIN-{}. Cam on ban!"
ASK = (
    "Ban muon doi the cao 50.000d voi 50 diem (hien co {} diem)?"
    " Soan Y gui 8055 de xac nhan, N de huy, trong 10 phut."
)
NOTHING = (
    "Ban khong co yeu cau doi qua nao dang cho xac nhan (hoac yeu cau da het han)."
    " Soan DOI <qua> gui 8055 de doi qua."
)


async def member_with(
    rig: ScenarioRig, member_id: str, points: int, msisdn: str = SUBSCRIBER
) -> None:
    """A member holding ``points`` (through the ledger, as a credit would)."""
    await add_member(rig, member_id, msisdn)
    await rig.store.run_in_transaction(
        lambda conn: add_points(conn, member_id, points, "test", None, NOW - 60)
    )


async def balance(rig: ScenarioRig, member_id: str = "M1") -> int:
    [(points,)] = await rig.query("SELECT points FROM member WHERE member_id = ?", member_id)
    return int(points)


# ---------------------------------------------------------------- at once


async def test_redeem_deducts_and_sends_the_card(tmp_path: Path) -> None:
    async with scenario_rig(tmp_path, AT_ONCE) as rig:
        await member_with(rig, "M1", 120)
        await add_gifts(rig, "CARD50K", 45, "S1", "S2")
        assert await rig.mo("doi card50") == [
            REDEEMED.format("the cao 50.000d", 50, 70),
            GIFT.format("the cao 50.000d", "S1", "S1"),
        ]
        assert [m.source_addr for _, m in rig.sent] == ["8055", "ACME"]
        assert await rig.query(
            "SELECT serial, assigned_to, assigned_at FROM gift_inventory ORDER BY id"
        ) == [("S1", "M1", ms(NOW)), ("S2", None, None)]
        assert await rig.query(
            "SELECT delta, balance_after, reason, ref FROM points_ledger ORDER BY id"
        ) == [(120, 120, "test", None), (-50, 70, "redeem", "CARD50K:S1")]
        assert await balance(rig) == 70
        assert await rig.query(
            "SELECT direction, outcome, member_id FROM message_log ORDER BY id"
        ) == [("mo", "redeemed", "M1"), ("mt", "redeemed", "M1"), ("mt", "gift", "M1")]


async def test_the_cost_can_come_from_the_inventory(tmp_path: Path) -> None:
    async with scenario_rig(tmp_path, AT_ONCE) as rig:
        await member_with(rig, "M1", 100)
        await add_gifts(rig, "CARD100K", 80, "T1")
        assert await rig.mo("DOI CARD 100") == [
            REDEEMED.format("CARD100", 80, 20),
            GIFT.format("CARD100", "T1", "T1"),
        ]
        assert await balance(rig) == 20


async def test_not_enough_points_changes_nothing(tmp_path: Path) -> None:
    async with scenario_rig(tmp_path, AT_ONCE) as rig:
        await member_with(rig, "M1", 49)
        await add_gifts(rig, "CARD50K", 45, "S1")
        assert await rig.mo("DOI CARD50") == [
            "Ban can 50 diem de doi the cao 50.000d, hien ban co 49 diem."
        ]
        assert await rig.query("SELECT assigned_to FROM gift_inventory") == [(None,)]
        assert await rig.query("SELECT count(*) FROM points_ledger") == [(1,)]
        assert await balance(rig) == 49


async def test_out_of_stock(tmp_path: Path) -> None:
    async with scenario_rig(tmp_path, AT_ONCE) as rig:
        await member_with(rig, "M1", 500)
        await add_gifts(rig, "CARD50K", 45, "S1")
        await rig.mo("DOI CARD50")
        assert await rig.mo("DOI CARD50") == [
            "Rat tiec, qua the cao 50.000d da het. Vui long chon qua khac: CARD50, CARD100."
        ]
        assert await balance(rig) == 450
        assert await rig.query("SELECT count(*) FROM gift_inventory WHERE assigned_to IS NULL") == [
            (0,)
        ]


async def test_unknown_gift_lists_the_gifts(tmp_path: Path) -> None:
    async with scenario_rig(tmp_path, AT_ONCE) as rig:
        await member_with(rig, "M1", 500)
        assert await rig.mo("DOI IPHONE") == [
            "Khong co qua IPHONE. Cac qua co the doi: CARD50, CARD100."
        ]
        assert await balance(rig) == 500


async def test_not_registered_and_bad_format(tmp_path: Path) -> None:
    async with scenario_rig(tmp_path, CONFIRM) as rig:
        await add_gifts(rig, "CARD50K", 45, "S1")
        not_member = f"So {SUBSCRIBER} chua dang ky hoi vien. Vui long dang ky truoc khi doi qua."
        assert await rig.mo("DOI CARD50") == [not_member]
        assert await rig.mo("Y") == [not_member]
        assert await rig.mo("DOI") == [
            "Sai cu phap. Soan: DOI <qua> gui 8055. Cac qua: CARD50, CARD100."
        ]
        assert await rig.query("SELECT count(*) FROM pending_confirmation") == [(0,)]


async def test_a_redelivered_redeem_changes_nothing(tmp_path: Path) -> None:
    async with scenario_rig(tmp_path, AT_ONCE) as rig:
        await member_with(rig, "M1", 100)
        await add_gifts(rig, "CARD50K", 45, "S1", "S2")
        await rig.mo("DOI CARD50")
        before = await snapshot(rig)
        assert await rig.redeliver() == []
        assert await snapshot(rig) == before
        assert await balance(rig) == 50


# ------------------------------------------------------------ confirmation


async def test_ask_then_confirm(tmp_path: Path) -> None:
    async with scenario_rig(tmp_path, CONFIRM) as rig:
        await member_with(rig, "M1", 120)
        await add_gifts(rig, "CARD50K", 45, "S1")
        assert await rig.mo("DOI CARD50") == [ASK.format(120)]
        [(msisdn, name, action, payload, expires)] = await rig.query(
            "SELECT * FROM pending_confirmation"
        )
        assert (msisdn, name, action, expires) == (SUBSCRIBER, "gifts", "redeem", ms(NOW + 600))
        assert json.loads(payload) == {"gift": "CARD50"}
        assert await balance(rig) == 120  # nothing taken before Y
        assert await rig.query("SELECT assigned_to FROM gift_inventory") == [(None,)]
        rig.clock.now = NOW + 599
        assert await rig.mo("y") == [
            REDEEMED.format("the cao 50.000d", 50, 70),
            GIFT.format("the cao 50.000d", "S1", "S1"),
        ]
        assert await rig.query("SELECT assigned_to FROM gift_inventory") == [("M1",)]
        assert await rig.query("SELECT count(*) FROM pending_confirmation") == [(0,)]
        assert await rig.mo("CO") == [NOTHING]
        assert await balance(rig) == 70


async def test_ask_refuses_at_once_what_cannot_be_done(tmp_path: Path) -> None:
    async with scenario_rig(tmp_path, CONFIRM) as rig:
        await member_with(rig, "M1", 10)
        await add_gifts(rig, "CARD50K", 45, "S1")
        assert await rig.mo("DOI CARD50") == [
            "Ban can 50 diem de doi the cao 50.000d, hien ban co 10 diem."
        ]
        assert await rig.mo("DOI CARD100") == [
            "Rat tiec, qua CARD100 da het. Vui long chon qua khac: CARD50, CARD100."
        ]
        assert await rig.query("SELECT count(*) FROM pending_confirmation") == [(0,)]


async def test_cancel(tmp_path: Path) -> None:
    async with scenario_rig(tmp_path, CONFIRM) as rig:
        await member_with(rig, "M1", 120)
        await add_gifts(rig, "CARD50K", 45, "S1")
        await rig.mo("DOI CARD50")
        assert await rig.mo("KHONG") == [
            "Ban da huy yeu cau doi the cao 50.000d. Diem cua ban van con: 120."
        ]
        assert await rig.query("SELECT count(*) FROM pending_confirmation") == [(0,)]
        assert await rig.mo("N") == [NOTHING]
        assert await rig.mo("Y") == [NOTHING]
        assert await balance(rig) == 120
        assert await rig.query("SELECT assigned_to FROM gift_inventory") == [(None,)]


async def test_an_expired_question_is_not_answered(tmp_path: Path) -> None:
    async with scenario_rig(tmp_path, CONFIRM) as rig:
        await member_with(rig, "M1", 120)
        await add_gifts(rig, "CARD50K", 45, "S1")
        await rig.mo("DOI CARD50")
        rig.clock.now = NOW + 600
        assert await rig.mo("Y") == [NOTHING]
        assert await rig.query("SELECT count(*) FROM pending_confirmation") == [(0,)]
        assert await balance(rig) == 120
        assert await rig.query("SELECT assigned_to FROM gift_inventory") == [(None,)]


async def test_confirm_checks_again(tmp_path: Path) -> None:
    """Two members asked for the last card: the first to confirm gets it."""
    async with scenario_rig(tmp_path, CONFIRM) as rig:
        await member_with(rig, "M1", 120)
        await member_with(rig, "M2", 60, OTHER)
        await add_gifts(rig, "CARD50K", 45, "S1")
        assert await rig.mo("DOI CARD50") == [ASK.format(120)]
        assert await rig.mo("DOI CARD50", msisdn=OTHER) == [ASK.format(60)]
        assert len(await rig.mo("Y", msisdn=OTHER)) == 2
        assert await rig.mo("Y") == [
            "Rat tiec, qua the cao 50.000d da het. Vui long chon qua khac: CARD50, CARD100."
        ]
        assert await rig.query("SELECT assigned_to FROM gift_inventory") == [("M2",)]
        assert await balance(rig, "M1") == 120
        assert await balance(rig, "M2") == 10


async def test_a_redelivered_confirmation_changes_nothing(tmp_path: Path) -> None:
    async with scenario_rig(tmp_path, CONFIRM) as rig:
        await member_with(rig, "M1", 120)
        await add_gifts(rig, "CARD50K", 45, "S1", "S2")
        await rig.mo("DOI CARD50")
        await rig.mo("Y")
        before = await snapshot(rig)
        assert await rig.redeliver() == []
        assert await snapshot(rig) == before
        assert await rig.query(
            "SELECT count(*) FROM gift_inventory WHERE assigned_to IS NOT NULL"
        ) == [(1,)]


# ---------------------------------------------------------------- invariants

NUMBERS = [SUBSCRIBER, OTHER, "84900000003"]
# Weighted towards asking and confirming, so that most examples do redeem.
TEXTS = ["TD C1", "TD C2", "TD C3", "TD C4", "TD C5", "DOI CARD50", "DOI CARD100", "Y", "N"]
WEIGHTED = [*TEXTS, "DOI CARD50", "DOI CARD100", "Y", "Y", "Y", "redeliver", "redeliver", "later"]
ACTIONS = st.lists(
    st.tuples(st.sampled_from(NUMBERS[:2]), st.sampled_from(WEIGHTED)),
    min_size=5,
    max_size=40,
)


@settings(max_examples=25, deadline=None)
@given(ACTIONS, st.booleans())
def test_gifts_and_points_stay_consistent_whatever_the_traffic(
    actions: list[tuple[str, str]], confirm: bool
) -> None:
    points = points_file(auto_register=True)
    gifts = redemption_file(
        confirm=confirm,
        gifts={"CARD50": {"gift_type": "A", "cost_points": 4}, "CARD100": {"gift_type": "B"}},
    )

    async def body(tmp: Path) -> None:
        async with scenario_rig(tmp, points, gifts) as rig:
            await add_codes(rig, *[(f"C{n}", n + 1) for n in range(1, 6)])
            await member_with(rig, "M1", 8)  # one can redeem at once, one after a code
            await member_with(rig, "M2", 3, OTHER)
            await add_gifts(rig, "A", 0, "A1", "A2")
            await add_gifts(rig, "B", 7, "B1")
            delivered = False
            for msisdn, action in actions:
                if action == "redeliver":
                    if delivered:
                        before = await snapshot(rig)
                        assert await rig.redeliver() == []
                        assert await snapshot(rig) == before
                elif action == "later":
                    rig.clock.now += 300  # two of these expire a question
                else:
                    await rig.mo(action, msisdn=msisdn)
                    delivered = True
            await check_ledger(rig)
            assigned = await rig.query(
                "SELECT gift_type || ':' || serial, assigned_to FROM gift_inventory"
                " WHERE assigned_to IS NOT NULL"
            )
            redeemed = await rig.query(
                "SELECT ref, member_id, delta FROM points_ledger WHERE reason = 'redeem'"
            )
            # Every gift given was paid for once, by whom got it, at its price.
            assert sorted(assigned) == sorted((ref, m) for ref, m, _ in redeemed)
            assert len({ref for ref, _, _ in redeemed}) == len(redeemed)
            price = {"A": -4, "B": -7}
            assert all(delta == price[ref[0]] for ref, _, delta in redeemed)
            assert await rig.query("SELECT count(*) FROM gift_inventory") == [(3,)]
            event(f"gifts redeemed: {min(len(redeemed), 2)}+")

    with tempfile.TemporaryDirectory() as tmp:
        trio.run(body, Path(tmp))
