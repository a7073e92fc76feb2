"""Reports add up exactly with the journal: random message fates through the real Store.

Each example journals messages (some paid from orders, some not) over four days, sends
them through the store's own operations to a random fate (held, at a carrier, requeued,
delivered, failed, expired, rejected, cancelled), then checks every report of the
middle two days against a model kept beside the store, and against raw counts of the
journal's rows.
"""

from __future__ import annotations

import tempfile
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import trio
from helpers.store_helpers import FakeClock
from hypothesis import given, settings
from hypothesis import strategies as st

from smppgw.reports.build import NO_ORDER, NOT_ROUTED, Period, build
from smppgw.store import (
    Durability,
    FinalOutcome,
    InboundKind,
    MessageState,
    NewInbound,
    NewMessage,
    NewOrder,
    OrderKind,
    Requeue,
    Reservation,
    StoreConfig,
    Submitted,
    open_store,
)
from smppgw.store.message_log import open_readonly

if TYPE_CHECKING:
    import sqlite3

    from smppgw.reports.tables import Table

FAST = StoreConfig(durability=Durability.PROCESS, quick_check=False)
DAY = 86_400
START = 1_800_000_000.0
PARTNERS = ("acme", "bank", "shop")
PRICE = {"acme": 1, "bank": 350, "shop": 1}  # bank is postpaid: 350 minor units a part
LIMIT = {"acme": 500, "bank": 350 * 500, "shop": 500}
PERIOD = Period(since=round((START + DAY) * 1000), until=round((START + 3 * DAY) * 1000))
CARRIER_FATES = ("submitted", "requeued", "delivered", "failed", "expired", "carrier_rejected")
FINAL_FATES = ("delivered", "failed", "expired", "carrier_rejected", "failed_early", "rejected")


@dataclass(frozen=True)
class Spec:
    partner: str
    source: str
    number: int
    parts: int
    paid: bool
    smsc: str | None
    fate: str
    carrier_parts: int
    charge: int
    day: int

    @property
    def state(self) -> str:
        return {
            "requeued": "accepted",
            "carrier_rejected": "rejected",
            "failed_early": "failed",
            "cancelled": "rejected",
        }.get(self.fate, self.fate)

    @property
    def at_carrier(self) -> bool:
        return self.fate in CARRIER_FATES and self.fate != "requeued"

    @property
    def route(self) -> str | None:
        return (self.smsc or "viettel") if self.fate in CARRIER_FATES else self.smsc

    @property
    def charged(self) -> int:
        return self.charge if self.paid and self.fate in FINAL_FATES else 0

    @property
    def in_period(self) -> bool:
        return self.day in (1, 2)


@st.composite
def specs(draw: st.DrawFn) -> Spec:
    parts = draw(st.integers(1, 3))
    fate = draw(st.sampled_from((*CARRIER_FATES, *FINAL_FATES, "accepted", "held", "cancelled")))
    return Spec(
        partner=draw(st.sampled_from(PARTNERS)),
        source=draw(st.sampled_from(("8055", "9090", "ACME"))),
        number=draw(st.integers(0, 4)),
        parts=parts,
        paid=draw(st.booleans()),
        smsc=draw(st.sampled_from(("viettel", "mobi", None))),
        fate=fate,
        carrier_parts=draw(st.integers(1, parts)),
        charge=draw(st.integers(0, parts)),
        day=draw(st.integers(0, 3)),
    )


async def _journal(path: Path, messages: list[Spec], mo: list[tuple[str, int]], spare: int) -> None:
    """Journal every spec and drive it to its fate through the Store API."""
    clock = FakeClock(START)
    async with open_store(path, config=FAST, clock=clock) as store:
        for partner in PARTNERS:
            kind = OrderKind.POSTPAID if partner == "bank" else OrderKind.PREPAID
            await store.create_order(
                NewOrder(partner=partner, kind=kind, limit=LIMIT[partner], unit_cost=PRICE[partner])
            )
        if spare:  # a reservation without a message: counts in the balance, not the period
            assert isinstance(await store.reserve_quota("acme", spare), Reservation)
        for i, s in enumerate(messages):
            clock.now = START + s.day * DAY + i
            msg = NewMessage(
                partner=s.partner,
                source_addr=s.source,
                destination_addr=f"84900000{s.number:03d}",
                body=b"hi",
                parts=tuple(b"p" for _ in range(s.parts)) if s.parts > 1 else (),
                smsc=s.smsc,
                held=s.fate == "held",
            )
            if s.paid:
                [mid] = await store.admit([msg], [s.parts])
                assert isinstance(mid, int)
            else:
                [mid] = await store.journal_accept([msg])
            clock.now += 0.5  # fates come later, possibly after the period: still counted
            if s.fate in CARRIER_FATES:
                route = s.route
                assert route is not None
                await store.mark_submitted(
                    [Submitted(mid, route, f"c{mid}-{n}", n) for n in range(s.carrier_parts)]
                )
            if s.fate == "requeued":
                await store.requeue([Requeue(mid, clock.now + 60, "lost response")])
            if s.fate == "cancelled":
                assert await store.cancel_queued(mid, MessageState.ACCEPTED, "cancelled")
            elif s.fate in FINAL_FATES:
                outcome = FinalOutcome(mid, MessageState(s.state), 1, None, s.charge)
                assert await store.mark_final([outcome]) == [True]
        for n, (code, day) in enumerate(mo):
            clock.now = START + day * DAY + n
            item = NewInbound(
                smsc="viettel",
                dedup_key=f"mo-{n}",
                kind=InboundKind.MO,
                source_addr="84911111111",
                destination_addr=code,
                body=b"DK",
            )
            await store.journal_inbound([item])


def _rows(table: Table) -> list[dict[str, Any]]:
    names = [c.name for c in table.columns]
    return [dict(zip(names, r, strict=True)) for r in table.rows]


def _total(table: Table) -> dict[str, Any]:
    assert table.total is not None
    return dict(zip([c.name for c in table.columns], table.total, strict=True))


def _expected(group: list[Spec]) -> dict[str, int]:
    """The figures of a group of messages by the model."""
    out: Counter[str] = Counter()
    for s in group:
        out["messages"] += 1
        out["parts"] += s.parts
        if s.at_carrier:
            out["at_carrier"] += 1
            out["at_carrier_parts"] += s.carrier_parts
        state = "pending" if s.state in ("accepted", "held", "submitted") else s.state
        out[state] += 1
        out[f"{state}_parts"] += s.parts
        out["charged_parts"] += s.charged
        out["charged_money"] += s.charged * PRICE[s.partner] if s.partner == "bank" else 0
    return dict(out)


def _check(row: dict[str, Any], group: list[Spec]) -> None:
    expected = _expected(group)
    for name in (
        "messages",
        "parts",
        "at_carrier",
        "at_carrier_parts",
        "delivered",
        "delivered_parts",
        "failed",
        "failed_parts",
        "expired",
        "expired_parts",
        "rejected",
        "rejected_parts",
        "pending",
        "pending_parts",
        "charged_parts",
        "charged_money",
    ):
        assert row[name] == expected.get(name, 0), (name, row, expected)
    settled = row["delivered"] + row["failed"] + row["expired"]
    assert row["delivery_rate"] == (None if settled == 0 else row["delivered"] / settled)


def _by(messages: list[Spec], key: Any) -> dict[Any, list[Spec]]:
    groups: dict[Any, list[Spec]] = defaultdict(list)
    for s in messages:
        groups[key(s)].append(s)
    return groups


def _check_reports(
    conn: sqlite3.Connection, messages: list[Spec], mo: list[tuple[str, int]], spare: int
) -> None:
    inside = [s for s in messages if s.in_period]

    # -- per partner: rows equal the model and the raw journal; the total is the sum
    [table] = build("partners", conn, PERIOD)
    rows = {r["partner"]: r for r in _rows(table)}
    groups = _by(inside, lambda s: s.partner)
    assert set(rows) == set(groups)
    for partner, group in groups.items():
        _check(rows[partner], group)
        raw = dict(
            conn.execute(
                "SELECT state, COUNT(*) FROM mt_message WHERE partner = ? AND created_at >= ?"
                " AND created_at < ? GROUP BY state",
                (partner, PERIOD.since, PERIOD.until),
            ).fetchall()
        )
        row = rows[partner]
        assert row["delivered"] == raw.get("delivered", 0)
        assert row["pending"] == sum(raw.get(s, 0) for s in ("accepted", "held", "submitted"))
        assert row["messages"] == sum(raw.values())
    total = _total(table)
    _check(total, inside)
    for name, value in total.items():
        if name not in ("partner", "delivery_rate"):
            assert value == sum(r[name] for r in rows.values()), name
    (raw_parts,) = conn.execute(
        "SELECT COALESCE(SUM(part_count), 0) FROM mt_message WHERE created_at >= ?"
        " AND created_at < ?",
        (PERIOD.since, PERIOD.until),
    ).fetchone()
    assert total["parts"] == raw_parts

    # -- per carrier and per short code
    [table] = build("carriers", conn, PERIOD)
    groups = _by(inside, lambda s: s.route or NOT_ROUTED)
    assert {r["carrier"]: r["messages"] for r in _rows(table)} == {
        k: len(v) for k, v in groups.items()
    }
    for r in _rows(table):
        _check(r, groups[r["carrier"]])
    _check(_total(table), inside)

    [table] = build("short-codes", conn, PERIOD)
    groups = _by(inside, lambda s: s.source)
    mo_counts = Counter(code for code, day in mo if day in (1, 2))
    rows = {r["short_code"]: r for r in _rows(table)}
    assert set(rows) == set(groups) | set(mo_counts)
    for code, r in rows.items():
        _check(r, groups.get(code, []))
        assert r["mo"] == mo_counts.get(code, 0)
    assert _total(table)["mo"] == sum(mo_counts.values())

    # -- per order: period figures, and the balance over all time
    [table] = build("orders", conn, PERIOD)
    rows = {r["order"]: r for r in _rows(table)}
    order_of = {p: i + 1 for i, p in enumerate(PARTNERS)}
    for partner, order_id in order_of.items():
        r = rows[order_of[partner]]
        _check(r, [s for s in inside if s.paid and s.partner == partner])
        mine = [s for s in messages if s.paid and s.partner == partner]
        price = PRICE[partner]
        reserved = sum(s.parts for s in mine if s.state in ("accepted", "held", "submitted"))
        reserved += spare if partner == "acme" else 0
        spent = sum(s.charged for s in mine)
        assert (r["reserved"], r["spent"]) == (reserved * price, spent * price)
        assert r["remaining"] == LIMIT[partner] - spent * price - reserved * price
        assert r["remaining_parts"] == r["remaining"] // price
        assert r["ledger"] == "ok"
        assert r["order"] == order_id
    unpaid = [s for s in inside if not s.paid]
    if unpaid:
        _check(rows[NO_ORDER], unpaid)
    else:
        assert NO_ORDER not in rows
    _check(_total(table), inside)

    # -- recipients: per partner and carrier, and numbers that always fail
    by_carrier, failing = build("recipients", conn, PERIOD)
    groups = _by(inside, lambda s: (s.partner, s.route or NOT_ROUTED))
    rows_rc = {(r["partner"], r["carrier"]): r for r in _rows(by_carrier)}
    assert set(rows_rc) == set(groups)
    for key, group in groups.items():
        r = rows_rc[key]
        assert r["numbers"] == len({s.number for s in group})
        expected = _expected(group)
        for name in ("messages", "delivered", "failed", "expired", "rejected", "pending"):
            assert r[name] == expected.get(name, 0)
    assert _total(by_carrier)["messages"] == len(inside)
    numbers = _by(inside, lambda s: (s.partner, f"84900000{s.number:03d}"))
    always = {
        key
        for key, group in numbers.items()
        if not any(s.state == "delivered" for s in group)
        and sum(s.state in ("failed", "expired") for s in group) >= PERIOD.min_failures
    }
    assert {(r["partner"], r["number"]) for r in _rows(failing)} == always


@settings(max_examples=100, deadline=None)
@given(
    messages=st.lists(specs(), max_size=25),
    mo=st.lists(
        st.tuples(st.sampled_from(("8055", "9090", "7777")), st.integers(0, 3)), max_size=6
    ),
    spare=st.integers(0, 3),
)
def test_reports_add_up_with_the_journal(
    messages: list[Spec], mo: list[tuple[str, int]], spare: int
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "j.db"
        trio.run(_journal, path, messages, mo, spare)
        conn = open_readonly(path)
        try:
            _check_reports(conn, messages, mo, spare)
        finally:
            conn.close()
