"""An MO delivered again by the carrier is journaled once; the subscriber sending the
same text again later is a new MO (issue 6: exactly once, without eating real repeats)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from hypothesis import given
from hypothesis import strategies as st

from smppgw.gateway.inbound import mo_dedup_keys
from smppgw.protocol.pdus import DeliverSm
from smppgw.store import InboundKind, NewInbound, open_store

if TYPE_CHECKING:
    from pathlib import Path

MO = DeliverSm(source_addr="84912345678", destination_addr="8055", short_message=b"DIEM")


def _item(now: float, window: float = 120.0) -> NewInbound:
    key, previous = mo_dedup_keys(MO, now, window)
    return NewInbound(
        smsc="vt",
        dedup_key=key,
        kind=InboundKind.MO,
        source_addr=MO.source_addr,
        destination_addr=MO.destination_addr,
        body=MO.short_message,
        also_known_as=previous,
    )


async def _new(store: object, now: float, window: float = 120.0) -> bool:
    [result] = await store.journal_inbound([_item(now, window)])  # type: ignore[attr-defined]
    return bool(result.new)


async def test_redelivery_within_the_window_even_across_its_boundary(tmp_path: Path) -> None:
    async with open_store(tmp_path / "j.db") as store:
        assert await _new(store, 1199.0)  # just before a boundary (window 120: 1200)
        assert not await _new(store, 1201.0)  # the carrier again, two seconds later
        assert not await _new(store, 1300.0)


async def test_the_same_text_later_is_a_new_mo(tmp_path: Path) -> None:
    async with open_store(tmp_path / "j.db") as store:
        assert await _new(store, 1000.0)
        assert await _new(store, 1000.0 + 2 * 120.0 + 1)


async def test_window_zero_never_deduplicates(tmp_path: Path) -> None:
    async with open_store(tmp_path / "j.db") as store:
        assert await _new(store, 1000.0, window=0)
        assert await _new(store, 1000.0, window=0)


@given(st.floats(0, 1e9), st.floats(0, 120.0))
def test_a_redelivery_within_the_window_shares_a_key(now: float, later: float) -> None:
    first, _ = mo_dedup_keys(MO, now)
    again, previous = mo_dedup_keys(MO, now + later)
    assert first in (again, previous)
