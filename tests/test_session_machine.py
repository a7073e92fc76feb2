"""A hypothesis state machine over a session pair: random sends, partial deliveries,
answers in any order and timeouts keep the window, sequence and settlement invariants.

(Split from test_session.py, which holds the whole-flow and single-rule cases.)
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from session_pair import ESME, RECEIPT, SMSC, SUBMIT, SessionPair

from smppgw.protocol import pdus as p
from smppgw.protocol.session import (
    EnquireLinkDue,
    RequestTimedOut,
    ResponseReceived,
    WindowFullError,
    make_response,
)
from smppgw.protocol.states import Role, State
from smppgw.protocol.status import CommandStatus as CS

# -- random interleavings ---------------------------------------------------------------------


class SessionMachine(RuleBasedStateMachine):
    """Random sends, partial deliveries, answers in any order, and timeouts.

    Invariants: the window is never exceeded; outstanding sequence numbers are unique
    and match their requests; every request the ESME sent is settled exactly once (an
    answer, a timeout or the close) and a settled one is never settled again.
    """

    def __init__(self) -> None:
        super().__init__()
        self.pair = SessionPair(window=4, response_timeout=10.0, enquire_link_interval=30.0)
        self.pair.bind()
        self.now = 0.0
        self.wire: dict[Role, bytearray] = {ESME: bytearray(), SMSC: bytearray()}
        self.to_answer: dict[Role, list[p.Pdu]] = {ESME: [], SMSC: []}
        self.in_flight: dict[int, p.Pdu] = {}  # the ESME's unsettled requests by seq
        self.settled = 0
        self.sent = 0

    def _send(self, sender: Role, pdu: p.Pdu) -> None:
        self.wire[sender.peer] += self.pair.conn[sender].send(pdu, self.now)

    @precondition(lambda self: self.pair.esme.can_send_request)
    @rule(payload=st.binary(max_size=20))
    def esme_submits(self, payload: bytes) -> None:
        sent, data = self.pair.esme.send_request(p.SubmitSm(short_message=payload), self.now)
        assert sent.sequence_number not in self.in_flight
        self.in_flight[sent.sequence_number] = sent
        self.wire[SMSC] += data
        self.sent += 1

    @rule()
    def esme_window_full_raises(self) -> None:
        if not self.pair.esme.can_send_request:
            with pytest.raises(WindowFullError):
                self.pair.esme.send(SUBMIT, self.now)

    @precondition(lambda self: self.pair.smsc.can_send_request)
    @rule()
    def smsc_delivers(self) -> None:
        self._send(SMSC, RECEIPT)

    @rule(to=st.sampled_from([ESME, SMSC]), cut=st.integers(min_value=0, max_value=200))
    def deliver_bytes(self, to: Role, cut: int) -> None:
        buffer = self.wire[to]
        chunk, self.wire[to] = bytes(buffer[:cut]), buffer[cut:]
        if not chunk:
            return  # b"" would be EOF
        for event in self.pair.feed(to, chunk, self.now):
            self._observe(to, event)

    @rule(who=st.sampled_from([ESME, SMSC]), index=st.integers(min_value=0), data=st.data())
    def answer_one(self, who: Role, index: int, data: st.DataObject) -> None:
        queue = self.to_answer[who]
        if not queue:
            return
        request = queue.pop(index % len(queue))
        status = data.draw(st.sampled_from([0, CS.ESME_RTHROTTLED]))
        self._send(who, make_response(request, status))

    @rule(step=st.floats(min_value=0.0, max_value=12.0))
    def time_passes(self, step: float) -> None:
        self.now += step
        for role in (ESME, SMSC):
            for event in self.pair.conn[role].handle_timeout(self.now):
                if isinstance(event, EnquireLinkDue):
                    self._send(role, p.EnquireLink())
                else:
                    self._observe(role, event)

    def _observe(self, role: Role, event: Any) -> None:
        if isinstance(event, p.Pdu):
            if type(event) in p.RESPONSE_CLASS:
                self.to_answer[role].append(event)
            return
        request = getattr(event, "request", None)
        if role is ESME and isinstance(request, p.SubmitSm):
            assert isinstance(event, ResponseReceived | RequestTimedOut)
            assert self.in_flight.pop(request.sequence_number) == request
            self.settled += 1

    @invariant()
    def window_and_sequences(self) -> None:
        for role in (ESME, SMSC):
            stats = self.pair.conn[role].statistics()
            assert stats.window_used <= stats.window_size
            assert stats.state is State.BOUND_TRX
        conn = self.pair.esme
        seqs = [r.sequence_number for r in conn.outstanding_requests()]
        assert len(seqs) == len(set(seqs))
        submits = {
            r.sequence_number: r for r in conn.outstanding_requests() if type(r) is p.SubmitSm
        }
        assert submits == self.in_flight
        assert self.sent == self.settled + len(self.in_flight)

    def teardown(self) -> None:
        unanswered = self.pair.esme.close()
        for request in unanswered:
            if type(request) is p.SubmitSm:
                assert self.in_flight.pop(request.sequence_number) == request
        assert self.in_flight == {}


TestSessionMachine = SessionMachine.TestCase
