"""A link's output: the bytes queued for the peer and the one task that writes them.

Part of :class:`smppgw.net.link.SmppLink` (its **writer**), kept in a module of its own
because it is a concern of its own: coalescing, writing without a needless scheduling
round, never cutting a PDU in half while the link lives, and never being pinned by a
peer that stopped reading once the link ends.

Every PDU to send is appended to one buffer (:meth:`LinkOutput.queue`, synchronous: a
handler answers a whole batch without a task switch per answer) and the whole buffer
goes out in one write. The link's reader stops reading while the buffer is over its
limit (:meth:`LinkOutput.wait_drained`), so a peer that sends and never reads cannot
grow it without bound.

Written when the producer yields
--------------------------------
Whatever a task queued during one of its steps is written as soon as that step ends,
by a trio instrument (:class:`StepEndFlusher`, one a run) that the event loop calls
after every task step: the step's PDUs, however many, go out in one ``os.write`` on
the socket, with no scheduling round in between. Only what the socket does not take
at once, or a stream that is not a plain socket (TLS, memory streams), is left to the
writer task (:meth:`LinkOutput.run`), woken for it. Why: waking the writer task for
every response and request cost a task step each (an ``Event``, a reschedule, a trip
through the run loop), two to four a message at window 1, where each step is paid per
message; while writing at every ``queue`` would lose the coalescing of a batch's
answers (one write a burst, not one a PDU).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import structlog
import trio

if TYPE_CHECKING:
    from collections.abc import Callable

log = structlog.get_logger("smppgw.link")


class StepEndFlusher(trio.abc.Instrument):
    """Writes, after each task step, the outputs queued to during it (see the module's
    "Written when the producer yields"). One a run: :func:`step_end_flusher`."""

    def __init__(self) -> None:
        self.pending: list[LinkOutput] = []

    def after_task_step(self, task: trio.lowlevel.Task) -> None:
        if self.pending:
            pending, self.pending = self.pending, []
            for output in pending:
                try:
                    output.flush()
                except Exception:  # pragma: no cover - defensive: trio would drop us
                    log.exception("direct write failed; left to the writer task")
                    output.wake_writer()


_FLUSHER: trio.lowlevel.RunVar[StepEndFlusher] = trio.lowlevel.RunVar("smppgw_step_end_flusher")


def step_end_flusher() -> StepEndFlusher:
    """This run's :class:`StepEndFlusher`, installed on first use."""
    try:
        return _FLUSHER.get()
    except LookupError:
        flusher = StepEndFlusher()
        trio.lowlevel.add_instrument(flusher)
        _FLUSHER.set(flusher)
        return flusher


class LinkOutput:
    """The unsent bytes of one link, and its writer task (:meth:`run`)."""

    def __init__(self, stream: trio.abc.Stream) -> None:
        self.stream = stream
        # Written directly when it is a plain socket (see _send_now).
        self._socket = stream.socket if isinstance(stream, trio.SocketStream) else None
        self._out: list[bytes] = []
        self.size = 0  # octets queued and not yet handed to a write
        self.bytes_written = 0
        self.writes = 0
        self._has_output = trio.Event()
        self._drained = trio.Event()
        self._write_scope: trio.CancelScope | None = None
        self._writing_ends = False
        # Set by run(): until then (and for streams that are not plain sockets, through
        # flush) the writer task is woken for each queue.
        self._flusher: StepEndFlusher | None = None
        self._flush_due = False

    def queue(self, data: bytes) -> None:
        """Queue ``data`` behind everything queued before it; it is written when the
        calling task's step ends."""
        self._out.append(data)
        self.size += len(data)
        if self._flusher is None:
            self._has_output.set()
        elif not self._flush_due:
            self._flush_due = True
            self._flusher.pending.append(self)

    def flush(self) -> None:
        """Write what is queued now if the socket takes it whole; otherwise (a write in
        progress, a full socket buffer, a stream that is not a plain socket, an error)
        leave the rest to the writer task. Called by the :class:`StepEndFlusher`,
        outside any task: it must not raise."""
        self._flush_due = False
        if not self._out:
            return
        if self._write_scope is not None or self._socket is None:
            self._has_output.set()
            return
        data = b"".join(self._out) if len(self._out) > 1 else self._out[0]
        try:
            sent = self._send_now(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            sent = 0  # the writer meets the same error and ends the link
        if sent < len(data):
            self._out[:] = [data[sent:]]
            self.size = len(data) - sent
            self.bytes_written += sent
            self._has_output.set()
            return
        self._out.clear()
        self.size = 0
        self.bytes_written += sent
        self.writes += 1
        self._drained.set()
        self._drained = trio.Event()

    def wake_writer(self) -> None:
        """Leave what is queued to the writer task."""
        self._flush_due = False
        self._has_output.set()

    @property
    def pending(self) -> bool:
        """Bytes queued, or a write in progress."""
        return bool(self._out) or self._write_scope is not None

    async def wait_drained(self) -> None:
        """Wait until the writer has emptied the buffer once more (or :meth:`wake`)."""
        await self._drained.wait()

    def wake(self) -> None:
        """Release whoever waits in :meth:`wait_drained`: the link has ended."""
        self._drained.set()

    def stop_writing(self) -> None:
        """Let cancellation reach a write in progress: the link is ending, so a PDU
        cut in half no longer matters, while a peer that stopped reading would
        otherwise pin the shielded ``send_all`` (and the link, and its owner's
        nursery) for ever."""
        self._writing_ends = True
        if self._write_scope is not None:
            self._write_scope.shield = False

    async def run(self, on_failed: Callable[[], None]) -> None:
        """Write what is queued until cancelled; a broken or closed stream calls
        ``on_failed`` and ends the writer."""
        self._flusher = step_end_flusher()
        while True:
            await self._has_output.wait()
            self._has_output = trio.Event()
            if not self._out:
                continue
            data = b"".join(self._out) if len(self._out) > 1 else self._out[0]
            self._out.clear()
            self.size = 0
            try:
                sent = self._send_now(data)
                if sent < len(data):
                    # Shielded so a cancellation cannot cut a PDU in half on the wire
                    # while the link lives; stop_writing lifts the shield once it ends.
                    with trio.CancelScope(shield=not self._writing_ends) as scope:
                        self._write_scope = scope
                        try:
                            await self.stream.send_all(data[sent:] if sent else data)
                        finally:
                            self._write_scope = None
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                on_failed()
                return
            self.bytes_written += len(data)
            self.writes += 1
            if not self._out:
                self._drained.set()
                self._drained = trio.Event()

    def _send_now(self, data: bytes) -> int:
        """Write what the socket takes at once, without the event loop: the bytes
        written (0 when its buffer is full, or the stream is not a plain socket; the
        writer then sends the rest with ``send_all``).

        Why: ``send_all`` makes the same non-blocking attempt and then yields once (a
        shielded checkpoint), a scheduling round per write, two a message at window 1;
        the writer yields anyway when it waits for more output. Only the writer writes,
        so nothing can come between the two parts of a write.
        """
        if self._socket is None:
            return 0
        fd = self._socket.fileno()  # -1 once closed: never a number since reused
        if fd < 0:
            raise trio.ClosedResourceError("socket closed")
        try:
            return os.write(fd, data)
        except BlockingIOError:
            return 0
        except OSError as exc:  # EPIPE, ECONNRESET: the peer is gone
            raise trio.BrokenResourceError(str(exc)) from exc
