"""A link's output: the bytes queued for the peer and the one task that writes them.

Part of :class:`smppgw.net.link.SmppLink` (its **writer**), kept in a module of its own
because it is a concern of its own: coalescing, writing without a needless scheduling
round, never cutting a PDU in half while the link lives, and never being pinned by a
peer that stopped reading once the link ends.

Every PDU to send is appended to one buffer (:meth:`LinkOutput.queue`, synchronous: a
handler answers a whole batch without a task switch per answer) and the writer sends
the whole buffer at once. The link's reader stops reading while the buffer is over its
limit (:meth:`LinkOutput.wait_drained`), so a peer that sends and never reads cannot
grow it without bound.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import trio

if TYPE_CHECKING:
    from collections.abc import Callable


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

    def queue(self, data: bytes) -> None:
        """Queue ``data`` behind everything queued before it."""
        self._out.append(data)
        self.size += len(data)
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
