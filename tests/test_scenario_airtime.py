"""Airtime advance end to end on a real store: every command and outcome with its exact
reply, the rows after, events by key, and invariants under random interleavings."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from scenario_fixtures import SUBSCRIBER, ScenarioRig, scenario, scenario_rig

from smppgw.protocol.codec import pack_tlvs
from smppgw.protocol.tlv import Tag, Tlv
from smppgw.scenarios.builtin.airtime import parse_amount
from smppgw.scenarios.config import ScenarioFile
from smppgw.scenarios.registry import build_scenario
from smppgw.store import airtime as db

if TYPE_CHECKING:
    import sqlite3

OTHER = "84987654321"
CODE = "9090"
COMMANDS = {
    "register": {"keywords": ["UNGDK"]},
    "cancel": {"keywords": ["UNGHUY"]},
    "pause": {"keywords": ["UNGTAM"]},
    "advance": {"keywords": ["UNG"]},
    "lookup": {"keywords": ["UNGTC"]},
}


def airtime(**settings_: Any) -> ScenarioFile:
    return scenario(
        name="airtime",
        short_codes=[CODE],
        handler="airtime",
        commands=COMMANDS,
        sender={"reply": CODE, "brandname": "UNGTIEN"},
        settings={"fee": {"percent": 10}, **settings_},
    )


AIRTIME = airtime()


async def profile(
    rig: ScenarioRig,
    msisdn: str = SUBSCRIBER,
    *,
    arpu: int = 60000,
    registered: bool = False,
    paused: bool = False,
    opted_out: bool = False,
) -> None:
    def write(conn: sqlite3.Connection) -> None:
        conn.execute(
            "INSERT INTO subscriber_profile (msisdn, arpu_3m, opted_out, advance_registered,"
            " advance_paused, updated_at) VALUES (?, ?, ?, ?, ?, 0)",
            (msisdn, arpu, opted_out, registered, paused),
        )

    await rig.store.run_in_transaction(write)


async def send(rig: ScenarioRig, text: str, msisdn: str = SUBSCRIBER) -> list[str]:
    return await rig.mo(text, msisdn=msisdn, short_code=CODE)


async def flags(rig: ScenarioRig, msisdn: str = SUBSCRIBER) -> list[tuple[Any, ...]]:
    return await rig.query(
        "SELECT advance_registered, advance_paused, opted_out FROM subscriber_profile"
        " WHERE msisdn = ?",
        msisdn,
    )


async def advances(rig: ScenarioRig) -> list[tuple[Any, ...]]:
    return await rig.query("SELECT msisdn, amount, fee, recovered, state FROM advance ORDER BY id")


async def ledger(rig: ScenarioRig) -> list[tuple[Any, ...]]:
    return await rig.query("SELECT delta, balance_after, reason FROM balance_ledger ORDER BY id")


NOT_REGISTERED = "Ban chua dang ky dich vu Ung tien. Soan UNGDK gui 9090 de dang ky."
IS_PAUSED = "Dich vu Ung tien dang tam dung. Soan UNGDK gui 9090 de dung lai."


# -- register / pause / resume / cancel -------------------------------------------------


async def test_register_pause_resume_cancel(tmp_path: Path) -> None:
    async with scenario_rig(tmp_path, AIRTIME) as rig:
        await profile(rig)
        assert await send(rig, "ungdk") == [
            "Ban da dang ky dich vu Ung tien thanh cong. Muc ung toi da 20.000d."
            " Soan UNG <so tien> gui 9090 de ung."
        ]
        assert await flags(rig) == [(1, 0, 0)]
        assert await send(rig, "UNGDK") == [
            "Ban da dang ky dich vu Ung tien truoc do. Muc ung toi da 20.000d."
        ]
        assert await send(rig, "UNGTAM") == [
            "Dich vu Ung tien da tam dung. Soan UNGDK gui 9090 de dung lai."
        ]
        assert await flags(rig) == [(1, 1, 0)]
        assert await send(rig, "UNGTAM") == [IS_PAUSED]
        assert await send(rig, "UNG 10000") == [IS_PAUSED]
        assert await send(rig, "UNGDK") == [
            "Dich vu Ung tien da hoat dong tro lai. Muc ung toi da 20.000d."
        ]
        assert await flags(rig) == [(1, 0, 0)]
        assert await send(rig, "UNGHUY") == ["Ban da huy dich vu Ung tien."]
        assert await flags(rig) == [(0, 0, 1)]
        assert await send(rig, "UNGHUY") == [NOT_REGISTERED]
        assert await send(rig, "UNGTAM") == [NOT_REGISTERED]
        assert await send(rig, "UNG 10000") == [
            "Ban da huy dich vu Ung tien. Soan UNGDK gui 9090 de dang ky lai."
        ]
        assert await send(rig, "UNGDK") == [
            "Ban da dang ky dich vu Ung tien thanh cong. Muc ung toi da 20.000d."
            " Soan UNG <so tien> gui 9090 de ung."
        ]
        assert await flags(rig) == [(1, 0, 0)]
        assert await advances(rig) == []


async def test_register_without_a_profile_creates_one_not_yet_eligible(tmp_path: Path) -> None:
    async with scenario_rig(tmp_path, AIRTIME) as rig:
        assert await send(rig, "UNGDK") == [
            "Ban da dang ky dich vu Ung tien. Hien thue bao chua du dieu kien ung"
            " (tieu dung TB 3 thang tu 30.000d)."
        ]
        assert await rig.query("SELECT msisdn, arpu_3m FROM subscriber_profile") == [
            (SUBSCRIBER, 0)
        ]
        assert await flags(rig) == [(1, 0, 0)]
        assert await send(rig, "UNG 10000") == [
            "Rat tiec, thue bao chua du dieu kien ung tien (tieu dung TB 3 thang tu 30.000d)."
        ]


async def test_cancel_with_a_debt_says_it_will_still_be_recovered(tmp_path: Path) -> None:
    async with scenario_rig(tmp_path, AIRTIME) as rig:
        await profile(rig, registered=True)
        await send(rig, "UNG 10000")
        assert await send(rig, "UNGHUY") == [
            "Ban da huy dich vu Ung tien. Khoan no 11.000d se duoc tru khi ban nap tien."
        ]
        assert await rig.event("topup", amount=20000, key="t1") == [
            "Ban da nap 20.000d. Da tru 11.000d tien ung va phi. Ban da thanh toan het khoan ung."
        ]


# -- advance ----------------------------------------------------------------------------


async def test_advance_credits_the_ledger_and_records_the_debt(tmp_path: Path) -> None:
    async with scenario_rig(tmp_path, AIRTIME) as rig:
        await profile(rig, registered=True)
        assert await send(rig, "UNG 20.000") == [
            "Ban da duoc ung 20.000d, phi 2.000d. So no 22.000d se duoc tru khi nap tien."
        ]
        assert await advances(rig) == [(SUBSCRIBER, 20000, 2000, 0, "outstanding")]
        assert await ledger(rig) == [(20000, 20000, "advance")]
        assert await send(rig, "UNG 10000") == [
            "Ban con khoan ung chua thanh toan 22.000d. Vui long nap tien truoc khi ung tiep."
        ]
        assert await rig.redeliver() == []  # the same MO again: nothing more
        assert len(await advances(rig)) == 1
        assert await send(rig, "UNGTC") == [
            "Dich vu Ung tien: dang su dung. So no: 22.000d. Muc ung toi da: 20.000d."
        ]


async def test_advance_refusals(tmp_path: Path) -> None:
    bad = "So tien khong hop le. Cac muc ung: 10.000, 20.000, 50.000. Vi du: UNG 10000 gui 9090."
    async with scenario_rig(tmp_path, AIRTIME) as rig:
        assert await send(rig, "UNG 10000") == [NOT_REGISTERED]
        await profile(rig, registered=True)
        assert await send(rig, "UNG abc") == [bad]
        assert await send(rig, "UNG 15000") == [bad]
        assert await send(rig, "UNG 50000") == [
            "Ban chi duoc ung toi da 20.000d. Soan UNG <so tien> gui 9090."
        ]
        await profile(rig, OTHER, arpu=29999, registered=True)
        assert await send(rig, "UNG 10000", OTHER) == [
            "Rat tiec, thue bao chua du dieu kien ung tien (tieu dung TB 3 thang tu 30.000d)."
        ]
        await profile(rig, "84900000001", registered=True, paused=True)
        assert await send(rig, "UNG 10000", "84900000001") == [IS_PAUSED]
        assert await advances(rig) == []
        assert await ledger(rig) == []


async def test_advance_without_an_amount_takes_the_most_the_tier_allows(tmp_path: Path) -> None:
    async with scenario_rig(tmp_path, AIRTIME) as rig:
        await profile(rig, arpu=150000, registered=True)
        assert await send(rig, "ung") == [
            "Ban da duoc ung 50.000d, phi 5.000d. So no 55.000d se duoc tru khi nap tien."
        ]


async def test_registration_can_be_optional(tmp_path: Path) -> None:
    async with scenario_rig(tmp_path, airtime(advance_requires_registration=False)) as rig:
        await profile(rig, arpu=30000)
        assert await send(rig, "UNG 10k") == [
            "Ban da duoc ung 10.000d, phi 1.000d. So no 11.000d se duoc tru khi nap tien."
        ]
        assert await send(rig, "UNGTC") == [
            "Dich vu Ung tien: chua dang ky. So no: 11.000d. Muc ung toi da: 10.000d."
        ]


async def test_fixed_fee(tmp_path: Path) -> None:
    async with scenario_rig(tmp_path, airtime(fee={"fixed": 1500})) as rig:
        await profile(rig, registered=True)
        assert await send(rig, "UNG 10000") == [
            "Ban da duoc ung 10.000d, phi 1.500d. So no 11.500d se duoc tru khi nap tien."
        ]


async def test_lookup_states(tmp_path: Path) -> None:
    async with scenario_rig(tmp_path, AIRTIME) as rig:
        assert await send(rig, "UNGTC") == [
            "Dich vu Ung tien: chua dang ky. So no: 0d. Muc ung toi da: 0d."
        ]
        await profile(rig, registered=True, paused=True)
        assert await send(rig, "UNGTC") == [
            "Dich vu Ung tien: tam dung. So no: 0d. Muc ung toi da: 20.000d."
        ]


async def test_advance_over_ussd_is_answered_in_the_session(tmp_path: Path) -> None:
    async with scenario_rig(tmp_path, AIRTIME) as rig:
        await profile(rig, registered=True)
        session = Tlv(Tag.ITS_SESSION_INFO, b"\x12\x34")
        [reply] = await rig.mo(
            "UNG 10000",
            short_code=CODE,
            tlvs=(Tlv(Tag.USSD_SERVICE_OP, b"\x01"), session),
        )
        assert reply.startswith("Ban da duoc ung 10.000d")
        assert len(reply) <= 160
        # PSSR response (17) in the same session
        assert rig.sent[-1][1].tlvs == pack_tlvs((Tlv(Tag.USSD_SERVICE_OP, b"\x11"), session))


async def test_store_rules_hold_without_the_handler(tmp_path: Path) -> None:
    """The store itself refuses a second outstanding advance, clamps a recovery to what
    is owed, and never debits a balance below zero."""

    def rules(conn: sqlite3.Connection) -> None:
        first = db.insert_advance(conn, SUBSCRIBER, 10000, 1000, 0)
        try:
            db.insert_advance(conn, SUBSCRIBER, 20000, 0, 0)
        except db.AlreadyOutstanding:
            pass
        else:
            raise AssertionError("a second outstanding advance was allowed")
        taken, after = db.apply_recovery(conn, first.id, 50000, 1)
        assert (taken, after.owed, after.state) == (11000, 0, "recovered")
        assert db.apply_recovery(conn, first.id, 5, 2)[0] == 0
        assert db.undo_recovery(conn, first.id, 1000)
        assert db.outstanding_advance(conn, SUBSCRIBER) == db.get_advance(conn, first.id)
        db.insert_advance(conn, OTHER, 10000, 0, 0)
        assert db.cancel_advance(conn, 2, 3)
        assert not db.cancel_advance(conn, 2, 3)
        assert db.ledger_credit(conn, SUBSCRIBER, 500, "topup", None, 0) == 500
        assert db.ledger_debit(conn, SUBSCRIBER, 800, "x", None, 0, partial=False) == (0, 500)
        assert db.ledger_debit(conn, SUBSCRIBER, 800, "x", None, 0) == (500, 0)
        assert db.ledger_balance(conn, SUBSCRIBER) == 0

    async with scenario_rig(tmp_path, AIRTIME) as rig:
        await rig.store.run_in_transaction(rules)


# -- events -----------------------------------------------------------------------------


async def test_topup_recovers_in_part_then_in_full_once_per_key(tmp_path: Path) -> None:
    async with scenario_rig(tmp_path, AIRTIME) as rig:
        await profile(rig, registered=True)
        assert await rig.event("topup", amount=5000, key="t0") == []  # no debt: no reply
        await send(rig, "UNG 10000")
        assert await rig.event("topup", amount=5000, key="t1") == [
            "Ban da nap 5.000d. Da tru 5.000d tien ung va phi. So no con lai: 6.000d."
        ]
        assert await rig.event("topup", amount=5000, key="t1") == []  # the same key again
        assert await advances(rig) == [(SUBSCRIBER, 10000, 1000, 5000, "outstanding")]
        assert await rig.event("topup", amount="50000", key="t2") == [
            "Ban da nap 50.000d. Da tru 6.000d tien ung va phi. Ban da thanh toan het khoan ung."
        ]
        assert await advances(rig) == [(SUBSCRIBER, 10000, 1000, 11000, "recovered")]
        assert await ledger(rig) == [
            (5000, 5000, "topup"),
            (10000, 15000, "advance"),
            (5000, 20000, "topup"),
            (-5000, 15000, "recovery"),
            (50000, 65000, "topup"),
            (-6000, 59000, "recovery"),
        ]
        assert await rig.event("topup", amount=1000, key="t3") == []
        assert await send(rig, "UNG 10000") == [
            "Ban da duoc ung 10.000d, phi 1.000d. So no 11.000d se duoc tru khi nap tien."
        ]
        kinds = await rig.query("SELECT count(*) FROM event WHERE kind = 'topup'")
        assert kinds == [(4,)]


async def test_topup_with_a_bad_amount_is_ignored(tmp_path: Path) -> None:
    async with scenario_rig(tmp_path, AIRTIME) as rig:
        await profile(rig, registered=True)
        await send(rig, "UNG 10000")
        assert await rig.event("topup", amount="lots", key="x") == []
        assert await rig.event("topup", key="y") == []
        assert await advances(rig) == [(SUBSCRIBER, 10000, 1000, 0, "outstanding")]


async def test_low_balance_advances_a_registered_subscriber(tmp_path: Path) -> None:
    async with scenario_rig(tmp_path, airtime(auto_advance_amount=10000)) as rig:
        await profile(rig, registered=True)
        assert await rig.event("low_balance", balance=6000, key="b0") == []  # above threshold
        assert await rig.event("low_balance", balance=2000, key="b1") == [
            "So du thap: ban da duoc ung tu dong 10.000d, phi 1.000d."
            " So no 11.000d se duoc tru khi nap tien."
        ]
        assert await rig.event("low_balance", balance=2000, key="b1") == []
        assert await rig.event("low_balance", balance=1000, key="b2") == []  # owes one
        assert await advances(rig) == [(SUBSCRIBER, 10000, 1000, 0, "outstanding")]
        assert await rig.query("SELECT balance FROM subscriber_profile") == [(1000,)]


async def test_low_balance_auto_amount_is_capped_by_the_tier(tmp_path: Path) -> None:
    async with scenario_rig(tmp_path, AIRTIME) as rig:
        await profile(rig, arpu=50000, registered=True)
        [reply] = await rig.event("low_balance", balance=0, key="b")
        assert reply.startswith("So du thap: ban da duoc ung tu dong 20.000d, phi 2.000d.")


async def test_low_balance_offers_once_a_day_to_eligible_unregistered(tmp_path: Path) -> None:
    offer = (
        "So du tai khoan sap het. Ban duoc ung toi 20.000d."
        " Soan UNGDK gui 9090 de dang ky dich vu Ung tien."
    )
    async with scenario_rig(tmp_path, AIRTIME) as rig:
        await profile(rig)
        assert await rig.event("low_balance", balance=100, key="o1") == [offer]
        rig.clock.now += 3600
        assert await rig.event("low_balance", balance=100, key="o2") == []
        rig.clock.now += 24 * 3600
        assert await rig.event("low_balance", balance=100, key="o3") == [offer]
        assert rig.sent[-1][1].source_addr == "UNGTIEN"  # not an answer: the brandname
        assert await advances(rig) == []


async def test_low_balance_says_nothing_to_the_others(tmp_path: Path) -> None:
    async with scenario_rig(tmp_path, AIRTIME) as rig:
        assert await rig.event("low_balance", balance=0, key="a") == []  # no profile
        await profile(rig, arpu=1000)
        assert await rig.event("low_balance", balance=0, key="b") == []  # not eligible
        await profile(rig, OTHER, opted_out=True)
        assert await rig.event("low_balance", OTHER, balance=0, key="c") == []
        await profile(rig, "84900000001", registered=True, paused=True)
        assert await rig.event("low_balance", "84900000001", balance=0, key="d") == []
        assert await advances(rig) == []


async def test_low_balance_can_be_told_to_neither_advance_nor_offer(tmp_path: Path) -> None:
    quiet = airtime(auto_advance=False, offer_on_low_balance=False)
    async with scenario_rig(tmp_path, quiet) as rig:
        await profile(rig, registered=True)
        await profile(rig, OTHER)
        assert await rig.event("low_balance", balance=0, key="a") == []
        assert await rig.event("low_balance", OTHER, balance=0, key="b") == []


# -- the demo file, and amounts --------------------------------------------------------


async def test_demo_file_loads_and_answers_on_9090(tmp_path: Path) -> None:
    path = Path(__file__).parent.parent / "scenarios" / "airtime.yaml"
    demo = ScenarioFile.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))
    loaded = build_scenario(demo)
    assert demo.short_codes == ("9090",)
    handler_replies = set(type(loaded.handler).default_replies)
    assert handler_replies <= set(demo.replies)  # every reply written out
    async with scenario_rig(tmp_path, demo) as rig:
        await profile(rig, arpu=60000)
        assert await send(rig, "UNGDK") == [
            "Ban da dang ky dich vu Ung tien thanh cong. Muc ung toi da 20.000d."
            " Soan UNG <so tien> gui 9090 de ung."
        ]
        [reply] = await send(rig, "UNG 20000")
        assert reply == (
            "Ban da duoc ung 20.000d, phi 2.000d. So no 22.000d se duoc tru khi nap tien."
        )
        assert rig.sent[-1][1].source_addr == "9090"
    for name, template in demo.replies.items():  # one SMS each, even with big numbers
        filled = template.format_map(_Big())
        assert len(filled) <= 160, name


class _Big(dict[str, str]):
    """The longest plausible value of every placeholder."""

    def __missing__(self, key: str) -> str:
        long = {"amounts": "10.000, 20.000, 50.000", "state": "dang su dung"}
        return long.get(key, "500.000")


def test_parse_amount() -> None:
    assert [parse_amount(t) for t in ("10000", "10.000", "10,000", "10k", "10K", "10000d")] == [
        10000
    ] * 6
    assert [parse_amount(t) for t in ("", "abc", "-5", "10 000", "1e4")] == [None] * 5


# -- invariants -------------------------------------------------------------------------

NUMBERS = (SUBSCRIBER, OTHER)
steps = st.lists(
    st.one_of(
        st.tuples(
            st.just("mo"),
            st.sampled_from(NUMBERS),
            st.sampled_from(
                ["UNGDK", "UNGHUY", "UNGTAM", "UNGTC", "UNG", "UNG 10000", "UNG 20000", "UNG 50000"]
            ),
        ),
        st.tuples(st.just("redeliver"), st.just(""), st.just("")),
        st.tuples(
            st.just("topup"),
            st.sampled_from(NUMBERS),
            st.tuples(
                st.one_of(st.integers(1, 12000), st.sampled_from([11000, 22000, 55000])),
                st.integers(0, 20),
            ),
        ),
        st.tuples(
            st.just("low_balance"),
            st.sampled_from(NUMBERS),
            st.tuples(st.integers(0, 8000), st.integers(0, 5)),
        ),
    ),
    max_size=30,
)


@settings(max_examples=100, deadline=None)
@given(steps, st.sampled_from([30000, 60000, 200000]), st.booleans())
async def test_invariants_under_interleaved_commands_and_events(
    ops: list[tuple[str, str, Any]], arpu: int, required: bool
) -> None:
    file = airtime(advance_requires_registration=required)
    with tempfile.TemporaryDirectory() as tmp:
        async with scenario_rig(Path(tmp), file) as rig:
            await profile(rig, SUBSCRIBER, arpu=arpu)
            await profile(rig, OTHER, arpu=arpu, registered=True)
            delivered = False
            for kind, msisdn, arg in ops:
                if kind == "mo":
                    replies = await send(rig, arg, msisdn)
                    assert len(replies) == 1
                    delivered = True
                elif kind == "redeliver" and delivered:
                    assert await rig.redeliver() == []
                elif kind in ("topup", "low_balance"):
                    value, key = arg
                    field = "amount" if kind == "topup" else "balance"
                    await rig.event(kind, msisdn, key=f"{kind}{key}", **{field: value})
                await _check_invariants(rig)


async def _check_invariants(rig: ScenarioRig) -> None:
    rows = await rig.query("SELECT msisdn, amount, fee, recovered, state FROM advance")
    outstanding = [r[0] for r in rows if r[4] == "outstanding"]
    assert len(outstanding) == len(set(outstanding)), "two outstanding advances"
    for _, amount, fee, recovered, state in rows:
        assert 0 <= recovered <= amount + fee
        assert (state == "recovered") == (recovered == amount + fee)
    for msisdn in NUMBERS:
        deltas = await rig.query(
            "SELECT delta, balance_after FROM balance_ledger WHERE msisdn = ? ORDER BY id", msisdn
        )
        running = 0
        for delta, after in deltas:
            running += delta
            assert after == running
            assert after >= 0
    [(credited,)] = await rig.query(
        "SELECT coalesce(sum(delta), 0) FROM balance_ledger WHERE reason = 'advance'"
    )
    assert credited == sum(r[1] for r in rows)
    [(taken,)] = await rig.query(
        "SELECT coalesce(-sum(delta), 0) FROM balance_ledger WHERE reason = 'recovery'"
    )
    assert taken == sum(r[3] for r in rows)
