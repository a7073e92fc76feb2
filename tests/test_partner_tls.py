"""Partners may bind over TLS on a second listener (server.tls)."""

from __future__ import annotations

import ssl
from typing import TYPE_CHECKING

import trio
import trustme
from daemon_fixtures import free_port

from smppgw.app.config import load_config
from smppgw.app.daemon import Daemon
from smppgw.gateway.auth import hash_password
from smppgw.net.link import SmppLink
from smppgw.protocol.pdus import BindTransceiver, Pdu, SubmitSm
from smppgw.protocol.session import SmppConnection
from smppgw.protocol.states import Role

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path


async def _ignore(link: SmppLink, batch: Sequence[Pdu]) -> None:
    return None


async def test_partner_binds_and_submits_over_tls(tmp_path: Path) -> None:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    cert.private_key_and_cert_chain_pem.write_to_path(str(tmp_path / "server.pem"))
    sim_port, plain_port, tls_port = free_port(), free_port(), free_port()
    path = tmp_path / "smppgw.yaml"
    path.write_text(
        f"""
store: {{path: '{tmp_path / "gw.sqlite"}', durability: process}}
admin_socket: '{tmp_path / "admin.sock"}'
scenarios: {{directory: '{tmp_path / "scenarios"}', events_dir: '{tmp_path / "events"}'}}
metrics: {{enabled: false}}
logging: {{level: warning, format: json}}
simulator: {{enabled: true, listen: '127.0.0.1:{sim_port}',
             accounts: [{{system_id: gw, password: secret}}]}}
carriers:
  - {{name: sim, host: 127.0.0.1, port: {sim_port}, system_id: gw, password: secret}}
default_route: [sim]
server:
  listen: '127.0.0.1:{plain_port}'
  tls: {{listen: '127.0.0.1:{tls_port}', cert_file: '{tmp_path / "server.pem"}',
         key_file: '{tmp_path / "server.pem"}'}}
partners:
  - {{system_id: acme, password_hash: '{hash_password("pw")}', billing: unmetered}}
"""
    )
    daemon = Daemon(load_config(path), path, handle_signals=False, grace=1.0)
    async with trio.open_nursery() as nursery:
        await nursery.start(daemon.run)
        context = ssl.create_default_context()
        ca.configure_trust(context)
        stream = await trio.open_ssl_over_tcp_stream("127.0.0.1", tls_port, ssl_context=context)
        link = SmppLink(stream, SmppConnection(Role.ESME), _ignore, name="tls-partner")
        await nursery.start(link.run)
        bind = await link.request(BindTransceiver(system_id="acme", password="pw"))
        assert bind.command_status == 0
        resp = await link.request(
            SubmitSm(
                source_addr="ACME",
                dest_addr_ton=1,
                destination_addr="84912345678",
                short_message=b"over TLS",
            )
        )
        assert resp.command_status == 0
        assert int(resp.message_id) > 0  # type: ignore[attr-defined]
        link.close()
        daemon.request_stop()
