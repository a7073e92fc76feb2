"""Alerts in the running daemon: a partner's order crossing 80 % is told by SMS through
the gateway's own carrier (the simulator) and by mail to a local SMTP server, once."""

from __future__ import annotations

from typing import TYPE_CHECKING

import trio
from carrier_fixtures import wait_for
from daemon_fixtures import free_port
from partner_fixtures import smpplib_partner, write_partner_config
from structlog.testing import capture_logs
from test_alerts_service import smtp_server

from smppgw.app.config import load_config
from smppgw.app.daemon import Daemon
from smppgw.sim.smsc import SimulatedSmsc
from smppgw.store import NewOrder, OrderKind

if TYPE_CHECKING:
    from pathlib import Path


async def test_order_threshold_alert_by_sms_and_mail(tmp_path: Path) -> None:
    with smtp_server() as (box, smtp_port):
        server_port = free_port()
        path = write_partner_config(tmp_path, sim_port=free_port(), server_port=server_port)
        path.write_text(
            path.read_text()
            + f"""
alerts:
  check_interval: 1
  order_thresholds: [80]
  operator: {{emails: [noc@example.com], msisdns: ["84912000000"]}}
  partner_contacts:
    acme: {{emails: [ops@acme.example], msisdns: ["84913000000"]}}
  smtp: {{host: 127.0.0.1, port: {smtp_port}, starttls: false, from: gw@example.com}}
"""
        )
        daemon = Daemon(load_config(path), path, handle_signals=False, grace=1.0)
        async with trio.open_nursery() as nursery:
            await nursery.start(daemon.run)
            assert daemon.store is not None
            await daemon.store.create_order(
                NewOrder(partner="acme", kind=OrderKind.PREPAID, limit=10)
            )
            run = await trio.to_thread.run_sync(
                lambda: smpplib_partner(server_port, count=8, registered_delivery=0)
            )
            assert len(run.responses) == 8
            sim = daemon.simulator
            assert isinstance(sim, SimulatedSmsc)

            def alert_sms() -> list[str]:
                return [d for r in sim.submits if r.source == "ALERT" for d in r.destinations]

            await wait_for(lambda: sorted(alert_sms()) == ["84912000000", "84913000000"])
            await wait_for(lambda: len(box.mails) == 2)
            recipients = sorted(r for m in box.mails for r in m.to)
            assert recipients == ["noc@example.com", "ops@acme.example"]
            await trio.sleep(1.5)  # more checks: nothing again
            assert len(alert_sms()) == 2
            assert len(box.mails) == 2
            daemon.request_stop()


async def test_contacts_of_a_partner_added_from_the_cli_are_accepted(tmp_path: Path) -> None:
    """``partner_contacts`` may name a partner the config file does not have (added with
    ``smppgw partner add``: it is in the journal); one that is nowhere is warned of."""
    path = write_partner_config(tmp_path, sim_port=free_port(), server_port=free_port())
    path.write_text(
        path.read_text()
        + """
alerts:
  partner_contacts:
    ghost: {msisdns: ["84913000000"]}
"""
    )
    config = load_config(path)  # was refused: "no partner with system_id 'ghost'"
    assert "ghost" in config.alerts.partner_contacts
    daemon = Daemon(config, path, handle_signals=False, grace=1.0)
    with capture_logs() as logs:
        async with trio.open_nursery() as nursery:
            await nursery.start(daemon.run)
            daemon.request_stop()
    warned = [e for e in logs if e["event"] == "alert contacts for an unknown partner"]
    assert [e["key"] for e in warned] == ["alerts.partner_contacts.ghost"]
