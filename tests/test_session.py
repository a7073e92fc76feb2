"""SmppConnection: whole flows through a SessionPair, whole and byte at a time; the
window, sequence numbers, timers and error answers with explicit ``now`` values; and a
hypothesis state machine holding the session's invariants under random interleavings."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pdu_strategies import pdus
from session_pair import ESME, RECEIPT, SMSC, SUBMIT, SessionPair, drain

from smppgw.protocol import pdus as p
from smppgw.protocol.codec import encode_pdu
from smppgw.protocol.errors import (
    FramingError,
    PduDecodeError,
    PduEncodeError,
    ReceiveStateError,
    SendStateError,
)
from smppgw.protocol.session import (
    NEED_DATA,
    ConnectionClosed,
    EnquireLinkDue,
    InactivityTimeout,
    LinkDead,
    RequestTimedOut,
    ResponseReceived,
    SmppConnection,
    UnexpectedResponse,
    WindowFullError,
    error_response,
    make_response,
)
from smppgw.protocol.states import Role, State
from smppgw.protocol.status import CommandStatus as CS


@pytest.fixture(params=[False, True], ids=["whole", "bytewise"])
def pair(request: pytest.FixtureRequest) -> SessionPair:
    return SessionPair(byte_at_a_time=request.param)


# -- whole flows ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("bind", "state"),
    [
        (p.BindTransmitter, State.BOUND_TX),
        (p.BindReceiver, State.BOUND_RX),
        (p.BindTransceiver, State.BOUND_TRX),
    ],
)
def test_bind(
    pair: SessionPair,
    bind: type[p.BindTransmitter | p.BindReceiver | p.BindTransceiver],
    state: State,
) -> None:
    request = pair.request(ESME, bind(system_id="esme", password="secret"))
    assert request.sequence_number == 1
    assert pair.esme.state is pair.smsc.state is State.BINDING
    pair.answer(SMSC, request, system_id="smsc")
    assert pair.esme.state is pair.smsc.state is state
    assert pair.esme.is_bound


def test_refused_bind_returns_to_open_and_may_bind_again(pair: SessionPair) -> None:
    request = pair.request(ESME, p.BindTransmitter(system_id="esme", password="wrong"))
    event = pair.answer(SMSC, request, status=CS.ESME_RINVPASWD)
    assert event.response.command_status == CS.ESME_RINVPASWD
    assert pair.esme.state is pair.smsc.state is State.OPEN
    pair.bind(p.BindTransmitter(system_id="esme", password="right"))


def test_generic_nack_to_bind_returns_to_open(pair: SessionPair) -> None:
    request = pair.request(ESME, p.BindTransceiver())
    nack = p.GenericNack(sequence_number=request.sequence_number, command_status=CS.ESME_RSYSERR)
    [event] = pair.send(SMSC, nack)
    assert isinstance(event, ResponseReceived)
    assert event.request == request
    assert pair.esme.state is pair.smsc.state is State.OPEN


def test_submit_and_receipt(pair: SessionPair) -> None:
    pair.bind()
    submit = pair.request(ESME, SUBMIT, now=1.0)
    assert submit == dataclasses.replace(SUBMIT, sequence_number=2)
    event = pair.answer(SMSC, submit, now=1.25, message_id="abc")
    assert event.elapsed == pytest.approx(0.25)
    receipt = pair.request(SMSC, RECEIPT, now=2.0)
    assert receipt.sequence_number == 1  # each side numbers its own requests
    pair.answer(ESME, receipt, now=2.0)
    for conn in pair.conn.values():
        stats = conn.statistics()
        assert stats.outstanding == 0
        assert stats.awaiting_our_response == 0
    e = pair.esme.statistics()
    assert (e.requests_sent, e.responses_received, e.requests_received, e.responses_sent) == (
        2,
        2,
        1,
        1,
    )


def test_data_sm_both_ways_and_alert(pair: SessionPair) -> None:
    pair.bind()
    pair.answer(SMSC, pair.request(ESME, p.DataSm(source_addr="1", destination_addr="2")))
    pair.answer(ESME, pair.request(SMSC, p.DataSm(source_addr="2", destination_addr="1")))
    pair.request(SMSC, p.AlertNotification(source_addr="2", esme_addr="1"))
    assert pair.esme.statistics().awaiting_our_response == 0  # nothing answers an alert


def test_enquire_link_before_and_after_bind(pair: SessionPair) -> None:
    pair.answer(SMSC, pair.request(ESME, p.EnquireLink()))
    pair.answer(ESME, pair.request(SMSC, p.EnquireLink()))
    assert pair.esme.state is State.OPEN
    pair.bind()
    pair.answer(SMSC, pair.request(ESME, p.EnquireLink()))


@pytest.mark.parametrize("unbinder", [ESME, SMSC])
def test_unbind_then_eof_is_clean(pair: SessionPair, unbinder: Role) -> None:
    pair.bind()
    unbind = pair.request(unbinder, p.Unbind())
    want = State.ESME_UNBINDING if unbinder is ESME else State.SMSC_UNBINDING
    assert pair.esme.state is pair.smsc.state is want
    with pytest.raises(SendStateError):
        pair.conn[unbinder].send(p.SubmitSm(), 0.0)
    pair.answer(unbinder.peer, unbind)
    assert pair.esme.state is pair.smsc.state is State.CLOSED
    for role in (ESME, SMSC):
        assert pair.feed(role, b"") == [ConnectionClosed(clean=True)]


def test_outbind_flow(pair: SessionPair) -> None:
    pair.request(SMSC, p.Outbind(system_id="smsc", password="pw"))
    assert pair.esme.state is pair.smsc.state is State.OUTBOUND
    with pytest.raises(SendStateError) as info:
        pair.esme.send(p.BindTransmitter(), 0.0)
    assert info.value.command_status == CS.ESME_RINVBNDSTS
    pair.bind(p.BindReceiver(system_id="esme"))
    assert pair.esme.statistics().state is State.BOUND_RX
    pair.answer(ESME, pair.request(SMSC, RECEIPT))


def test_crossing_unbinds_close_both(pair: SessionPair) -> None:
    pair.bind()
    esme_bytes = pair.esme.send(p.Unbind(), 0.0)
    smsc_bytes = pair.smsc.send(p.Unbind(), 0.0)
    # Each side reads the other's unbind (sent before any unbind_resp) and refuses it.
    answers = {}
    for role, data in ((SMSC, esme_bytes), (ESME, smsc_bytes)):
        conn = pair.conn[role]
        conn.receive_data(data, 0.0)
        with pytest.raises(ReceiveStateError) as info:
            conn.next_event()
        answers[role] = conn.send(error_response(info.value), 0.0)
    for role, data in answers.items():
        [event] = pair.feed(role.peer, data)
        assert isinstance(event, ResponseReceived)
        assert event.response.command_status == CS.ESME_RINVBNDSTS
    assert pair.esme.state is pair.smsc.state is State.CLOSED


def test_answer_flushed_after_unbind_resp_is_delivered(pair: SessionPair) -> None:
    pair.bind()
    submit = pair.request(ESME, SUBMIT)
    unbind = pair.request(ESME, p.Unbind())
    pair.answer(SMSC, unbind)
    assert pair.esme.state is pair.smsc.state is State.CLOSED
    event = pair.answer(SMSC, submit, message_id="late-but-real")
    assert event.response.message_id == "late-but-real"  # type: ignore[attr-defined]
    with pytest.raises(SendStateError):
        pair.smsc.send(p.EnquireLink(), 0.0)


# -- the peer's mistakes ------------------------------------------------------------------


def test_out_of_state_request_is_answered_and_session_goes_on(pair: SessionPair) -> None:
    pair.bind(p.BindReceiver())
    # A peer that submits on a receiver bind: the SMSC refuses it, and the next PDU of
    # the same read is still decoded.
    data = encode_pdu(SUBMIT, sequence_number=7) + encode_pdu(p.EnquireLink(), sequence_number=8)
    pair.smsc.receive_data(data, 0.0)
    with pytest.raises(ReceiveStateError) as info:
        pair.smsc.next_event()
    assert (info.value.command_status, info.value.sequence_number) == (CS.ESME_RINVBNDSTS, 7)
    answer = error_response(info.value)
    assert answer == p.SubmitSmResp(sequence_number=7, command_status=CS.ESME_RINVBNDSTS)
    wire = pair.smsc.send(answer, 0.0)
    # the codec writes the (empty) message_id even on an error: 17 octets
    assert wire == b"\x00\x00\x00\x11\x80\x00\x00\x04\x00\x00\x00\x04\x00\x00\x00\x07\x00"
    assert drain(pair.smsc) == [p.EnquireLink(sequence_number=8)]
    assert pair.smsc.state is State.BOUND_RX


def test_second_bind_is_already_bound(pair: SessionPair) -> None:
    pair.bind()
    with pytest.raises(SendStateError) as local:
        pair.esme.send(p.BindTransceiver(), 0.0)
    assert local.value.command_status == CS.ESME_RALYBND
    pair.smsc.receive_data(encode_pdu(p.BindTransceiver(), sequence_number=9), 0.0)
    with pytest.raises(ReceiveStateError) as info:
        pair.smsc.next_event()
    answer = error_response(info.value)
    assert answer == p.BindTransceiverResp(sequence_number=9, command_status=CS.ESME_RALYBND)
    pair.smsc.send(answer, 0.0)
    assert pair.smsc.state is State.BOUND_TRX


def test_malformed_pdu_answer_carries_status_and_sequence(pair: SessionPair) -> None:
    pair.bind()
    bad = encode_pdu(SUBMIT, sequence_number=0x1234).replace(b"8055\x00", b"8055" * 6 + b"\x00")
    bad = len(bad).to_bytes(4, "big") + bad[4:]
    pair.smsc.receive_data(bad + encode_pdu(p.EnquireLink(), sequence_number=5), 0.0)
    with pytest.raises(PduDecodeError) as info:
        pair.smsc.next_event()
    wire = pair.smsc.send(error_response(info.value), 0.0)
    assert wire == b"\x00\x00\x00\x11\x80\x00\x00\x04\x00\x00\x00\x0a\x00\x00\x12\x34\x00"
    assert drain(pair.smsc) == [p.EnquireLink(sequence_number=5)]


def test_unknown_command_is_generic_nack(pair: SessionPair) -> None:
    pair.smsc.receive_data(b"\x00\x00\x00\x10\x00\x00\x00\x99\x00\x00\x00\x00\x00\x00\x00\x05", 0)
    with pytest.raises(PduDecodeError) as info:
        pair.smsc.next_event()
    answer = error_response(info.value)
    assert answer == p.GenericNack(sequence_number=5, command_status=CS.ESME_RINVCMDID)
    pair.smsc.send(answer, 0.0)
    assert pair.smsc.state is State.OPEN


def test_framing_error_is_sticky(pair: SessionPair) -> None:
    pair.bind()
    pair.smsc.receive_data(b"\x00\x00\x00\x08\x00\x00\x00\x15\x00\x00\x00\x00\x00\x00\x00\x03", 0)
    with pytest.raises(FramingError) as info:
        pair.smsc.next_event()
    assert pair.smsc.state is State.ERROR
    with pytest.raises(FramingError):
        pair.smsc.next_event()
    answer = error_response(info.value)
    assert answer == p.GenericNack(sequence_number=3, command_status=CS.ESME_RINVCMDLEN)
    assert pair.smsc.send(answer, 0.0)[:8] == b"\x00\x00\x00\x10\x80\x00\x00\x00"
    with pytest.raises(SendStateError):
        pair.smsc.send(p.EnquireLink(), 0.0)
    assert pair.smsc.next_deadline() is None or pair.smsc.statistics().outstanding == 0


def test_send_failed_is_sticky() -> None:
    pair = SessionPair()
    pair.bind()
    pair.esme.send_failed()
    assert pair.esme.state is State.ERROR
    with pytest.raises(SendStateError):
        pair.esme.send(SUBMIT, 0.0)


# -- our own mistakes ---------------------------------------------------------------------


def test_illegal_send_changes_nothing() -> None:
    conn = SmppConnection(ESME, now=0.0)
    with pytest.raises(SendStateError) as info:
        conn.send(SUBMIT, 0.0)
    assert info.value.command_status == CS.ESME_RINVBNDSTS
    with pytest.raises(SendStateError):
        SmppConnection(SMSC).send(p.DeliverSm(), 0.0)
    assert conn.statistics().requests_sent == 0
    assert conn.send_request(p.EnquireLink(), 0.0)[0].sequence_number == 1


def test_encode_error_changes_nothing() -> None:
    pair = SessionPair()
    pair.bind()
    with pytest.raises(PduEncodeError):
        pair.esme.send(p.SubmitSm(short_message=b"x" * 255), 0.0)
    assert pair.esme.statistics().outstanding == 0
    assert pair.request(ESME, SUBMIT).sequence_number == 2


def test_double_answer_and_wrong_answer_are_refused() -> None:
    pair = SessionPair()
    pair.bind()
    submit = pair.request(ESME, SUBMIT)
    with pytest.raises(SendStateError):
        pair.smsc.send(p.DeliverSmResp(sequence_number=submit.sequence_number), 0.0)
    pair.answer(SMSC, submit, message_id="1")
    with pytest.raises(SendStateError):
        pair.smsc.send(make_response(submit, message_id="1"), 0.0)
    # An error answer to a sequence number never read is allowed (a malformed PDU).
    pair.smsc.send(p.GenericNack(sequence_number=99, command_status=CS.ESME_RINVCMDLEN), 0.0)


def test_response_helpers() -> None:
    request = p.SubmitSm(sequence_number=42)
    assert make_response(request, message_id="m") == p.SubmitSmResp(
        sequence_number=42, message_id="m"
    )
    with pytest.raises(TypeError):
        make_response(p.Outbind())
    with pytest.raises(TypeError):
        SmppConnection(ESME).send_request(p.SubmitSmResp(), 0.0)
    alert = ReceiveStateError(
        "x", command_status=CS.ESME_RINVBNDSTS, sequence_number=3, command_id=0x102
    )
    assert error_response(alert) == p.GenericNack(
        sequence_number=3, command_status=CS.ESME_RINVBNDSTS
    )
    headless = FramingError("x", command_status=CS.ESME_RINVCMDLEN)
    assert error_response(headless) == p.GenericNack(command_status=CS.ESME_RINVCMDLEN)


# -- outstanding requests, window, sequence numbers ----------------------------------------


def test_window_fills_and_frees() -> None:
    pair = SessionPair(window=3)
    pair.bind()
    sent = [pair.request(ESME, SUBMIT) for _ in range(3)]
    assert not pair.esme.can_send_request
    assert pair.esme.window_available == 0
    with pytest.raises(WindowFullError) as info:
        pair.esme.send(SUBMIT, 0.0)
    assert info.value.command_status == CS.ESME_RMSGQFUL
    pair.answer(SMSC, pair.request(ESME, p.EnquireLink()))  # control needs no slot
    pair.answer(SMSC, sent[1], message_id="b")
    assert pair.esme.window_available == 1
    pair.request(ESME, SUBMIT)
    stats = pair.esme.statistics()
    assert (stats.window_used, stats.window_size, stats.outstanding) == (3, 3, 3)


def test_out_of_order_responses(pair: SessionPair) -> None:
    pair.bind()
    sent = [pair.request(ESME, SUBMIT) for _ in range(5)]
    for i in (3, 0, 4, 2, 1):
        event = pair.answer(SMSC, sent[i], message_id=str(i))
        assert event.request.sequence_number == sent[i].sequence_number
    assert pair.esme.outstanding_requests() == ()


def test_unexpected_responses_are_events() -> None:
    pair = SessionPair()
    pair.bind()
    [event] = pair.feed(ESME, encode_pdu(p.SubmitSmResp(sequence_number=77)))
    assert isinstance(event, UnexpectedResponse)
    submit = pair.request(ESME, SUBMIT)
    wrong = p.QuerySmResp(sequence_number=submit.sequence_number)
    [event] = pair.feed(ESME, encode_pdu(wrong))
    assert isinstance(event, UnexpectedResponse)
    assert "SubmitSm" in event.reason
    assert pair.esme.outstanding_requests() == (submit,)  # still waiting for its answer
    assert pair.esme.statistics().unexpected_responses == 2


def test_sequence_wraps_and_skips_outstanding() -> None:
    conn = SmppConnection(ESME, now=0.0, first_sequence_number=0x7FFFFFFE, window=10)
    seqs = [conn.send_request(p.EnquireLink(), 0.0)[0].sequence_number for _ in range(4)]
    assert seqs == [0x7FFFFFFE, 0x7FFFFFFF, 1, 2]
    # Come around again while 0x7FFFFFFF, 1 and 2 are outstanding.
    conn.receive_data(encode_pdu(p.EnquireLinkResp(sequence_number=0x7FFFFFFE)), 0.0)
    assert isinstance(conn.next_event(), ResponseReceived)
    conn._outstanding._next_seq = 0x7FFFFFFF  # a test-only shortcut past two billion requests
    assert conn.send_request(p.EnquireLink(), 0.0)[0].sequence_number == 3
    conn._outstanding._next_seq = 0x7FFFFFFE
    assert conn.send_request(p.EnquireLink(), 0.0)[0].sequence_number == 0x7FFFFFFE


# -- timers ---------------------------------------------------------------------------------


def test_response_timeout_frees_the_slot_and_late_answer_is_unexpected() -> None:
    pair = SessionPair(window=1, response_timeout=10.0, enquire_link_interval=None)
    pair.bind(now=0.0)
    assert pair.esme.next_deadline() is None
    submit = pair.request(ESME, SUBMIT, now=5.0)
    assert pair.esme.next_deadline() == 15.0
    assert pair.esme.handle_timeout(14.999) == []
    assert pair.esme.handle_timeout(15.0) == [RequestTimedOut(request=submit, elapsed=10.0)]
    assert pair.esme.can_send_request
    assert pair.esme.next_deadline() is None
    [late] = pair.send(SMSC, make_response(submit, message_id="x"), now=16.0)
    assert isinstance(late, UnexpectedResponse)
    assert pair.esme.statistics().timeouts == 1


def test_enquire_link_due_and_link_dead() -> None:
    conn = SmppConnection(ESME, enquire_link_interval=30.0, response_timeout=10.0, now=0.0)
    assert conn.next_deadline() == 30.0
    assert conn.handle_timeout(29.0) == []
    assert conn.handle_timeout(30.0) == [EnquireLinkDue(idle=30.0)]
    assert conn.handle_timeout(30.0) == []  # reported once, not in a busy loop
    assert conn.next_deadline() == 60.0
    enquire, _ = conn.send_request(p.EnquireLink(), 30.0)
    assert conn.next_deadline() == 40.0  # its response deadline; no new due time
    assert conn.handle_timeout(40.0) == [LinkDead(request=enquire, elapsed=10.0)]


def test_received_traffic_pushes_enquire_link_back() -> None:
    conn = SmppConnection(SMSC, enquire_link_interval=30.0, now=0.0)
    conn.receive_data(encode_pdu(p.EnquireLink(), sequence_number=1), 25.0)
    assert conn.next_deadline() == 55.0
    conn.receive_data(encode_pdu(p.EnquireLink(), sequence_number=2)[:5], 50.0)
    assert conn.next_deadline() == 80.0  # even a partial PDU shows the peer is alive


def test_inactivity_counts_traffic_not_keepalive() -> None:
    pair = SessionPair(inactivity_timeout=100.0, enquire_link_interval=30.0)
    pair.bind(now=0.0)
    for t in (30.0, 60.0, 90.0):
        assert pair.esme.handle_timeout(t) == [EnquireLinkDue(idle=30.0)]
        pair.answer(SMSC, pair.request(ESME, p.EnquireLink(), now=t), now=t)
    assert pair.esme.next_deadline() == 100.0
    assert pair.esme.handle_timeout(100.0) == [InactivityTimeout(idle=100.0)]
    assert pair.esme.next_deadline() == 120.0
    pair.answer(SMSC, pair.request(ESME, SUBMIT, now=110.0), now=110.0)
    assert pair.esme.handle_timeout(205.0) == [EnquireLinkDue(idle=95.0)]
    assert pair.esme.handle_timeout(210.0) == [InactivityTimeout(idle=100.0)]


def test_timers_wait_for_a_first_time_value() -> None:
    conn = SmppConnection(ESME)
    assert conn.next_deadline() is None
    conn.send(p.BindTransmitter(), 100.0)
    assert conn.next_deadline() == 110.0


def test_small_api() -> None:
    assert repr(NEED_DATA) == "NEED_DATA"
    assert type(NEED_DATA) is NEED_DATA
    with pytest.raises(ValueError, match="window"):
        SmppConnection(ESME, window=0)
    with pytest.raises(ValueError, match="first_sequence_number"):
        SmppConnection(ESME, first_sequence_number=0)
    conn = SmppConnection(ESME)
    assert conn.can_send(p.BindTransmitter)
    assert not conn.can_send(p.SubmitSm)
    assert not conn.is_bound
    conn.receive_data(b"", 5.0)  # EOF before anything else starts the clock
    assert conn.next_event() == ConnectionClosed(clean=False)
    assert conn.next_deadline() is None  # CLOSED: no keep-alive


def test_keepalive_first_starts_inactivity_clock() -> None:
    conn = SmppConnection(ESME, inactivity_timeout=50.0)
    conn.send(p.EnquireLink(), 10.0)
    assert conn.next_deadline() == 20.0  # the enquire_link's own response deadline
    conn.receive_data(encode_pdu(p.EnquireLinkResp(sequence_number=1)), 11.0)
    assert isinstance(conn.next_event(), ResponseReceived)
    assert conn.next_deadline() == 41.0  # enquire_link due; inactivity from 10.0 is 60.0


# -- closing ----------------------------------------------------------------------------------


def test_eof_reports_unanswered_once() -> None:
    pair = SessionPair()
    pair.bind()
    submit = pair.request(ESME, SUBMIT)
    partial = encode_pdu(p.EnquireLink())[:7]
    events = pair.feed(ESME, partial) + pair.feed(ESME, b"")
    assert events == [ConnectionClosed(clean=False, unanswered=(submit,))]
    assert pair.esme.state is State.CLOSED
    assert pair.esme.next_event() == ConnectionClosed(clean=False)
    assert pair.esme.can_send_request
    pair.esme.receive_data(b"", 1.0)  # EOF twice is fine
    with pytest.raises(RuntimeError):
        pair.esme.receive_data(b"x", 1.0)


def test_close_returns_outstanding() -> None:
    pair = SessionPair()
    pair.bind()
    sent = [pair.request(ESME, SUBMIT) for _ in range(2)]
    assert pair.esme.close() == tuple(sent)
    assert pair.esme.state is State.CLOSED
    assert pair.esme.close() == ()
    assert pair.esme.next_deadline() is None


@given(pdus(p.DeliverSm), st.integers(0, 3))
def test_an_encoded_request_goes_out_as_the_same_octets(pdu: p.DeliverSm, earlier: int) -> None:
    """A receipt journaled as octets is sent as they are, with the session's next
    sequence number set in place: the same octets ``send_request`` would give."""
    try:
        encoded = encode_pdu(pdu)
    except PduEncodeError:
        return  # the strategy can make PDUs over a field's limit
    sides = []
    for raw in (False, True):
        pair = SessionPair()
        pair.bind()
        for _ in range(earlier):
            pair.answer(ESME, pair.request(SMSC, RECEIPT))
        if raw:
            request, data = pair.smsc.send_encoded_request(encoded, 1.0)
        else:
            request, data = pair.smsc.send_request(pdu, 1.0)
        [seen] = pair.feed(ESME, data)
        event = pair.answer(ESME, request)
        sides.append((data, request.sequence_number, type(request), seen, event.request))
    (data, seq, cls, seen, answered), (raw_data, raw_seq, raw_cls, raw_seen, raw_answered) = sides
    assert raw_data == data
    assert (raw_seq, raw_cls) == (seq, cls) == (earlier + 1, p.DeliverSm)
    assert raw_seen == seen
    assert raw_answered.sequence_number == answered.sequence_number == seq


def test_an_encoded_request_that_is_not_one_is_refused_and_changes_nothing() -> None:
    pair = SessionPair()
    pair.bind()
    before = pair.smsc.statistics()
    good = encode_pdu(RECEIPT)
    for bad in (good[:-1], good + b"\0", encode_pdu(p.DeliverSmResp()), b"\0" * 8):
        with pytest.raises(PduEncodeError):
            pair.smsc.send_encoded_request(bad, 1.0)
    assert pair.smsc.statistics() == before
    request, _ = pair.smsc.send_encoded_request(good, 1.0)
    assert request.sequence_number == 1
