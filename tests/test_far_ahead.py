"""Messages scheduled far ahead wait as their id only and are read back when due
(``gateway/far_ahead.py``)."""

from __future__ import annotations

import time
from dataclasses import replace
from typing import TYPE_CHECKING

import trio
import trio.lowlevel
from carrier_fixtures import wait_for
from hypothesis import given
from hypothesis import strategies as st
from partner_fixtures import esme, partner_daemon
from test_carrier import Rig, _start, rig  # noqa: F401  (rig: the fixture)
from test_partner_commands import _accepted, _cancel, _scheduling, _sent_to, _state

from smppgw.gateway.far_ahead import RELEASE_RETRY, FarAhead, ScheduledIds
from smppgw.gateway.mt import MtPipeline
from smppgw.gateway.outbound import OutboundMessage
from smppgw.gateway.routing import PrefixRouter
from smppgw.store import MessageState, NewMessage, StoreUnavailable, open_store
from smppgw.store.records import StoredMessage

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

# -- ScheduledIds ----------------------------------------------------------------------

operations = st.lists(
    st.one_of(
        st.tuples(st.just("push"), st.integers(0, 5)),
        st.tuples(st.just("pop"), st.integers(0, 6), st.integers(1, 4)),
        st.tuples(st.just("remove"), st.integers(0, 40)),
        st.tuples(st.just("remove_many"), st.sets(st.integers(0, 40), max_size=8)),
    ),
    max_size=60,
)


@given(operations)
def test_ids_come_out_by_due_time_then_arrival_and_can_be_removed(ops: list[tuple]) -> None:
    """Against a plain list: pop_due gives up to ``limit`` ids due at ``now``, earliest
    due first and in arrival order within one due time; remove and remove_many find any
    id still in."""
    ids = ScheduledIds()
    model: list[tuple[float, int, int]] = []  # (due, arrival, id)
    serial = 0
    for op in ops:
        if op[0] == "push":
            serial += 1
            ids.push(float(op[1]), serial)
            model.append((float(op[1]), serial, serial))
        elif op[0] == "pop":
            _, now, limit = op
            due = sorted(m for m in model if m[0] <= now)[:limit]
            assert ids.pop_due(float(now), limit) == [(d, i) for d, _, i in due]
            model = [m for m in model if m not in due]
        elif op[0] == "remove_many":
            here = {m[2] for m in model} & op[1]
            assert ids.remove_many(op[1]) == here
            model = [m for m in model if m[2] not in here]
        else:
            found = next((m for m in model if m[2] == op[1]), None)
            assert ids.remove(op[1]) == (None if found is None else found[0])
            if found is not None:
                model.remove(found)
        assert len(ids) == len(model)
        assert ids.next_due() == min((m[0] for m in model), default=float("inf"))


# -- FarAhead, without the rest --------------------------------------------------------


class _Journal:
    """The reads FarAhead makes and the releases it asks for."""

    def __init__(self, rows: dict[int, StoredMessage]) -> None:
        self.rows = rows
        self.released: list[int] = []
        self.fail = False
        self.room = 10.0

    async def read(self, message_ids: Sequence[int]) -> list[StoredMessage]:
        if self.fail:
            raise StoreUnavailable("disk gone")
        return [self.rows[i] for i in message_ids if i in self.rows]

    async def release(self, messages: Sequence[OutboundMessage]) -> None:
        assert all(m.not_before is None for m in messages)
        self.released += [m.id for m in messages]


def _row(message_id: int, state: MessageState = MessageState.ACCEPTED) -> StoredMessage:
    """A journal row of a message scheduled for wall-clock second 1,000."""
    return StoredMessage(
        id=message_id,
        partner="acme",
        source_addr="ACME",
        source_ton=5,
        source_npi=0,
        destination_addr=f"849100000{message_id:02d}",
        dest_ton=1,
        dest_npi=1,
        data_coding=0,
        esm_class=0,
        registered_delivery=0,
        priority=0,
        body=b"sale",
        parts=(),
        part_count=1,
        state=state,
        smsc=None,
        carrier_id=None,
        attempts=0,
        order_id=None,
        reservation_id=None,
        created_at=0.0,
        updated_at=0.0,
        next_attempt_at=1_000.0,
        expires_at=None,
        final_status=None,
        error=None,
    )


async def test_release_reads_back_only_what_the_queues_have_room_for() -> None:
    rows = {i: _row(i) for i in range(1, 6)}
    rows[4] = _row(4, MessageState.REJECTED)  # cancelled meanwhile: skipped
    journal = _Journal(rows)
    now = [999.0]
    far = FarAhead(journal.read, journal.release, lambda: journal.room, lambda: now[0])
    for message_id in (1, 2, 3, 4, 5):
        assert far.takes(OutboundMessage.of(message_id, rows[message_id]), wait=3600.0)
    assert not far.takes(OutboundMessage.of(9, rows[1]), wait=10.0)  # soon: kept whole
    assert (len(far), far.next_look()) == (5, 1_000.0)
    assert await far.release_due() == 0  # not due yet
    now[0] = 1_000.0
    journal.room = 2
    assert await far.release_due() == 2
    assert journal.released == [1, 2]
    journal.room = 0  # the queues are full: looked at again a little later
    assert await far.release_due() == 0
    assert far.next_look() == now[0] + RELEASE_RETRY
    journal.room, journal.fail = 10, True  # a failed read: the ids stay
    assert await far.release_due() == 0
    assert len(far) == 3
    assert far.next_look() == now[0] + RELEASE_RETRY
    journal.fail = False
    now[0] += RELEASE_RETRY
    assert await far.release_due() == 3
    assert journal.released == [1, 2, 3, 5]
    assert len(far) == 0


async def test_a_message_taken_out_while_being_read_back_is_not_released() -> None:
    """A cancel that comes during the read back of its message (a few milliseconds)
    takes it out: its row is dropped when the read comes back, or left out when the
    read failed and the others go back to wait."""
    rows = {i: _row(i) for i in range(1, 6)}
    journal = _Journal(rows)
    reading, go_on = trio.Event(), trio.Event()
    plain_read = journal.read

    async def slow_read(message_ids: Sequence[int]) -> list[StoredMessage]:
        reading.set()
        await go_on.wait()
        return await plain_read(message_ids)

    far = FarAhead(slow_read, journal.release, lambda: journal.room, lambda: 1_000.0)
    for message_id in rows:
        far.keep(1_000.0, message_id)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(far.release_due)
        await reading.wait()
        assert far.remove(2)
        assert not far.remove(2)  # once only
        assert far.remove_many({3, 99}) == {3}
        go_on.set()
    assert journal.released == [1, 4, 5]

    for message_id in (6, 7):
        rows[message_id] = _row(message_id)
        far.keep(1_000.0, message_id)
    journal.fail = True
    reading, go_on = trio.Event(), trio.Event()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(far.release_due)
        await reading.wait()
        assert far.remove(6)
        go_on.set()
    assert len(far) == 1  # 7 waits to be read again, 6 is gone
    assert far.remove_many({6, 7}) == {7}


async def test_a_campaign_admitted_over_a_second_shares_one_due_time() -> None:
    """Due times are rounded up to the second: "in a day" from each arrival is one array
    a second, not one per message (sent at most a second late)."""
    journal = _Journal({})
    far = FarAhead(journal.read, journal.release, lambda: 10.0, lambda: 0.0)
    for n, due in enumerate((1_000.2, 1_000.7, 1_001.0, 1_001.1)):
        far.keep(due, n)
    assert far.ids.pop_due(1_001.0, 10) == [(1_001.0, 0), (1_001.0, 1), (1_001.0, 2)]
    assert far.ids.next_due() == 1_002.0


# -- the pipeline ----------------------------------------------------------------------


async def test_a_message_scheduled_far_ahead_waits_as_its_id_and_goes_when_due(
    rig: Rig,  # noqa: F811
    nursery: trio.Nursery,
) -> None:
    await _start_far(rig, nursery)
    far_ids = await rig.send(3, receipts=False, not_before=time.time() + 0.8)
    await rig.send(1, receipts=False)
    await wait_for(lambda: len(rig.smsc.accepted) == 1)
    assert len(rig.pipeline._far) == 3
    assert len(rig.pipeline._delayed) == 0  # nothing of them held whole
    assert (rig.pipeline.scheduled, rig.pipeline.statistics().delayed) == (3, 3)
    await wait_for(lambda: len(rig.smsc.accepted) == 4, within=5)
    assert rig.pipeline.scheduled == 0
    await rig.pipeline.flush()
    assert await _states(rig, far_ids) == ["sent"] * 3


async def test_far_ahead_messages_are_read_back_as_the_queues_drain(
    rig: Rig,  # noqa: F811
    nursery: trio.Nursery,
) -> None:
    """A campaign due at once is read back within max_pending_messages, not whole."""
    await _start_far(rig, nursery)
    rig.pipeline.max_pending = 2
    biggest = [0]

    async def watch() -> None:
        while True:
            biggest[0] = max(biggest[0], rig.pipeline.pending)
            await trio.lowlevel.checkpoint()

    nursery.start_soon(watch)
    ids = await rig.send(12, receipts=False, not_before=time.time() + 0.5)
    await wait_for(lambda: len(rig.smsc.accepted) == 12, within=10)
    assert biggest[0] <= 2 + 1  # the room, and one a sender holds while it sends
    await rig.pipeline.flush()
    assert await _states(rig, ids) == ["sent"] * 12


async def test_a_restart_sends_a_far_ahead_message_when_due(
    rig: Rig,  # noqa: F811
    nursery: trio.Nursery,
) -> None:
    """Recovered as an id while the release task already runs (the daemon starts the
    pipeline, then recovers): the task must look again, or the message waits for ever
    (found by a kill -9 of the embedded daemon with a campaign scheduled)."""
    await _start_far(rig, nursery)
    base = NewMessage(partner="p1", source_addr="ACME", destination_addr="8491", body=b"x")
    [later] = await rig.store.journal_accept([replace(base, next_attempt_at=time.time() + 0.6)])
    await trio.sleep(0.05)  # the release task is waiting, with nothing to wait for
    assert await rig.pipeline.recover() == 1
    assert len(rig.pipeline._far) == 1
    await wait_for(lambda: len(rig.smsc.accepted) == 1, within=5)
    await rig.pipeline.flush()
    assert await _states(rig, [later]) == ["sent"]


async def _start_far(setup: Rig, nursery: trio.Nursery) -> None:
    """The carrier bound, and "far ahead" at 0.2 s: a test's time."""
    await _start(setup, nursery)
    setup.pipeline._far.far_ahead = 0.2


async def _states(setup: Rig, ids: list[int]) -> list[str]:
    rows = await setup.store.messages_by_id(ids)
    assert [r.id for r in rows] == ids
    return [r.state.value for r in rows]


# -- a partner's view ------------------------------------------------------------------


async def test_a_partner_cancels_a_message_scheduled_for_tomorrow(tmp_path: Path) -> None:
    async with partner_daemon(tmp_path) as (daemon, port), esme(port) as link:
        sim, pipeline = await _scheduling(daemon)
        tomorrow = "000001000000000R"
        kept = await _accepted(link, b"kept", destination="84911111111", **_at(tomorrow))
        gone = await _accepted(link, b"gone", destination="84922222222", **_at(tomorrow))
        assert (len(pipeline._far), pipeline.scheduled) == (2, 2)
        assert (await link.request(_cancel(gone))).command_status == 0
        assert (len(pipeline._far), pipeline.scheduled) == (1, 1)
        assert await _state(daemon, gone) == ("rejected", "cancelled by partner", b"gone")
        assert await _state(daemon, kept) == ("accepted", None, b"kept")
        assert not _sent_to(sim, "84911111111")


def _at(schedule: str) -> dict[str, str]:
    return {"schedule_delivery_time": schedule}


async def test_a_restart_reads_a_campaign_for_tomorrow_as_ids(tmp_path: Path) -> None:
    """Recovery reads the far-ahead messages' ids and due times only; the others whole."""
    async with open_store(tmp_path / "r.db") as store:
        now = time.time()
        base = NewMessage(partner="acme", source_addr="ACME", destination_addr="8491", body=b"x")
        ids = await store.journal_accept(
            [
                replace(base, next_attempt_at=now + 7200),
                replace(base, next_attempt_at=now + 3600),
                replace(base, next_attempt_at=now + 10),  # soon: whole, as before
                base,  # not scheduled: queued at once
            ]
        )
        pipeline = MtPipeline(store, PrefixRouter({}, default=["c1"]), ["c1"])
        assert await pipeline.recover() == 4
        assert (len(pipeline._far), len(pipeline._delayed), pipeline.queued) == (2, 1, 1)
        assert [i for _, i in pipeline._far.ids.pop_due(now + 9999, 10)] == [ids[1], ids[0]]
