"""systemd's notification protocol (``sd_notify``) on trio, without libsystemd.

Theory of operation
-------------------
A ``Type=notify`` service tells systemd how it is doing by sending datagrams to the
``AF_UNIX`` socket named in ``$NOTIFY_SOCKET``; each datagram is newline-separated
``KEY=value`` assignments (see ``sd_notify(3)``):

- ``READY=1``: start-up is finished (systemd holds ``systemctl start`` and every unit
  ordered after us until then); sent again once a reload is finished;
- ``RELOADING=1`` with ``MONOTONIC_USEC=``: a reload begins (systemd 253+ wants the
  ``CLOCK_MONOTONIC`` time with it, to tell this reload from an older one);
- ``STOPPING=1``: shutdown begins;
- ``STATUS=...``: one line for ``systemctl status``;
- ``EXTEND_TIMEOUT_USEC=``: more time for the current start, reload or stop;
- ``WATCHDOG=1``: still alive. With ``WatchdogSec=`` systemd sets ``$WATCHDOG_USEC`` and
  kills and restarts us when no ping comes within it. The ping comes from a task of the
  daemon's nursery (:meth:`Notifier.watchdog_loop`), so it proves what matters: the
  event loop still schedules tasks. A blocked loop (a sync call that hangs) stops the
  pings and systemd restarts the daemon.

Not under systemd (no ``$NOTIFY_SOCKET``), every call is a no-op, so the daemon runs the
same in a terminal, in tests and in a container.

Error handling: notification is best effort, as with ``sd_notify``: a socket that is gone
or full is logged and reported by a ``False`` return, never raised; the daemon's work
must not stop because systemd cannot be told about it. A send waits at most
``send_timeout`` seconds. Supported addresses: a path (``/run/systemd/notify``) and
the abstract namespace (``@name``); other forms (``vsock:``) are logged and ignored.

Resource handling: each notification opens, uses and closes its own datagram socket
(they are rare: a few at start and stop, one per half watchdog interval), so nothing
is held between them and a re-executed systemd that re-creates its socket is found
again.
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Final

import structlog
import trio

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

__all__ = ["Notifier", "monotonic_usec"]

log = structlog.get_logger("smppgw.systemd")

#: Longest wait for one datagram to be accepted by the socket.
SEND_TIMEOUT: Final = 5.0


def monotonic_usec() -> int:
    """``CLOCK_MONOTONIC`` in microseconds, the clock ``MONOTONIC_USEC=`` is read on."""
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000


def _one_line(text: str) -> str:
    # A newline would start a new assignment: ``STATUS=x\nREADY=1`` must not be
    # writable through a status text.
    return " ".join(text.splitlines())


class Notifier:
    """Sends ``sd_notify`` datagrams; see the module docstring.

    Most code wants :meth:`from_environment`; the constructor is for tests and for
    callers that read the environment themselves.

    Args:
        address: the notify socket: a filesystem path, or an abstract name as bytes
            starting with ``b"\\0"``; ``None`` disables every notification.
        watchdog_interval: seconds systemd waits for a ping (``$WATCHDOG_USEC``);
            ``None`` when the watchdog is off.
        clock: ``CLOCK_MONOTONIC`` microseconds, for ``RELOADING``.
        send_timeout: longest wait for one datagram.
    """

    def __init__(
        self,
        address: str | bytes | None,
        *,
        watchdog_interval: float | None = None,
        clock: Callable[[], int] = monotonic_usec,
        send_timeout: float = SEND_TIMEOUT,
    ) -> None:
        if watchdog_interval is not None and not watchdog_interval > 0:
            raise ValueError("watchdog_interval must be > 0")
        self.address = address
        self.watchdog_interval = watchdog_interval if address is not None else None
        self._clock = clock
        self._send_timeout = send_timeout

    @classmethod
    def from_environment(
        cls,
        environ: Mapping[str, str] | None = None,
        *,
        pid: int | None = None,
        clock: Callable[[], int] = monotonic_usec,
    ) -> Notifier:
        """Read ``$NOTIFY_SOCKET``, ``$WATCHDOG_USEC`` and ``$WATCHDOG_PID``.

        The watchdog is on when ``WATCHDOG_USEC`` is a positive integer and
        ``WATCHDOG_PID``, if set, is our pid (``sd_watchdog_enabled``: a child that
        inherited the environment must not ping for its parent). Values that make no
        sense are logged and treated as absent.

        Args:
            environ: defaults to ``os.environ``.
            pid: our pid; defaults to ``os.getpid()``.
            clock: see the class.
        """
        env = os.environ if environ is None else environ
        address = _parse_address(env.get("NOTIFY_SOCKET", ""))
        interval: float | None = None
        usec_text = env.get("WATCHDOG_USEC", "")
        if address is not None and usec_text:
            usec = _positive_int(usec_text)
            pid_text = env.get("WATCHDOG_PID", "")
            for_us = not pid_text or _positive_int(pid_text) == (
                os.getpid() if pid is None else pid
            )
            if usec is None:
                log.warning("ignoring invalid WATCHDOG_USEC", value=usec_text)
            elif for_us:
                interval = usec / 1_000_000
        return cls(address, watchdog_interval=interval, clock=clock)

    @property
    def enabled(self) -> bool:
        """Whether we run under systemd (a notify socket is known)."""
        return self.address is not None

    # -- the protocol ------------------------------------------------------------------

    async def notify(self, state: str) -> bool:
        """Send ``state`` (newline-separated ``KEY=value`` assignments) as one datagram.

        Returns:
            True if systemd's socket took it; False when not under systemd or when the
            send failed (logged).
        """
        if self.address is None:
            return False
        data = state.encode()
        try:
            with (
                trio.move_on_after(self._send_timeout) as scope,
                trio.socket.socket(trio.socket.AF_UNIX, trio.socket.SOCK_DGRAM) as sock,
            ):
                await sock.sendto(data, self.address)
                return True
            if scope.cancelled_caught:
                log.warning("systemd notification timed out", state=state)
        except OSError as exc:
            log.warning("systemd notification failed", state=state, error=str(exc))
        return False

    async def ready(self, status: str | None = None) -> bool:
        """Start-up (or a reload) is finished."""
        return await self.notify(self._with_status("READY=1", status))

    async def reloading(self, status: str | None = None) -> bool:
        """A reload begins; send :meth:`ready` once it is done (failed or not)."""
        return await self.notify(
            self._with_status(f"RELOADING=1\nMONOTONIC_USEC={self._clock()}", status)
        )

    async def stopping(self, status: str | None = None) -> bool:
        """Shutdown begins."""
        return await self.notify(self._with_status("STOPPING=1", status))

    async def status(self, text: str) -> bool:
        """One line for ``systemctl status`` (newlines become spaces)."""
        return await self.notify(f"STATUS={_one_line(text)}")

    async def extend_timeout(self, seconds: float) -> bool:
        """Ask for ``seconds`` more for the start, reload or stop in progress."""
        return await self.notify(f"EXTEND_TIMEOUT_USEC={max(0, round(seconds * 1e6))}")

    async def watchdog(self) -> bool:
        """One watchdog ping."""
        return await self.notify("WATCHDOG=1")

    async def watchdog_loop(
        self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Ping the watchdog at half its interval until cancelled (at once, then every
        ``interval / 2`` seconds), as ``sd_watchdog_enabled(3)`` advises. Returns at once
        when the watchdog is off. Meant to run in the daemon's root nursery."""
        task_status.started()
        interval = self.watchdog_interval
        if interval is None:
            return
        log.info("systemd watchdog on", interval=interval)
        while True:
            await self.watchdog()
            await trio.sleep(interval / 2)

    @staticmethod
    def _with_status(state: str, status: str | None) -> str:
        return state if status is None else f"{state}\nSTATUS={_one_line(status)}"


def _parse_address(value: str) -> str | bytes | None:
    if not value:
        return None
    if value.startswith("/"):
        return value
    if value.startswith("@") and len(value) > 1:
        return b"\0" + value[1:].encode()
    log.warning("unsupported NOTIFY_SOCKET; not notifying systemd", value=value)
    return None


def _positive_int(text: str) -> int | None:
    try:
        value = int(text)
    except ValueError:
        return None
    return value if value > 0 else None
