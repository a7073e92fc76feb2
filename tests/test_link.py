"""SmppLink over trio memory streams (the autojump clock for timers) and real sockets."""

from __future__ import annotations

import socket
import struct
from typing import TYPE_CHECKING

import pytest
import trio
import trio.testing

from smppgw.net.link import LinkClosed, RequestTimeout, SmppLink
from smppgw.protocol.codec import encode_pdu
from smppgw.protocol.pdus import (
    BindTransceiver,
    BindTransceiverResp,
    DeliverSm,
    EnquireLink,
    GenericNack,
    Pdu,
    SubmitSm,
    SubmitSmResp,
)
from smppgw.protocol.session import SmppConnection, make_response
from smppgw.protocol.states import Role
from smppgw.protocol.status import CommandStatus

if TYPE_CHECKING:
    from collections.abc import Sequence


class Smsc:
    """A minimal SMSC handler: accepts binds, answers submits with increasing ids."""

    def __init__(self, *, answer: bool = True) -> None:
        self.answer = answer
        self.submits: list[SubmitSm] = []
        self.batches: list[int] = []

    async def __call__(self, link: SmppLink, batch: Sequence[Pdu]) -> None:
        self.batches.append(len(batch))
        for pdu in batch:
            if isinstance(pdu, BindTransceiver):
                link.respond(make_response(pdu, system_id="SIM"))
            elif isinstance(pdu, SubmitSm):
                self.submits.append(pdu)
                if self.answer:
                    link.respond(make_response(pdu, message_id=str(len(self.submits))))


async def _noop(link: SmppLink, batch: Sequence[Pdu]) -> None:
    for pdu in batch:
        link.respond(make_response(pdu))


async def _pair(nursery: trio.Nursery, smsc: Smsc, **esme_kw: float) -> tuple[SmppLink, SmppLink]:
    a, b = trio.testing.memory_stream_pair()
    esme = SmppLink(a, SmppConnection(Role.ESME, **esme_kw), _noop, name="esme")  # type: ignore[arg-type]
    server = SmppLink(b, SmppConnection(Role.SMSC, enquire_link_interval=None), smsc, name="smsc")
    await nursery.start(server.run)
    await nursery.start(esme.run)
    return esme, server


async def test_bind_submit_and_window(autojump_clock: trio.testing.MockClock) -> None:
    smsc = Smsc()
    async with trio.open_nursery() as nursery:
        esme, _server = await _pair(nursery, smsc, window=4)
        resp = await esme.request(BindTransceiver(system_id="gw", password="pw"))
        assert isinstance(resp, BindTransceiverResp)
        assert resp.system_id == "SIM"
        results: list[str] = []

        async def one(i: int) -> None:
            r = await esme.request(SubmitSm(destination_addr=str(i), short_message=b"x"))
            assert isinstance(r, SubmitSmResp)
            results.append(r.message_id)

        async with trio.open_nursery() as senders:
            for i in range(20):
                senders.start_soon(one, i)
        assert sorted(results, key=int) == [str(i) for i in range(1, 21)]
        assert esme.connection.statistics().outstanding == 0
        nursery.cancel_scope.cancel()


async def test_response_timeout_frees_window(autojump_clock: trio.testing.MockClock) -> None:
    smsc = Smsc(answer=False)
    async with trio.open_nursery() as nursery:
        esme, _ = await _pair(nursery, smsc, window=1, response_timeout=5.0)
        await esme.request(BindTransceiver(system_id="gw"))
        start = trio.current_time()
        with pytest.raises(RequestTimeout):
            await esme.request(SubmitSm(destination_addr="1"))
        assert 5.0 <= trio.current_time() - start < 5.5
        assert esme.connection.window_available == 1
        nursery.cancel_scope.cancel()


async def test_each_request_times_out_at_its_own_deadline(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The timer is not woken for a request whose deadline comes after one it already
    sleeps until; it still finds that one's deadline once the first has passed."""
    smsc = Smsc(answer=False)
    async with trio.open_nursery() as nursery:
        esme, _ = await _pair(nursery, smsc, window=2, response_timeout=5.0)
        await esme.request(BindTransceiver(system_id="gw"))
        start = trio.current_time()
        timed_out: dict[str, float] = {}

        async def submit(name: str) -> None:
            with pytest.raises(RequestTimeout):
                await esme.request(SubmitSm(destination_addr=name))
            timed_out[name] = trio.current_time() - start

        async with trio.open_nursery() as senders:
            senders.start_soon(submit, "first")
            await trio.sleep(2)
            senders.start_soon(submit, "second")
        assert 5.0 <= timed_out["first"] < 5.5
        assert 7.0 <= timed_out["second"] < 7.5
        nursery.cancel_scope.cancel()


async def test_enquire_link_sent_when_idle(autojump_clock: trio.testing.MockClock) -> None:
    smsc = Smsc()
    async with trio.open_nursery() as nursery:
        esme, server = await _pair(nursery, smsc, enquire_link_interval=30.0)
        await esme.request(BindTransceiver(system_id="gw"))
        await trio.sleep(95)
        # three keep-alives, all answered by the server link itself
        assert esme.connection.statistics().requests_sent == 1 + 3
        assert server.connection.statistics().responses_sent == 1 + 3
        assert not esme.closed
        nursery.cancel_scope.cancel()


async def test_peer_close_fails_outstanding(autojump_clock: trio.testing.MockClock) -> None:
    smsc = Smsc(answer=False)
    async with trio.open_nursery() as nursery:
        esme, server = await _pair(nursery, smsc, response_timeout=60.0)
        await esme.request(BindTransceiver(system_id="gw"))
        failures: list[BaseException] = []

        async def submit() -> None:
            try:
                await esme.request(SubmitSm(destination_addr="1"))
            except LinkClosed as exc:
                failures.append(exc)

        nursery.start_soon(submit)
        nursery.start_soon(submit)
        await trio.sleep(1)
        server.close("test")
        await trio.sleep(1)
        assert len(failures) == 2
        assert esme.closed
        nursery.cancel_scope.cancel()


async def test_a_request_after_our_unbind_is_refused_as_link_closed(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A carrier sender woken by a free window slot after the shutdown's ``unbind`` left
    must find the link closing (and put its message back), not a ``SendStateError``:
    that failed the daemon's whole shutdown under load."""
    a, smsc_side = trio.testing.memory_stream_pair()
    esme = SmppLink(a, SmppConnection(Role.ESME, window=4), _noop, name="esme")  # type: ignore[arg-type]
    async with trio.open_nursery() as nursery:
        await nursery.start(esme.run)
        nursery.start_soon(esme.request, BindTransceiver(system_id="gw"))
        await smsc_side.receive_some(4096)
        await smsc_side.send_all(encode_pdu(BindTransceiverResp(sequence_number=1)))
        await trio.testing.wait_all_tasks_blocked()
        assert esme.connection.is_bound
        nursery.start_soon(esme.unbind, 30.0)  # the SMSC is slow to answer it
        await trio.testing.wait_all_tasks_blocked()
        with pytest.raises(LinkClosed) as refused:
            await esme.send_request(SubmitSm(destination_addr="1", short_message=b"x"))
        assert refused.value.sent is False
        nursery.cancel_scope.cancel()


async def test_malformed_pdu_gets_answer_and_link_goes_on(
    autojump_clock: trio.testing.MockClock,
) -> None:
    smsc = Smsc()
    a, b = trio.testing.memory_stream_pair()
    server = SmppLink(b, SmppConnection(Role.SMSC, enquire_link_interval=None), smsc)
    async with trio.open_nursery() as nursery:
        await nursery.start(server.run)
        await a.send_all(encode_pdu(BindTransceiver(system_id="gw", sequence_number=1)))
        bad = bytearray(encode_pdu(SubmitSm(destination_addr="1", sequence_number=2)))
        bad[-1] = 9  # sm_length now runs past the PDU
        await a.send_all(bytes(bad) + encode_pdu(EnquireLink(sequence_number=3)))
        await a.send_all(b"\x00\x00\x00\x10\x00\x00\x00\x77\x00\x00\x00\x00\x00\x00\x00\x04")
        await trio.sleep(1)
        data = await a.receive_some(4096)
        # bind_resp, submit_sm_resp ESME_RINVMSGLEN, enquire_link_resp, generic_nack
        assert b"\x80\x00\x00\x09\x00\x00\x00\x00\x00\x00\x00\x01" in data
        assert b"\x80\x00\x00\x04\x00\x00\x00\x01\x00\x00\x00\x02" in data
        assert b"\x80\x00\x00\x15\x00\x00\x00\x00\x00\x00\x00\x03" in data
        assert (
            encode_pdu(GenericNack(sequence_number=4, command_status=CommandStatus.ESME_RINVCMDID))
            in data
        )
        assert not server.closed
        nursery.cancel_scope.cancel()


async def test_handler_batches_pdus_of_one_read(autojump_clock: trio.testing.MockClock) -> None:
    smsc = Smsc()
    a, b = trio.testing.memory_stream_pair()
    server = SmppLink(b, SmppConnection(Role.SMSC, enquire_link_interval=None), smsc)
    async with trio.open_nursery() as nursery:
        await nursery.start(server.run)
        await a.send_all(encode_pdu(BindTransceiver(system_id="gw", sequence_number=1)))
        await trio.sleep(1)
        wire = b"".join(
            encode_pdu(SubmitSm(destination_addr="1", sequence_number=i)) for i in range(2, 52)
        )
        await a.send_all(wire)
        await trio.sleep(1)
        assert smsc.batches == [1, 50]
        assert len(smsc.submits) == 50
        nursery.cancel_scope.cancel()


class _SlowSmsc(Smsc):
    """Takes a second over each batch (a journal commit), answering after it."""

    async def __call__(self, link: SmppLink, batch: Sequence[Pdu]) -> None:
        await trio.sleep(1)
        await super().__call__(link, batch)


@pytest.mark.parametrize("concurrent", [1, 2])
async def test_reads_that_wait_for_a_busy_handler_go_as_one_batch(
    autojump_clock: trio.testing.MockClock, concurrent: int
) -> None:
    """A partner sending one submit a read while every handler slot is busy: what
    queued meanwhile is handled as one batch (one commit), in the order it came."""
    smsc = _SlowSmsc()
    a, b = trio.testing.memory_stream_pair()
    connection = SmppConnection(Role.SMSC, enquire_link_interval=None)
    server = SmppLink(b, connection, smsc, concurrent_batches=concurrent)
    async with trio.open_nursery() as nursery:
        await nursery.start(server.run)
        await a.send_all(encode_pdu(BindTransceiver(system_id="gw", sequence_number=1)))
        await trio.sleep(2)
        for i in range(2, 2 + 3 * concurrent):
            await trio.sleep(0.01)
            await a.send_all(encode_pdu(SubmitSm(destination_addr=str(i), sequence_number=i)))
        await trio.sleep(5)
        # The first reads took every slot; the rest waited and went together.
        assert smsc.batches == [1] + [1] * concurrent + [2 * concurrent]
        assert [s.sequence_number for s in smsc.submits] == list(range(2, 2 + 3 * concurrent))
        nursery.cancel_scope.cancel()


class _Rounds(trio.abc.Instrument):
    """Counts the event loop's rounds (one I/O wait each)."""

    def __init__(self) -> None:
        self.count = 0

    def before_io_wait(self, timeout: float) -> None:
        self.count += 1


@pytest.mark.parametrize(("concurrent", "rounds_between"), [(1, 1), (4, 0)])
async def test_reading_in_turns_handles_a_batch_in_the_round_it_was_read(
    concurrent: int, rounds_between: int
) -> None:
    """With several batches at once (the partner server), the task that read a batch
    handles it in the same step: no loop round between a submit's read and its
    admission. (One batch at a time keeps the reader and its channel: one round.)"""
    rounds = _Rounds()
    trio.lowlevel.add_instrument(rounds)
    read_at: list[int] = []
    handled_at: list[int] = []
    a, b = trio.testing.memory_stream_pair()
    connection = SmppConnection(Role.SMSC, enquire_link_interval=None)
    receive_data = connection.receive_data

    def counted(data: bytes, now: float) -> None:
        read_at.append(rounds.count)
        receive_data(data, now)

    connection.receive_data = counted  # type: ignore[method-assign]

    async def handler(link: SmppLink, batch: Sequence[Pdu]) -> None:
        handled_at.append(rounds.count)
        for pdu in batch:
            link.respond(make_response(pdu))

    server = SmppLink(b, connection, handler, concurrent_batches=concurrent)
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(server.run)
            await a.send_all(encode_pdu(BindTransceiver(system_id="gw", sequence_number=1)))
            await a.receive_some(4096)
            read_at.clear()
            await a.send_all(encode_pdu(SubmitSm(destination_addr="1", sequence_number=2)))
            await a.receive_some(4096)
            assert len(handled_at) == 2
            assert handled_at[1] - read_at[0] == rounds_between
            nursery.cancel_scope.cancel()
    finally:
        trio.lowlevel.remove_instrument(rounds)


async def test_send_deliver_from_smsc_side(autojump_clock: trio.testing.MockClock) -> None:
    smsc = Smsc()
    async with trio.open_nursery() as nursery:
        esme, server = await _pair(nursery, smsc)
        await esme.request(BindTransceiver(system_id="gw"))
        resp = await server.request(DeliverSm(source_addr="84900000001", short_message=b"hi"))
        assert resp.command_status == 0
        nursery.cancel_scope.cancel()


async def test_keepalive_period_is_the_interval_not_the_timeout(
    autojump_clock: trio.testing.MockClock,
) -> None:
    smsc = Smsc()
    async with trio.open_nursery() as nursery:
        esme, _ = await _pair(nursery, smsc, enquire_link_interval=1.0, response_timeout=10.0)
        await esme.request(BindTransceiver(system_id="gw"))
        await trio.sleep(10.5)
        # one keep-alive a second, each answered at once
        assert esme.connection.statistics().requests_sent == 1 + 10
        nursery.cancel_scope.cancel()


async def test_a_full_socket_buffer_loses_and_reorders_nothing() -> None:
    """Over a real socket the writer writes what the socket takes at once and hands the
    rest to ``send_all``: with a tiny send buffer and a peer that reads only at the end,
    every answer still arrives, whole and in order."""
    count = 20_000
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    async with trio.open_nursery() as nursery:
        client = await trio.testing.open_stream_to_socket_listener(listeners[0])
        accepted = await listeners[0].accept()
        assert isinstance(accepted, trio.SocketStream)
        accepted.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        link = SmppLink(
            accepted, SmppConnection(Role.SMSC, enquire_link_interval=None), _noop, name="smsc"
        )
        await nursery.start(link.run)
        await client.send_all(
            b"".join(encode_pdu(EnquireLink(sequence_number=n)) for n in range(1, count + 1))
        )
        expected = b"".join(struct.pack(">IIII", 16, 0x80000015, 0, n) for n in range(1, count + 1))
        received = bytearray()
        with trio.fail_after(30):
            while len(received) < len(expected):
                received += await client.receive_some(65536)
        assert bytes(received) == expected
        assert link.statistics().writes > 1
        await client.aclose()
        nursery.cancel_scope.cancel()
    for listener in listeners:
        await listener.aclose()
