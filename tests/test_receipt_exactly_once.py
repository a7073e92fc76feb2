"""A partner gets one receipt per message, however the receipt reached us.

Found by the chaos test (seed 454968667): after a restart, receipts that one session of
one partner answered twice or three times. Three ways to get there, one test each:

- the pipeline wrote its outcomes in several commits; a kill after the final state and
  the partner receipt, before the carrier receipt was marked processed, made the replay
  at start make the message final (and queue its receipt) a second time;
- two copies of a carrier receipt for the same message applied at once (a replay and a
  carrier's repeat on another bind) both rebuilt the message from the journal and both
  made it final;
- the partner's deliverer read a receipt from the outbox and sent it while the flush
  that journaled it was still finishing; the flush then handed the same receipt over
  from memory, and it went out again (or: one acknowledged while the read ran).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import trio

from smppgw.gateway.mt import MtPipeline
from smppgw.gateway.routing import PrefixRouter
from smppgw.net.partner_delivery import ReceiptDelivery
from smppgw.protocol.codec import decode_pdu, encode_pdu
from smppgw.protocol.pdus import DeliverSm, Pdu
from smppgw.protocol.receipt import MessageState as ReceiptState
from smppgw.protocol.session import make_response
from smppgw.store import (
    FinalOutcome,
    MessageState,
    NewMessage,
    NewReceipt,
    OutcomeBatch,
    Store,
    Submitted,
    open_store,
)

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from smppgw.store import PendingReceipt


def _message(n: int) -> NewMessage:
    return NewMessage(
        partner="p1",
        source_addr="P1",
        destination_addr=f"8490{n:07d}",
        body=b"hello",
        registered_delivery=1,
    )


def _receipt(message_id: int) -> NewReceipt:
    pdu = DeliverSm(source_addr="8490", destination_addr="P1", esm_class=0x04)
    return NewReceipt(
        partner="p1", message_id=message_id, stat="DELIVRD", err=0, body=encode_pdu(pdu)
    )


async def _submitted(store: Store, count: int) -> list[int]:
    ids = await store.journal_accept([_message(n) for n in range(count)])
    await store.mark_submitted([Submitted(i, "sim", f"C{i}", 0) for i in ids])
    return list(ids)


async def test_only_the_outcome_that_makes_a_message_final_queues_a_receipt(
    tmp_path: Path,
) -> None:
    async with open_store(tmp_path / "j.db") as store:
        [mid] = await _submitted(store, 1)
        delivered = FinalOutcome(mid, MessageState.DELIVERED, None, None, charge_parts=1)
        failed = FinalOutcome(mid, MessageState.FAILED, None, None, charge_parts=1)
        first = await store.apply_outcomes(
            OutcomeBatch(finals=[delivered, failed], receipts=[_receipt(mid), _receipt(mid)])
        )
        assert first[0] is not None
        assert first[1] is None
        again = await store.apply_outcomes(
            OutcomeBatch(finals=[delivered], receipts=[_receipt(mid)])
        )
        assert again == [None]
        assert [r.id for r in await store.pending_receipts("p1")] == [first[0]]
        stored = await store.get_message(mid)
        assert stored is not None
        assert stored.state == MessageState.DELIVERED


async def test_a_receipt_replayed_for_a_message_final_in_the_journal_queues_nothing(
    tmp_path: Path,
) -> None:
    async with open_store(tmp_path / "j.db") as store:
        [mid] = await _submitted(store, 1)
        before = MtPipeline(store, PrefixRouter({}, default=["sim"]), ["sim"])
        async with trio.open_nursery() as nursery:
            await nursery.start(before.run)
            assert await before.match_receipt("sim", f"C{mid}", ReceiptState.DELIVERED, None)
            await before.flush()
            nursery.cancel_scope.cancel()
        # A new run replays the same carrier receipt (its inbound row left unprocessed).
        after = MtPipeline(store, PrefixRouter({}, default=["sim"]), ["sim"])
        async with trio.open_nursery() as nursery:
            await nursery.start(after.run)
            assert await after.match_receipt("sim", f"C{mid}", ReceiptState.DELIVERED, None)
            await after.flush()
            nursery.cancel_scope.cancel()
        assert len(await store.pending_receipts("p1")) == 1


async def test_copies_of_a_receipt_applied_at_once_make_one_final(tmp_path: Path) -> None:
    async with open_store(tmp_path / "j.db") as store:
        ids = await _submitted(store, 5)
        # A fresh pipeline (a restart): nothing in memory, every receipt reads the journal.
        pipeline = MtPipeline(store, PrefixRouter({}, default=["sim"]), ["sim"])
        async with trio.open_nursery() as nursery:
            await nursery.start(pipeline.run)
            async with trio.open_nursery() as copies:
                for mid in ids:
                    for _ in range(3):
                        copies.start_soon(
                            pipeline.match_receipt, "sim", f"C{mid}", ReceiptState.DELIVERED, None
                        )
            await pipeline.flush()
            nursery.cancel_scope.cancel()
        owed = [r.message_id for r in await store.pending_receipts("p1")]
        assert sorted(owed) == ids  # type: ignore[type-var]


async def test_outbox_ids_are_never_reused(tmp_path: Path) -> None:
    """The deliverer's "read up to" mark relies on it; SQLite without AUTOINCREMENT
    gives a deleted last row's id to the next row (the soak test lost 6 receipts so)."""
    async with open_store(tmp_path / "j.db") as store:
        [mid] = await _submitted(store, 1)
        [first] = await store.enqueue_receipts([_receipt(mid)])
        assert await store.ack_receipts([first]) == 1
        [second] = await store.enqueue_receipts([_receipt(mid)])
        assert second > first


class _Link:
    """A partner's receiver link that keeps each deliver_sm until the test answers it."""

    closed = False
    window_free = True

    def __init__(self) -> None:
        self.sent: list[tuple[Pdu, Callable[[Pdu, Pdu | BaseException], None]]] = []

    async def send_encoded_request(
        self, data: bytes, callback: Callable[[Pdu, Pdu | BaseException], None]
    ) -> Pdu:
        pdu = decode_pdu(data)
        self.sent.append((pdu, callback))
        return pdu

    def answer_all(self) -> None:
        for pdu, callback in self.sent:
            callback(pdu, make_response(pdu))


class _SlowOutbox:
    """The store, with outbox reads that return only when the test lets them."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self.hold: trio.Event | None = None
        self.reading = trio.Event()

    async def pending_receipts(self, partner: str, limit: int = 100) -> list[PendingReceipt]:
        rows = await self._store.pending_receipts(partner, limit)
        if self.hold is not None:
            self.reading.set()
            await self.hold.wait()
        return rows

    async def ack_receipts(self, ids: list[int]) -> int:
        return await self._store.ack_receipts(ids)


async def _until(condition: Callable[[], bool]) -> None:
    for _ in range(500):
        if condition():
            return
        await trio.sleep(0.01)
    raise AssertionError("not within 5 s")


async def test_a_receipt_read_from_the_outbox_is_not_handed_over_again(tmp_path: Path) -> None:
    async with open_store(tmp_path / "j.db") as store, trio.open_nursery() as nursery:
        [mid] = await _submitted(store, 1)
        [rid] = await store.enqueue_receipts([_receipt(mid)])
        delivery = ReceiptDelivery(store, on_sent=lambda *_: None)
        delivery.start(nursery)
        link = _Link()
        delivery.receiver_bound("p1", link)  # type: ignore[arg-type]
        await _until(lambda: len(link.sent) == 1)  # read from the outbox
        delivery.queued([(rid, _receipt(mid))])  # the flush that journaled it ends
        link.answer_all()
        await _until(lambda: delivery.acked == 1)
        delivery.queued([(rid, _receipt(mid))])  # even after its acknowledgement
        await trio.sleep(0.1)
        assert len(link.sent) == 1
        nursery.cancel_scope.cancel()


async def test_a_receipt_acknowledged_while_the_outbox_is_read_is_not_sent_again(
    tmp_path: Path,
) -> None:
    async with open_store(tmp_path / "j.db") as store, trio.open_nursery() as nursery:
        [mid] = await _submitted(store, 1)
        [rid] = await store.enqueue_receipts([_receipt(mid)])
        outbox = _SlowOutbox(store)
        delivery = ReceiptDelivery(outbox, on_sent=lambda *_: None)  # type: ignore[arg-type]
        delivery.start(nursery)
        link = _Link()
        delivery.receiver_bound("p1", link)  # type: ignore[arg-type]
        await _until(lambda: len(link.sent) == 1)
        # A second bind asks for the outbox again; that read sees the receipt unacknowledged
        # and is held while the partner's answer to the first copy is written.
        outbox.hold = trio.Event()
        delivery.receiver_bound("p1", _Link())  # type: ignore[arg-type]
        await outbox.reading.wait()
        link.answer_all()
        await _until(lambda: delivery.acked == 1)
        assert await store.pending_receipts("p1") == []
        outbox.hold.set()
        await trio.sleep(0.1)
        assert delivery.sent == 1, f"receipt {rid} sent {delivery.sent} times"
        nursery.cancel_scope.cancel()
