"""Our requests awaiting an answer: sequence numbers, the window, response deadlines.

Split from ``session.py``, which keeps the state machine, what we owe the peer and the
keep-alive timers; this is the bookkeeping of what the peer owes us.

Outstanding requests are a dict in send order. With one ``response_timeout`` for all
requests and ``now`` never going backwards (``trio.current_time()`` is monotonic), send
order is deadline order, so the earliest deadline is the first entry and expiry pops from
the front: O(1) per request instead of a heap.

The window counts the requests that carry traffic. ``enquire_link``, ``unbind`` and binds
do not use a slot: control must never queue behind a full window of ``submit_sm``, or a
stalled SMSC could not even be probed.

Sans-I/O like the session: no trio, times come in as arguments.
"""

from __future__ import annotations

from dataclasses import dataclass

from smppgw.protocol.events import WindowFullError
from smppgw.protocol.pdus import (
    RESPONSE_CLASS,
    BindReceiver,
    BindTransceiver,
    BindTransmitter,
    EnquireLink,
    Pdu,
    Unbind,
)
from smppgw.protocol.status import CommandStatus

__all__ = ["MAX_SEQUENCE_NUMBER", "OutstandingRequests", "Pending"]

#: Sequence numbers run 1..0x7FFFFFFF (SMPP 3.4 section 3.2).
MAX_SEQUENCE_NUMBER = 0x7FFFFFFF

#: Requests that do not take a window slot.
_CONTROL = frozenset({EnquireLink, Unbind, BindTransmitter, BindReceiver, BindTransceiver})


@dataclass(slots=True)
class Pending:
    request: Pdu
    sent_at: float
    deadline: float
    windowed: bool


class OutstandingRequests:
    def __init__(self, window: int, response_timeout: float, first_sequence_number: int) -> None:
        if window < 1:
            raise ValueError("window must be at least 1")
        if not 1 <= first_sequence_number <= MAX_SEQUENCE_NUMBER:
            raise ValueError("first_sequence_number must be in 1..0x7FFFFFFF")
        self.window = window
        self._response_timeout = response_timeout
        self._next_seq = first_sequence_number
        self._pending: dict[int, Pending] = {}
        self.in_window = 0
        #: enquire_link requests unanswered (no new one is due while one is).
        self.enquires = 0

    def __len__(self) -> int:
        return len(self._pending)

    def requests(self) -> tuple[Pdu, ...]:
        """Oldest first."""
        return tuple(p.request for p in self._pending.values())

    def get(self, seq: int) -> Pending | None:
        return self._pending.get(seq)

    def claim(self, cls: type[Pdu]) -> tuple[int, bool]:
        """The sequence number a request of ``cls`` would get now, and whether it takes a
        window slot; nothing changes yet (the caller may still refuse it).

        Raises:
            WindowFullError: a traffic request and no free slot.
        """
        windowed = cls not in _CONTROL
        if windowed and self.in_window >= self.window:
            raise WindowFullError(
                f"window of {self.window} is full",
                command_status=CommandStatus.ESME_RMSGQFUL,
                command_id=cls.command_id,
            )
        seq = self._next_seq
        while seq in self._pending:
            seq = seq + 1 if seq < MAX_SEQUENCE_NUMBER else 1
        return seq, windowed

    def add(self, request: Pdu, seq: int, windowed: bool, now: float) -> None:
        """The request went out with ``seq`` (from :meth:`claim`)."""
        self._next_seq = seq + 1 if seq < MAX_SEQUENCE_NUMBER else 1
        cls = type(request)
        if cls not in RESPONSE_CLASS:
            return  # nothing will answer it (generic_nack, alert_notification, outbind)
        self._pending[seq] = Pending(request, now, now + self._response_timeout, windowed)
        if windowed:
            self.in_window += 1
        if cls is EnquireLink:
            self.enquires += 1

    def forget(self, seq: int, pending: Pending) -> None:
        del self._pending[seq]
        if pending.windowed:
            self.in_window -= 1
        if type(pending.request) is EnquireLink:
            self.enquires -= 1

    def abandon(self) -> tuple[Pdu, ...]:
        """Forget every request (the connection is closing); they are returned."""
        requests = self.requests()
        self._pending.clear()
        self.in_window = 0
        self.enquires = 0
        return requests

    def next_deadline(self) -> float | None:
        for pending in self._pending.values():
            return pending.deadline
        return None

    def expire(self, now: float) -> list[Pending]:
        """The requests whose deadline passed, oldest first, forgotten."""
        expired: list[Pending] = []
        while self._pending:
            seq, pending = next(iter(self._pending.items()))
            if pending.deadline > now:
                break
            self.forget(seq, pending)
            expired.append(pending)
        return expired
