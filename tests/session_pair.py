"""An ESME and an SMSC session joined by a fake wire, after h11's ``ConnectionPair``.

Instead of mocking a peer, every test pushes PDUs through two real
:class:`~smppgw.protocol.session.SmppConnection` objects: what one side's ``send``
returns is fed to the other, whole or one byte at a time, and the events that come out
are returned for the test to check.
"""

from __future__ import annotations

from typing import Any

from smppgw.protocol.pdus import BindTransceiver, DeliverSm, Pdu, SubmitSm
from smppgw.protocol.session import (
    NEED_DATA,
    ConnectionClosed,
    Event,
    ResponseReceived,
    SmppConnection,
    make_response,
)
from smppgw.protocol.states import BOUND_STATES, Role

ESME, SMSC = Role.ESME, Role.SMSC

SUBMIT = SubmitSm(source_addr="8055", destination_addr="84912345678", short_message=b"hi")
RECEIPT = DeliverSm(
    source_addr="84912345678",
    destination_addr="8055",
    esm_class=0x04,
    short_message=b"id:abc sub:001 dlvrd:001 submit date:2401010000 done date:2401010001"
    b" stat:DELIVRD err:000 text:hi",
)


def drain(conn: SmppConnection) -> list[Any]:
    """Every event the connection can give now, up to ``NEED_DATA``."""
    events = []
    while (event := conn.next_event()) is not NEED_DATA:
        events.append(event)
    return events


class SessionPair:
    """Two sessions and the wire between them.

    Args:
        byte_at_a_time: feed every transfer one octet per ``receive_data``.
        **kwargs: passed to both ``SmppConnection`` constructors (``now`` defaults
            to 0.0 so that timers start at a known time).
    """

    def __init__(self, *, byte_at_a_time: bool = False, **kwargs: Any) -> None:
        kwargs.setdefault("now", 0.0)
        self.conn = {ESME: SmppConnection(ESME, **kwargs), SMSC: SmppConnection(SMSC, **kwargs)}
        self.byte_at_a_time = byte_at_a_time

    @property
    def esme(self) -> SmppConnection:
        return self.conn[ESME]

    @property
    def smsc(self) -> SmppConnection:
        return self.conn[SMSC]

    def feed(self, receiver: Role, data: bytes, now: float = 0.0) -> list[Event]:
        """Feed ``data`` to ``receiver`` and drain its events."""
        conn = self.conn[receiver]
        chunks = [data[i : i + 1] for i in range(len(data))] if self.byte_at_a_time else []
        chunks = chunks or [data]  # whole, and b"" (EOF) stays one call
        events: list[Event] = []
        for chunk in chunks:
            conn.receive_data(chunk, now)
            while (event := conn.next_event()) is not NEED_DATA:
                assert not isinstance(event, type)
                events.append(event)
                if isinstance(event, ConnectionClosed):  # returned again on every call
                    return events
        return events

    def send(self, sender: Role, pdu: Pdu, now: float = 0.0) -> list[Event]:
        """``sender`` sends ``pdu``; the events the other side saw."""
        return self.feed(sender.peer, self.conn[sender].send(pdu, now), now)

    def request(self, sender: Role, pdu: Pdu, now: float = 0.0) -> Pdu:
        """``sender`` sends the request ``pdu``; the peer must see exactly it (with the
        assigned sequence number). Returns the request as sent."""
        sent, data = self.conn[sender].send_request(pdu, now)
        assert self.feed(sender.peer, data, now) == [sent]
        return sent

    def answer(
        self, sender: Role, request: Pdu, now: float = 0.0, status: int = 0, **fields: Any
    ) -> ResponseReceived:
        """``sender`` answers ``request``; the peer must pair the answer with it."""
        response = make_response(request, status, **fields)
        events = self.send(sender, response, now)
        assert len(events) == 1
        event = events[0]
        assert isinstance(event, ResponseReceived)
        assert event.request == request
        assert event.response == response
        return event

    def bind(self, pdu: Pdu | None = None, now: float = 0.0) -> None:
        """A successful bind; both ends agree on the bound state."""
        request = self.request(ESME, pdu or BindTransceiver(system_id="esme"), now)
        self.answer(SMSC, request, now, system_id="smsc")
        assert self.esme.state is self.smsc.state
        assert self.esme.state in BOUND_STATES
