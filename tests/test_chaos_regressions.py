"""Bugs the chaos test (``test_chaos.py``) found, each reduced to a focused test.

1. A carrier receipt journaled (and so answered) but not yet applied when the daemon
   died is never applied. Found by seed 3444118826 (a message stuck in ``submitted``
   for ever, its quota reserved for ever, its partner never told; the receipt's
   ``inbound`` row never processed). At start-up ``replay_unprocessed_mo``
   (``app/scenario_service.py``) replays only MO rows, ``MtPipeline.recover`` only
   re-sends ``accepted`` messages, and the carrier will not deliver the receipt again
   (it had its ``deliver_sm_resp``; and a redelivery would be dropped as a duplicate by
   its dedup key). The test sets the journal up as the kill left it and starts the
   daemon on it. Fixed with this test: ``CarrierInbound.replay_unapplied``, called by
   the daemon at start-up.

   Still open, same symptom: the receipt's ``inbound`` row is marked processed
   (``CarrierInbound._on_deliveries``) in a write that may commit *before* the
   pipeline's flusher writes the final outcome it caused (``MtPipeline._flush_once``
   awaits mark_submitted, requeue, enqueue_receipts, mark_final one after another);
   a kill between the two commits loses the outcome and nothing replays it. Seen in a
   180 s run (seed 1760525681): receipt processed at 402.758, SIGKILL at 402.771, the
   message ``submitted`` for ever. A fix: hand the processed ids to the pipeline and
   mark them in ``_flush_once`` after ``mark_final``. Fixed that way
   (``MtPipeline.receipts_applied``); test below.

2. A message in parts whose part receipts straddle a restart never becomes final.
   Found by seed 2146357983: a 2-part message, the receipt of part 0 applied before a
   kill, the one of part 1 after the restart; the message stays ``submitted`` for ever
   (quota reserved, no partner receipt). ``MtPipeline.match_receipt`` keeps each part's
   final state only in memory (``_Tracked.finals``); after a restart (or an eviction
   past ``TRACKED_MAX``) it tracks the message afresh from the journal and waits for
   the receipt of part 0, which will never come again. A fix needs the parts' states
   from the journal (the processed receipts of the message's ``carrier_ref`` rows, an
   index on ``inbound`` to find them): not a small change, left to the pipeline's
   owner. Fixed: each part's final state is kept with its carrier reference (schema v7)
   and read back when the message is tracked afresh.

3. A message in parts of which only the first parts reached the carrier before a kill
   is never sent on. Found reading the journal of a chaos run: ``mark_submitted`` makes
   the message ``submitted`` at its first accepted part, and ``MtPipeline.recover``
   re-queues only ``accepted`` messages, so the parts not yet sent never go (stuck
   ``submitted``, quota reserved, no receipt). The chaos test flags it as "not
   drained" when a kill falls between two parts (milliseconds apart). A fix needs the
   sent parts back from the journal at recovery (``carrier_ref`` rows -> ``next_part``
   and ``carrier_ids``). Fixed: recovery reads the parts a carrier accepted and sends on
   from the first one that none did.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import trio
from carrier_links import AnsweredLink
from daemon_fixtures import free_port, write_config

from smppgw.app.config import load_config
from smppgw.app.daemon import Daemon
from smppgw.gateway.mt import MtPipeline
from smppgw.gateway.routing import PrefixRouter
from smppgw.protocol.receipt import MessageState as ReceiptState
from smppgw.store import InboundKind, NewInbound, NewMessage, Submitted, open_store

if TYPE_CHECKING:
    from pathlib import Path

RECEIPT = (
    b"id:F44FB sub:001 dlvrd:001 submit date:2611252330 done date:2611252330"
    b" stat:DELIVRD err:000 Text:hello"
)


async def _state(daemon: Daemon) -> tuple[str, object]:
    assert daemon.store is not None
    return await daemon.store.read(
        lambda c: (
            c.execute("SELECT state FROM mt_message").fetchone()[0],
            c.execute("SELECT processed_at FROM inbound").fetchone()[0],
        )
    )


async def test_a_receipt_journaled_before_a_kill_is_applied_after_the_restart(
    tmp_path: Path,
) -> None:
    config = write_config(tmp_path, sim_port=free_port())
    # What SIGKILL left: the message at the carrier (carrier id F44FB journaled), its
    # receipt journaled and answered, the daemon dead before it applied the receipt.
    async with open_store(tmp_path / "gw.sqlite") as store:
        [mid] = await store.journal_accept(
            [
                NewMessage(
                    partner="p1",
                    source_addr="P1",
                    destination_addr="84901234567",
                    body=b"hello",
                    registered_delivery=1,
                )
            ]
        )
        await store.mark_submitted([Submitted(mid, "sim", "F44FB", 0)])
        await store.journal_inbound(
            [
                NewInbound(
                    smsc="sim",
                    dedup_key="r:F44FB:2",
                    kind=InboundKind.RECEIPT,
                    source_addr="84901234567",
                    destination_addr="P1",
                    body=RECEIPT,
                    esm_class=0x04,
                    carrier_id="F44FB",
                )
            ]
        )
    daemon = Daemon(load_config(config), config, handle_signals=False)
    async with trio.open_nursery() as nursery:
        await nursery.start(daemon.run)
        try:
            for _ in range(80):
                if (await _state(daemon))[0] != "submitted":
                    break
                await trio.sleep(0.1)
            state, processed = await _state(daemon)
            assert state == "delivered"
            assert processed is not None
        finally:
            daemon.request_stop()


async def test_part_receipts_either_side_of_a_restart_make_the_message_final(
    tmp_path: Path,
) -> None:
    async with open_store(tmp_path / "gw.sqlite") as store:
        [mid] = await store.journal_accept(
            [
                NewMessage(
                    partner="p1",
                    source_addr="P1",
                    destination_addr="84901234567",
                    body=b"long",
                    parts=(b"\x05\x00\x03\x01\x02\x01one", b"\x05\x00\x03\x01\x02\x02two"),
                    registered_delivery=1,
                )
            ]
        )
        await store.mark_submitted([Submitted(mid, "sim", "F1", 0), Submitted(mid, "sim", "F2", 1)])
        # Run A applied part 0's receipt (in memory), then died.
        before = MtPipeline(store, PrefixRouter({}, default=["sim"]), ["sim"])
        async with trio.open_nursery() as nursery:
            await nursery.start(before.run)
            assert await before.match_receipt("sim", "F1", ReceiptState.DELIVERED, None)
            await before.flush()
            nursery.cancel_scope.cancel()
        # Run B: part 1's receipt.
        after = MtPipeline(store, PrefixRouter({}, default=["sim"]), ["sim"])
        async with trio.open_nursery() as nursery:
            await nursery.start(after.run)
            assert await after.match_receipt("sim", "F2", ReceiptState.DELIVERED, None)
            await after.flush()
            nursery.cancel_scope.cancel()
        message = await store.get_message(mid)
        assert message is not None
        assert message.state == "delivered"


async def test_recovery_sends_the_parts_not_sent_before_a_kill(tmp_path: Path) -> None:
    async with open_store(tmp_path / "gw.sqlite") as store:
        [mid] = await store.journal_accept(
            [
                NewMessage(
                    partner="p1",
                    source_addr="P1",
                    destination_addr="84901234567",
                    body=b"long",
                    parts=(b"\x05\x00\x03\x01\x02\x01one", b"\x05\x00\x03\x01\x02\x02two"),
                    registered_delivery=1,
                )
            ]
        )
        # Part 0 went out and its carrier id was journaled; the daemon died before part 1.
        await store.mark_submitted([Submitted(mid, "sim", "F1", 0)])
        pipeline = MtPipeline(store, PrefixRouter({}, default=["sim"]), ["sim"])
        async with trio.open_nursery() as nursery:
            await nursery.start(pipeline.run)
            recovered = await pipeline.recover()
            queued = pipeline.queues["sim"].get_nowait()
            nursery.cancel_scope.cancel()
        assert recovered == 1
        assert queued is not None
        assert queued.id == mid
        assert queued.next_part == 1


async def test_a_receipt_is_marked_processed_only_with_the_outcome_it_caused(
    tmp_path: Path,
) -> None:
    """Bug 1 above: the receipt's inbound row must not be processed while the final
    state it caused is still only in memory (a kill then would lose it for ever)."""
    from smppgw.net.carrier_inbound import CarrierInbound
    from smppgw.protocol.message_id import IdFormat
    from smppgw.protocol.pdus import DeliverSm
    from smppgw.protocol.receipt import Receipt, format_receipt

    class _Settings:
        message_id_format = IdFormat.STRING
        mo_dedup_window = 120.0

    async with open_store(tmp_path / "gw.sqlite") as store:
        [mid] = await store.journal_accept(
            [
                NewMessage(
                    partner="p",
                    source_addr="S",
                    destination_addr="84900000001",
                    body=b"x",
                    registered_delivery=1,
                )
            ]
        )
        await store.mark_submitted([Submitted(mid, "c", "C1")])
        pipeline = MtPipeline(store, PrefixRouter({}, default=["c"]), ["c"])  # not running
        inbound = CarrierInbound("c", _Settings(), pipeline, store)
        text = format_receipt(Receipt(message_id="C1", stat="DELIVRD", err="000"))
        receipt = DeliverSm(
            source_addr="84900000001",
            destination_addr="S",
            esm_class=0x04,
            short_message=text.encode(),
        )
        await inbound.handle(AnsweredLink(), [receipt])  # type: ignore[arg-type]

        async def now() -> tuple[object, object]:
            state = (await store.get_message(mid)).state  # type: ignore[union-attr]
            done = await store.read(
                lambda c: c.execute("SELECT processed_at FROM inbound").fetchone()[0]
            )
            return str(state), done

        state, done = await now()
        assert state == "submitted"  # the outcome waits for the pipeline's flush...
        assert done is None  # ...and so does the receipt's processed mark
        await pipeline.flush()
        state, done = await now()
        assert state == "delivered"
        assert done is not None
