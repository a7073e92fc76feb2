"""A daemon with the partner server on, and an smpplib partner in a worker thread."""

from __future__ import annotations

import time
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any

import smpplib.client
import smpplib.consts
import trio
from carrier_fixtures import wait_for
from daemon_fixtures import free_port

from smppgw.app.config import load_config
from smppgw.app.daemon import Daemon
from smppgw.gateway.auth import hash_password
from smppgw.net.link import SmppLink
from smppgw.protocol.pdus import BindTransceiver, BindTransmitter
from smppgw.protocol.session import SmppConnection
from smppgw.protocol.states import Role
from smppgw.sim.smsc import SimulatedSmsc

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

PASSWORD = "s3cret"
_HASH = hash_password(PASSWORD)


def write_partner_config(
    tmp_path: Path,
    *,
    sim_port: int,
    server_port: int,
    tps: int = 0,
    carrier_down: bool = False,
    max_pending: int = 100_000,
    max_scheduled: int = 100_000,
    marketing_backlog: int = 0,
    carrier_extra: str = "",
) -> Path:
    """``carrier_down``: the carrier points at a port nobody listens on, so accepted
    messages wait in its queue (to cancel or replace them there). ``carrier_extra``:
    more keys of the carrier's flow mapping (``", split: sar"``)."""
    carrier_port = free_port() if carrier_down else sim_port
    text = f"""
store: {{path: '{tmp_path / "gw.sqlite"}', durability: process}}
admin_socket: '{tmp_path / "admin.sock"}'
scenarios: {{directory: '{tmp_path / "scenarios"}', events_dir: '{tmp_path / "events"}'}}
metrics: {{enabled: false}}
logging: {{level: warning, format: json}}
simulator:
  enabled: true
  listen: 127.0.0.1:{sim_port}
  accounts: [{{system_id: gw, password: secret}}]
  receipt: {{delay_ms: 10}}
carriers:
  - {{name: sim, host: 127.0.0.1, port: {carrier_port}, system_id: gw, password: secret,
      window: 32, reconnect: {{initial: 0.1, max: 0.5}}{carrier_extra}}}
default_route: [sim]
server: {{listen: '127.0.0.1:{server_port}', window: 64, max_pending_messages: {max_pending},
  max_scheduled_messages: {max_scheduled},
  marketing_backlog: {marketing_backlog}}}
partners:
  - system_id: acme
    password_hash: '{_HASH}'
    sources: [ACME, '8055']
    short_codes: ['8055']
    tps: {tps}
    protocol_ids: [0x41]
  - system_id: beta
    password_hash: '{_HASH}'
    sources: [BETA]
    content: {{block_keywords: [casino]}}
  - system_id: mod
    password_hash: '{_HASH}'
    moderation: all
    billing: unmetered
  - system_id: otp
    password_hash: '{_HASH}'
    sources: [OTP]
    traffic_class: transactional
    billing: unmetered
"""
    path = tmp_path / "smppgw.yaml"
    path.write_text(text)
    return path


@asynccontextmanager
async def partner_daemon(tmp_path: Path, **kw: Any) -> AsyncIterator[tuple[Daemon, int]]:
    server_port = free_port()
    path = write_partner_config(tmp_path, sim_port=free_port(), server_port=server_port, **kw)
    daemon = Daemon(load_config(path), path, handle_signals=False, grace=1.0)
    async with trio.open_nursery() as nursery:
        await nursery.start(daemon.run)
        try:
            yield daemon, server_port
        finally:
            daemon.request_stop()


async def _ignore(link: SmppLink, batch: object) -> None:
    return None


@asynccontextmanager
async def esme(
    port: int,
    system_id: str = "acme",
    *,
    bind: type[BindTransmitter | BindTransceiver] = BindTransmitter,
) -> AsyncIterator[SmppLink]:
    """Our own link as a bound partner, for the PDUs smpplib does not speak."""
    async with trio.open_nursery() as nursery:
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        link = SmppLink(stream, SmppConnection(Role.ESME), _ignore)
        await nursery.start(link.run)
        resp = await link.request(bind(system_id=system_id, password=PASSWORD))
        assert resp.command_status == 0
        try:
            yield link
        finally:
            link.close()


@dataclass
class PartnerRun:
    """What an smpplib partner session saw."""

    bind_status: int = 0
    responses: list[Any] = field(default_factory=list)
    receipts: list[Any] = field(default_factory=list)


def smpplib_partner(
    port: int,
    *,
    system_id: str = "acme",
    password: str = PASSWORD,
    count: int = 0,
    source: str = "ACME",
    registered_delivery: int = 1,
    receipts: int = 0,
    bind: str = "transceiver",
    within: float = 15.0,
    data_coding: int = 0,
    validity_period: str | None = None,
    **submit: Any,
) -> PartnerRun:
    """Bind, submit ``count`` messages, wait for ``receipts`` receipts, unbind.
    ``submit``: more (or other) submit_sm fields, as smpplib names them.

    Blocking (smpplib uses plain sockets): run it with ``trio.to_thread.run_sync``.
    """
    run = PartnerRun()
    client = smpplib.client.Client("127.0.0.1", port, timeout=5, allow_unknown_opt_params=True)
    client.set_message_sent_handler(lambda pdu: run.responses.append(pdu))
    client.set_message_received_handler(lambda pdu: run.receipts.append(pdu))
    client.set_error_pdu_handler(lambda pdu: None)
    client.connect()
    try:
        try:
            getattr(client, f"bind_{bind}")(system_id=system_id, password=password)
        except smpplib.exceptions.PDUError as exc:
            run.bind_status = int(exc.args[1])
            return run
        for i in range(count):
            fields: dict[str, Any] = {
                "source_addr_ton": smpplib.consts.SMPP_TON_ALNUM,
                "source_addr": source,
                "dest_addr_ton": smpplib.consts.SMPP_TON_INTL,
                "dest_addr_npi": smpplib.consts.SMPP_NPI_ISDN,
                "destination_addr": f"8491{i:07d}",
                "short_message": b"hello %d" % i,
                "registered_delivery": registered_delivery,
                "data_coding": data_coding,
                **({} if validity_period is None else {"validity_period": validity_period}),
            }
            client.send_message(**(fields | submit))
        deadline = time.monotonic() + within
        while (len(run.responses) < count or len(run.receipts) < receipts) and (
            time.monotonic() < deadline
        ):
            client.read_once()
        client.unbind()
    finally:
        client.disconnect()
    return run


async def mo_to_receiver(
    daemon: Daemon, port: int, *mos: tuple[str, str, str]
) -> tuple[SimulatedSmsc, PartnerRun]:
    """Inject ``(from, to, text)`` MO at the daemon's simulator once its carrier is bound;
    the simulator, and what one smpplib receiver session of acme took (one MO awaited,
    at most 5 s)."""
    sim = daemon.simulator
    assert isinstance(sim, SimulatedSmsc)
    await wait_for(lambda: sum(r.client.binds_up for r in daemon.carriers.values()) == 1)
    for source, short_code, text in mos:
        sim.inject_mo(source, short_code, text)
    run = await trio.to_thread.run_sync(
        partial(smpplib_partner, port, bind="receiver", receipts=1, within=5)
    )
    return sim, run


def config_without_daemon(tmp_path: Path) -> str:
    """A valid config whose admin socket no daemon serves (the CLI must say so)."""
    path = tmp_path / "no-daemon.yaml"
    path.write_text(
        f"admin_socket: {tmp_path / 'none.sock'}\n"
        "carriers: [{name: c, host: h, port: 1, system_id: s, password: p}]\n"
    )
    return str(path)
