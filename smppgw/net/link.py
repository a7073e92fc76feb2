"""One SMPP connection over a trio stream: the thin I/O shell around ``SmppConnection``.

Theory of operation
-------------------
A :class:`SmppLink` owns a stream and a sans-I/O :class:`SmppConnection` and runs four
tasks in its own nursery (``run``):

- the **reader** feeds every ``receive_some`` into the connection and drains *all* the
  PDUs of that read. Responses wake their waiters (or call their callbacks) at once;
  ``enquire_link`` and ``unbind`` are answered here; traffic requests (binds, submits,
  deliveries) are collected into one batch per read and handed to the request handler
  through a small bounded channel, so a durable store can journal the whole batch in
  one commit. When the handler falls behind, the channel fills, the reader stops
  reading and TCP pushes back on the peer: memory stays bounded.
- the **writer** coalesces: every PDU to send is appended to one buffer, and what a
  task queued during one step goes out in one write when that step ends; only what
  the socket does not take at once is left to the writer task (``net/link_output.py``).
  A reader that also finds the buffer over ``max_output`` waits for it to drain before
  reading on.
- the **timer** sleeps until the connection's next deadline (response timeouts,
  ``enquire_link`` due, inactivity) and acts on what came due.
- the **handler** task takes request batches from the channel and awaits
  ``handler(link, batch)``; the handler answers each request with :meth:`respond`.

With ``concurrent_batches`` > 1 (the partner server) there is no reader task and no
channel: that many tasks read *in turns* (leader and followers). The one whose turn it
is reads, passes the turn on, and handles the batch it read itself, in the same step:
a hand-off through the channel cost a scheduling round between a submit's read and its
admission (at 6,000 msg/s with four partners, p50 0.6 ms and p99 3.5-4 ms of the
1.2-1.7 and 6.8-7.7 ms from read to answer). While every task is busy with a batch,
nobody reads: the socket fills and TCP pushes back, as the full channel did, and the
next read takes everything that came meanwhile, as one batch.

A handler must not wait for the link's *own* window (``request``/``send_request`` on
the same link) while it holds a batch: the responses that would free the window arrive
through the reader, which the handler is holding up once the batch channel is full.
Hand such sends to another task (as the simulator's receipt sender and the partner
server's receipt deliverer do).

Outbound requests are sent with :meth:`request` (await the response) or
:meth:`send_request` (a callback gets the response or the failure, so a sender can keep
a whole window in flight from one task). The window lives in the connection; a sender
that finds it full waits here until a response or a timeout frees a slot.

Error handling:
    A malformed or out-of-state PDU from the peer is answered with the status its error
    carries (``generic_nack`` or the right ``_resp``) and the link goes on; broken
    framing, a dead link (``enquire_link`` unanswered), EOF or a broken stream end the
    link. When it ends, every outstanding request fails with :class:`LinkClosed`, which
    lists them, so the caller can requeue them: nothing is dropped silently.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import structlog
import trio

from smppgw.net.link_output import LinkOutput
from smppgw.net.peer_reads import PeerReads
from smppgw.protocol.errors import FramingError, RemoteSmppError, SendStateError
from smppgw.protocol.pdus import EnquireLink, Pdu, Unbind, UnbindResp
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
    error_response,
    make_response,
)
from smppgw.protocol.states import State

__all__ = ["LinkClosed", "LinkStatistics", "RequestHandler", "ResponseCallback", "SmppLink"]

log = structlog.get_logger("smppgw.link")

#: ``handler(link, requests)``: answer each request with ``link.respond``.
RequestHandler = Callable[["SmppLink", Sequence[Pdu]], Awaitable[None]]
#: ``callback(request, response_or_error)``, called from the reader or timer task.
ResponseCallback = Callable[[Pdu, "Pdu | BaseException"], None]
_T = TypeVar("_T")

_RECEIVE_SIZE = 65536
#: States in which a refused request means the link is ending, and why.
_ENDING: dict[State, str] = {
    State.CLOSED: "connection lost",
    State.ERROR: "connection lost",
    State.ESME_UNBINDING: "unbinding",
    State.SMSC_UNBINDING: "unbinding",
}


class LinkClosed(Exception):
    """The link ended before the request was answered.

    ``sent`` tells whether the request went out: when True, whether the peer got it is
    unknown (sending it again may duplicate it); when False it never left this process.
    """

    def __init__(self, reason: str, *, sent: bool = True) -> None:
        super().__init__(reason)
        self.sent = sent


class RequestTimeout(Exception):
    """No response within the connection's ``response_timeout``."""


@dataclass(frozen=True, slots=True)
class LinkStatistics:
    name: str
    bytes_in: int
    bytes_out: int
    writes: int
    batches: int
    unexpected_responses: int
    remote_errors: int


class _Waiter:
    __slots__ = ("event", "result")

    def __init__(self) -> None:
        self.event = trio.Event()
        self.result: Pdu | BaseException | None = None

    def __call__(self, request: Pdu, result: Pdu | BaseException) -> None:
        self.result = result
        self.event.set()


class SmppLink:
    """An SMPP session over ``stream``; see the module's theory of operation.

    Args:
        stream: a connected trio stream (TCP or TLS).
        connection: the sans-I/O session, already configured (role, window, timers).
        handler: receives each read's batch of requests (binds, submits, deliveries...).
        name: for logs and metrics (carrier bind name, partner session id).
        concurrent_batches: how many batches the handler may work on at once. 1 keeps
            them strictly in order; more lets a batch be admitted while the previous
            one awaits its journal commit (responses may then go out of order, which
            SMPP allows), which halves the latency under load; and then that many
            tasks read in turns, each handling what it read (the module docstring).
        queue_batches: (with ``concurrent_batches`` 1) batches waiting for the handler.
        max_output: octets of unsent output after which the reader stops reading.
    """

    def __init__(
        self,
        stream: trio.abc.Stream,
        connection: SmppConnection,
        handler: RequestHandler,
        *,
        name: str = "link",
        queue_batches: int = 4,
        concurrent_batches: int = 1,
        max_output: int = 1 << 20,
    ) -> None:
        self.stream = stream
        self._output = LinkOutput(stream)
        self.connection = connection
        self.name = name
        self._handler = handler
        self._callbacks: dict[int, ResponseCallback] = {}
        self._max_output = max_output
        self._window_changed = trio.Event()
        self._rearm = trio.Event()
        self._timer_deadline = math.inf  # what the timer sleeps until (see _rearm_if_sooner)
        self._batches_send, self._batches_recv = trio.open_memory_channel[list[Pdu]](queue_batches)
        self._concurrent_batches = concurrent_batches
        self._read_turn = trio.Lock()  # concurrent_batches > 1: whose turn it is to read
        self._at_end = False  # a turn met the end of the stream: no more reads
        self._closed = False
        self._close_reason = ""
        self._cancel: trio.CancelScope | None = None
        self._stats = {"in": 0, "batches": 0, "unexpected": 0, "errors": 0}
        self._peer_reads = PeerReads()  # when_peer_has_read (net/peer_reads.py)
        self.log = log.bind(link=name)

    # -- life cycle ----------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Run the link until EOF, a fatal error, :meth:`close`, or cancellation."""
        # The connection is made now: a peer that never sends a byte still meets the
        # inactivity timeout and the keep-alive.
        self.connection.start_timers(trio.current_time())
        try:
            async with trio.open_nursery() as nursery:
                self._cancel = nursery.cancel_scope
                nursery.start_soon(self._output.run, self._write_failed)
                nursery.start_soon(self._timer)
                if self._concurrent_batches <= 1:
                    nursery.start_soon(self._handle_batches)
                task_status.started()
                try:
                    if self._concurrent_batches <= 1:
                        await self._reader()
                    else:
                        await self._read_in_turns()
                    # The reader saw EOF or a fatal error: flush what we owe, then stop.
                    with trio.move_on_after(1):
                        await self._wait_flushed()
                finally:
                    # Cancelled (close(), an outer deadline) or done flushing: a write
                    # stuck on a peer that never reads must not hold the link open.
                    self._output.stop_writing()
                nursery.cancel_scope.cancel()
        finally:
            self._finish()
            with trio.CancelScope(shield=True):
                await trio.aclose_forcefully(self.stream)

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def window_free(self) -> bool:
        """Whether a request can be sent now without waiting for the window."""
        return self.connection.can_send_request

    @property
    def close_reason(self) -> str:
        return self._close_reason

    def close(self, reason: str = "closed") -> None:
        """End the link now (outstanding requests fail with :class:`LinkClosed`)."""
        if not self._close_reason:
            self._close_reason = reason
        self._output.stop_writing()
        if self._cancel is not None:
            self._cancel.cancel()

    async def unbind(self, grace: float = 5.0) -> None:
        """Unbind politely (bounded by ``grace`` seconds), then close the link."""
        if not self._closed and self.connection.is_bound:
            with trio.move_on_after(grace):
                with contextlib.suppress(LinkClosed, RequestTimeout, trio.BrokenResourceError):
                    await self.request(Unbind())
                with trio.move_on_after(0.5):
                    await self._wait_flushed()
        self.close("unbound")

    def _finish(self) -> None:
        if self._closed:
            return
        self._closed = True
        reason = self._close_reason or "connection lost"
        self._close_reason = reason
        unanswered = self.connection.close()
        callbacks, self._callbacks = self._callbacks, {}
        for request in unanswered:
            callback = callbacks.pop(request.sequence_number, None)
            if callback is not None:
                callback(request, LinkClosed(reason))
        for seq, callback in callbacks.items():  # pragma: no cover - defensive
            callback(Unbind(sequence_number=seq), LinkClosed(reason))
        self._peer_reads.clear()  # never to be told
        self._wake_window()
        self._output.wake()

    # -- sending ---------------------------------------------------------------------

    def _queue(self, data: bytes) -> None:
        self._output.queue(data)

    def _write_failed(self) -> None:
        self.connection.send_failed()
        self.close("write failed")

    def flush_queued(self) -> None:
        """Write what is queued now, when it is queued outside any task step (a store
        commit's callback at the end of a loop round), instead of after the next step
        of some task (``net/link_output.py``)."""
        self._output.flush()

    def respond(self, pdu: Pdu) -> None:
        """Queue a response (built with ``make_response``) for the writer."""
        if self._closed:
            return
        try:
            data = self.connection.send(pdu, trio.current_time())
        except SendStateError:
            if self.connection.state in (State.CLOSED, State.ERROR):
                # The link is ending (broken framing, EOF): a handler that was still
                # working (a bind's password check) has nowhere to send its answer.
                # Found by fuzzing; raising here failed the whole link task.
                self.log.debug("answer dropped: link ending", pdu=type(pdu).__name__)
                return
            raise
        self._queue(data)

    async def wait_window(self) -> None:
        """Return once the window has a free slot (or raise :class:`LinkClosed`)."""
        while not self.connection.can_send_request:
            if self._closed:
                raise LinkClosed(self._close_reason, sent=False)
            await self._window_changed.wait()
        if self._closed:
            raise LinkClosed(self._close_reason, sent=False)

    async def send_request(self, pdu: Pdu, callback: ResponseCallback | None = None) -> Pdu:
        """Send ``pdu`` once the window allows; ``callback`` gets the response or error.

        Returns the request as sent (with its sequence number).
        """
        await self.wait_window()
        return self._sent(self._prepared(self.connection.send_request, pdu), callback)

    async def send_encoded_request(
        self, data: bytes, callback: ResponseCallback | None = None
    ) -> Pdu:
        """:meth:`send_request` for a request already encoded (see
        ``SmppConnection.send_encoded_request``); returns the bare request as sent."""
        await self.wait_window()
        return self._sent(self._prepared(self.connection.send_encoded_request, data), callback)

    def _prepared(
        self, prepare: Callable[[_T, float], tuple[Pdu, bytes]], what: _T
    ) -> tuple[Pdu, bytes]:
        try:
            return prepare(what, trio.current_time())
        except SendStateError:
            if self.connection.state in _ENDING:
                # EOF already seen, or an unbind sent or received: the link is winding
                # down, not our caller's bug (a sender woken by a free window slot after
                # the shutdown's unbind left used to fail the whole daemon's stop).
                reason = self._close_reason or _ENDING[self.connection.state]
                raise LinkClosed(reason, sent=False) from None
            raise

    def _sent(self, prepared: tuple[Pdu, bytes], callback: ResponseCallback | None) -> Pdu:
        request, data = prepared
        if callback is not None:
            self._callbacks[request.sequence_number] = callback
        self._peer_reads.sent(request.sequence_number)
        self._queue(data)
        self._rearm_if_sooner()
        return request

    async def request(self, pdu: Pdu) -> Pdu:
        """Send ``pdu`` and return its response.

        Raises:
            LinkClosed: the link ended first.
            RequestTimeout: no answer within the response timeout.
        """
        waiter = _Waiter()
        await self.send_request(pdu, waiter)
        await waiter.event.wait()
        if isinstance(waiter.result, BaseException):
            raise waiter.result
        assert waiter.result is not None
        return waiter.result

    def when_peer_has_read(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` once the peer has shown that it read everything queued so
        far: it answered a request queued after it. Never called if the link ends first,
        or if that request gets no answer. When no request of ours follows soon, an
        ``enquire_link`` is sent at once (at most one a second); see
        ``net/peer_reads.py`` for why the MO path needs this."""
        now = trio.current_time()
        if self._peer_reads.wait(callback, now) and not self._closed:
            try:
                self._send_enquire_link(now)
            except SendStateError:  # the session is ending: nothing will be answered
                return
            self._rearm_if_sooner()  # the enquire_link's response deadline

    def _send_enquire_link(self, now: float) -> None:
        request, data = self.connection.send_request(EnquireLink(), now)
        self._peer_reads.sent(request.sequence_number)
        self._queue(data)

    def _wake_window(self) -> None:
        self._window_changed.set()
        self._window_changed = trio.Event()

    async def _wait_flushed(self) -> None:
        # A write in progress counts: once flushed, stop_writing may lift its shield.
        while self._output.pending and not self._closed:
            await self._output.wait_drained()

    # -- receiving -------------------------------------------------------------------

    async def _read(self, batch: list[Pdu]) -> bool:
        """One read: its requests appended to ``batch`` (everything else handled here);
        False when the link must end. Waits first while the output is over its limit."""
        while self._output.size > self._max_output and not self._closed:
            await self._output.wait_drained()
        try:
            data = await self.stream.receive_some(_RECEIVE_SIZE)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            data = b""
        self._stats["in"] += len(data)
        self.connection.receive_data(bytes(data), trio.current_time())
        going_on = self._drain_events(batch)
        if batch and going_on:
            self._stats["batches"] += 1
        return going_on

    async def _reader(self) -> None:
        while True:
            batch: list[Pdu] = []
            going_on = await self._read(batch)
            if batch:
                await self._batches_send.send(batch)
            if not going_on:
                return

    async def _read_in_turns(self) -> None:
        """``concurrent_batches`` tasks read in turns and handle what they read (see the
        module docstring); returns once the one that met the end of the stream is done
        with its last batch, and the others with theirs (at most a second later)."""
        async with trio.open_nursery() as nursery:
            for _ in range(self._concurrent_batches - 1):
                nursery.start_soon(self._take_turns)
            await self._take_turns()
            nursery.cancel_scope.deadline = trio.current_time() + 1.0

    async def _take_turns(self) -> None:
        while True:
            batch: list[Pdu] = []
            async with self._read_turn:
                if self._at_end:
                    return
                going_on = await self._read(batch)
                self._at_end = not going_on
            if not going_on:
                # As with the reader: what the end of the stream left is handled, within
                # the second the link then gives its answers to go out.
                with trio.move_on_after(1.0):
                    if batch:
                        await self._handler(self, batch)
                return
            if batch:
                await self._handler(self, batch)

    def _drain_events(self, batch: list[Pdu]) -> bool:
        """Handle every event now decodable; False when the link must end."""
        conn = self.connection
        now = trio.current_time()
        while True:
            try:
                event = conn.next_event()
            except FramingError as exc:
                self._stats["errors"] += 1
                self.log.warning("framing error", error=str(exc))
                self._answer_error(exc, now)
                self._close_reason = "framing error"
                return False
            except RemoteSmppError as exc:
                self._stats["errors"] += 1
                self.log.info("bad pdu from peer", error=str(exc), status=exc.command_status)
                self._answer_error(exc, now)
                continue
            if event is NEED_DATA:
                return True
            kind = type(event)
            if kind is ResponseReceived:
                assert isinstance(event, ResponseReceived)
                self._resolve(event.request, event.response)
            elif kind is ConnectionClosed:
                assert isinstance(event, ConnectionClosed)
                self._close_reason = self._close_reason or (
                    "peer closed" if event.clean else "connection lost"
                )
                for request in event.unanswered:
                    self._resolve(request, LinkClosed(self._close_reason))
                return False
            elif kind is EnquireLink:
                assert isinstance(event, Pdu)
                self._queue(conn.send(make_response(event), now))
            elif kind is Unbind:
                assert isinstance(event, Pdu)
                self._queue(conn.send(UnbindResp(sequence_number=event.sequence_number), now))
                # The session is over: flush the answer and end the link, even if the
                # peer keeps the socket open (some SMSCs do).
                self._close_reason = "peer unbound"
                return False
            elif kind is UnexpectedResponse:
                assert isinstance(event, UnexpectedResponse)
                self._stats["unexpected"] += 1
                self.log.info("unexpected response", reason=event.reason)
            elif isinstance(event, Pdu):
                batch.append(event)

    def _answer_error(self, exc: FramingError | RemoteSmppError, now: float) -> None:
        """Answer the peer's fault, unless the session is past answering (CLOSED after
        an unbind, when more PDUs follow in the same read): a peer's garbage must never
        raise out of the reader."""
        try:
            self._queue(self.connection.send(error_response(exc), now))
        except SendStateError:
            self.log.debug("error answer dropped", state=str(self.connection.state))

    def _resolve(self, request: Pdu, result: Pdu | BaseException) -> None:
        callback = self._callbacks.pop(request.sequence_number, None)
        if callback is not None:
            callback(request, result)
        self._peer_reads.answered(request.sequence_number, ok=not isinstance(result, BaseException))
        self._wake_window()
        if type(request) is EnquireLink:
            # The pending keep-alive's response deadline no longer applies and the next
            # deadline (the keep-alive interval) may be earlier: let the timer recompute.
            # Other answers only move deadlines later, so they need no wake-up.
            self._rearm.set()

    async def _handle_batches(self) -> None:
        """``concurrent_batches`` workers, each taking the next batch (with those queued
        behind it) as soon as it is free. (A task spawned a batch cost two more
        scheduling rounds a message at window 1.)"""
        async with trio.open_nursery() as nursery:
            for _ in range(max(1, self._concurrent_batches)):
                nursery.start_soon(self._handle_worker)

    async def _handle_worker(self) -> None:
        async for batch in self._batches_recv:
            await self._handler(self, self._with_waiting(batch))

    def _with_waiting(self, batch: list[Pdu]) -> list[Pdu]:
        """``batch`` and, behind it in order, every batch that queued while the handler
        was busy: one journal commit for all of them. Without this, a partner sending
        steadily (one submit a read) had each read wait its turn for its own commit,
        and the latency at half load was several commits long."""
        while True:
            try:
                batch.extend(self._batches_recv.receive_nowait())
            except trio.WouldBlock:
                return batch

    # -- timers ----------------------------------------------------------------------

    async def _timer(self) -> None:
        conn = self.connection
        while True:
            deadline = conn.next_deadline()
            self._timer_deadline = deadline if deadline is not None else math.inf
            with trio.move_on_at(self._timer_deadline):
                await self._rearm.wait()
            self._rearm = trio.Event()
            now = trio.current_time()
            for event in conn.handle_timeout(now):
                self._on_timeout(event, now)

    def _rearm_if_sooner(self) -> None:
        """Wake the timer only if the session's next deadline is now earlier than the
        one it sleeps until. A new request's response deadline rarely is (an older
        request's comes first); waking the timer for every request cost a task switch
        and a cancel scope a message."""
        deadline = self.connection.next_deadline()
        if deadline is not None and deadline < self._timer_deadline:
            self._rearm.set()

    def _on_timeout(self, event: Any, now: float) -> None:
        kind = type(event)
        if kind is EnquireLinkDue:
            self._send_enquire_link(now)
        elif kind is RequestTimedOut:
            self._resolve(event.request, RequestTimeout(f"no answer in {event.elapsed:.1f}s"))
        elif kind is LinkDead:
            self._resolve(event.request, RequestTimeout("enquire_link unanswered"))
            self.log.warning("link dead: enquire_link unanswered")
            self.close("link dead")
        elif kind is InactivityTimeout:
            self.log.info("inactivity timeout", idle=event.idle)
            self.close("inactive")

    def statistics(self) -> LinkStatistics:
        s, out = self._stats, self._output
        return LinkStatistics(
            self.name,
            s["in"],
            out.bytes_written,
            out.writes,
            s["batches"],
            s["unexpected"],
            s["errors"],
        )
