"""Orders and the quota ledger: exact counts, no over-spending under concurrency."""

from __future__ import annotations

import sqlite3
import tempfile
from pathlib import Path

import pytest
import trio
from helpers.store_helpers import FakeClock, msg
from hypothesis import given, settings
from hypothesis import strategies as st

from smppgw.store import (
    Durability,
    FinalOutcome,
    MessageState,
    NewOrder,
    OrderKind,
    QuotaRefusal,
    RefusalReason,
    Reservation,
    StoreConfig,
    open_store,
)

FAST = StoreConfig(durability=Durability.PROCESS, quick_check=False)


async def test_prepaid_reserve_settle_exact(tmp_path: Path) -> None:
    clock = FakeClock()
    async with open_store(tmp_path / "j.db", clock=clock, config=FAST) as store:
        order = await store.create_order(NewOrder(partner="acme", kind=OrderKind.PREPAID, limit=10))
        r1 = await store.reserve_quota("acme", 4)
        r2 = await store.reserve_quota("acme", 5)
        assert isinstance(r1, Reservation)
        assert isinstance(r2, Reservation)
        assert (r1.order_id, r1.parts, r1.amount) == (order, 4, 4)
        assert await store.reserve_quota("acme", 2) == QuotaRefusal(RefusalReason.EXHAUSTED)
        assert await store.reserve_quota("nobody", 1) == QuotaRefusal(RefusalReason.NO_ORDER)

        s1 = await store.settle_quota(r1.reservation_id, 3)  # one part failed: released
        assert (s1.charged, s1.released, s1.repeated) == (3, 1, False)
        again = await store.settle_quota(r1.reservation_id, 4)
        assert (again.charged, again.released, again.repeated) == (3, 1, True)
        state = await store.get_order(order)
        assert state is not None
        assert (state.reserved, state.spent, state.remaining) == (5, 3, 2)
        assert isinstance(await store.reserve_quota("acme", 2), Reservation)
        with pytest.raises(ValueError, match="charge 9 parts"):
            await store.settle_quota(r2.reservation_id, 9)
        with pytest.raises(KeyError):
            await store.settle_quota(999, 0)
        with pytest.raises(ValueError, match="at least one"):
            await store.reserve_quota("acme", 0)


async def test_postpaid_counts_money(tmp_path: Path) -> None:
    async with open_store(tmp_path / "j.db", config=FAST) as store:
        await store.create_order(
            NewOrder(partner="bank", kind=OrderKind.POSTPAID, limit=1000, unit_cost=350)
        )
        r = await store.reserve_quota("bank", 2)
        assert isinstance(r, Reservation)
        assert r.amount == 700
        assert await store.reserve_quota("bank", 1) == QuotaRefusal(RefusalReason.EXHAUSTED)
        settled = await store.settle_quota(r.reservation_id, 1)
        assert (settled.charged, settled.released) == (350, 350)
        [order] = await store.orders("bank")
        assert (order.spent, order.reserved, order.remaining) == (350, 0, 650)
        with pytest.raises(ValueError, match="unit cost is 1"):
            await store.create_order(
                NewOrder(partner="x", kind=OrderKind.PREPAID, limit=5, unit_cost=2)
            )


async def test_active_window_and_order_choice(tmp_path: Path) -> None:
    clock = FakeClock()
    now = clock.now
    async with open_store(tmp_path / "j.db", clock=clock, config=FAST) as store:
        late = await store.create_order(
            NewOrder(partner="p", kind=OrderKind.PREPAID, limit=5, expires_at=now + 100)
        )
        soon = await store.create_order(
            NewOrder(partner="p", kind=OrderKind.PREPAID, limit=5, expires_at=now + 10)
        )
        await store.create_order(
            NewOrder(partner="p", kind=OrderKind.PREPAID, limit=5, starts_at=now + 50)
        )
        r = await store.reserve_quota("p", 1)
        assert isinstance(r, Reservation)
        assert r.order_id == soon  # earliest expiry pays first
        named = await store.reserve_quota("p", 1, order_id=late)
        assert isinstance(named, Reservation)
        assert named.order_id == late
        clock.advance(200)  # both expired, the future one started
        r3 = await store.reserve_quota("p", 5)
        assert isinstance(r3, Reservation)
        assert r3.order_id not in (late, soon)
        assert await store.reserve_quota("p", 1, order_id=late) == QuotaRefusal(
            RefusalReason.NO_ORDER
        )


async def test_final_outcome_settles_atomically_and_orphans_are_released(
    tmp_path: Path,
) -> None:
    path = tmp_path / "j.db"
    async with open_store(path, config=FAST) as store:
        order = await store.create_order(NewOrder(partner="acme", kind=OrderKind.PREPAID, limit=9))
        used = await store.reserve_quota("acme", 2)
        orphan = await store.reserve_quota("acme", 3)  # "crash" before journaling it
        assert isinstance(used, Reservation)
        assert isinstance(orphan, Reservation)
        [mid] = await store.journal_accept(
            [msg(1, order_id=order, reservation_id=used.reservation_id)]
        )
        outcome = FinalOutcome(mid, MessageState.DELIVERED, 0, charge_parts=2)
        assert await store.mark_final([outcome, outcome]) == [True, False]
        state = await store.get_order(order)
        assert state is not None
        assert (state.spent, state.reserved) == (2, 3)
    async with open_store(path, config=FAST) as store:
        recovery = await store.recover()
        assert recovery.released_reservations == 1
        state = await store.get_order(order)
        assert state is not None
        assert (state.spent, state.reserved, state.remaining) == (2, 0, 7)


# ------------------------------------------------------------------ property

_ops = st.lists(
    st.one_of(
        st.tuples(st.just("reserve"), st.integers(1, 4)),
        st.tuples(st.just("settle"), st.integers(0, 4)),
        st.tuples(st.just("yield"), st.integers(0, 3)),
    ),
    max_size=12,
)


@settings(max_examples=40, deadline=None)
@given(
    limit=st.integers(0, 25),
    unit_cost=st.sampled_from([1, 1, 7]),
    tasks=st.lists(_ops, min_size=2, max_size=6),
)
def test_concurrent_reserve_settle_never_overspends(
    limit: int, unit_cost: int, tasks: list[list[tuple[str, int]]]
) -> None:
    kind = OrderKind.PREPAID if unit_cost == 1 else OrderKind.POSTPAID
    charged_total = 0
    settled_amounts = 0
    granted: list[Reservation] = []

    async def main(path: Path) -> None:
        async with open_store(path, config=FAST) as store:
            order = await store.create_order(
                NewOrder(partner="p", kind=kind, limit=limit * unit_cost, unit_cost=unit_cost)
            )

            async def worker(ops: list[tuple[str, int]]) -> None:
                nonlocal charged_total, settled_amounts
                mine: list[Reservation] = []
                for op, arg in ops:
                    if op == "reserve":
                        result = await store.reserve_quota("p", arg)
                        if isinstance(result, Reservation):
                            mine.append(result)
                            granted.append(result)
                    elif op == "settle" and mine:
                        r = mine.pop()
                        settlement = await store.settle_quota(r.reservation_id, min(arg, r.parts))
                        charged_total += settlement.charged
                        settled_amounts += r.amount
                    else:
                        for _ in range(arg):
                            await trio.lowlevel.checkpoint()

            async with trio.open_nursery() as nursery:
                for ops in tasks:
                    nursery.start_soon(worker, ops)
            state = await store.get_order(order)
            assert state is not None
            assert state.spent == charged_total
            assert state.spent + state.reserved <= state.limit
            outstanding = await store.read(
                lambda c: c.execute(
                    "SELECT COALESCE(SUM(amount), 0) FROM quota_ledger WHERE state = 'reserved'"
                ).fetchone()[0]
            )
            assert state.reserved == outstanding
            assert state.remaining == state.limit - state.reserved - state.spent
            # every grant is either still held or settled: nothing leaked, nothing invented
            assert sum(r.amount for r in granted) == state.reserved + settled_amounts

    with tempfile.TemporaryDirectory() as tmp:
        trio.run(main, Path(tmp) / "q.db")
    assert charged_total <= limit * unit_cost


def test_check_constraint_is_the_last_line(tmp_path: Path) -> None:
    """Even SQL that bypasses ``reserve`` cannot push an order over its limit."""
    from smppgw.store.schema import migrate

    conn = sqlite3.connect(tmp_path / "x.db", isolation_level=None)
    migrate(conn, "x.db")
    conn.execute(
        "INSERT INTO partner_order (partner, kind, quota_limit, created_at)"
        " VALUES ('p', 'prepaid', 3, 0)"
    )
    with pytest.raises(sqlite3.IntegrityError):
        conn.execute("UPDATE partner_order SET reserved = 4")
    conn.close()
