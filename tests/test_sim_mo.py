"""MO injection: short and long (UDH, UCS2) messages, queueing, the generator."""

from __future__ import annotations

import random

import pytest
import trio
import trio.testing
from test_sim_smsc import connect, running

from smppgw.protocol.concat import Reassembler, incoming_part
from smppgw.protocol.pdus import BindReceiver, BindTransmitter
from smppgw.protocol.text import DC_DEFAULT, DC_UCS2, TextEncodeError, decode_text
from smppgw.sim import SimConfig
from smppgw.sim.mo import build_mo, generate_mo

LONG_VI = "Xin chào! Mã xác nhận của bạn là 482913. Đừng chia sẻ mã này với ai. " * 3


async def test_short_gsm_mo_reaches_a_bound_receiver() -> None:
    async with running() as sim, trio.open_nursery() as nursery:
        assert sim.port is not None
        esme, _ = await connect(nursery, sim.port)
        assert sim.inject_mo("84912345678", "8055", "TD ABC123") == 1
        (mo,) = await esme.wait_for(1)
        assert (mo.source_addr, mo.destination_addr, mo.esm_class) == ("84912345678", "8055", 0)
        assert mo.data_coding == DC_DEFAULT
        assert decode_text(mo.short_message, mo.data_coding) == "TD ABC123"
        await trio.sleep(0.05)
        assert sim.statistics().mo_answered == 1
        assert sim.mos[0].parts == 1
        nursery.cancel_scope.cancel()


async def test_long_ucs2_mo_arrives_as_udh_parts_that_reassemble() -> None:
    async with running() as sim, trio.open_nursery() as nursery:
        assert sim.port is not None
        esme, _ = await connect(nursery, sim.port, BindReceiver)
        parts = sim.inject_mo("84912345678", "8055", LONG_VI)
        assert parts >= 3
        delivered = await esme.wait_for(parts)
        assert all(d.esm_class == 0x40 and d.data_coding == DC_UCS2 for d in delivered)
        reassembler = Reassembler()
        whole = []
        for pdu in reversed(delivered):  # any order will do
            part = incoming_part(
                pdu.source_addr, pdu.destination_addr, pdu.short_message, udhi=True
            )
            done = reassembler.add(part, 0.0)
            if done is not None:
                whole.append(done)
        assert len(whole) == 1
        assert whole[0].total == parts
        assert decode_text(whole[0].payload, DC_UCS2) == LONG_VI
        nursery.cancel_scope.cancel()


async def test_mo_is_queued_until_a_receiver_binds_and_not_sent_to_a_transmitter() -> None:
    async with running(SimConfig()) as sim, trio.open_nursery() as nursery:
        assert sim.port is not None
        tx, _ = await connect(nursery, sim.port, BindTransmitter)
        sim.inject_mo("84912345678", "8055", "hello", system_id="smppgw")
        await trio.sleep(0.05)
        assert not tx.delivered
        assert sim.statistics().queued == 1
        rx, _ = await connect(nursery, sim.port, BindReceiver)
        (mo,) = await rx.wait_for(1)
        assert mo.short_message == b"hello"
        nursery.cancel_scope.cancel()


def test_build_mo_with_a_fixed_data_coding() -> None:
    (pdu,) = build_mo("1", "2", "abc", data_coding=DC_UCS2)
    assert pdu.short_message == "abc".encode("utf-16-be")
    with pytest.raises(TextEncodeError):
        build_mo("1", "2", "日本", data_coding=DC_DEFAULT)
    long = build_mo("1", "2", "x" * 300, reference=513)
    assert [p.short_message[:6] for p in long] == [bytes((5, 0, 3, 1, 2, n)) for n in (1, 2)]


async def test_generator_paces_injections(autojump_clock: trio.testing.MockClock) -> None:
    calls: list[tuple[float, str, str, str]] = []

    def inject(source: str, destination: str, text: str) -> None:
        calls.append((trio.current_time(), source, destination, text))

    start = trio.current_time()
    sent = await generate_mo(
        inject,
        rate=10,
        count=5,
        sources=["a", "b"],
        destinations=["8055"],
        texts=["one", "two"],
        rng=random.Random(1),
    )
    assert sent == 5
    assert [round(t - start, 3) for t, *_ in calls] == [0.0, 0.1, 0.2, 0.3, 0.4]
    assert {c[1] for c in calls} <= {"a", "b"}
    with pytest.raises(ValueError, match="rate"):
        await generate_mo(inject, rate=0, count=1, sources=["a"], destinations=["b"], texts=["c"])
