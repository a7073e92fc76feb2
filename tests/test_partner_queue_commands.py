"""The pieces under cancel_sm and replace_sm: taking a message out of a carrier queue,
and the journal's conditional cancel and replace with their quota effects."""

from __future__ import annotations

from dataclasses import replace
from types import SimpleNamespace
from typing import TYPE_CHECKING, cast

import trio
from hypothesis import given
from hypothesis import strategies as st

from smppgw.gateway.admission import Admission, Admitted, Refused
from smppgw.gateway.mt import MtPipeline
from smppgw.gateway.outbound import CarrierQueue, OutboundMessage
from smppgw.gateway.routing import PrefixRouter
from smppgw.protocol.pdus import SubmitSm
from smppgw.protocol.status import CommandStatus as S
from smppgw.store import MessageState, NewMessage, NewOrder, OrderKind, QuotaRefusal, open_store

if TYPE_CHECKING:
    from pathlib import Path

    from smppgw.store import StoredMessage

MSG = NewMessage(partner="acme", source_addr="ACME", destination_addr="8491", body=b"one")


def _outbound(message_id: int, **kw: object) -> OutboundMessage:
    message = OutboundMessage.of(message_id, MSG)
    for name, value in kw.items():
        setattr(message, name, value)
    return message


def test_queue_remove_takes_only_untouched_messages() -> None:
    queue = CarrierQueue("c1")
    queue.put(_outbound(1))
    queue.put(_outbound(2, next_part=1))  # one part already at the carrier
    queue.put(_outbound(3, attempts=1))  # tried once: the carrier may hold a copy
    queue.put(_outbound(4, priority=1))
    assert queue.remove(2) is None
    assert queue.remove(3) is None
    assert queue.remove(99) is None
    removed = queue.remove(4)
    assert removed is not None
    assert removed.id == 4
    assert [m.id for m in queue.drain()] == [1, 2, 3]


@given(
    st.lists(st.tuples(st.booleans(), st.booleans()), max_size=30),
    st.sets(st.integers(0, 35), max_size=12),
)
def test_queue_remove_many_takes_the_untouched_ones_and_keeps_the_order(
    shapes: list[tuple[bool, bool]], wanted: set[int]
) -> None:
    """Against a list: the untouched messages among ``wanted`` come out, the rest stay
    in the order a sender would take them (transactional lane first)."""
    queue = CarrierQueue("c1")
    messages = [
        _outbound(i, priority=int(urgent), attempts=int(tried))
        for i, (urgent, tried) in enumerate(shapes)
    ]
    for message in messages:
        queue.put(message)
    taken = queue.remove_many(wanted)
    assert set(taken) == {m.id for m in messages if m.id in wanted and m.untouched}
    order = [m for m in messages if m.lane == 1] + [m for m in messages if m.lane == 0]
    assert [m.id for m in queue.drain()] == [m.id for m in order if m.id not in taken]


async def test_every_waiting_sender_gets_messages_not_only_the_last_one() -> None:
    """A carrier's binds each wait in ``get`` when the queue runs dry; every one of them
    must wake for the next messages (each making its own event left all but the last
    waiter asleep for ever)."""
    queue = CarrierQueue("c1")
    got: dict[str, list[int]] = {"a": [], "b": [], "c": []}

    async def sender(name: str) -> None:
        while True:
            got[name].append((await queue.get()).id)
            await trio.sleep(0.01)  # busy with it: the next message is another's

    async with trio.open_nursery() as nursery:
        for name in got:
            nursery.start_soon(sender, name)
        await trio.sleep(0.01)  # all three wait on the empty queue
        for message_id in range(1, 7):
            queue.put(_outbound(message_id))
        await trio.sleep(0.1)
        nursery.cancel_scope.cancel()
    assert sorted(i for ids in got.values() for i in ids) == [1, 2, 3, 4, 5, 6]
    assert all(ids for ids in got.values()), got


async def test_pipeline_withdraw_searches_every_carrier_queue(tmp_path: Path) -> None:
    async with open_store(tmp_path / "q.db") as store:
        pipeline = MtPipeline(store, PrefixRouter({"84": ["c2"]}, default=["c1"]), ["c1", "c2"])
        pipeline.enqueue(_outbound(1))
        pipeline.enqueue(replace(_outbound(2), destination_addr="1555"))
        assert pipeline.queued == 2
        row = cast("StoredMessage", SimpleNamespace(id=1))  # withdraw reads its id only here
        taken = pipeline.withdraw(row)
        assert taken is not None
        assert taken.carrier == "c2"
        assert pipeline.withdraw(row) is None
        assert pipeline.queued == 1


async def test_cancel_is_conditional_on_the_state_seen_and_releases_quota(
    tmp_path: Path,
) -> None:
    async with open_store(tmp_path / "q.db") as store:
        order = await store.create_order(NewOrder(partner="acme", kind=OrderKind.PREPAID, limit=10))
        [queued, held] = await store.admit([MSG, replace(MSG, held=True)], [2, 1])
        assert isinstance(queued, int)
        assert isinstance(held, int)
        # The held one was approved meanwhile: a cancel of "held" must not touch it.
        await store.release_held([held])
        assert not await store.cancel_queued(held, MessageState.HELD, "cancelled by partner")
        assert await store.cancel_queued(queued, MessageState.ACCEPTED, "cancelled by partner")
        assert not await store.cancel_queued(queued, MessageState.ACCEPTED, "again")
        stored = await store.get_message(queued)
        assert stored is not None
        assert (stored.state, stored.error) == (MessageState.REJECTED, "cancelled by partner")
        got = await store.get_order(order)
        assert got is not None
        assert (got.reserved, got.spent) == (1, 0)  # the cancelled one's 2 parts released


async def test_replace_swaps_the_reservation_or_changes_nothing(tmp_path: Path) -> None:
    async with open_store(tmp_path / "q.db") as store:
        order = await store.create_order(NewOrder(partner="acme", kind=OrderKind.PREPAID, limit=4))
        [message_id] = await store.admit([MSG], [1])
        assert isinstance(message_id, int)
        three = replace(MSG, body=b"long", parts=(b"a", b"b", b"c"), registered_delivery=1)
        assert await store.replace_queued(message_id, MessageState.ACCEPTED, three, 3) is True
        stored = await store.get_message(message_id)
        assert stored is not None
        assert (stored.body, stored.parts, stored.part_count) == (b"long", (b"a", b"b", b"c"), 3)
        assert stored.registered_delivery == 1
        got = await store.get_order(order)
        assert got is not None
        assert got.reserved == 3
        five = replace(MSG, body=b"longer", parts=(b"a",) * 5)
        refused = await store.replace_queued(message_id, MessageState.ACCEPTED, five, 5)
        assert isinstance(refused, QuotaRefusal)
        stored = await store.get_message(message_id)
        assert stored is not None
        assert stored.body == b"long"
        got = await store.get_order(order)
        assert got is not None
        assert got.reserved == 3  # the old reservation is kept, not lost
        # Held for moderation by the new text: the state follows.
        one = replace(MSG, body=b"short", held=True)
        assert await store.replace_queued(message_id, MessageState.ACCEPTED, one, 1) is True
        stored = await store.get_message(message_id)
        assert stored is not None
        assert (stored.state, stored.parts, stored.part_count) == (MessageState.HELD, (), 1)
        assert not await store.replace_queued(message_id, MessageState.ACCEPTED, one, 1)


class _Partner:
    enabled = True
    sources = ("ACME",)
    moderation = "none"
    traffic_class = "bulk"
    tps = 1.0
    max_message_parts = 10
    default_registered_delivery = 0
    protocol_ids: tuple[int, ...] = ()
    opt_out: bool | None = None

    class content:  # a settings object stand-in
        templates: tuple[str, ...] = ()
        block_keywords = ("casino",)
        block_patterns: tuple[str, ...] = ()
        on_violation = "reject"


def test_check_replace_applies_the_checks_but_not_the_throttle() -> None:
    admission = Admission({"acme": _Partner()})  # type: ignore[dict-item]
    submit = SubmitSm(source_addr="ACME", dest_addr_ton=1, destination_addr="8491")
    assert isinstance(admission.check("acme", submit, 0.0), Admitted)
    assert admission.check("acme", submit, 0.0) == Refused(
        S.ESME_RTHROTTLED, "over 1 parts/s; retry in 1.000 s"
    )
    assert isinstance(admission.check_replace("acme", submit), Admitted)
    casino = replace(submit, short_message=b"casino")
    refused = admission.check_replace("acme", casino)
    assert isinstance(refused, Refused)
    assert refused.status == S.ESME_RX_P_APPN
    assert admission.statistics().admitted == 1  # replacements are not counted as submits
