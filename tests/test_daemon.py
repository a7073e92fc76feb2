"""The daemon: in-process supervision (start, recovery, reload, stop) and the real
``smppgw run`` process (start-up log, /healthz, SIGTERM, a refused config)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from typing import TYPE_CHECKING

import trio
from carrier_fixtures import wait_for
from daemon_fixtures import free_port, write_config

from smppgw.app.config import load_config
from smppgw.app.daemon import Daemon
from smppgw.gateway.recovery import outbound_from_stored
from smppgw.sim.smsc import SimulatedSmsc
from smppgw.store import Durability, NewMessage, Store, StoreConfig

if TYPE_CHECKING:
    from pathlib import Path


def _messages(count: int) -> list[NewMessage]:
    return [
        NewMessage(
            partner="p1",
            source_addr="ACME",
            destination_addr=f"8491{i:07d}",
            body=b"hello %d" % i,
            registered_delivery=1,
        )
        for i in range(count)
    ]


async def test_daemon_sends_journaled_messages_and_stops(tmp_path: Path) -> None:
    path = write_config(tmp_path, sim_port=free_port())
    daemon = Daemon(load_config(path), path, handle_signals=False)
    async with trio.open_nursery() as nursery:
        await nursery.start(daemon.run)
        await wait_for(lambda: sum(r.client.binds_up for r in daemon.carriers.values()) == 1)
        assert daemon.store is not None
        assert daemon.pipeline is not None
        ids = await daemon.store.journal_accept(_messages(25))
        for message_id in ids:
            stored = await daemon.store.get_message(message_id)
            assert stored is not None
            daemon.pipeline.enqueue(outbound_from_stored(stored))
        await wait_for(
            lambda: (
                daemon.pipeline is not None and daemon.pipeline.statistics().receipts_matched == 25
            )
        )
        sim = daemon.simulator
        assert isinstance(sim, SimulatedSmsc)
        assert len(sim.submits) == 25
        daemon.request_stop()
    # after the stop, every outcome is in the journal
    store = Store(tmp_path / "gw.sqlite", config=StoreConfig(durability=Durability.PROCESS))
    async with trio.open_nursery() as nursery:
        await nursery.start(store.run)
        states = {str((await store.get_message(i)).state) for i in ids}  # type: ignore[union-attr]
        assert states == {"delivered"}
        nursery.cancel_scope.cancel()


async def test_daemon_recovers_unfinished_messages_at_start(tmp_path: Path) -> None:
    path = write_config(tmp_path, sim_port=free_port())
    store = Store(tmp_path / "gw.sqlite", config=StoreConfig(durability=Durability.PROCESS))
    async with trio.open_nursery() as nursery:
        await nursery.start(store.run)
        await store.journal_accept(_messages(30))
        nursery.cancel_scope.cancel()
    daemon = Daemon(load_config(path), path, handle_signals=False)
    async with trio.open_nursery() as nursery:
        await nursery.start(daemon.run)
        await wait_for(
            lambda: (
                daemon.pipeline is not None and daemon.pipeline.statistics().receipts_matched == 30
            )
        )
        daemon.request_stop()


async def test_reload_keeps_unchanged_binds_and_restarts_changed(tmp_path: Path) -> None:
    sim_port = free_port()
    path = write_config(tmp_path, sim_port=sim_port)
    daemon = Daemon(load_config(path), path, handle_signals=False)
    async with trio.open_nursery() as nursery:
        await nursery.start(daemon.run)
        await wait_for(lambda: daemon.carriers["sim"].client.binds_up == 1)
        before = daemon.carriers["sim"].client
        # unchanged file: the bind is kept
        assert await daemon.reload()
        assert daemon.carriers["sim"].client is before
        # a broken file is refused and the running config stays
        path.write_text("carriers: [{name: 1}]\n")
        assert not await daemon.reload()
        assert daemon.carriers["sim"].client is before
        # a changed window restarts that carrier
        write_config(tmp_path, sim_port=sim_port, window=32)
        assert await daemon.reload()
        after = daemon.carriers["sim"].client
        assert after is not before
        await wait_for(lambda: after.binds_up == 1)
        daemon.request_stop()


def _wait_line(proc: subprocess.Popen[str], needle: str, within: float) -> list[str]:
    lines: list[str] = []
    deadline = time.monotonic() + within
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        if needle in line:
            return lines
    raise AssertionError(f"{needle!r} not seen in:\n{''.join(lines)}")


def test_smppgw_run_process_binds_serves_health_and_stops_on_sigterm(tmp_path: Path) -> None:
    metrics_port = free_port()
    path = write_config(tmp_path, sim_port=free_port(), metrics_port=metrics_port)
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(tmp_path / "notify"))
    notify.settimeout(15)
    proc = subprocess.Popen(
        [sys.executable, "-m", "smppgw.cli", "run", "--config", str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "PYTHONUNBUFFERED": "1", "NOTIFY_SOCKET": str(tmp_path / "notify")},
    )
    try:
        assert b"READY=1" in notify.recv(4096)  # systemd Type=notify
        lines = _wait_line(proc, '"logger": "smppgw.carrier", "event": "bound"', within=20)
        if not any('"event": "smppgw started"' in line for line in lines):
            lines += _wait_line(proc, '"event": "smppgw started"', within=20)
        assert any(f"127.0.0.1:{metrics_port}/metrics" in line for line in lines)
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/healthz", timeout=5) as r:
            assert r.status == 200
            assert b"binds_up=1" in r.read()
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5) as r:
            assert b'smppgw_carrier_binds_up{carrier="sim"} 1.0' in r.read()
        # systemctl reload: RELOADING=1, then READY=1 once done (else the unit stays
        # "reloading": a successful reload never said it was done).
        proc.send_signal(signal.SIGHUP)
        assert b"RELOADING=1" in notify.recv(4096)
        assert b"READY=1" in notify.recv(4096)
        proc.send_signal(signal.SIGTERM)
        assert b"STOPPING=1" in notify.recv(4096)
        assert proc.wait(timeout=15) == 0
    finally:
        notify.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        assert proc.stdout is not None
        proc.stdout.close()


def test_smppgw_run_refuses_a_bad_config_with_file_line_and_key(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("carriers:\n  - name: x\n    host: h\n    port: 99999\n")
    result = subprocess.run(
        [sys.executable, "-m", "smppgw.cli", "run", "--config", str(bad)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    assert f"{bad}:4: carriers[0].port:" in result.stderr
