"""The opt-out list: the number's key, the store's rows, admission's refusal, the MO."""

from __future__ import annotations

import sqlite3
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import trio
from daemon_fixtures import free_port
from hypothesis import given, settings
from hypothesis import strategies as st
from partner_fixtures import write_partner_config
from scenario_fixtures import SUBSCRIBER, scenario, scenario_rig

from smppgw.app import daemon as daemon_module
from smppgw.app.config import load_config
from smppgw.app.daemon import Daemon
from smppgw.gateway.opt_out import opt_out_key
from smppgw.store import journal, quota, schema
from smppgw.store.journal import JournalState
from smppgw.store.opt_out import (
    ALL_PARTNERS,
    add_opt_outs,
    count_opt_outs,
    list_opt_outs,
    opted_out,
    remove_opt_outs,
)
from smppgw.store.records import NewMessage, NewOrder, OrderKind, QuotaRefusal, RefusalReason

if TYPE_CHECKING:
    from collections.abc import Callable

NOW = 1_800_000_000.0


def _db(directory: str) -> sqlite3.Connection:
    path = str(Path(directory) / "o.sqlite")
    conn = sqlite3.connect(path, isolation_level=None)
    schema.migrate(conn, path)
    return conn


# ---------------------------------------------------------------- the number's key


@pytest.mark.parametrize(
    ("destination", "ton", "key"),
    [
        ("84912345678", 1, "84912345678"),
        ("+84912345678", 1, "84912345678"),
        ("0084912345678", 0, "84912345678"),
        ("0912345678", 2, "84912345678"),
        ("0912345678", 1, "84912345678"),  # a national number sent as international
        ("912345678", 2, "84912345678"),
        (" 84 912 345 678 ", 1, "84912345678"),
        ("ACME", 5, None),
        ("", 1, None),
    ],
)
def test_every_way_of_writing_a_number_finds_the_same_key(
    destination: str, ton: int, key: str | None
) -> None:
    assert opt_out_key(destination, ton, "84") == key


@given(st.from_regex(r"[1-9][0-9]{7,10}", fullmatch=True), st.sampled_from(["84", "1", "855"]))
def test_national_and_international_forms_agree(national: str, country: str) -> None:
    international = country + national
    forms = [
        (international, 1),
        ("+" + international, 1),
        ("00" + international, 0),
        ("0" + national, 2),
        ("0" + national, 0),
        (national, 2),
    ]
    assert {opt_out_key(d, ton, country) for d, ton in forms} == {international}


# ---------------------------------------------------------------- the store's rows


def test_rows_are_added_once_listed_counted_and_removed(tmp_path: Path) -> None:
    conn = _db(str(tmp_path))
    assert add_opt_outs(conn, [("849", ""), ("849", "acme"), ("849", "")], "cli", NOW) == 2
    assert add_opt_outs(conn, [("849", ""), ("848", "")], "mo:8055", NOW + 1) == 1
    assert opted_out(conn, ["849", "848", "847"]) == {"849": {"", "acme"}, "848": {""}}
    many = [f"85{n:03d}" for n in range(20)]  # past the one-by-one lookups: one statement
    assert opted_out(conn, [*many, "849"]) == {"849": {"", "acme"}}
    assert count_opt_outs(conn) == {"": 2, "acme": 1}
    rows = list_opt_outs(conn)
    assert [(r.msisdn, r.scope, r.source) for r in rows] == [
        ("848", "", "mo:8055"),
        ("849", "", "cli"),  # the first source and time are kept
        ("849", "acme", "cli"),
    ]
    assert [r.scope for r in list_opt_outs(conn, msisdn="849", scope="acme")] == ["acme"]
    assert remove_opt_outs(conn, ["849"], "acme") == 1
    assert remove_opt_outs(conn, ["849", "848"], None) == 2
    assert opted_out(conn, ["849", "848"]) == {}


# ---------------------------------------------------------------- admission

NUMBERS = ["84900000001", "84900000002", "84900000003"]
CHAIN = ("child", "parent")

message_strategy = st.tuples(
    st.sampled_from(NUMBERS), st.booleans(), st.one_of(st.none(), st.integers(1, 3))
)
row_strategy = st.tuples(st.sampled_from(NUMBERS), st.sampled_from(["", "child", "parent", "x"]))


def _message(number: str, checked: bool) -> NewMessage:
    return NewMessage(
        partner="child",
        source_addr="ACME",
        destination_addr=number,
        body=b"sale",
        opt_out_key=number if checked else None,
    )


@settings(max_examples=120, deadline=None)
@given(
    st.lists(message_strategy, min_size=1, max_size=15),
    st.lists(row_strategy, max_size=6),
    st.integers(0, 20),
)
def test_admission_refuses_exactly_the_opted_out_and_charges_only_the_rest(
    batch: list[tuple[str, bool, int | None]], rows: list[tuple[str, str]], limit: int
) -> None:
    """A checked message to a number listed for '' or one of its payers is refused
    OPTED_OUT, neither journaled nor charged; the others fare as if it had not been
    sent (the same batch without it, on a store without the list)."""
    listed: dict[str, set[str]] = {}
    for number, scope in rows:
        listed.setdefault(number, set()).add(scope)

    def blocked(number: str, checked: bool) -> bool:
        scopes = listed.get(number, set())
        return checked and bool(scopes & {"", *CHAIN})

    with tempfile.TemporaryDirectory() as tmp:
        for name in ("a", "b"):
            Path(tmp, name).mkdir()
        conn, reference = _db(tmp + "/a"), _db(tmp + "/b")
        for db in (conn, reference):
            order = NewOrder(partner="parent", kind=OrderKind.PREPAID, limit=limit)
            quota.create_order(db, order, NOW)
        add_opt_outs(conn, rows, "test", NOW)
        msgs = [_message(n, c) for n, c, _ in batch]
        parts = [p for _, _, p in batch]
        conn.execute("BEGIN")
        got = journal.admit(conn, JournalState(), msgs, parts, NOW, [CHAIN] * len(msgs))
        conn.execute("COMMIT")
        kept = [i for i, (n, c, _) in enumerate(batch) if not blocked(n, c)]
        reference.execute("BEGIN")
        expected = journal.admit(
            reference,
            JournalState(),
            [msgs[i] for i in kept],
            [parts[i] for i in kept],
            NOW,
            [CHAIN] * len(kept),
        )
        reference.execute("COMMIT")
        for i, (number, checked, _) in enumerate(batch):
            if blocked(number, checked):
                assert got[i] == QuotaRefusal(RefusalReason.OPTED_OUT)
        assert [got[i] for i in kept] == expected
        journaled = conn.execute("SELECT count(*) FROM mt_message").fetchone()[0]
        assert journaled == sum(isinstance(r, int) for r in got)
        sums = "SELECT reserved, spent FROM partner_order"
        assert conn.execute(sums).fetchall() == reference.execute(sums).fetchall()


# ---------------------------------------------------------------- the subscriber's MO

OPT_OUT = scenario(
    name="optout",
    handler="optout",
    commands={"stop": {"keywords": ["TC"]}, "start": {"keywords": ["NHANQC"]}},
    sender={"brandname": "ACME"},
)


async def test_tc_puts_the_sender_on_the_list_and_nhanqc_takes_it_off(tmp_path: Path) -> None:
    async with scenario_rig(tmp_path, OPT_OUT) as rig:
        [reply] = await rig.mo("tc")
        assert reply == "Ban da tu choi nhan tin quang cao. Soan NHANQC gui 8055 de nhan lai."
        assert rig.sent[0][1].source_addr == "8055"  # from the short code it was sent to
        rows = await rig.query("SELECT msisdn, scope, source FROM opt_out")
        assert rows == [(SUBSCRIBER, ALL_PARTNERS, "mo:8055")]
        assert await rig.mo("TC") == [f"So {SUBSCRIBER} da tu choi nhan tin quang cao truoc do."]
        assert await rig.mo("NHANQC") == [
            "Ban se nhan lai tin quang cao. Soan TC gui 8055 de tu choi."
        ]
        assert await rig.query("SELECT count(*) FROM opt_out") == [(0,)]
        [again] = await rig.mo("NHANQC")
        assert again.startswith(f"So {SUBSCRIBER} khong co")


async def test_a_national_sender_is_listed_in_international_digits_for_one_partner(
    tmp_path: Path,
) -> None:
    one_partner = scenario(
        name="optout",
        handler="optout",
        commands={"stop": {"keywords": ["TC"]}, "start": {"keywords": ["NHANQC"]}},
        settings={"partner": "acme", "country_code": "84"},
    )
    async with scenario_rig(tmp_path, one_partner) as rig:
        await rig.mo("TC", msisdn="0912345678")
        rows = await rig.query("SELECT msisdn, scope FROM opt_out")
        assert rows == [("84912345678", "acme")]


async def test_a_release_check_that_cannot_read_lets_the_messages_go() -> None:
    """Admission let them in; a broken read of the list must not stop the pipeline's
    release loop (nor hold the messages for ever)."""
    import sqlite3 as sqlite

    from smppgw.gateway.opt_out import refused_on_release

    async def broken(messages: object) -> set[int]:
        raise sqlite.OperationalError("disk I/O error")

    assert await refused_on_release([object()], broken) == set()  # type: ignore[list-item]
    assert await refused_on_release([], broken) == set()
    assert await refused_on_release([object()], None) == set()  # type: ignore[list-item]


class _Log:
    """Stands in for the daemon module's logger (structlog caches loggers on first use,
    so capturing them depends on what ran before in the process)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, dict[str, Any]]] = []

    def __getattr__(self, level: str) -> Callable[..., None]:
        return lambda event, **kw: self.calls.append((level, event, kw))


async def test_an_opt_out_scenario_for_an_unknown_partner_is_warned_of(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``settings.partner`` naming no partner (a typo) would list subscribers for
    nobody's marketing: the daemon says so at start (and at a reload)."""
    path = write_partner_config(tmp_path, sim_port=free_port(), server_port=free_port())
    (tmp_path / "scenarios").mkdir()
    for name, partner in (("ghost", "acme-typo"), ("acme", "acme"), ("all", None)):
        (tmp_path / "scenarios" / f"{name}.yaml").write_text(
            f"name: optout-{name}\nshort_codes: ['80{len(name)}{len(name)}']\nhandler: optout\n"
            "commands: {stop: {keywords: [TC]}, start: {keywords: [NHANQC]}}\n"
            f"settings: {{partner: {partner or 'null'}}}\n"
        )
    logged = _Log()
    monkeypatch.setattr(daemon_module, "log", logged)
    daemon = Daemon(load_config(path), path, handle_signals=False, grace=1.0)
    async with trio.open_nursery() as nursery:
        await nursery.start(daemon.run)
        assert await daemon.reload()
        daemon.request_stop()
    warned = [
        (kw["scenario"], kw["partner"]) for _, e, kw in logged.calls if "opt-out scenario" in e
    ]
    assert warned == [("optout-ghost", "acme-typo")] * 2
