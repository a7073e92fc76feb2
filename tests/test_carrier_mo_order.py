"""MO of one subscriber reach the sink in the order they came; others' run at once."""

from __future__ import annotations

import random
from typing import TYPE_CHECKING, Any

import trio
from carrier_links import AnsweredLink

from smppgw.gateway.mt import MtPipeline
from smppgw.gateway.routing import PrefixRouter
from smppgw.net.carrier_inbound import CarrierInbound
from smppgw.protocol.pdus import DeliverSm
from smppgw.store import Durability, StoreConfig, open_store

if TYPE_CHECKING:
    from pathlib import Path


class _Settings:
    message_id_format: Any = None
    mo_dedup_window = 120.0


async def test_one_senders_mo_keep_their_order_others_overlap(tmp_path: Path) -> None:
    seen: list[tuple[str, bytes]] = []
    running = 0
    most = 0
    rng = random.Random(3)

    async def sink(inbound_id: int, pdu: DeliverSm, carrier: str) -> None:
        nonlocal running, most
        running += 1
        most = max(most, running)
        await trio.sleep(rng.random() / 100)  # a step's commit takes a while
        seen.append((pdu.source_addr, pdu.short_message))
        running -= 1

    config = StoreConfig(durability=Durability.PROCESS)
    async with open_store(tmp_path / "j.db", config=config) as store:
        pipeline = MtPipeline(store, PrefixRouter({}, default=["c"]), ["c"])
        inbound = CarrierInbound("c", _Settings(), pipeline, store, mo_sink=sink)
        pdus = [
            DeliverSm(
                source_addr=f"8490000000{n % 3}",
                destination_addr="8055",
                short_message=f"STEP {n}".encode(),
            )
            for n in range(30)
        ]
        link = AnsweredLink()
        await inbound.handle(link, pdus)  # type: ignore[arg-type]
    assert len(link.answers) == 30
    assert all(a.command_status == 0 for a in link.answers)
    for sender in ("84900000000", "84900000001", "84900000002"):
        own = [int(text.split()[1]) for s, text in seen if s == sender]
        assert own == sorted(own)
        assert len(own) == 10
    assert most == 3  # the three subscribers' steps overlapped
