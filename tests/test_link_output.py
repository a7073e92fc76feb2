"""LinkOutput over a real socket: what a task queued goes out when its step ends."""

from __future__ import annotations

import contextlib
import socket
from typing import TYPE_CHECKING

import trio
import trio.testing

from smppgw.net.link_output import LinkOutput

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable


@contextlib.asynccontextmanager
async def _connected() -> AsyncIterator[tuple[trio.SocketStream, trio.SocketStream]]:
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    try:
        client = await trio.testing.open_stream_to_socket_listener(listeners[0])
        accepted = await listeners[0].accept()
        assert isinstance(accepted, trio.SocketStream)
        assert isinstance(client, trio.SocketStream)
        yield accepted, client
        await client.aclose()
        await accepted.aclose()
    finally:
        for listener in listeners:
            await listener.aclose()


def _peek(stream: trio.SocketStream) -> bytes:
    """What has arrived on ``stream`` so far, without the event loop."""
    raw: socket.socket = stream.socket._sock  # type: ignore[attr-defined]
    try:
        return raw.recv(65536, socket.MSG_PEEK | socket.MSG_DONTWAIT)
    except BlockingIOError:
        return b""


class _AfterStep(trio.abc.Instrument):
    """Calls ``check`` after the step of ``task`` (added after the flusher, so it runs
    after it in the same ``after_task_step`` round, before any other task)."""

    def __init__(self, task: trio.lowlevel.Task, check: Callable[[], None]) -> None:
        self.task = task
        self.check = check

    def after_task_step(self, task: trio.lowlevel.Task) -> None:
        if task is self.task:
            self.check()
            self.task = None  # type: ignore[assignment]


async def test_a_steps_output_is_on_the_wire_when_the_step_ends() -> None:
    """Two PDUs queued in one step leave in one write as soon as that step ends, before
    any other task (the writer task included) has run."""
    async with _connected() as (ours, peer), trio.open_nursery() as nursery:
        output = LinkOutput(ours)
        nursery.start_soon(output.run, lambda: None)
        await trio.testing.wait_all_tasks_blocked()
        seen: list[bytes] = []
        trio.lowlevel.add_instrument(
            _AfterStep(trio.lowlevel.current_task(), lambda: seen.append(_peek(peer)))
        )
        output.queue(b"first")
        output.queue(b"second")
        assert _peek(peer) == b""  # nothing written during the step itself
        await trio.lowlevel.checkpoint()
        # on the wire (loopback delivers within the write call), in one write
        assert seen == [b"firstsecond"]
        assert output.writes == 1
        assert output.size == 0
        assert not output.pending
        nursery.cancel_scope.cancel()


async def test_what_the_socket_does_not_take_goes_out_through_the_writer() -> None:
    """A step queuing more than the send buffer takes: the rest is written by the writer
    task as the peer reads, whole and in order."""
    async with _connected() as (ours, peer), trio.open_nursery() as nursery:
        ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        output = LinkOutput(ours)
        nursery.start_soon(output.run, lambda: None)
        await trio.testing.wait_all_tasks_blocked()
        chunks = [bytes([n % 251]) * 1000 for n in range(2000)]
        for chunk in chunks:
            output.queue(chunk)
        await trio.lowlevel.checkpoint()
        assert output.pending  # the socket took only part of it
        expected = b"".join(chunks)
        received = bytearray()
        with trio.fail_after(30):
            while len(received) < len(expected):
                received += await peer.receive_some(65536)
        assert bytes(received) == expected
        assert output.bytes_written == len(expected)
        nursery.cancel_scope.cancel()


async def test_a_write_to_a_closed_peer_ends_the_writer_with_on_failed() -> None:
    """The direct write meets the broken connection: it is left to the writer task,
    which reports the failure once, instead of raising out of the event loop."""
    async with _connected() as (ours, peer):
        await peer.aclose()
        failed: list[bool] = []
        output = LinkOutput(ours)
        with trio.fail_after(10):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(output.run, lambda: failed.append(True))
                await trio.testing.wait_all_tasks_blocked()
                while not failed:  # the first writes may still be taken by the kernel
                    output.queue(b"x" * 65536)
                    await trio.sleep(0.01)
        assert failed == [True]


async def test_a_stream_that_is_not_a_socket_still_gets_everything() -> None:
    """Memory and TLS streams have no socket to write to directly: the writer task
    sends what each step queued."""
    a, b = trio.testing.memory_stream_pair()
    output = LinkOutput(a)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(output.run, lambda: None)
        await trio.testing.wait_all_tasks_blocked()
        output.queue(b"one")
        output.queue(b"two")
        with trio.fail_after(5):
            assert await b.receive_some() == b"onetwo"
        nursery.cancel_scope.cancel()
