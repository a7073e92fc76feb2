"""The transition tables, driven directly (no bytes), as h11's ``test_state.py`` does.

Every state x every PDU class x both senders is checked against an oracle written here
from SMPP 3.4 sections 2.2 and 2.3 in a different shape (rules per PDU, not a table per
state), so that a typo in either one shows up as a disagreement.
"""

from __future__ import annotations

import itertools

import pytest

from smppgw.protocol import pdus as p
from smppgw.protocol.errors import SendStateError
from smppgw.protocol.pdus import PDU_CLASSES, Pdu
from smppgw.protocol.states import BOUND_STATES, TRANSITIONS, Role, State, is_legal, transition
from smppgw.protocol.status import CommandStatus

ESME, SMSC = Role.ESME, Role.SMSC
S = State
ALL_CLASSES = sorted(PDU_CLASSES.values(), key=lambda c: c.command_id)
TX = {S.BOUND_TX, S.BOUND_TRX}
RX = {S.BOUND_RX, S.BOUND_TRX}
UNBINDING = {S.ESME_UNBINDING, S.SMSC_UNBINDING}
LIVE = set(State) - {S.CLOSED, S.ERROR}


def oracle(state: State, sender: Role, cls: type[Pdu]) -> State | None:
    """The expected next state for a successful PDU, or None when it is illegal."""
    if state is S.ERROR:
        return S.ERROR if cls is p.GenericNack else None
    if state is S.CLOSED:
        return None
    if cls in (p.EnquireLink, p.EnquireLinkResp, p.GenericNack):
        return state
    esme = sender is ESME
    if cls in (p.BindTransmitter, p.BindReceiver, p.BindTransceiver):
        ok = esme and (state is S.OPEN or (state is S.OUTBOUND and cls is not p.BindTransmitter))
        return S.BINDING if ok else None
    if cls is p.Outbind:
        return S.OUTBOUND if not esme and state is S.OPEN else None
    bound_resp = {
        p.BindTransmitterResp: S.BOUND_TX,
        p.BindReceiverResp: S.BOUND_RX,
        p.BindTransceiverResp: S.BOUND_TRX,
    }
    if cls in bound_resp:
        return bound_resp[cls] if not esme and state is S.BINDING else None
    if cls is p.Unbind:
        if state not in BOUND_STATES:
            return None
        return S.ESME_UNBINDING if esme else S.SMSC_UNBINDING
    if cls is p.UnbindResp:
        ok = (state is S.ESME_UNBINDING and not esme) or (state is S.SMSC_UNBINDING and esme)
        return S.CLOSED if ok else None
    tx_requests = {p.SubmitSm, p.SubmitMulti, p.QuerySm, p.CancelSm, p.ReplaceSm}
    tx_responses = {p.SubmitSmResp, p.SubmitMultiResp, p.QuerySmResp, p.CancelSmResp}
    tx_responses |= {p.ReplaceSmResp}
    if cls in tx_requests:
        return state if esme and state in TX else None
    if cls in tx_responses:
        return state if not esme and state in TX | UNBINDING else None
    if cls in (p.DeliverSm, p.AlertNotification):
        return state if not esme and state in RX else None
    if cls is p.DeliverSmResp:
        return state if esme and state in RX | UNBINDING else None
    if cls is p.DataSm:  # both ways, each as its bind allows
        return state if state in (TX if esme else RX) else None
    if cls is p.DataSmResp:  # the SMSC answers in TX, the ESME in RX
        return state if state in ((TX if not esme else RX) | UNBINDING) else None
    raise AssertionError(f"oracle has no rule for {cls.__name__}")


CASES = list(itertools.product(State, Role, ALL_CLASSES))


@pytest.mark.parametrize(("state", "sender", "cls"), CASES, ids=lambda x: getattr(x, "name", x))
def test_every_state_pdu_and_direction(state: State, sender: Role, cls: type[Pdu]) -> None:
    expected = oracle(state, sender, cls)
    assert is_legal(state, sender, cls) is (expected is not None)
    if expected is not None:
        assert transition(state, sender, cls) is expected
        return
    with pytest.raises(SendStateError) as info:
        transition(state, sender, cls)
    already = (
        sender is ESME
        and cls in (p.BindTransmitter, p.BindReceiver, p.BindTransceiver)
        and state in BOUND_STATES | {S.BINDING}
    )
    want = CommandStatus.ESME_RALYBND if already else CommandStatus.ESME_RINVBNDSTS
    assert info.value.command_status == want
    assert info.value.command_id == cls.command_id
    assert state.name in str(info.value)


def test_table_covers_every_state_and_role() -> None:
    assert set(TRANSITIONS) == set(State)
    for state in State:
        assert set(TRANSITIONS[state]) == {ESME, SMSC}


@pytest.mark.parametrize("resp", [p.BindTransmitterResp, p.BindReceiverResp, p.BindTransceiverResp])
def test_refused_bind_goes_back_to_open(resp: type[Pdu]) -> None:
    status = CommandStatus.ESME_RBINDFAIL
    assert transition(S.BINDING, SMSC, resp, command_status=status) is S.OPEN


@pytest.mark.parametrize("bind", [p.BindTransmitter, p.BindReceiver, p.BindTransceiver])
def test_generic_nack_to_a_bind_refuses_it(bind: type[Pdu]) -> None:
    assert transition(S.BINDING, SMSC, p.GenericNack, answers=bind) is S.OPEN
    # Without knowing what it answers, a nack changes nothing.
    assert transition(S.BINDING, SMSC, p.GenericNack) is S.BINDING


def test_generic_nack_to_unbind_closes() -> None:
    assert transition(S.ESME_UNBINDING, SMSC, p.GenericNack, answers=p.Unbind) is S.CLOSED
    assert transition(S.SMSC_UNBINDING, ESME, p.GenericNack, answers=p.Unbind) is S.CLOSED


def test_generic_nack_to_traffic_keeps_state() -> None:
    assert transition(S.BOUND_TX, SMSC, p.GenericNack, answers=p.SubmitSm) is S.BOUND_TX
    # answers a request the table has no response for here: plain nack rules.
    assert transition(S.BOUND_TX, ESME, p.GenericNack, answers=p.DeliverSm) is S.BOUND_TX


def test_failed_unbind_resp_still_closes() -> None:
    status = CommandStatus.ESME_RSYSERR
    assert transition(S.ESME_UNBINDING, SMSC, p.UnbindResp, command_status=status) is S.CLOSED


@pytest.mark.parametrize(("state", "sender", "cls"), CASES, ids=lambda x: getattr(x, "name", x))
def test_error_responses_are_always_legal_while_live(
    state: State, sender: Role, cls: type[Pdu]
) -> None:
    """How a refused request is answered: an error ``_resp`` needs no table entry."""
    if not cls.command_id & 0x80000000:
        return
    status = CommandStatus.ESME_RINVBNDSTS
    if state in LIVE:
        target = transition(state, sender, cls, command_status=status)
        expected = oracle(state, sender, cls)
        if cls in (p.BindTransmitterResp, p.BindReceiverResp, p.BindTransceiverResp):
            assert target is (S.OPEN if expected is not None else state)
        else:
            assert target is (expected if expected is not None else state)
    elif state is S.ERROR and cls is p.GenericNack:
        assert transition(state, sender, cls, command_status=status) is S.ERROR
    else:
        with pytest.raises(SendStateError):
            transition(state, sender, cls, command_status=status)


def test_crossing_unbinds_both_close() -> None:
    """ESME and SMSC unbind at once: each refuses the other's unbind with an error
    unbind_resp, and each one's own unbind_resp (error or not) closes."""
    # The ESME's view: it sent unbind first.
    esme_view = transition(S.BOUND_TRX, ESME, p.Unbind)
    with pytest.raises(SendStateError):
        transition(esme_view, SMSC, p.Unbind)  # the SMSC's unbind arrives: refused
    refused = CommandStatus.ESME_RINVBNDSTS
    esme_view = transition(esme_view, ESME, p.UnbindResp, command_status=refused)
    assert esme_view is S.ESME_UNBINDING
    assert transition(esme_view, SMSC, p.UnbindResp, command_status=refused) is S.CLOSED


def test_role_peer() -> None:
    assert ESME.peer is SMSC
    assert SMSC.peer is ESME


@pytest.mark.parametrize("sender", [ESME, SMSC])
def test_late_answers_are_legal_after_close(sender: Role) -> None:
    """An SMSC may flush a submit_sm_resp after its unbind_resp: the message_id matters."""
    assert transition(S.CLOSED, SMSC, p.SubmitSmResp, answers=p.SubmitSm) is S.CLOSED
    assert transition(S.CLOSED, sender, p.GenericNack, answers=p.SubmitSm) is S.CLOSED
    with pytest.raises(SendStateError):
        transition(S.CLOSED, sender, p.SubmitSmResp)  # answering nothing: still refused
    with pytest.raises(SendStateError):
        transition(S.ERROR, sender, p.SubmitSmResp, answers=p.SubmitSm)
