"""kill -9 of the daemon under partner load loses no acknowledged message.

The gateway runs as a real process (``smppgw run``) with its simulator in-process; a
partner (our SmppLink as a plain ESME over TCP) keeps a window of submit_sm in flight
and records every id acknowledged with status 0. The daemon is killed with SIGKILL in
the middle. Then: every acknowledged id is in the journal; and after a restart every
one of them is sent (nothing stays ``accepted``).
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from typing import IO, TYPE_CHECKING

import trio
from daemon_fixtures import free_port

from smppgw.net.link import LinkClosed, SmppLink
from smppgw.protocol.pdus import BindTransmitter, Pdu, SubmitSm
from smppgw.protocol.session import SmppConnection
from smppgw.protocol.states import Role

if TYPE_CHECKING:
    from pathlib import Path

_HASH = "scrypt$16384$8$1$c21wcGd3LWRlbW8tc2FsdA==$xQvSO5y1WBlt0Dgs8NEcYKkfvetah2UIEBCHTF5VpJg="


def _config(tmp_path: Path, sim_port: int, server_port: int) -> Path:
    path = tmp_path / "smppgw.yaml"
    path.write_text(
        f"""
store: {{path: '{tmp_path / "gw.sqlite"}', durability: process}}
metrics: {{enabled: false}}
logging: {{level: warning, format: json}}
simulator: {{enabled: true, listen: '127.0.0.1:{sim_port}',
             accounts: [{{system_id: gw, password: secret}}]}}
carriers:
  - {{name: sim, host: 127.0.0.1, port: {sim_port}, system_id: gw, password: secret,
      window: 16, reconnect: {{initial: 0.1, max: 0.5}}}}
default_route: [sim]
server: {{listen: '127.0.0.1:{server_port}'}}
partners:
  - {{system_id: demo, password_hash: '{_HASH}', billing: unmetered}}
"""
    )
    return path


async def _start(path: Path, server_port: int, stderr: IO[bytes] | None = None) -> trio.Process:
    proc = await trio.lowlevel.open_process(
        [sys.executable, "-m", "smppgw.cli", "run", "--config", str(path)],
        cwd=path.parent,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL if stderr is None else stderr,
    )
    with trio.fail_after(20):
        while True:
            try:
                stream = await trio.open_tcp_stream("127.0.0.1", server_port)
            except OSError:
                await trio.sleep(0.05)
                continue
            await stream.aclose()
            return proc


async def _load_until_killed(
    server_port: int, proc: trio.Process, acked: set[int], how: int = signal.SIGKILL
) -> None:
    stream = await trio.open_tcp_stream("127.0.0.1", server_port)

    async def ignore(link: SmppLink, batch: object) -> None:
        return None

    link = SmppLink(stream, SmppConnection(Role.ESME, window=64), ignore, name="partner")

    def on_result(request: Pdu, result: Pdu | BaseException) -> None:
        if isinstance(result, Pdu) and result.command_status == 0:
            acked.add(int(result.message_id))  # type: ignore[attr-defined]

    async with trio.open_nursery() as nursery:
        await nursery.start(link.run)
        bind = await link.request(BindTransmitter(system_id="demo", password="demo"))
        assert bind.command_status == 0

        async def killer() -> None:
            await trio.sleep(0.8)
            proc.send_signal(how)

        nursery.start_soon(killer)
        try:
            for i in range(1_000_000):
                await link.send_request(
                    SubmitSm(
                        source_addr="DEMO",
                        dest_addr_ton=1,
                        dest_addr_npi=1,
                        destination_addr=f"8491{i:07d}",
                        short_message=b"crash test",
                    ),
                    on_result,
                )
        except LinkClosed:
            pass
        nursery.cancel_scope.cancel()


async def _states(db: Path) -> dict[int, str]:
    """Read the journal read-only (the daemon may hold the store's lock meanwhile)."""

    def read() -> dict[int, str]:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        try:
            return {int(i): str(s) for i, s in conn.execute("SELECT id, state FROM mt_message")}
        finally:
            conn.close()

    return await trio.to_thread.run_sync(read)


async def test_kill_9_under_load_loses_no_acknowledged_message(tmp_path: Path) -> None:
    sim_port, server_port = free_port(), free_port()
    path = _config(tmp_path, sim_port, server_port)
    proc = await _start(path, server_port)
    acked: set[int] = set()
    await _load_until_killed(server_port, proc, acked)
    assert await proc.wait() == -signal.SIGKILL
    assert len(acked) > 100, "the load never got going"
    states = await _states(tmp_path / "gw.sqlite")
    missing = acked - states.keys()
    assert not missing, f"{len(missing)} acknowledged messages lost"
    # Restart: recovery sends every acknowledged message that was still waiting.
    proc = await _start(path, server_port)
    try:
        with trio.fail_after(60):
            while True:
                states = await _states(tmp_path / "gw.sqlite")
                if all(states[i] != "accepted" for i in acked):
                    break
                await trio.sleep(0.2)
    finally:
        proc.send_signal(signal.SIGTERM)
        with trio.move_on_after(20):
            await proc.wait()
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_sigterm_under_load_stops_cleanly_and_loses_no_acknowledged_message(
    tmp_path: Path,
) -> None:
    """``systemctl stop`` in the middle of traffic: the daemon drains and exits 0, with
    no traceback (a carrier sender woken by a free window slot after the shutdown's
    unbind used to fail the whole stop), and every acknowledged message is journaled."""
    sim_port, server_port = free_port(), free_port()
    path = _config(tmp_path, sim_port, server_port)
    text = path.read_text().replace("window: 16,", "window: 2, binds: 4,")
    path.write_text(text)
    stderr = tmp_path / "stderr.log"
    with stderr.open("wb") as errors:
        proc = await _start(path, server_port, stderr=errors)
        acked: set[int] = set()
        await _load_until_killed(server_port, proc, acked, signal.SIGTERM)
        with trio.fail_after(60):
            returncode = await proc.wait()
    assert "Traceback" not in stderr.read_text()
    assert returncode == 0
    assert len(acked) > 100, "the load never got going"
    missing = acked - (await _states(tmp_path / "gw.sqlite")).keys()
    assert not missing, f"{len(missing)} acknowledged messages lost"
