"""Store.admit: quota reservation and journaling in one transaction, per message."""

from __future__ import annotations

import tempfile
from pathlib import Path

import trio
from hypothesis import given, settings
from hypothesis import strategies as st

from smppgw.store import (
    Durability,
    NewMessage,
    NewOrder,
    OrderKind,
    QuotaRefusal,
    RefusalReason,
    StoreConfig,
    open_store,
)


def _msg(partner: str = "p1") -> NewMessage:
    return NewMessage(partner=partner, source_addr="ACME", destination_addr="849", body=b"x")


async def test_admit_reserves_and_journals_together(tmp_path: Path) -> None:
    config = StoreConfig(durability=Durability.PROCESS)
    async with open_store(tmp_path / "s.sqlite", config=config) as store:
        order = await store.create_order(NewOrder(partner="p1", kind=OrderKind.PREPAID, limit=5))
        result = await store.admit([_msg(), _msg(), _msg(), _msg("nobody")], [2, 2, 2, 1])
        assert isinstance(result[0], int)
        assert isinstance(result[1], int)
        assert result[2] == QuotaRefusal(RefusalReason.EXHAUSTED)
        assert result[3] == QuotaRefusal(RefusalReason.NO_ORDER)
        stored = await store.get_message(result[0])
        assert stored is not None
        assert stored.order_id == order
        assert stored.reservation_id is not None
        got = await store.get_order(order)
        assert got is not None
        assert got.reserved == 4
        # no quota asked: journaled without a reservation
        [free] = await store.admit([_msg("nobody")], [None])
        assert isinstance(free, int)


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(1, 4), min_size=1, max_size=40), st.integers(0, 30))
def test_concurrent_admits_never_overspend(parts: list[int], limit: int) -> None:
    async def scenario(path: Path) -> None:
        config = StoreConfig(durability=Durability.PROCESS)
        async with open_store(path, config=config) as store:
            order = await store.create_order(
                NewOrder(partner="p1", kind=OrderKind.PREPAID, limit=limit)
            )
            outcomes: list[tuple[int, int | QuotaRefusal]] = []

            async def one(n: int) -> None:
                [result] = await store.admit([_msg()], [n])
                outcomes.append((n, result))

            async with trio.open_nursery() as nursery:
                for n in parts:
                    nursery.start_soon(one, n)
            got = await store.get_order(order)
            assert got is not None
            accepted = sum(n for n, r in outcomes if isinstance(r, int))
            assert got.reserved == accepted <= limit
            # remaining only shrinks, so every refusal still holds at the end
            for n, result in outcomes:
                if isinstance(result, QuotaRefusal):
                    assert limit - got.reserved < n

    with tempfile.TemporaryDirectory() as tmp:
        trio.run(scenario, Path(tmp) / "s.sqlite")


async def test_sub_partner_without_order_is_paid_by_its_parent(tmp_path: Path) -> None:
    config = StoreConfig(durability=Durability.PROCESS)
    async with open_store(tmp_path / "s.sqlite", config=config) as store:
        parent = await store.create_order(
            NewOrder(partner="region", kind=OrderKind.PREPAID, limit=3)
        )
        chain = [("shop", "region")] * 4
        result = await store.admit([_msg("shop")] * 4, [1, 1, 1, 1], payers=chain)
        assert [isinstance(r, int) for r in result] == [True, True, True, False]
        assert result[3] == QuotaRefusal(RefusalReason.EXHAUSTED)
        got = await store.get_order(parent)
        assert got is not None
        assert got.reserved == 3
        # once the sub-partner has an order of its own, that one pays (and can refuse)
        own = await store.create_order(NewOrder(partner="shop", kind=OrderKind.PREPAID, limit=1))
        result = await store.admit([_msg("shop")] * 2, [1, 1], payers=[("shop", "region")] * 2)
        assert isinstance(result[0], int)
        assert result[1] == QuotaRefusal(RefusalReason.EXHAUSTED)
        mine = await store.get_order(own)
        assert mine is not None
        assert mine.reserved == 1
