"""One SMPP session as a sans-I/O object: bytes and times in, events and bytes out.

Theory of operation
-------------------
:class:`SmppConnection` is h11's ``Connection`` for SMPP. It never touches a socket or a
clock. The trio layer (``smppgw.net``) owns both and drives it with four calls:

- ``receive_data(data, now)`` hands it what ``receive_some`` returned (``b""`` on EOF),
  and ``next_event()`` is then called in a loop until it returns :data:`NEED_DATA`, so
  every PDU of one read is decoded before the next read. Requests (and ``outbind`` and
  ``alert_notification``) come out as the PDU objects themselves, so the caller can
  dispatch on ``type(event)``; a response comes out paired with the request it answers
  (:class:`ResponseReceived`), or as :class:`UnexpectedResponse` when it answers
  nothing we are waiting for. A peer's mistake is a :class:`~.errors.RemoteSmppError`
  that carries the status and sequence number to answer with: ``error_response(exc)``
  builds that answer, the caller sends it and goes on calling ``next_event()``.
- ``send(pdu, now)`` returns the bytes to write. A request gets the session's next
  sequence number and a response deadline; a response keeps the sequence number it was
  built with (``make_response(request)`` copies the request's).
- ``next_deadline()`` says when to wake up if nothing arrives, and
  ``handle_timeout(now)`` says what came due: an ``enquire_link`` to send, requests
  that were never answered (their window slots are freed), an idle session.
- ``statistics()`` is read by the metrics collector at scrape time.

The events, :data:`NEED_DATA`, the statistics snapshot, ``make_response`` and
``error_response`` live in ``events.py`` and are re-exported here: import them from
this module.

Which PDU is legal when is not decided here but in ``states.py`` (its Rule 1); this
module adds what needs sequence numbers and time: the keep-alive timers here, our
requests awaiting an answer in ``outstanding.py`` (sequence numbers, the window,
response deadlines) and the peer's requests we owe an answer in ``owed.py``.

Error handling:
    Out-of-state and malformed PDUs are not sticky: the session answers and goes on, as
    SMPP expects. Only a framing error (the byte stream can no longer be cut into PDUs)
    and ``send_failed()`` (a write was cut short, so the peer's stream is broken) move
    the session to the sticky ERROR state, where only a ``generic_nack`` may still be
    sent.

Doubts, stated plainly: enquire_link is due after ``enquire_link_interval`` with nothing
*received* (sending does not prove the peer alive), and inactivity counts only traffic
other than enquire_link in either direction, the way SMSCs decide to drop idle binds.
"""

from __future__ import annotations

from smppgw.protocol.codec import decode_pdu, encode_pdu, with_sequence_number
from smppgw.protocol.errors import (
    FramingError,
    PduDecodeError,
    PduEncodeError,
    ReceiveStateError,
    SendStateError,
)
from smppgw.protocol.events import (
    NEED_DATA,
    ConnectionClosed,
    EnquireLinkDue,
    Event,
    InactivityTimeout,
    LinkDead,
    RequestTimedOut,
    ResponseReceived,
    SessionStatistics,
    UnexpectedResponse,
    WindowFullError,
    error_response,
    make_response,
)
from smppgw.protocol.framer import DEFAULT_MAX_COMMAND_LENGTH, Framer
from smppgw.protocol.outstanding import MAX_SEQUENCE_NUMBER, OutstandingRequests
from smppgw.protocol.owed import OwedAnswers
from smppgw.protocol.pdus import (
    PDU_CLASSES,
    RESPONSE_CLASS,
    EnquireLink,
    EnquireLinkResp,
    GenericNack,
    Pdu,
)
from smppgw.protocol.states import BOUND_STATES, Role, State, is_legal, transition
from smppgw.protocol.status import CommandStatus

__all__ = [
    "MAX_SEQUENCE_NUMBER",
    "NEED_DATA",
    "ConnectionClosed",
    "EnquireLinkDue",
    "Event",
    "InactivityTimeout",
    "LinkDead",
    "RequestTimedOut",
    "ResponseReceived",
    "SessionStatistics",
    "SmppConnection",
    "UnexpectedResponse",
    "WindowFullError",
    "error_response",
    "make_response",
]

#: SMPP 3.4 section 3.2: sequence numbers run 0x00000001..0x7FFFFFFF.

#: PDUs that do not count as activity for the inactivity timeout.
_KEEPALIVE = frozenset({EnquireLink, EnquireLinkResp})


class SmppConnection:
    """The state of one SMPP session, for either end.

    Args:
        role: the side we play: ``Role.ESME`` for our carrier binds, ``Role.SMSC`` for a
            partner's session on our server (and for the simulator).
        window: how many traffic requests may await an answer at once.
        enquire_link_interval: seconds with nothing received before an
            ``EnquireLinkDue`` event; None turns the keep-alive off.
        response_timeout: seconds a request may await its answer.
        inactivity_timeout: seconds without traffic other than enquire_link before an
            ``InactivityTimeout`` event; None (the default) never.
        max_command_length: the largest PDU accepted from the peer.
        now: the time the connection was made. Timers start from it; when None they
            start at the first ``send`` or ``receive_data``.
        first_sequence_number: where our sequence numbers start (tests use it to reach
            the wrap at 0x7FFFFFFF).
    """

    def __init__(
        self,
        role: Role,
        *,
        window: int = 10,
        enquire_link_interval: float | None = 30.0,
        response_timeout: float = 10.0,
        inactivity_timeout: float | None = None,
        max_command_length: int = DEFAULT_MAX_COMMAND_LENGTH,
        now: float | None = None,
        first_sequence_number: int = 1,
    ) -> None:
        self._outstanding = OutstandingRequests(window, response_timeout, first_sequence_number)
        self.role = role
        self._peer = role.peer
        self._enquire_interval = enquire_link_interval
        self._inactivity_timeout = inactivity_timeout
        self._framer = Framer(max_command_length)
        self._state = State.OPEN
        self._owed = OwedAnswers()  # the peer's requests we must answer
        self._now = 0.0  # the time of the last receive_data
        self._eof = False
        self._closed_event: ConnectionClosed | None = None
        # Timer bases: None until the first time value is seen.
        self._last_received: float | None = now
        self._last_activity: float | None = now
        self._counts = dict.fromkeys(
            ("req_out", "req_in", "resp_out", "resp_in", "unexpected", "timeouts"), 0
        )

    # -- reading the state -------------------------------------------------------------

    @property
    def state(self) -> State:
        return self._state

    @property
    def is_bound(self) -> bool:
        return self._state in BOUND_STATES

    @property
    def window_available(self) -> int:
        """Free window slots (the trio layer's semaphore mirrors this)."""
        return self._outstanding.window - self._outstanding.in_window

    @property
    def can_send_request(self) -> bool:
        """Whether a traffic request would find a window slot now."""
        return self._outstanding.in_window < self._outstanding.window

    def can_send(self, pdu_type: type[Pdu]) -> bool:
        """Whether the state allows us to send a (successful) ``pdu_type`` now."""
        return is_legal(self._state, self.role, pdu_type)

    def outstanding_requests(self) -> tuple[Pdu, ...]:
        """Our requests awaiting an answer, oldest first."""
        return self._outstanding.requests()

    def statistics(self) -> SessionStatistics:
        c = self._counts
        return SessionStatistics(
            role=self.role,
            state=self._state,
            outstanding=len(self._outstanding),
            window_size=self._outstanding.window,
            window_used=self._outstanding.in_window,
            awaiting_our_response=len(self._owed),
            requests_sent=c["req_out"],
            requests_received=c["req_in"],
            responses_sent=c["resp_out"],
            responses_received=c["resp_in"],
            unexpected_responses=c["unexpected"],
            timeouts=c["timeouts"],
        )

    # -- receiving ---------------------------------------------------------------------

    def receive_data(self, data: bytes, now: float) -> None:
        """Add octets read from the peer; ``b""`` means EOF.

        Raises:
            RuntimeError: data after EOF (a bug in the caller, as in h11).
        """
        if self._eof:
            if data:
                raise RuntimeError("received data after EOF")
            return
        self._now = now
        if data:
            self._last_received = now
            self._framer.feed(data)
        else:
            self._eof = True
            if self._last_received is None:
                self._last_received = now

    def next_event(self) -> Event | type[NEED_DATA]:
        """Parse the next PDU out of the received octets and update the session.

        Call it in a loop after each ``receive_data`` until it returns
        :data:`NEED_DATA` or :class:`ConnectionClosed`. After EOF, once every whole PDU
        has been returned, it returns ``ConnectionClosed`` on every call, as h11 does
        (the first one carries the unanswered requests; later ones are empty).

        Raises:
            FramingError: ``command_length`` is out of range. Sticky: the session is in
                ERROR and raises it again on every call; answer it with
                ``error_response`` and close.
            PduDecodeError: the PDU is malformed; answer with ``error_response`` and
                call again.
            ReceiveStateError: the PDU is not legal in this state (``ESME_RINVBNDSTS``,
                or ``ESME_RALYBND`` for a second bind); answer and call again.
        """
        try:
            frame = self._framer.next_frame()
        except FramingError:
            self._state = State.ERROR
            raise
        if frame is None:
            return self._maybe_closed() if self._eof else NEED_DATA
        try:
            pdu = decode_pdu(frame)
        except PduDecodeError as exc:
            self._owed.refused(exc.sequence_number)
            raise
        cls = type(pdu)
        if cls not in _KEEPALIVE:
            self._last_activity = self._now
        if pdu.is_response:
            return self._receive_response(pdu)
        try:
            self._state = transition(self._state, self._peer, cls)
        except SendStateError as exc:
            self._owed.refused(pdu.sequence_number)
            raise ReceiveStateError(
                exc.args[0],
                command_status=exc.command_status,
                sequence_number=pdu.sequence_number,
                command_id=exc.command_id,
            ) from None
        self._counts["req_in"] += 1
        self._owed.received(pdu.sequence_number, cls)
        return pdu

    def _receive_response(self, pdu: Pdu) -> Event:
        self._counts["resp_in"] += 1
        seq = pdu.sequence_number
        cls = type(pdu)
        pending = self._outstanding.get(seq)
        if pending is None:
            self._counts["unexpected"] += 1
            return UnexpectedResponse(response=pdu, reason=f"no request {seq} outstanding")
        request_cls = type(pending.request)
        if cls is not GenericNack and RESPONSE_CLASS[request_cls] is not cls:
            self._counts["unexpected"] += 1
            return UnexpectedResponse(
                response=pdu, reason=f"request {seq} is a {request_cls.__name__}"
            )
        try:
            self._state = transition(
                self._state,
                self._peer,
                cls,
                command_status=pdu.command_status,
                answers=request_cls,
            )
        except SendStateError as exc:
            raise ReceiveStateError(
                exc.args[0],
                command_status=exc.command_status,
                sequence_number=seq,
                command_id=exc.command_id,
            ) from None
        self._outstanding.forget(seq, pending)
        return ResponseReceived(
            request=pending.request, response=pdu, elapsed=self._now - pending.sent_at
        )

    def _maybe_closed(self) -> ConnectionClosed:
        if self._closed_event is not None:
            return ConnectionClosed(clean=self._closed_event.clean)
        clean = self._state is State.CLOSED and self._framer.buffered == 0
        if self._state is not State.ERROR:
            self._state = State.CLOSED
        event = ConnectionClosed(clean=clean, unanswered=self._outstanding.abandon())
        self._closed_event = event
        return event

    # -- sending -----------------------------------------------------------------------

    def send(self, pdu: Pdu, now: float) -> bytes:
        """The octets to write for ``pdu``; see :meth:`send_request` for requests.

        A response keeps the ``sequence_number`` it carries (build it with
        :func:`make_response` or :func:`error_response`).

        Raises:
            SendStateError: the state does not allow this PDU, or a successful response
                answers a sequence number we do not owe (a double answer).
            WindowFullError: a traffic request and no window slot free.
            PduEncodeError: a field is over its limit; nothing changed.
        """
        if pdu.is_response:
            return self._send_response(pdu, now)
        return self.send_request(pdu, now)[1]

    def send_request(self, pdu: Pdu, now: float) -> tuple[Pdu, bytes]:
        """Send a request: the PDU with its assigned sequence number, and its octets.

        The returned PDU is the one :class:`ResponseReceived`, :class:`RequestTimedOut`
        and :class:`ConnectionClosed` will carry, so the trio layer can key its waiters
        by ``sequence_number``. Sequence numbers run 1..0x7FFFFFFF, wrap to 1 and skip
        numbers still outstanding.
        """
        cls = type(pdu)
        if pdu.is_response:
            raise TypeError(f"{cls.__name__} is a response: use send()")
        seq, windowed = self._outstanding.claim(cls)
        new_state = transition(self._state, self.role, cls)
        data = encode_pdu(pdu, sequence_number=seq)
        # Committed only now that encoding succeeded: a PduEncodeError changes nothing.
        if pdu.sequence_number != seq:
            pdu = with_sequence_number(pdu, seq)
        self._commit_request(pdu, new_state, seq, windowed, now)
        return pdu, data

    def send_encoded_request(self, data: bytes, now: float) -> tuple[Pdu, bytes]:
        """Send a request that is already octets (a partner's receipt is journaled as
        the whole ``deliver_sm``): its sequence number is set in place, with no decoding
        and encoding again. The PDU returned, and carried by the events about it, is a
        bare PDU of the request's class with that sequence number.

        Raises:
            PduEncodeError: ``data`` is not one whole request PDU of a known command.
        """
        if len(data) < 16 or int.from_bytes(data[:4], "big") != len(data):
            raise PduEncodeError(
                f"not one whole PDU ({len(data)} octets)", command_status=CommandStatus.ESME_RSYSERR
            )
        cls = PDU_CLASSES.get(int.from_bytes(data[4:8], "big"))
        if cls is None or cls.is_response:
            raise PduEncodeError(
                f"command_id {data[4:8].hex()} is no request we send",
                command_status=CommandStatus.ESME_RSYSERR,
            )
        seq, windowed = self._outstanding.claim(cls)
        new_state = transition(self._state, self.role, cls)
        data = data[:12] + seq.to_bytes(4, "big") + data[16:]
        request = cls(sequence_number=seq)
        self._commit_request(request, new_state, seq, windowed, now)
        return request, data

    def _commit_request(
        self, pdu: Pdu, new_state: State, seq: int, windowed: bool, now: float
    ) -> None:
        self._state = new_state
        self._counts["req_out"] += 1
        self._touch(type(pdu), now)
        self._outstanding.add(pdu, seq, windowed, now)

    def _send_response(self, pdu: Pdu, now: float) -> bytes:
        cls = type(pdu)
        seq = pdu.sequence_number
        if self._owed.is_refusal_answer(pdu):
            # The error answer to a PDU refused on receipt: legal in every state but
            # CLOSED (ERROR: a generic_nack only), it moves nothing and leaves an owed
            # request with the same sequence number owed.
            transition(self._state, self.role, cls, command_status=pdu.command_status)
            data = encode_pdu(pdu)
            self._owed.refusal_answered(seq)
            self._counts["resp_out"] += 1
            self._touch(cls, now)
            return data
        owed = self._owed.answered_by(pdu)
        if owed is None:
            if pdu.command_status == 0:
                raise SendStateError(
                    f"{cls.__name__} answers sequence number {seq}, which we do not owe",
                    command_status=CommandStatus.ESME_RINVBNDSTS,
                    sequence_number=seq,
                    command_id=cls.command_id,
                )
        elif cls is not GenericNack and RESPONSE_CLASS[owed] is not cls:
            raise SendStateError(
                f"{cls.__name__} cannot answer the {owed.__name__} {seq}",
                command_status=CommandStatus.ESME_RSYSERR,
                sequence_number=seq,
                command_id=cls.command_id,
            )
        new_state = transition(
            self._state, self.role, cls, command_status=pdu.command_status, answers=owed
        )
        if owed is None:
            # An error answer to a request refused before it was owed (a second bind
            # while the first is checked, a malformed PDU) is legal but moves nothing:
            # the refused second bind's answer used to take BINDING back to OPEN, and
            # the first bind's success then failed (found by fuzzing).
            new_state = self._state
        data = encode_pdu(pdu)
        self._state = new_state
        if owed is not None:
            self._owed.settle(seq)
        self._counts["resp_out"] += 1
        self._touch(cls, now)
        return data

    def _touch(self, cls: type[Pdu], now: float) -> None:
        if cls not in _KEEPALIVE:
            self._last_activity = now
        if self._last_received is None:  # timers start with the first time value
            self._last_received = now
        if self._last_activity is None:
            self._last_activity = now

    def start_timers(self, now: float) -> None:
        """The connection is made at ``now``: start the timers unless a time value was
        already seen. Without this, a peer that connects and never sends a byte would
        arm no timer at all and hold its connection for ever (found by fuzzing)."""
        if self._last_received is None:
            self._last_received = now
        if self._last_activity is None:
            self._last_activity = now

    def send_failed(self) -> None:
        """The caller could not write what :meth:`send` returned (h11's ``send_failed``).

        The peer may hold half a PDU, so the stream is unusable: the session goes to
        the sticky ERROR state.
        """
        self._state = State.ERROR

    def close(self) -> tuple[Pdu, ...]:
        """We are closing the connection: the session goes to CLOSED (unless in ERROR)
        and the requests still outstanding are returned (and forgotten) so that the
        caller can retry them elsewhere."""
        if self._state is not State.ERROR:
            self._state = State.CLOSED
        return self._outstanding.abandon()

    # -- timers ------------------------------------------------------------------------

    def _enquire_at(self) -> float | None:
        if (
            self._enquire_interval is None
            or self._last_received is None
            or self._outstanding.enquires
            or self._state in (State.CLOSED, State.ERROR)
        ):
            return None
        return self._last_received + self._enquire_interval

    def _inactive_at(self) -> float | None:
        if (
            self._inactivity_timeout is None
            or self._last_activity is None
            or self._state in (State.CLOSED, State.ERROR)
        ):
            return None
        return self._last_activity + self._inactivity_timeout

    def next_deadline(self) -> float | None:
        """The earliest time :meth:`handle_timeout` has something to report: the oldest
        response deadline, the enquire_link due time, the inactivity limit; None when
        no timer is armed. Recompute it after every call that changes the session."""
        candidates = [t for t in (self._enquire_at(), self._inactive_at()) if t is not None]
        request_due = self._outstanding.next_deadline()
        if request_due is not None:
            candidates.append(request_due)
        return min(candidates) if candidates else None

    def handle_timeout(self, now: float) -> list[Event]:
        """Everything due at ``now``: :class:`RequestTimedOut` or :class:`LinkDead` for
        each expired request (oldest first, each no longer outstanding),
        :class:`EnquireLinkDue`, :class:`InactivityTimeout`. An event not acted upon is
        reported again one period later, never in a busy loop."""
        events: list[Event] = []
        for pending in self._outstanding.expire(now):
            self._counts["timeouts"] += 1
            elapsed = now - pending.sent_at
            if type(pending.request) is EnquireLink:
                events.append(LinkDead(request=pending.request, elapsed=elapsed))
            else:
                events.append(RequestTimedOut(request=pending.request, elapsed=elapsed))
        enquire_at = self._enquire_at()
        if enquire_at is not None and enquire_at <= now:
            assert self._last_received is not None
            events.append(EnquireLinkDue(idle=now - self._last_received))
            # Re-arm from now: ask again one interval later if the caller did not send.
            self._last_received = now
        inactive_at = self._inactive_at()
        if inactive_at is not None and inactive_at <= now:
            assert self._last_activity is not None
            events.append(InactivityTimeout(idle=now - self._last_activity))
            self._last_activity = now
        return events
