"""An MO delivered again by the carrier is processed once; the subscriber sending the
same text again is a new MO (issue 6: exactly once, without eating real repeats).

A carrier redelivers an MO only when our deliver_sm_resp did not reach it: the bind
that took it broke, or the daemon died. So the same content is a redelivery only when
its first copy came on a bind that is no longer up, within the window.
"""

from __future__ import annotations

from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from carrier_links import AnsweredLink
from hypothesis import given
from hypothesis import strategies as st

from smppgw.gateway.inbound import mo_key
from smppgw.gateway.mt import MtPipeline
from smppgw.gateway.routing import PrefixRouter
from smppgw.net.carrier_inbound import CarrierInbound
from smppgw.protocol.pdus import DeliverSm
from smppgw.store import Durability, StoreConfig, open_store

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

MO = DeliverSm(source_addr="84912345678", destination_addr="8055", short_message=b"DIEM")


class _Settings:
    message_id_format: Any = None

    def __init__(self, window: float) -> None:
        self.mo_dedup_window = window


class _Rig:
    def __init__(self, inbound: CarrierInbound, clock: list[float]) -> None:
        self.inbound = inbound
        self.clock = clock
        self.sunk: list[int] = []

    async def deliver(self, link: AnsweredLink, at: float) -> bool:
        """Deliver MO on ``link`` at time ``at``; True if it was processed (new)."""
        self.clock[0] = at
        before = len(self.sunk)
        await self.inbound.handle(link, [MO])  # type: ignore[arg-type]
        assert link.answers[-1].command_status == 0  # answered either way
        return len(self.sunk) > before


@asynccontextmanager
async def _rig(tmp_path: Path, window: float = 120.0) -> AsyncIterator[_Rig]:
    clock = [0.0]
    config = StoreConfig(durability=Durability.PROCESS)
    async with open_store(tmp_path / "j.db", config=config) as store:
        pipeline = MtPipeline(store, PrefixRouter({}, default=["c"]), ["c"])
        rig: _Rig

        async def sink(inbound_id: int, pdu: DeliverSm, carrier: str) -> None:
            rig.sunk.append(inbound_id)

        inbound = CarrierInbound(
            "c", _Settings(window), pipeline, store, mo_sink=sink, clock=lambda: clock[0]
        )
        rig = _Rig(inbound, clock)
        yield rig


async def test_same_text_on_a_live_bind_is_a_new_mo(tmp_path: Path) -> None:
    async with _rig(tmp_path) as rig:
        link = AnsweredLink()
        assert await rig.deliver(link, 1000.0)
        assert await rig.deliver(link, 1001.0)  # "DIEM" again, a second later


async def test_redelivery_after_the_bind_broke_is_recognised(tmp_path: Path) -> None:
    async with _rig(tmp_path) as rig:
        first, second = AnsweredLink(), AnsweredLink()
        assert await rig.deliver(first, 1199.0)  # just before a window boundary (1200)
        first.closed = True  # our deliver_sm_resp may not have reached the carrier
        assert not await rig.deliver(second, 1203.0)  # the carrier delivers it again
        assert rig.inbound.counts["dup_in"] == 1
        assert await rig.deliver(second, 1203.5)  # and now the subscriber repeats it


async def test_the_same_text_after_the_carrier_read_our_answer_is_new(tmp_path: Path) -> None:
    """The bind broke after the carrier showed it read our answer to the first copy:
    it will not deliver that one again, so the same text is the subscriber's. A copy
    whose answer it may not have read is still looked for first."""
    async with _rig(tmp_path) as rig:
        first, second = AnsweredLink(), AnsweredLink()
        assert await rig.deliver(first, 1000.0)
        first.peer_reads()
        first.closed = True
        assert await rig.deliver(second, 1005.0)  # the answer was read: new
        assert await rig.deliver(second, 1006.0)  # again: the bind is up, new
        second.peer_reads()
        assert await rig.deliver(second, 1007.0)  # a third time, answer not read yet
        second.closed = True
        third = AnsweredLink()
        assert not await rig.deliver(third, 1009.0)  # the carrier's redelivery of 1007
        assert await rig.deliver(third, 1010.0)  # every earlier copy read or claimed
        assert rig.inbound.counts["dup_in"] == 1


async def test_the_same_text_after_the_window_is_new(tmp_path: Path) -> None:
    async with _rig(tmp_path) as rig:
        first, second = AnsweredLink(), AnsweredLink()
        assert await rig.deliver(first, 1000.0)
        first.closed = True
        assert await rig.deliver(second, 1000.0 + 2 * 120.0 + 1)


async def test_window_zero_never_deduplicates(tmp_path: Path) -> None:
    async with _rig(tmp_path, window=0) as rig:
        first, second = AnsweredLink(), AnsweredLink()
        assert await rig.deliver(first, 1000.0)
        first.closed = True
        assert await rig.deliver(second, 1000.5)


@given(st.floats(0, 1e9), st.floats(0, 120.0))
def test_a_redelivery_within_the_window_is_looked_up(now: float, later: float) -> None:
    first = mo_key(MO, now, "a")
    again = mo_key(MO, now + later, "b")
    assert first.prefixes[0] in again.prefixes
    assert first.key != again.key
