"""What an SMPP session reports, and the answers it builds (split from ``session.py``).

The events :meth:`~smppgw.protocol.session.SmppConnection.next_event` and
``handle_timeout`` return, the :data:`NEED_DATA` sentinel, the statistics snapshot, the
window error, and :func:`make_response` / :func:`error_response`. Everything here is
re-exported by ``session.py``, the module to import from; the theory of operation is
there.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from smppgw.protocol.errors import LocalSmppError, SmppError
from smppgw.protocol.pdus import PDU_CLASSES, RESPONSE_CLASS, GenericNack, Pdu

if TYPE_CHECKING:
    from smppgw.protocol.states import Role, State

__all__ = [
    "NEED_DATA",
    "ConnectionClosed",
    "EnquireLinkDue",
    "Event",
    "InactivityTimeout",
    "LinkDead",
    "RequestTimedOut",
    "ResponseReceived",
    "SessionStatistics",
    "UnexpectedResponse",
    "WindowFullError",
    "error_response",
    "make_response",
]


class _Sentinel(type):
    """h11's trick: a sentinel is a class whose type is itself, so ``type(x) is NEED_DATA``
    works in a dispatch on ``type(event)`` just as ``x is NEED_DATA`` does."""

    def __new__(
        cls, name: str, bases: tuple[type, ...], namespace: dict[str, Any], **kwds: Any
    ) -> _Sentinel:
        assert bases == (_Sentinel,)
        v = super().__new__(cls, name, bases, namespace, **kwds)
        v.__class__ = v  # type: ignore[assignment]
        return v

    def __repr__(self) -> str:
        return self.__name__


class NEED_DATA(_Sentinel, metaclass=_Sentinel):
    """``next_event()`` has nothing whole to return: read more and call
    ``receive_data``."""


# -- events (frozen; don't subclass them: dispatch is by exact type) ------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class ResponseReceived:
    """A response (or ``generic_nack``) that answers one of our outstanding requests.

    ``request`` carries the sequence number it was sent with; ``elapsed`` is the time
    from ``send`` to the ``receive_data`` that brought the response.
    """

    request: Pdu
    response: Pdu
    elapsed: float


@dataclass(frozen=True, slots=True, kw_only=True)
class UnexpectedResponse:
    """A response that answers nothing outstanding: late (its request already timed
    out), duplicated, or of the wrong type for its sequence number. Reported, never
    raised: a response cannot be answered, and a late answer is worth logging (it may
    mean a duplicate message) but not worth dropping the bind."""

    response: Pdu
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class RequestTimedOut:
    """No answer within ``response_timeout``: the request is no longer outstanding and
    its window slot is free. Whether it was delivered is unknown."""

    request: Pdu
    elapsed: float


@dataclass(frozen=True, slots=True, kw_only=True)
class LinkDead:
    """An ``enquire_link`` went unanswered: the peer or the path is gone. Close."""

    request: Pdu
    elapsed: float


@dataclass(frozen=True, slots=True, kw_only=True)
class EnquireLinkDue:
    """Nothing received for ``enquire_link_interval``: send ``EnquireLink()`` now."""

    idle: float


@dataclass(frozen=True, slots=True, kw_only=True)
class InactivityTimeout:
    """No traffic but enquire_link either way for ``inactivity_timeout``: unbind."""

    idle: float


@dataclass(frozen=True, slots=True, kw_only=True)
class ConnectionClosed:
    """The peer closed its side (EOF). ``clean`` when the unbind handshake had finished
    and no partial PDU was left; ``unanswered`` are our requests that will never get an
    answer (no longer outstanding: reported here once and only here)."""

    clean: bool
    unanswered: tuple[Pdu, ...] = ()


Event = (
    Pdu
    | ResponseReceived
    | UnexpectedResponse
    | RequestTimedOut
    | LinkDead
    | EnquireLinkDue
    | InactivityTimeout
    | ConnectionClosed
)


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionStatistics:
    """A snapshot for metrics (trio's ``statistics()`` convention)."""

    role: Role
    state: State
    outstanding: int  # our requests awaiting an answer, control ones included
    window_size: int
    window_used: int  # outstanding requests that hold a window slot
    awaiting_our_response: int  # the peer's requests we have not answered yet
    requests_sent: int
    requests_received: int
    responses_sent: int
    responses_received: int
    unexpected_responses: int
    timeouts: int


class WindowFullError(LocalSmppError):
    """Every window slot is taken: wait for a response or a timeout (the trio layer
    waits on ``window_available`` instead of catching this)."""


def make_response(request: Pdu, command_status: int = 0, **fields: Any) -> Pdu:
    """The ``_resp`` for ``request``, with its sequence number and ``fields``.

    Raises:
        TypeError: ``request`` is a response, ``outbind`` or ``alert_notification``
            (nothing answers those).
    """
    cls = RESPONSE_CLASS.get(type(request))
    if cls is None:
        raise TypeError(f"{type(request).__name__} has no response")
    return cls(sequence_number=request.sequence_number, command_status=command_status, **fields)


def error_response(exc: SmppError) -> Pdu:
    """The answer to the PDU that raised ``exc``: its own ``_resp`` when the error knows
    a request's command id, else ``generic_nack`` (unknown command, broken framing, or a
    bad response or ``alert_notification``, which have no ``_resp``). It carries the
    error's status and the offending sequence number (0 when it could not be read)."""
    seq = exc.sequence_number if exc.sequence_number is not None else 0
    status = exc.command_status
    if exc.command_id is not None:
        request_cls = PDU_CLASSES.get(exc.command_id)
        if request_cls is not None:
            cls = RESPONSE_CLASS.get(request_cls)
            if cls is not None:
                return cls(sequence_number=seq, command_status=status)
    return GenericNack(sequence_number=seq, command_status=status)
