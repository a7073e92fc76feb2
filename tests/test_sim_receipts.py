"""Receipt scheduling and content, on the autojump clock (memory streams, no sockets)."""

from __future__ import annotations

import random
from datetime import datetime
from typing import TYPE_CHECKING

import pytest
import trio
import trio.testing
from hypothesis import given
from hypothesis import strategies as st

from smppgw.net.link import SmppLink
from smppgw.protocol.pdus import BindTransceiver, DeliverSm, Pdu, SubmitSm
from smppgw.protocol.receipt import MessageState, Receipt, format_receipt, parse_receipt, stat_word
from smppgw.protocol.session import SmppConnection, make_response
from smppgw.protocol.states import Role
from smppgw.protocol.tlv import Tag, tlv_octets
from smppgw.sim import SimConfig, SimulatedSmsc
from smppgw.sim.receipts import (
    DueQueue,
    OutcomePicker,
    PendingReceipt,
    build_receipt,
    wants_receipt,
)

if TYPE_CHECKING:
    from collections.abc import Sequence


async def test_due_queue_serves_many_items_from_one_task(
    autojump_clock: trio.testing.MockClock,
) -> None:
    queue: DueQueue[int] = DueQueue()
    seen: list[tuple[float, int]] = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(queue.run, lambda item: seen.append((trio.current_time(), item)))
        start = trio.current_time()
        for i in range(5000):
            queue.push(start + 10.0 + i * 0.001, i)
        queue.push(start + 1.0, -1)  # earlier than the head: wakes the task early
        await trio.sleep(20)
        assert seen[0] == (start + 1.0, -1)
        assert [item for _, item in seen[1:]] == list(range(5000))
        assert all(
            t == pytest.approx(start + 10.0 + i * 0.001) for i, (t, _) in enumerate(seen[1:])
        )
        assert len(queue) == 0
        nursery.cancel_scope.cancel()


def test_outcome_picker_weights_and_errors() -> None:
    picker = OutcomePicker({"DELIVRD": 3, "REJECTD": 1}, random.Random(5))
    picks = [picker.pick() for _ in range(4000)]
    share = picks.count(MessageState.DELIVERED) / len(picks)
    assert 0.7 < share < 0.8
    assert set(picks) == {MessageState.DELIVERED, MessageState.REJECTED}
    again = OutcomePicker({"DELIVRD": 3, "REJECTD": 1}, random.Random(5))
    assert [again.pick() for _ in range(4000)] == picks  # seeded: repeatable
    with pytest.raises(ValueError, match="unknown"):
        OutcomePicker({"LOST": 1}, random.Random())
    with pytest.raises(ValueError, match="above 0"):
        OutcomePicker({"DELIVRD": 0}, random.Random())


@pytest.mark.parametrize(
    ("rd", "state", "wanted"),
    [
        (0, MessageState.DELIVERED, False),
        (1, MessageState.DELIVERED, True),
        (1, MessageState.UNDELIVERABLE, True),
        (2, MessageState.DELIVERED, False),
        (2, MessageState.EXPIRED, True),
        (3, MessageState.REJECTED, False),
        (0x11, MessageState.DELIVERED, True),
    ],
)
def test_wants_receipt(rd: int, state: MessageState, wanted: bool) -> None:
    assert wants_receipt(rd, state) is wanted


def _pending(
    message_id: str, state: MessageState, text: str, submitted_at: datetime
) -> PendingReceipt:
    """A receipt owed to ``gw`` for a submit from 8055 (alphanumeric TON 5) to a
    mobile number."""
    return PendingReceipt(
        system_id="gw",
        message_id=message_id,
        state=state,
        source_addr="8055",
        source_addr_ton=5,
        source_addr_npi=0,
        destination_addr="84912345678",
        dest_addr_ton=1,
        dest_addr_npi=1,
        text=text,
        submitted_at=submitted_at,
    )


def test_build_receipt_expired() -> None:
    pending = _pending("F4240", MessageState.EXPIRED, "hello", datetime(2025, 1, 2, 3, 4))
    pdu = build_receipt(pending, datetime(2025, 1, 2, 3, 9))
    assert (pdu.source_addr, pdu.source_addr_ton, pdu.destination_addr) == (
        "84912345678",
        1,
        "8055",
    )
    assert pdu.short_message == (
        b"id:F4240 sub:001 dlvrd:000 submit date:2501020304 done date:2501020309 "
        b"stat:EXPIRED err:027 Text:hello"
    )
    assert tlv_octets(pdu.tlvs, Tag.NETWORK_ERROR_CODE) == b"\x03\x00\x1b"
    assert parse_receipt(pdu.short_message).state is MessageState.EXPIRED


async def test_receipt_delay_on_memory_streams(autojump_clock: trio.testing.MockClock) -> None:
    sim = SimulatedSmsc(SimConfig(receipt_delay=60.0, enquire_link_interval=None))
    delivered: list[tuple[float, DeliverSm]] = []

    async def handler(link: SmppLink, batch: Sequence[Pdu]) -> None:
        for pdu in batch:
            if isinstance(pdu, DeliverSm):
                delivered.append((trio.current_time(), pdu))
            link.respond(make_response(pdu))

    a, b = trio.testing.memory_stream_pair()
    esme = SmppLink(a, SmppConnection(Role.ESME, enquire_link_interval=None), handler)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(sim.run_receipts)
        nursery.start_soon(sim.handle_connection, b)
        await nursery.start(esme.run)
        await esme.request(BindTransceiver(system_id="smppgw", password="smppgw"))
        start = trio.current_time()
        for i in range(200):
            await esme.send_request(SubmitSm(destination_addr=str(i), registered_delivery=1))
        await trio.sleep(59)
        assert delivered == []
        await trio.sleep(2)
        assert len(delivered) == 200
        assert all(60.0 <= t - start < 60.5 for t, _ in delivered)
        assert sim.statistics().receipts_answered == 200
        nursery.cancel_scope.cancel()


#: The simulator's outcomes and the ``err:`` it reports for each.
_ERR_OF_STATE = {
    MessageState.DELIVERED: 0,
    MessageState.UNDELIVERABLE: 1,
    MessageState.EXPIRED: 27,
    MessageState.REJECTED: 2,
}


@given(
    message_id=st.text(st.characters(codec="ascii"), min_size=1, max_size=12),
    state=st.sampled_from(list(_ERR_OF_STATE)),
    text=st.text(st.characters(codec="latin-1"), max_size=30),
    submitted=st.datetimes(datetime(1995, 1, 1), datetime(2105, 1, 1)),
    done=st.datetimes(datetime(1995, 1, 1), datetime(2105, 1, 1)),
)
def test_receipt_text_is_what_format_receipt_writes(
    message_id: str, state: MessageState, text: str, submitted: datetime, done: datetime
) -> None:
    """The simulator writes its receipt text directly (for speed); it must say exactly
    what ``format_receipt`` would, and refuse (``ReceiptError``) what it refuses."""
    pending = _pending(message_id, state, text, submitted)
    try:
        expected = format_receipt(
            Receipt(
                message_id=message_id,
                sub=1,
                dlvrd=1 if state is MessageState.DELIVERED else 0,
                submit_date=submitted,
                done_date=done,
                stat=stat_word(state),
                err=f"{_ERR_OF_STATE[state]:03d}",
                text=text[:20],
            )
        )
    except ValueError as exc:
        with pytest.raises(type(exc)):
            build_receipt(pending, done)
        return
    got = build_receipt(pending, done).short_message
    assert got == expected.encode("ascii", "replace")[:254]
