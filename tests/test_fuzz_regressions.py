"""What the fuzzing of the partner port and the carrier side found, each case reduced to
its exact bytes and kept as a plain test (no hypothesis), so it can never come back
unnoticed. The fuzz tests themselves are ``test_fuzz_partner_port.py`` and
``test_fuzz_carrier_side.py``; the streams they replay are ``fuzz_streams.py``.
"""

from __future__ import annotations

import struct
from functools import partial
from typing import TYPE_CHECKING

import trio
import trio.testing
from carrier_fixtures import wait_for
from fuzz_streams import decode_all

from smppgw.net.link import SmppLink
from smppgw.protocol.codec import encode_pdu
from smppgw.protocol.errors import PduDecodeError, ReceiveStateError
from smppgw.protocol.pdus import BindTransmitter, BindTransmitterResp, GenericNack, Pdu
from smppgw.protocol.session import SmppConnection, error_response, make_response
from smppgw.protocol.states import Role, State
from smppgw.protocol.status import CommandStatus

if TYPE_CHECKING:
    from collections.abc import Sequence

#: enquire_link, sequence 1: the smallest request any peer may send in any state.
ENQUIRE_LINK = bytes.fromhex("00000010000000150000000000000001")


async def _ignore(link: SmppLink, batch: object) -> None:
    return None


def _server_link(stream: trio.abc.Stream, *, idle: float | None) -> SmppLink:
    connection = SmppConnection(
        Role.SMSC, enquire_link_interval=30.0, response_timeout=5.0, inactivity_timeout=idle
    )
    return SmppLink(stream, connection, _ignore, name="fuzz-regression")


def test_start_timers_arms_the_inactivity_timeout_before_any_byte() -> None:
    """Found: a connection built without ``now`` (as the partner server builds it) armed
    no timer until the peer's first byte, so a peer that connected and sent nothing held
    its session (and a ``max_sessions`` slot) for ever."""
    connection = SmppConnection(Role.SMSC, enquire_link_interval=30.0, inactivity_timeout=2.0)
    assert connection.next_deadline() is None
    connection.start_timers(100.0)
    assert connection.next_deadline() == 102.0
    connection.start_timers(150.0)  # a second call keeps the first start
    assert connection.next_deadline() == 102.0


async def test_a_silent_peer_is_closed_after_the_idle_timeout() -> None:
    """Found: the same over a real socket: connect, send no byte at all; the link must
    end by itself on the inactivity timeout."""
    ended: list[str] = []

    async def serve(stream: trio.SocketStream) -> None:
        link = _server_link(stream, idle=0.3)
        await link.run()
        ended.append(link.close_reason)

    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(partial(trio.serve_tcp, serve, 0, host="127.0.0.1"))
        port = listeners[0].socket.getsockname()[1]
        async with await trio.open_tcp_stream("127.0.0.1", port) as client:
            with trio.fail_after(5):
                assert await client.receive_some(100) == b""  # the server closed on us
        await wait_for(lambda: bool(ended), within=2)
        assert ended == ["inactive"]
        nursery.cancel_scope.cancel()


async def test_a_peer_that_never_reads_cannot_pin_a_closing_link() -> None:
    """Found: a peer that sends ``enquire_link`` and never reads its answers blocks the
    link's writer in a *shielded* ``send_all``; closing the link (idle timeout, unbind,
    daemon shutdown) then waited for ever, and so did every nursery above it. A lockstep
    stream stands for a peer with full TCP buffers: nothing sent is taken until read."""
    server_end, client_end = trio.testing.lockstep_stream_pair()
    link = _server_link(server_end, idle=None)
    async with trio.open_nursery() as nursery:
        await nursery.start(link.run)
        await client_end.send_all(ENQUIRE_LINK)  # the server reads it and answers ...
        await trio.testing.wait_all_tasks_blocked()  # ... into a write nobody takes
        link.close("test")
        await wait_for(lambda: link.closed, within=2)
    assert link.closed


async def test_a_stuck_write_does_not_stop_an_outer_cancellation() -> None:
    """The same stuck write under a cancellation from outside (a daemon's shutdown
    deadline): the link's ``run`` must return."""
    server_end, client_end = trio.testing.lockstep_stream_pair()
    link = _server_link(server_end, idle=None)
    with trio.move_on_after(0.5) as scope:
        async with trio.open_nursery() as nursery:
            await nursery.start(link.run)
            await client_end.send_all(ENQUIRE_LINK)
            await trio.sleep_forever()
    assert scope.cancelled_caught
    assert link.closed


def _frame(command_id: int, body: bytes = b"", seq: int = 1, status: int = 0) -> bytes:
    return struct.pack(">IIII", 16 + len(body), command_id, status, seq) + body


async def test_a_flood_of_enquire_links_without_reading_ends_on_the_idle_timeout() -> None:
    """The loopback form of the stuck write: 64 KiB batches of ``enquire_link`` until the
    socket buffers are full, never reading; ``enquire_link`` is no activity, so the
    session must end on its idle timeout and the link must come down."""
    ended: list[str] = []

    async def serve(stream: trio.SocketStream) -> None:
        link = _server_link(stream, idle=0.5)
        await link.run()
        ended.append(link.close_reason)

    flood = _frame(0x00000015) * 4096
    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(partial(trio.serve_tcp, serve, 0, host="127.0.0.1"))
        port = listeners[0].socket.getsockname()[1]
        client = await trio.open_tcp_stream("127.0.0.1", port)
        with trio.move_on_after(3):
            try:
                while True:
                    await client.send_all(flood)
            except trio.BrokenResourceError:
                pass  # the server gave up on us: what we want
        await wait_for(lambda: bool(ended), within=5)
        assert ended == ["inactive"]
        await trio.aclose_forcefully(client)
        nursery.cancel_scope.cancel()


#: bind_transmitter "beta"/"x", sequence 7, then a header claiming 0xFFFFFFFF octets.
BIND_THEN_HUGE_LENGTH = bytes.fromhex(
    "0000001c000000020000000000000007626574610078000034000000"
) + bytes.fromhex("ffffffff000000040000000000000008")


async def test_an_answer_after_a_framing_error_does_not_kill_the_link_task() -> None:
    """Found: a bind still being checked (scrypt in a worker thread, which trio cannot
    cancel) when the next header breaks the framing: the session is in ERROR by the time
    the handler answers the bind, ``respond`` raised ``SendStateError`` out of the
    handler task and ``link.run`` failed with it (the partner server logged "partner
    session failed" for what is only a peer's garbage). The answer has nowhere to go:
    it is dropped and the link ends as for any framing error, with its generic_nack."""

    async def slow_bind(link: SmppLink, batch: Sequence[Pdu]) -> None:
        with trio.CancelScope(shield=True):  # as trio.to_thread.run_sync's wait
            await trio.sleep(0.2)
        for pdu in batch:
            link.respond(make_response(pdu, system_id="GW"))

    server_end, client_end = trio.testing.memory_stream_pair()
    connection = SmppConnection(Role.SMSC, enquire_link_interval=None)
    link = SmppLink(server_end, connection, slow_bind, name="fuzz-regression")
    async with trio.open_nursery() as nursery:
        nursery.start_soon(link.run)
        await client_end.send_all(BIND_THEN_HUGE_LENGTH)
        got = b""
        with trio.fail_after(3):
            while chunk := await client_end.receive_some(65536):
                got += chunk
    assert link.close_reason == "framing error"
    pdus, _rest = decode_all(got)
    assert [type(p) for p in pdus] == [GenericNack]
    assert pdus[0].command_status == CommandStatus.ESME_RINVCMDLEN
    assert pdus[0].sequence_number == 8


#: Two bind_transmitter ("acme"/"pw", sequences 1 and 2) in one read.
TWO_BINDS = bytes.fromhex(
    "0000001d00000002000000000000000161636d65007077000034000000"
) + bytes.fromhex("0000001d00000002000000000000000261636d65007077000034000000")


def test_refusing_a_second_bind_does_not_undo_the_first() -> None:
    """Found: a second bind arriving while the first is being checked is refused
    (``ESME_RALYBND``); sending that refusal took the session from BINDING back to OPEN,
    so the first bind's success then raised ``SendStateError`` and failed the link."""
    conn = SmppConnection(Role.SMSC, enquire_link_interval=None)
    conn.receive_data(TWO_BINDS, 0.0)
    first = conn.next_event()
    assert isinstance(first, BindTransmitter)
    try:
        conn.next_event()
    except ReceiveStateError as exc:
        refusal = error_response(exc)
    else:  # pragma: no cover
        raise AssertionError("a second bind must be refused")
    assert refusal.command_status == CommandStatus.ESME_RALYBND
    assert refusal.sequence_number == 2
    conn.send(refusal, 0.0)
    assert conn.state is State.BINDING
    conn.send(make_response(first, system_id="GW"), 0.0)
    assert conn.statistics().state is State.BOUND_TX


def test_refusing_a_malformed_bind_does_not_undo_a_pending_one() -> None:
    """The same through a decode error: a bind with a 30-octet system_id (no NUL within
    its 16) while the first bind is pending; its error answer must leave BINDING."""
    bad = bytes.fromhex("0000002d000000020000000000000002") + b"A" * 29
    conn = SmppConnection(Role.SMSC, enquire_link_interval=None)
    conn.receive_data(TWO_BINDS[:29] + bad, 0.0)
    first = conn.next_event()
    assert isinstance(first, BindTransmitter)
    try:
        conn.next_event()
    except PduDecodeError as exc:
        conn.send(error_response(exc), 0.0)
    else:  # pragma: no cover
        raise AssertionError("the malformed bind must be refused")
    assert conn.state is State.BINDING
    conn.send(make_response(first, system_id="GW"), 0.0)
    assert conn.statistics().state is State.BOUND_TX


#: submit_sm, sequence 1, cut after service_type and source_addr_ton: malformed.
MALFORMED_SUBMIT_SEQ_1 = bytes.fromhex("000000120000000400000000000000010005")


def test_an_error_answer_reusing_an_owed_sequence_number_leaves_it_owed() -> None:
    """Found: a peer binds with sequence 1 and, while the bind is checked, sends a
    malformed ``submit_sm`` also numbered 1. Its error answer (``submit_sm_resp``, 1)
    was checked against the owed bind: ``SendStateError`` out of the reader, the
    session task failed. The refusal must go out and the bind stay owed."""
    conn = SmppConnection(Role.SMSC, enquire_link_interval=None)
    conn.receive_data(TWO_BINDS[:29] + MALFORMED_SUBMIT_SEQ_1, 0.0)
    bind = conn.next_event()
    assert isinstance(bind, BindTransmitter)
    try:
        conn.next_event()
    except PduDecodeError as exc:
        refusal = error_response(exc)
    else:  # pragma: no cover
        raise AssertionError("the cut submit_sm must be refused")
    assert refusal.sequence_number == 1
    conn.send(refusal, 0.0)
    conn.send(make_response(bind, system_id="GW"), 0.0)
    assert conn.statistics().state is State.BOUND_TX


def test_an_out_of_state_request_reusing_an_owed_sequence_number() -> None:
    """The same with a well-formed ``enquire_link``-free request refused for its state:
    an ``unbind`` numbered 1 while bind 1 is checked (``ESME_RINVBNDSTS``)."""
    unbind_seq_1 = bytes.fromhex("00000010000000060000000000000001")
    conn = SmppConnection(Role.SMSC, enquire_link_interval=None)
    conn.receive_data(TWO_BINDS[:29] + unbind_seq_1, 0.0)
    bind = conn.next_event()
    assert isinstance(bind, BindTransmitter)
    try:
        conn.next_event()
    except ReceiveStateError as exc:
        conn.send(error_response(exc), 0.0)
    else:  # pragma: no cover
        raise AssertionError("an unbind before the bind is refused")
    conn.send(make_response(bind, system_id="GW"), 0.0)
    assert conn.statistics().state is State.BOUND_TX


async def test_pdus_after_the_unbind_exchange_do_not_break_the_reader() -> None:
    """Garbage in the same read as the SMSC's ``unbind_resp`` (the session is CLOSED,
    so no error answer may go out): the link must end cleanly, not raise."""
    server_end, client_end = trio.testing.memory_stream_pair()
    connection = SmppConnection(Role.ESME, enquire_link_interval=None)
    link = SmppLink(server_end, connection, _ignore, name="fuzz-regression")
    async with trio.open_nursery() as nursery:
        await nursery.start(link.run)
        nursery.start_soon(link.request, BindTransmitter(system_id="gw", password="pw"))
        bind = await _next_pdu(client_end)
        resp = BindTransmitterResp(system_id="SMSC")
        await client_end.send_all(encode_pdu(resp, sequence_number=bind.sequence_number))
        await wait_for(lambda: connection.is_bound, within=2)
        nursery.start_soon(link.unbind, 2.0)
        unbind = await _next_pdu(client_end)
        seq = unbind.sequence_number.to_bytes(4, "big")
        # unbind_resp, then a deliver_sm cut after 3 octets of body, in one write.
        await client_end.send_all(
            bytes.fromhex("00000010800000060000000000")[:12]
            + seq
            + bytes.fromhex("000000130000000500000000000000090000ff")
        )
        await wait_for(lambda: link.closed, within=2)
    assert link.close_reason in {"unbound", "peer closed"}


async def _next_pdu(client: trio.abc.Stream) -> Pdu:
    """The next PDU the link under test writes (one write holds one here)."""
    with trio.fail_after(2):
        data = bytes(await client.receive_some(65536))
    (pdu,), _rest = decode_all(data)
    return pdu


def test_two_requests_with_one_sequence_number_are_both_answerable() -> None:
    """Found with the same streams: a bound peer sends ``submit_sm`` 5 and
    ``query_sm`` 5 before either is answered; the second replaced the first among the
    owed requests, so one of the two answers raised ``SendStateError`` out of the
    handler and failed the session. Both must be answerable, in either order."""
    conn = SmppConnection(Role.SMSC, enquire_link_interval=None)
    conn.receive_data(TWO_BINDS[:29], 0.0)
    bind = conn.next_event()
    assert isinstance(bind, BindTransmitter)
    conn.send(make_response(bind, system_id="GW"), 0.0)
    submit = bytes.fromhex(
        "0000002f00000004000000000000000500050041434d45000101383439313233343500000000000000000000026869"
    )
    query = bytes.fromhex("000000190000000300000000000000053100050041434d4500")
    conn.receive_data(submit + query, 0.0)
    first, second = conn.next_event(), conn.next_event()
    assert isinstance(first, Pdu)
    assert isinstance(second, Pdu)
    assert conn.statistics().awaiting_our_response == 2
    conn.send(make_response(second, CommandStatus.ESME_RINVMSGID), 0.0)
    conn.send(make_response(first, message_id="42"), 0.0)
    assert conn.statistics().awaiting_our_response == 0
