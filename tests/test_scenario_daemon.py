"""Scenarios through the whole daemon: the simulator injects MO, replies reach it.

Real parts: the daemon with its SQLite journal, the built-in SMSC simulator over TCP on
127.0.0.1, the admin Unix socket, an event file dropped in a directory.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import trio
from carrier_fixtures import wait_for
from daemon_fixtures import free_port, write_config

from smppgw.app.admin import admin_request
from smppgw.app.config import load_config
from smppgw.app.daemon import Daemon
from smppgw.cli import main
from smppgw.protocol.text import decode_text
from smppgw.protocol.tlv import Tag
from smppgw.sim.mo import ussd_tlvs
from smppgw.sim.smsc import SimulatedSmsc, SubmitRecord
from smppgw.store import Durability, InboundKind, NewInbound, StoreConfig, open_store

if TYPE_CHECKING:
    import pytest

REPO_SCENARIOS = Path(__file__).resolve().parent.parent / "scenarios"
SUBSCRIBER = "84912345678"

TOPUP_SCENARIO = """
name: topups
short_codes: ["9191"]
handler: "scenario_test_handlers:TopupNotice"
commands:
  balance: {keywords: [BAL]}
sender: {reply: "9191", brandname: ACME}
"""


def _text(record: SubmitRecord) -> str:
    payload = record.short_message
    if record.esm_class & 0x40:
        payload = payload[payload[0] + 1 :]
    return decode_text(payload, record.data_coding)


def _replies_to(sim: SimulatedSmsc, msisdn: str = SUBSCRIBER) -> list[str]:
    return [_text(r) for r in sim.submits if msisdn in r.destinations]


async def _start(tmp_path: Path, nursery: trio.Nursery) -> tuple[Daemon, SimulatedSmsc]:
    path = write_config(tmp_path, sim_port=free_port())
    daemon = Daemon(load_config(path), path, handle_signals=False)
    await nursery.start(daemon.run)
    await wait_for(lambda: sum(r.client.binds_up for r in daemon.carriers.values()) == 1)
    sim = daemon.simulator
    assert isinstance(sim, SimulatedSmsc)
    return daemon, sim


def _scenarios(tmp_path: Path, *names: str, extra: str | None = None) -> None:
    folder = tmp_path / "scenarios"
    folder.mkdir(exist_ok=True)
    for name in names:
        shutil.copy(REPO_SCENARIOS / f"{name}.yaml", folder)
    if extra is not None:
        (folder / "extra.yaml").write_text(extra)


async def test_registration_mo_gets_its_reply_through_the_carrier(tmp_path: Path) -> None:
    _scenarios(tmp_path, "registration")
    async with trio.open_nursery() as nursery:
        daemon, sim = await _start(tmp_path, nursery)
        sim.inject_mo(SUBSCRIBER, "8055", "DK Nguyen Van An HN")
        await wait_for(lambda: len(_replies_to(sim)) == 1)
        [reply] = _replies_to(sim)
        assert reply.startswith("Chuc mung Nguyen Van An! Ban da dang ky thanh cong.")
        assert "Ma hoi vien: HN" in reply
        assert sim.submits[-1].source == "8055"
        assert daemon.store is not None
        rows = await daemon.store.read(
            lambda c: c.execute("SELECT member_id, name, province FROM member").fetchall()
        )
        assert len(rows) == 1
        assert rows[0][0] in reply
        # an unknown keyword on a scenario short code: the help reply
        sim.inject_mo(SUBSCRIBER, "8055", "WHAT IS THIS")
        await wait_for(lambda: len(_replies_to(sim)) == 2)
        assert "8055" in _replies_to(sim)[1]
        daemon.request_stop()


async def test_help_lists_the_services_of_the_short_code(tmp_path: Path) -> None:
    _scenarios(tmp_path, "registration", "points")
    async with trio.open_nursery() as nursery:
        daemon, sim = await _start(tmp_path, nursery)
        sim.inject_mo(SUBSCRIBER, "8055", "what")
        await wait_for(lambda: len(_replies_to(sim)) == 1)
        assert "HELP" in _replies_to(sim)[0]  # the help reply says to send HELP ...
        sim.inject_mo(SUBSCRIBER, "8055", "help")
        await wait_for(lambda: len(_replies_to(sim)) == 2)
        # ... and HELP answers with the first keyword of every command there
        listed = _replies_to(sim)[1]
        assert listed.startswith("Services on 8055: ")
        assert listed.endswith(".")
        assert set(listed[len("Services on 8055: ") : -1].split(", ")) == {"DK", "TD", "DIEM"}
        daemon.request_stop()


async def test_a_scenario_that_claims_help_keeps_it(tmp_path: Path) -> None:
    points = (REPO_SCENARIOS / "points.yaml").read_text()
    claimed = points.replace("balance: {keywords: [DIEM]}", "balance: {keywords: [HELP]}")
    assert claimed != points
    _scenarios(tmp_path, extra=claimed)
    async with trio.open_nursery() as nursery:
        daemon, sim = await _start(tmp_path, nursery)
        sim.inject_mo(SUBSCRIBER, "8055", "HELP")
        await wait_for(lambda: len(_replies_to(sim)) == 1)
        assert not _replies_to(sim)[0].startswith("Services on")  # the scenario answered
        daemon.request_stop()


async def test_an_mo_journaled_before_a_crash_is_processed_at_start(tmp_path: Path) -> None:
    _scenarios(tmp_path, "registration")
    config = StoreConfig(durability=Durability.PROCESS)
    async with open_store(tmp_path / "gw.sqlite", config=config) as store:
        await store.journal_inbound(
            [
                NewInbound(
                    smsc="sim",
                    dedup_key="before-crash",
                    kind=InboundKind.MO,
                    source_addr=SUBSCRIBER,
                    destination_addr="8055",
                    body=b"DK Tran Thi B DN",
                )
            ]
        )
    async with trio.open_nursery() as nursery:
        daemon, sim = await _start(tmp_path, nursery)
        await wait_for(lambda: len(_replies_to(sim)) == 1)
        assert "Tran Thi B" in _replies_to(sim)[0]
        assert "DN" in _replies_to(sim)[0]
        daemon.request_stop()
    # and a second start does not process it again
    async with trio.open_nursery() as nursery:
        daemon, sim = await _start(tmp_path, nursery)
        await trio.sleep(0.3)
        assert _replies_to(sim) == []
        daemon.request_stop()


async def test_ussd_mo_is_answered_in_its_session(tmp_path: Path) -> None:
    _scenarios(tmp_path, "registration")
    async with trio.open_nursery() as nursery:
        daemon, sim = await _start(tmp_path, nursery)
        sim.inject_mo(SUBSCRIBER, "8055", "DK An HN", tlvs=ussd_tlvs(0x1234))
        await wait_for(lambda: len(_replies_to(sim)) == 1)
        record = sim.submits[-1]
        tlvs = {t.tag: t.value for t in record.tlvs}
        assert tlvs[Tag.USSD_SERVICE_OP] == bytes([17])  # PSSR response
        assert tlvs[Tag.ITS_SESSION_INFO] == b"\x12\x34"
        daemon.request_stop()


async def test_events_by_admin_socket_and_by_file_are_handled_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _scenarios(tmp_path, extra=TOPUP_SCENARIO)
    events = tmp_path / "events"
    events.mkdir()
    async with trio.open_nursery() as nursery:
        daemon, sim = await _start(tmp_path, nursery)
        request = {
            "cmd": "scenario.event",
            "kind": "topup",
            "msisdn": SUBSCRIBER,
            "data": {"amount": 50000},
            "key": "bill-1",
        }
        sock = tmp_path / "admin.sock"
        first = await trio.to_thread.run_sync(admin_request, sock, request)
        again = await trio.to_thread.run_sync(admin_request, sock, request)
        assert first["results"] == [{"scenario": "topups", "outcome": "thanks"}]
        assert again["results"] == [{"scenario": "topups", "outcome": "duplicate"}]
        await wait_for(lambda: len(_replies_to(sim)) == 1)
        assert _replies_to(sim) == ["Thank you for your top-up of 50000."]
        assert sim.submits[-1].source == "ACME"  # not a reply to an MO: the brandname

        lines = [
            {"kind": "topup", "msisdn": "84900000001", "amount": 10000},
            {"kind": "topup", "msisdn": "not a number", "amount": 1},
        ]
        (events / "batch.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + "\n")
        await wait_for(lambda: len(_replies_to(sim, "84900000001")) == 1, within=10)
        await wait_for(lambda: any((events / "failed").glob("*.errors")), within=10)
        [report] = list((events / "failed").glob("*.errors"))
        assert "batch.jsonl:2:" in report.read_text()

        sim.inject_mo(SUBSCRIBER, "9191", "bal")
        await wait_for(lambda: len(_replies_to(sim)) == 2)
        assert _replies_to(sim)[1] == "Top-ups so far: 50000"

        # the CLI, as an operator's script would call it
        config = str(tmp_path / "smppgw.yaml")
        argv = ["event", "topup", SUBSCRIBER, "--set", "amount=20000", "--key", "b2", "-c", config]
        assert await trio.to_thread.run_sync(main, argv) == 0
        await wait_for(lambda: len(_replies_to(sim)) == 3)
        listing = ["scenarios", "-c", config]
        assert await trio.to_thread.run_sync(main, listing) == 0
        daemon.request_stop()
    out = capsys.readouterr().out
    assert "topups: thanks" in out
    assert "topups: scenario_test_handlers:TopupNotice on 9191: BAL->balance" in out


async def test_a_bad_scenario_file_on_reload_keeps_the_running_set(tmp_path: Path) -> None:
    _scenarios(tmp_path, "registration")
    async with trio.open_nursery() as nursery:
        daemon, sim = await _start(tmp_path, nursery)
        (tmp_path / "scenarios" / "broken.yaml").write_text("name: x\nhandler: nope\n")
        assert await daemon.reload()  # the main config is fine...
        assert daemon.scenarios is not None
        assert "registration" in daemon.scenarios.engine.table.scenarios  # ...the set is kept
        sim.inject_mo(SUBSCRIBER, "8055", "DK An HN")
        await wait_for(lambda: len(_replies_to(sim)) == 1)
        daemon.request_stop()


async def test_import_while_the_daemon_runs_goes_through_it(tmp_path: Path) -> None:
    _scenarios(tmp_path, "registration")
    members = tmp_path / "members.csv"
    members.write_text("msisdn,name,province\n84900000011,Le Van C,HN\n0900000012,Pham D,DN\n")
    async with trio.open_nursery() as nursery:
        daemon, sim = await _start(tmp_path, nursery)
        argv = ["import", "members", str(members), "-c", str(tmp_path / "smppgw.yaml")]
        assert await trio.to_thread.run_sync(main, argv) == 0
        # an imported member registering by SMS gets their existing ID
        sim.inject_mo("84900000011", "8055", "DK Someone HN")
        await wait_for(lambda: len(_replies_to(sim, "84900000011")) == 1)
        assert daemon.store is not None
        rows = await daemon.store.read(
            lambda c: c.execute("SELECT msisdn, member_id FROM member ORDER BY msisdn").fetchall()
        )
        assert [m for m, _ in rows] == ["84900000011", "84900000012"]
        assert all(i.startswith(("HN", "DN")) for _, i in rows)  # the scenario's ID pattern
        assert rows[0][1] in _replies_to(sim, "84900000011")[0]
        assert "da dang ky truoc do" in _replies_to(sim, "84900000011")[0]
        daemon.request_stop()


async def test_an_mo_in_message_payload_is_journaled_with_its_text(tmp_path: Path) -> None:
    from smppgw.protocol.pdus import DeliverSm
    from smppgw.protocol.tlv import Tlv
    from smppgw.sim.receipts import Delivery

    _scenarios(tmp_path, "registration")
    async with trio.open_nursery() as nursery:
        daemon, sim = await _start(tmp_path, nursery)
        pdu = DeliverSm(
            source_addr=SUBSCRIBER,
            destination_addr="8055",
            tlvs=(Tlv(Tag.MESSAGE_PAYLOAD, b"DK Payload Person HN"),),
        )
        # The simulator's own MO builder puts text in short_message: this one is sent as
        # a carrier that uses message_payload would (through its delivery router).
        system_id = sim.config.accounts[0].system_id
        sim._router.deliver(Delivery(system_id, pdu, "mo"))
        await wait_for(lambda: len(_replies_to(sim)) == 1)
        assert "Payload Person" in _replies_to(sim)[0]
        assert daemon.store is not None
        bodies = await daemon.store.read(
            lambda c: c.execute("SELECT body FROM inbound WHERE kind = 'mo'").fetchall()
        )
        assert bodies == [(b"DK Payload Person HN",)]
        daemon.request_stop()
