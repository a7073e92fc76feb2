"""The built-in simulator in a child process (``simulator.process``, the embedded
default's way): it serves as the carrier, it ends with the daemon however the daemon
ends (``kill -9`` included), it is started again if it dies, and one that cannot
start stops the daemon's start with a clear error."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from typing import TYPE_CHECKING

import pytest
import trio
from carrier_fixtures import wait_for
from daemon_fixtures import free_port, write_config

from smppgw.app.config import load_config
from smppgw.app.config_models import LoggingSettings, SimulatorSettings
from smppgw.app.daemon import Daemon
from smppgw.app.sim_process import SimulatorProcessError, child_request
from smppgw.gateway.recovery import outbound_from_stored
from smppgw.store import NewMessage

if TYPE_CHECKING:
    from pathlib import Path


def _alive(pid: int) -> bool:
    """Running (a zombie, dead but not yet reaped, counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


async def _send(daemon: Daemon, count: int) -> None:
    assert daemon.store is not None
    assert daemon.pipeline is not None
    messages = [
        NewMessage(
            partner="p1",
            source_addr="ACME",
            destination_addr=f"8491{i:07d}",
            body=b"hi",
            registered_delivery=1,
        )
        for i in range(count)
    ]
    for message_id in await daemon.store.journal_accept(messages):
        stored = await daemon.store.get_message(message_id)
        assert stored is not None
        daemon.pipeline.enqueue(outbound_from_stored(stored))


def _matched(daemon: Daemon) -> int:
    return 0 if daemon.pipeline is None else daemon.pipeline.statistics().receipts_matched


def _binds_up(daemon: Daemon) -> int:
    return sum(r.client.binds_up for r in daemon.carriers.values())


def test_the_request_line_carries_the_settings_and_secrets_stay_off_the_command_line() -> None:
    settings = SimulatorSettings.model_validate(
        {"enabled": True, "process": True, "accounts": [{"system_id": "gw", "password": "s3"}]}
    )
    line = child_request(settings, LoggingSettings())
    assert line.endswith(b"\n")
    assert line.count(b"\n") == 1  # the child reads one line
    request = json.loads(line)
    assert SimulatorSettings.model_validate(request["simulator"]) == settings
    assert request["simulator"]["accounts"][0]["password"] == "s3"


async def test_the_child_serves_as_carrier_is_restarted_and_ends_with_the_daemon(
    tmp_path: Path,
) -> None:
    path = write_config(tmp_path, sim_port=free_port(), sim_process=True)
    daemon = Daemon(load_config(path), path, handle_signals=False)
    async with trio.open_nursery() as nursery:
        await nursery.start(daemon.run)
        first = daemon.simulator_pid
        assert first is not None
        assert _alive(first)
        assert daemon.simulator is None  # nothing of it in this process
        await wait_for(lambda: _binds_up(daemon) == 1, within=20)
        await _send(daemon, 20)
        await wait_for(lambda: _matched(daemon) == 20, within=20)

        os.kill(first, signal.SIGKILL)  # it dies: another takes its place
        await wait_for(lambda: daemon.simulator_pid not in (None, first), within=20)
        await wait_for(lambda: _binds_up(daemon) == 1, within=20)
        await _send(daemon, 10)
        await wait_for(lambda: _matched(daemon) == 30, within=20)
        second = daemon.simulator_pid
        assert second is not None
        daemon.request_stop()
    assert not _alive(second)  # the daemon's stop waited for it to leave


async def test_a_simulator_that_cannot_listen_stops_the_start(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        path = write_config(tmp_path, sim_port=taken.getsockname()[1], sim_process=True)
        daemon = Daemon(load_config(path), path, handle_signals=False)
        with pytest.raises(BaseException) as info:  # noqa: PT011 - checked below
            async with trio.open_nursery() as nursery:
                await nursery.start(daemon.run)
    errors = [info.value]
    while isinstance(errors[0], BaseExceptionGroup):
        errors = list(errors[0].exceptions)
    assert any(isinstance(e, SimulatorProcessError) for e in errors), info.value
    assert "did not start" in str(errors[0])


def _start_daemon(tmp_path: Path) -> tuple[subprocess.Popen[str], int]:
    """``smppgw run`` in a session of its own (what systemd's cgroup is to it), and the
    pid of its simulator's process once that is ready."""
    path = write_config(tmp_path, sim_port=free_port(), sim_process=True)
    proc = subprocess.Popen(
        [sys.executable, "-m", "smppgw.cli", "run", "--config", str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        start_new_session=True,
    )
    assert proc.stdout is not None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        if '"event": "simulator process ready"' in line:
            return proc, int(json.loads(line)["pid"])
    proc.kill()
    raise AssertionError("the simulator process never said it was ready")


def _gone_within(pid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    return not _alive(pid)


def test_killing_the_daemon_ends_its_simulator(tmp_path: Path) -> None:
    proc, child = _start_daemon(tmp_path)
    try:
        assert _alive(child)
        proc.kill()  # kill -9: no clean-up of its own
        proc.wait(timeout=10)
        assert _gone_within(child, 10)
    finally:
        _reap(proc, child)


def test_a_stop_of_the_whole_group_lets_the_daemon_unbind_first(tmp_path: Path) -> None:
    """systemd stops a service with SIGTERM to every process of its cgroup: the
    simulator stays until the daemon has unbound from it and gone."""
    proc, child = _start_daemon(tmp_path)
    try:
        assert proc.stdout is not None
        os.killpg(proc.pid, signal.SIGTERM)
        out = proc.stdout.read()
        assert proc.wait(timeout=30) == 0
        assert '"event": "smppgw stopped"' in out
        assert "starting it again" not in out  # it did not die under the daemon
        assert _gone_within(child, 10)
    finally:
        _reap(proc, child)


def _reap(proc: subprocess.Popen[str], child: int) -> None:
    if proc.poll() is None:
        proc.kill()
        proc.wait(timeout=10)
    if _alive(child):
        os.kill(child, signal.SIGKILL)
    if proc.stdout is not None:
        proc.stdout.close()
