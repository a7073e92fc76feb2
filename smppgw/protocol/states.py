"""The SMPP 3.4 session state machine as data: which PDU may go which way, and where to.

Rule 1: everything that decides whether a PDU is legal in a state, and which state it
leads to, lives in this file. As much as possible is in the :data:`TRANSITIONS` table;
the few rules that do not fit a table (a refused bind, a ``generic_nack`` that answers a
bind or an unbind, ``ESME_RALYBND``) are the short function :func:`transition` below,
and nowhere else.

Rule 2: this file does not know which role *we* play. It knows only who *sent* a PDU
(the ESME or the SMSC). ``session.py`` asks "may the ESME send a ``submit_sm`` in
BOUND_TX?" both when we are the ESME sending it and when we are the SMSC receiving it, so
both ends of a connection run the same table and agree on the state.

Rule 3: this file knows PDU *types* and command statuses, never sequence numbers, bytes
or time. Matching a response to its request is ``session.py``'s job; it tells
:func:`transition` what a ``generic_nack`` answers.

Theory of operation
-------------------
One state per connection, shared by both ends (the SMPP bind is a property of the
connection, not of one side, unlike h11's per-role states)::

    OPEN --ESME bind_*--> BINDING --SMSC bind_*_resp ok--> BOUND_TX / BOUND_RX / BOUND_TRX
      |                      `-----SMSC bind_*_resp error or generic_nack--> OPEN
      `--SMSC outbind--> OUTBOUND --ESME bind_receiver / bind_transceiver--> BINDING

    BOUND_* --ESME unbind--> ESME_UNBINDING --SMSC unbind_resp--> CLOSED
    BOUND_* --SMSC unbind--> SMSC_UNBINDING --ESME unbind_resp--> CLOSED

Legality follows SMPP 3.4 sections 2.2 and 2.3:

- ``enquire_link``, ``enquire_link_resp`` and ``generic_nack`` go both ways in every
  state but CLOSED (2.3 allows ``enquire_link`` before a bind).
- ESME -> SMSC in BOUND_TX and BOUND_TRX: ``submit_sm``, ``submit_multi``, ``data_sm``,
  ``query_sm``, ``cancel_sm``, ``replace_sm``; the SMSC answers them there.
- SMSC -> ESME in BOUND_RX and BOUND_TRX: ``deliver_sm``, ``data_sm``,
  ``alert_notification``; the ESME answers ``deliver_sm`` and ``data_sm`` there.
- ``unbind`` goes either way in a bound state. The unbinding states are split by who
  sent the ``unbind``, so that only the *other* side may send ``unbind_resp``: a table
  entry rather than a remembered flag (Rule 1). While unbinding, either side may still
  answer requests that were outstanding (their ``_resp``), but no new request but
  ``enquire_link`` is legal: a ``deliver_sm`` that crossed our ``unbind`` on the wire is
  refused with ``ESME_RINVBNDSTS`` and the SMSC delivers it on a later bind.
- Crossing unbinds (both sides send ``unbind`` at once) need no extra state: each side
  refuses the other's ``unbind`` (``ESME_RINVBNDSTS``), answering it with an error
  ``unbind_resp``; every ``unbind_resp`` leads to CLOSED whatever its status, so both
  ends close.
- A bind while BINDING or bound is refused with ``ESME_RALYBND`` (4.1), any other miss
  with ``ESME_RINVBNDSTS``.
- A response carrying an error status is legal in every state but CLOSED and ERROR, even
  without a table entry: that is how a request refused for its state is answered (a
  ``deliver_sm_resp`` with ``ESME_RINVBNDSTS`` from an ESME bound as a transmitter). It
  moves the session only where the table says so, and a refused bind goes back to OPEN
  (the ESME may bind again on the same connection).
- After CLOSED nothing is legal but a response that answers a request still
  outstanding (``session.py`` passes what it answers): an SMSC may flush a
  ``submit_sm_resp`` after its ``unbind_resp``, and dropping it would lose the
  ``message_id`` of a message that was accepted.
- ERROR is the sticky state after a framing error or a failed write: the byte stream
  cannot be trusted, so the only PDU left to send is the ``generic_nack`` that explains
  why we are closing, and nothing is received.
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING

from smppgw.protocol.errors import SendStateError
from smppgw.protocol.pdus import (
    RESPONSE_CLASS,
    AlertNotification,
    BindReceiver,
    BindReceiverResp,
    BindTransceiver,
    BindTransceiverResp,
    BindTransmitter,
    BindTransmitterResp,
    CancelSm,
    CancelSmResp,
    DataSm,
    DataSmResp,
    DeliverSm,
    DeliverSmResp,
    EnquireLink,
    EnquireLinkResp,
    GenericNack,
    Outbind,
    Pdu,
    QuerySm,
    QuerySmResp,
    ReplaceSm,
    ReplaceSmResp,
    SubmitMulti,
    SubmitMultiResp,
    SubmitSm,
    SubmitSmResp,
    Unbind,
    UnbindResp,
)
from smppgw.protocol.status import CommandStatus

if TYPE_CHECKING:
    from collections.abc import Iterable

__all__ = [
    "BIND_CLASSES",
    "BOUND_STATES",
    "TRANSITIONS",
    "Role",
    "State",
    "is_legal",
    "transition",
]


class Role(enum.StrEnum):
    """Who sent a PDU. The ESME is the client side, the SMSC the server side."""

    ESME = "esme"
    SMSC = "smsc"

    @property
    def peer(self) -> Role:
        return Role.SMSC if self is Role.ESME else Role.ESME


class State(enum.StrEnum):
    OPEN = "open"  # connected, not bound
    OUTBOUND = "outbound"  # the SMSC sent outbind; the ESME is to bind as a receiver
    BINDING = "binding"  # the ESME sent a bind; awaiting bind_*_resp
    BOUND_TX = "bound_tx"
    BOUND_RX = "bound_rx"
    BOUND_TRX = "bound_trx"
    ESME_UNBINDING = "esme_unbinding"  # the ESME sent unbind; awaiting unbind_resp
    SMSC_UNBINDING = "smsc_unbinding"  # the SMSC sent unbind; awaiting unbind_resp
    CLOSED = "closed"
    ERROR = "error"  # sticky: framing broken or a write failed


BOUND_STATES = frozenset({State.BOUND_TX, State.BOUND_RX, State.BOUND_TRX})
BIND_CLASSES: frozenset[type[Pdu]] = frozenset({BindTransmitter, BindReceiver, BindTransceiver})

PduTable = dict[type[Pdu], State]

# -- the vocabularies of SMPP 3.4 section 2.3 -----------------------------------------

_ALWAYS: tuple[type[Pdu], ...] = (EnquireLink, EnquireLinkResp, GenericNack)
#: ESME -> SMSC when bound as a transmitter, and the SMSC's answers.
_TX_REQUESTS: tuple[type[Pdu], ...] = (SubmitSm, SubmitMulti, DataSm, QuerySm, CancelSm, ReplaceSm)
_TX_RESPONSES: tuple[type[Pdu], ...] = (
    SubmitSmResp,
    SubmitMultiResp,
    DataSmResp,
    QuerySmResp,
    CancelSmResp,
    ReplaceSmResp,
)
#: SMSC -> ESME when bound as a receiver, and the ESME's answers (alert_notification has
#: no response).
_RX_REQUESTS: tuple[type[Pdu], ...] = (DeliverSm, DataSm, AlertNotification)
_RX_RESPONSES: tuple[type[Pdu], ...] = (DeliverSmResp, DataSmResp)


def _stay(state: State, *groups: Iterable[type[Pdu]]) -> PduTable:
    """Every PDU type in ``groups`` is legal in ``state`` and leaves it unchanged."""
    return {cls: state for group in groups for cls in group}


def _bound(state: State, *, tx: bool, rx: bool) -> dict[Role, PduTable]:
    esme = _stay(state, _ALWAYS, _TX_REQUESTS if tx else (), _RX_RESPONSES if rx else ())
    smsc = _stay(state, _ALWAYS, _TX_RESPONSES if tx else (), _RX_REQUESTS if rx else ())
    esme[Unbind] = State.ESME_UNBINDING
    smsc[Unbind] = State.SMSC_UNBINDING
    return {Role.ESME: esme, Role.SMSC: smsc}


_S = State

#: ``TRANSITIONS[state][sender][pdu_type] -> next state``. A miss is illegal.
TRANSITIONS: dict[State, dict[Role, PduTable]] = {
    _S.OPEN: {
        Role.ESME: {
            **_stay(_S.OPEN, _ALWAYS),
            BindTransmitter: _S.BINDING,
            BindReceiver: _S.BINDING,
            BindTransceiver: _S.BINDING,
        },
        Role.SMSC: {**_stay(_S.OPEN, _ALWAYS), Outbind: _S.OUTBOUND},
    },
    _S.OUTBOUND: {
        # SMPP 3.4 4.1.7 asks for bind_receiver; bind_transceiver (the 3.4 addition that
        # receives too) is accepted as most SMSCs do. A transmitter bind would not let
        # the SMSC deliver, which is the point of the outbind.
        Role.ESME: {
            **_stay(_S.OUTBOUND, _ALWAYS),
            BindReceiver: _S.BINDING,
            BindTransceiver: _S.BINDING,
        },
        Role.SMSC: _stay(_S.OUTBOUND, _ALWAYS),
    },
    _S.BINDING: {
        Role.ESME: _stay(_S.BINDING, _ALWAYS),
        # The bind_*_resp type names the bound state; session.py has already checked
        # that it answers the bind that was sent (a bind_receiver_resp to a
        # bind_transmitter is an unexpected response, not a transition).
        Role.SMSC: {
            **_stay(_S.BINDING, _ALWAYS),
            BindTransmitterResp: _S.BOUND_TX,
            BindReceiverResp: _S.BOUND_RX,
            BindTransceiverResp: _S.BOUND_TRX,
        },
    },
    _S.BOUND_TX: _bound(_S.BOUND_TX, tx=True, rx=False),
    _S.BOUND_RX: _bound(_S.BOUND_RX, tx=False, rx=True),
    _S.BOUND_TRX: _bound(_S.BOUND_TRX, tx=True, rx=True),
    _S.ESME_UNBINDING: {
        Role.ESME: _stay(_S.ESME_UNBINDING, _ALWAYS, _RX_RESPONSES),
        Role.SMSC: {
            **_stay(_S.ESME_UNBINDING, _ALWAYS, _TX_RESPONSES),
            UnbindResp: _S.CLOSED,
        },
    },
    _S.SMSC_UNBINDING: {
        Role.ESME: {
            **_stay(_S.SMSC_UNBINDING, _ALWAYS, _RX_RESPONSES),
            UnbindResp: _S.CLOSED,
        },
        Role.SMSC: _stay(_S.SMSC_UNBINDING, _ALWAYS, _TX_RESPONSES),
    },
    _S.CLOSED: {Role.ESME: {}, Role.SMSC: {}},
    # The one PDU a broken stream still owes its peer: the generic_nack saying why.
    _S.ERROR: {
        Role.ESME: {GenericNack: _S.ERROR},
        Role.SMSC: {GenericNack: _S.ERROR},
    },
}

#: Where a response with an error status (or a generic_nack answering the request)
#: leads instead of the table's target: a refused bind leaves the connection unbound.
_FAILED_TARGET: dict[type[Pdu], State] = {
    BindTransmitterResp: _S.OPEN,
    BindReceiverResp: _S.OPEN,
    BindTransceiverResp: _S.OPEN,
}

_ALREADY_BOUND_STATES = frozenset({_S.BINDING, *BOUND_STATES})
_NO_ERROR_ANSWERS = frozenset({_S.CLOSED, _S.ERROR})


def transition(
    state: State,
    sender: Role,
    pdu_type: type[Pdu],
    *,
    command_status: int = 0,
    answers: type[Pdu] | None = None,
) -> State:
    """The state after ``sender`` sends a ``pdu_type`` in ``state``.

    Args:
        state: the current state.
        sender: who sends the PDU (not who we are: Rule 2).
        pdu_type: the PDU's exact class.
        command_status: the PDU's status; only responses look at it.
        answers: for a response, the class of the request it answers, if the session
            matched it to one: a ``generic_nack`` to a bind then refuses the bind, and
            a late answer is still legal in CLOSED.

    Returns:
        The next state (possibly ``state`` itself). Pure: nothing is changed.

    Raises:
        SendStateError: the PDU is not legal here. Its ``command_status`` is
            ``ESME_RALYBND`` for a bind when already bound (or binding), else
            ``ESME_RINVBNDSTS``. The session re-raises it as a ``ReceiveStateError``
            when the PDU came from the peer.
    """
    table = TRANSITIONS[state][sender]
    if pdu_type is GenericNack and answers is not None:
        # A nack is never a success: treat it as the failed response to its request,
        # where that response would move the session.
        answered = RESPONSE_CLASS.get(answers)
        if answered is not None and answered in table:
            return _FAILED_TARGET.get(answered, table[answered])
    target = table.get(pdu_type)
    is_response = bool(pdu_type.command_id & 0x80000000)
    if target is None:
        if is_response and command_status != 0 and state not in _NO_ERROR_ANSWERS:
            return state
        if is_response and answers is not None and state is _S.CLOSED:
            return state  # a late answer flushed after unbind_resp (see the rules above)
        raise _refusal(state, sender, pdu_type)
    if is_response and command_status != 0:
        return _FAILED_TARGET.get(pdu_type, target)
    return target


def is_legal(state: State, sender: Role, pdu_type: type[Pdu], *, command_status: int = 0) -> bool:
    """Whether :func:`transition` would accept this PDU (for callers that ask first)."""
    try:
        transition(state, sender, pdu_type, command_status=command_status)
    except SendStateError:
        return False
    return True


def _refusal(state: State, sender: Role, pdu_type: type[Pdu]) -> SendStateError:
    if sender is Role.ESME and pdu_type in BIND_CLASSES and state in _ALREADY_BOUND_STATES:
        status = CommandStatus.ESME_RALYBND
    else:
        status = CommandStatus.ESME_RINVBNDSTS
    return SendStateError(
        f"the {sender.name} may not send {pdu_type.__name__} in state {state.name}",
        command_status=status,
        command_id=pdu_type.command_id,
    )
