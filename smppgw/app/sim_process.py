"""The built-in simulator in a child process of the daemon (``simulator.process``).

Why: the embedded default runs the simulator beside the gateway on one machine. In the
daemon's own process the two share one interpreter lock, so the simulator's SMPP work
(decoding every submit, sending every receipt) came out of the gateway's: on this
project's 2-core machine the embedded default moved 8,600 messages a second with one
partner session, the same daemon with the simulator in a process of its own 12,000.

How:

- :func:`run_simulator_process` (a task of the daemon's services nursery) starts
  ``python -m smppgw.app.sim_process`` and writes it ONE line of JSON on its standard
  input: the simulator's settings (passwords included: they never appear in the
  command line, which every local user can read) and the daemon's logging settings.
  The child logs to standard error, in the daemon's format.
- The child answers ``ready`` on its standard output once it listens (and its control
  endpoint too); the task then reports started, so carriers bind to a simulator that
  is there.
- The child runs as long as its standard input is open: the daemon holds the other
  end, so when the daemon ends in any way, ``kill -9`` included, the child reads EOF
  and stops. It ignores SIGINT and SIGTERM (a Ctrl-C or ``systemctl stop`` reaches the
  whole group), so the daemon unbinds from it before it goes. Cancelled, the task
  closes that pipe, waits a moment, then kills.
- A child that ends on its own (a crash, a kill) is started again after
  :data:`RESTART_DELAY`; the carriers' reconnect brings their binds back.
"""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import sys
from functools import partial
from typing import TYPE_CHECKING, Any

import structlog
import trio

from smppgw.app.config_models import LoggingSettings, SimulatorSettings

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

__all__ = ["SimulatorProcessError", "child_request", "run_simulator_process"]

log = structlog.get_logger("smppgw.simulator")

#: Seconds before a child that ended on its own is started again.
RESTART_DELAY = 1.0
#: Seconds a child has to say ``ready``, and to leave once its input is closed.
START_TIMEOUT = 15.0
STOP_GRACE = 3.0
READY = b"ready\n"


class SimulatorProcessError(Exception):
    """The simulator's process did not start (its address taken, a bad setting)."""


def child_request(settings: SimulatorSettings, logging: LoggingSettings) -> bytes:
    """The line the child reads: its settings with the passwords in clear."""
    simulator = settings.model_dump(mode="json")
    simulator["accounts"] = [
        {"system_id": a.system_id, "password": a.password.get_secret_value()}
        for a in settings.accounts
    ]
    request = {"simulator": simulator, "logging": logging.model_dump(mode="json")}
    return json.dumps(request).encode() + b"\n"


async def run_simulator_process(
    settings: SimulatorSettings,
    logging: LoggingSettings,
    *,
    command: Sequence[str] = (sys.executable, "-m", "smppgw.app.sim_process"),
    on_ready: Callable[[int], None] | None = None,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run the simulator's process until cancelled, starting it again if it ends;
    ``task_status.started(pid)`` once the first one is ready, ``on_ready(pid)`` each
    time one is.

    Raises:
        SimulatorProcessError: the first child ended or stayed silent before it was
            ready (raised from ``nursery.start``).
    """
    request = child_request(settings, logging)
    started = False
    while True:
        process = await trio.lowlevel.open_process(
            list(command), stdin=subprocess.PIPE, stdout=subprocess.PIPE
        )
        try:
            await _wait_ready(process, request)
            log.info("simulator process ready", pid=process.pid)
            if on_ready is not None:
                on_ready(process.pid)
            if not started:
                started = True
                task_status.started(process.pid)
            code = await process.wait()
            log.error("simulator process ended; starting it again", code=code)
        except SimulatorProcessError:
            if not started:
                raise
            log.error("simulator process did not start; trying again", pid=process.pid)
        finally:
            with trio.CancelScope(shield=True):
                await _stop(process)
        await trio.sleep(RESTART_DELAY)


async def _wait_ready(process: trio.Process, request: bytes) -> None:
    assert process.stdin is not None
    assert process.stdout is not None
    answer = b""
    with trio.move_on_after(START_TIMEOUT):
        with contextlib.suppress(trio.BrokenResourceError):  # ended already: see its exit
            await process.stdin.send_all(request)
        while not answer.endswith(b"\n"):
            chunk = await process.stdout.receive_some(64)
            if not chunk:
                break
            answer += chunk
    if answer != READY:
        with trio.move_on_after(STOP_GRACE):
            await process.wait()
        raise SimulatorProcessError(
            f"the simulator's process did not start (exit code {process.returncode});"
            " its reason is in the log above"
        )
    await process.stdout.aclose()


async def _stop(process: trio.Process) -> None:
    """Close its input (it leaves), wait a moment, then kill."""
    if process.stdin is not None:
        await process.stdin.aclose()
    with trio.move_on_after(STOP_GRACE):
        await process.wait()
    if process.returncode is None:
        process.kill()
        await process.wait()


# -------------------------------------------------------------------- the child


def main() -> int:
    """The child: read the request line, serve until standard input closes."""
    line = sys.stdin.buffer.readline()
    try:
        request: dict[str, Any] = json.loads(line)
        settings = SimulatorSettings.model_validate(request["simulator"])
        logging = LoggingSettings.model_validate(request["logging"])
    except (ValueError, KeyError) as exc:
        print(f"smppgw simulator: bad request from the daemon: {exc}", file=sys.stderr)
        return 2
    from smppgw.app.logs import configure_logging

    configure_logging(logging, stream=sys.stderr)
    # A Ctrl-C in the daemon's terminal, or systemd's stop (SIGTERM to the whole
    # cgroup), reaches this process too: it stays until the daemon has unbound from it
    # and gone, and leaves when the pipe closes (SIGKILL still ends it at once).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    failed: list[str] = []
    try:
        trio.run(_serve, settings)
    except* OSError as group:  # its address is taken
        failed = [str(exc) for exc in group.exceptions]
        log.error("simulator cannot listen", error="; ".join(failed))
    return 1 if failed else 0


async def _serve(settings: SimulatorSettings) -> None:
    from smppgw.sim.control import serve_control
    from smppgw.sim.smsc import SimConfig, SimulatedSmsc

    sim = SimulatedSmsc(SimConfig.from_settings(settings))
    stdin = trio.lowlevel.FdStream(0)
    stdout = trio.lowlevel.FdStream(1)
    async with trio.open_nursery() as nursery:
        await nursery.start(partial(sim.run, host=settings.listen.host, port=settings.listen.port))
        if settings.control is not None:
            await nursery.start(serve_control, sim, settings.control.host, settings.control.port)
        await stdout.send_all(READY)
        while await stdin.receive_some(4096):
            pass  # nothing more is sent: EOF means the daemon is gone
        log.info("daemon gone; simulator stops")
        nursery.cancel_scope.cancel()


if __name__ == "__main__":
    sys.exit(main())
