"""What the MT pipeline keeps in memory for receipts, and when a message is final.

A message whose partner asked no receipt is not asked of the carrier either: it is final
("sent", its quota charged) once the carrier accepted its last part, and nothing waits
for it in memory. Messages that do wait for a receipt are bounded in number: a receipt
that never comes must not hold memory for ever.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

import trio

from smppgw.gateway import mt
from smppgw.gateway.mt import MtPipeline
from smppgw.gateway.outbound import OutboundMessage
from smppgw.gateway.routing import PrefixRouter
from smppgw.store import NewMessage, NewOrder, OrderKind, open_store

if TYPE_CHECKING:
    from pathlib import Path

    import pytest


def _message(n: int, receipts: int) -> NewMessage:
    return NewMessage(
        partner="acme",
        source_addr="ACME",
        destination_addr=f"8490{n:07d}",
        body=b"hello",
        registered_delivery=receipts,
    )


async def _send(store: object, pipeline: MtPipeline, count: int, receipts: int) -> list[int]:
    msgs = [_message(n, receipts) for n in range(count)]
    ids = await store.admit(msgs, [1] * count)  # type: ignore[attr-defined]
    for message_id, message in zip(ids, msgs, strict=True):
        outbound = OutboundMessage.of(message_id, message)
        outbound.carrier = "c"
        pipeline.part_accepted(outbound, 0, f"C{message_id}")
    await pipeline.flush()
    return list(ids)


async def test_no_receipt_asked_is_final_and_charged_at_the_carrier(tmp_path: Path) -> None:
    async with open_store(tmp_path / "j.db") as store, trio.open_nursery() as nursery:
        pipeline = MtPipeline(store, PrefixRouter({}, default=["c"]), ["c"])
        await nursery.start(pipeline.run)
        await store.create_order(NewOrder(partner="acme", kind=OrderKind.PREPAID, limit=100))
        ids = await _send(store, pipeline, 20, receipts=0)
        states = {str((await store.get_message(i)).state) for i in ids}  # type: ignore[union-attr]
        assert states == {"sent"}
        [order] = await store.orders("acme")
        assert (order.spent, order.reserved) == (20, 0)
        assert pipeline.statistics().in_flight_receipts == 0
        nursery.cancel_scope.cancel()


async def test_receipts_waited_for_are_bounded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(mt, "TRACKED_MAX", 5)
    async with open_store(tmp_path / "j.db") as store, trio.open_nursery() as nursery:
        pipeline = MtPipeline(store, PrefixRouter({}, default=["c"]), ["c"])
        await nursery.start(pipeline.run)
        await store.create_order(NewOrder(partner="acme", kind=OrderKind.PREPAID, limit=100))
        ids = await _send(store, pipeline, 12, receipts=1)
        assert pipeline.statistics().in_flight_receipts == 5
        # the first one was dropped from memory; its receipt still finds it (journal)
        from smppgw.protocol.receipt import MessageState as ReceiptState

        assert await pipeline.match_receipt("c", f"C{ids[0]}", ReceiptState.DELIVERED, None)
        await pipeline.flush()
        stored = await store.get_message(ids[0])
        assert stored is not None
        assert str(stored.state) == "delivered"
        nursery.cancel_scope.cancel()


async def test_a_receipt_that_never_comes_expires_the_message_after_the_timeout(
    tmp_path: Path,
) -> None:
    from helpers.store_helpers import FakeClock

    clock = FakeClock()
    async with open_store(tmp_path / "j.db", clock=clock) as store, trio.open_nursery() as n:
        pipeline = MtPipeline(store, PrefixRouter({}, default=["c"]), ["c"], clock=clock)
        pipeline.receipt_timeouts["c"] = 3600.0
        await n.start(pipeline.run)
        await store.create_order(NewOrder(partner="acme", kind=OrderKind.PREPAID, limit=100))
        [waiting, answered] = await _send(store, pipeline, 2, receipts=1)
        from smppgw.protocol.receipt import MessageState as ReceiptState

        assert await pipeline.match_receipt("c", f"C{answered}", ReceiptState.DELIVERED, None)
        await pipeline.flush()
        clock.advance(1800)
        assert await pipeline.expire_stale() == 0  # not yet
        clock.advance(1801)
        assert await pipeline.expire_stale() == 1
        await pipeline.flush()
        stored = await store.get_message(waiting)
        assert stored is not None
        assert str(stored.state) == "expired"
        assert stored.error == "no receipt from c within 1 h"
        [order] = await store.orders("acme")
        assert (order.spent, order.reserved) == (2, 0)  # charged: the carrier took it
        assert pipeline.statistics().in_flight_receipts == 0
        n.cancel_scope.cancel()


async def test_outcomes_that_come_one_by_one_are_written_together(tmp_path: Path) -> None:
    """The first outcome is written at once; those within ``flush_interval`` after a
    write wait for it to pass and go in one write, not a commit each."""
    async with open_store(tmp_path / "j.db") as store, trio.open_nursery() as nursery:
        pipeline = MtPipeline(store, PrefixRouter({}, default=["c"]), ["c"], flush_interval=1.0)
        writes: list[int] = []
        second_write = trio.Event()
        apply_outcomes = store.apply_outcomes

        async def counted(batch: mt.OutcomeBatch, **kw: bool) -> list[int | None]:
            writes.append(len(batch.submitted))
            result = await apply_outcomes(batch, **kw)
            if len(writes) == 2:
                second_write.set()
            return result

        store.apply_outcomes = counted  # type: ignore[method-assign]
        await nursery.start(pipeline.run)
        await store.create_order(NewOrder(partner="acme", kind=OrderKind.PREPAID, limit=100))
        msgs = [_message(n, receipts=0) for n in range(6)]
        ids = await store.admit(msgs, [1] * len(msgs))
        start = trio.current_time()
        for message_id, message in zip(ids, msgs, strict=True):
            outbound = OutboundMessage.of(message_id, message)
            outbound.carrier = "c"
            pipeline.part_accepted(outbound, 0, f"C{message_id}")
            await trio.sleep(0.01)
        assert writes == [1]  # the first, at once; the others wait for the interval
        with trio.fail_after(5):
            await second_write.wait()
        assert trio.current_time() - start >= 0.95
        assert writes == [1, 5]
        states = {str((await store.get_message(i)).state) for i in ids}  # type: ignore[union-attr]
        assert states == {"sent"}
        nursery.cancel_scope.cancel()


async def test_a_message_resumed_after_a_restart_counts_the_receipts_of_earlier_parts(
    tmp_path: Path,
) -> None:
    """Found by the chaos test: part 1 of 2 accepted and receipted, the daemon killed,
    part 2 sent by the next run and receipted. The next run must count the first part's
    journaled receipt, not wait for it again (the message stayed "submitted")."""
    from smppgw.protocol.receipt import MessageState as ReceiptState

    async with open_store(tmp_path / "j.db") as store:
        await store.create_order(NewOrder(partner="acme", kind=OrderKind.PREPAID, limit=100))
        message = replace(_message(0, receipts=1), parts=(b"first", b"second"))
        [mid] = await store.admit([message], [2])
        outbound = OutboundMessage.of(mid, message)
        outbound.carrier = "c"
        before = MtPipeline(store, PrefixRouter({}, default=["c"]), ["c"])
        async with trio.open_nursery() as nursery:
            await nursery.start(before.run)
            before.part_accepted(outbound, 0, "C0")
            assert await before.match_receipt("c", "C0", ReceiptState.DELIVERED, None)
            await before.flush()
            nursery.cancel_scope.cancel()
        after = MtPipeline(store, PrefixRouter({}, default=["c"]), ["c"])  # the next run
        async with trio.open_nursery() as nursery:
            await nursery.start(after.run)
            resumed = OutboundMessage.of(mid, message)
            resumed.carrier = "c"
            after.part_accepted(resumed, 1, "C1")
            assert await after.match_receipt("c", "C1", ReceiptState.DELIVERED, None)
            await after.flush()
            nursery.cancel_scope.cancel()
        stored = await store.get_message(mid)
        assert stored is not None
        assert str(stored.state) == "delivered"


async def test_a_part_accepted_without_an_id_makes_the_message_final_when_all_are_taken(
    tmp_path: Path,
) -> None:
    """Whichever part came back without a carrier id (the first or the last of two),
    the message is final ``sent`` once both are taken, charged for both parts, nothing
    left waiting for a receipt, and its partner owed an UNKNOWN receipt."""
    async with open_store(tmp_path / "j.db") as store, trio.open_nursery() as nursery:
        pipeline = MtPipeline(store, PrefixRouter({}, default=["c"]), ["c"])
        owed: list[tuple[int, object]] = []
        pipeline.on_receipts = owed.extend
        await nursery.start(pipeline.run)
        await store.create_order(NewOrder(partner="acme", kind=OrderKind.PREPAID, limit=100))
        two_parts = [replace(_message(n, 1), parts=(b"one", b"two")) for n in range(2)]
        ids = await store.admit(two_parts, [2, 2])
        for (first, second), message_id, message in zip(
            [("C1", ""), ("", "C2")], ids, two_parts, strict=True
        ):
            outbound = OutboundMessage.of(message_id, message)
            outbound.carrier = "c"
            pipeline.part_accepted(outbound, 0, first)
            assert pipeline.statistics().in_flight_receipts <= 1  # the first waits, if any
            pipeline.part_accepted(outbound, 1, second)
        await pipeline.flush()
        for message_id in ids:
            stored = await store.get_message(message_id)
            assert stored is not None
            assert (stored.state.value, stored.error) == (
                "sent",
                "c gave no message id: its receipt cannot be matched",
            )
        assert pipeline.statistics().in_flight_receipts == 0
        assert sorted(r.message_id for _, r in owed) == sorted(ids)  # type: ignore[attr-defined]
        assert {r.stat for _, r in owed} == {"UNKNOWN"}  # type: ignore[attr-defined]
        [order] = await store.orders("acme")
        assert (order.spent, order.reserved) == (4, 0)
        nursery.cancel_scope.cancel()
