"""The partner side end to end: the PyPI smpplib client as the partner, the daemon in
process with its simulator as the carrier, real loopback sockets."""

from __future__ import annotations

import time
from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING, Any

import smpplib.client
import smpplib.consts
import trio
from carrier_fixtures import wait_for
from partner_fixtures import (
    PASSWORD,
    PartnerRun,
    esme,
    mo_to_receiver,
    partner_daemon,
    smpplib_partner,
)
from test_partner_commands import _submit

from smppgw.net.link import SmppLink
from smppgw.protocol.pdus import BindTransceiver, Pdu
from smppgw.protocol.receipt import parse_receipt
from smppgw.protocol.session import SmppConnection
from smppgw.protocol.smpp_time import parse_smpp_time
from smppgw.protocol.states import Role
from smppgw.protocol.status import CommandStatus
from smppgw.protocol.tlv import Tag, Tlv
from smppgw.sim.smsc import SimulatedSmsc, SubmitRecord
from smppgw.store import NewOrder, OrderKind

if TYPE_CHECKING:
    from pathlib import Path


async def _order(daemon: object, partner: str, parts: int) -> int:
    store = daemon.store  # type: ignore[attr-defined]
    order: int = await store.create_order(
        NewOrder(partner=partner, kind=OrderKind.PREPAID, limit=parts)
    )
    return order


async def test_bind_refusals_carry_their_status(tmp_path: Path) -> None:
    async with partner_daemon(tmp_path) as (_daemon, port):
        wrong = await trio.to_thread.run_sync(partial(smpplib_partner, port, password="nope"))
        assert wrong.bind_status == CommandStatus.ESME_RINVPASWD
        unknown = await trio.to_thread.run_sync(partial(smpplib_partner, port, system_id="ghost"))
        assert unknown.bind_status == CommandStatus.ESME_RINVSYSID


def _smpplib_bind_answer(port: int) -> object:
    """smpplib binds as 3.4 (it sends 0x34 whatever it is given)."""
    client = smpplib.client.Client("127.0.0.1", port, timeout=5, allow_unknown_opt_params=False)
    client.connect()
    try:
        resp = client.bind_transceiver(system_id="acme", password=PASSWORD)
        client.unbind()
        return resp
    finally:
        client.disconnect()


async def _raw_bind_answer(port: int, interface_version: int) -> Pdu:
    async with trio.open_nursery() as nursery:
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        link = SmppLink(stream, SmppConnection(Role.ESME), _no_handler)
        await nursery.start(link.run)
        resp = await link.request(
            BindTransceiver(
                system_id="acme", password=PASSWORD, interface_version=interface_version
            )
        )
        nursery.cancel_scope.cancel()
    return resp


async def _no_handler(link: SmppLink, batch: object) -> None:
    return None


async def test_a_34_partner_is_told_our_interface_version_a_33_one_gets_no_tlv(
    tmp_path: Path,
) -> None:
    async with partner_daemon(tmp_path) as (_daemon, port):
        v34 = await trio.to_thread.run_sync(_smpplib_bind_answer, port)
        assert v34.sc_interface_version == 0x34  # type: ignore[attr-defined]
        v33 = await _raw_bind_answer(port, 0x33)
        assert v33.command_status == 0
        assert v33.tlvs == ()
        assert (await _raw_bind_answer(port, 0x34)).tlvs == (
            Tlv.of_int(Tag.SC_INTERFACE_VERSION, 0x34),
        )


async def test_messages_are_acknowledged_sent_and_receipted(tmp_path: Path) -> None:
    async with partner_daemon(tmp_path) as (daemon, port):
        await _order(daemon, "acme", 1000)
        run = await trio.to_thread.run_sync(partial(smpplib_partner, port, count=20, receipts=20))
        assert [r.status for r in run.responses] == [0] * 20
        ids = {r.message_id.decode() for r in run.responses}
        assert len(ids) == 20
        got = {parse_receipt(r.short_message).message_id for r in run.receipts}
        assert got == ids
        assert all(r.esm_class == 0x04 for r in run.receipts)
        assert {parse_receipt(r.short_message).stat for r in run.receipts} == {"DELIVRD"}
        assert daemon.store is not None
        for message_id in ids:
            stored = await daemon.store.get_message(int(message_id))
            assert stored is not None
            assert str(stored.state) == "delivered"


async def test_quota_is_exact_and_refusals_have_a_status(tmp_path: Path) -> None:
    async with partner_daemon(tmp_path) as (daemon, port):
        order = await _order(daemon, "acme", 5)
        run = await trio.to_thread.run_sync(
            partial(smpplib_partner, port, count=8, registered_delivery=0)
        )
        statuses = [r.status for r in run.responses]
        assert statuses.count(0) == 5, statuses
        assert len(statuses) == 8, statuses
        assert set(statuses) - {0} == {CommandStatus.ESME_RX_R_APPN}, statuses
        assert daemon.store is not None
        got = await daemon.store.get_order(order)
        assert got is not None
        assert got.reserved + got.spent == 5, got


async def test_source_not_registered_is_refused(tmp_path: Path) -> None:
    async with partner_daemon(tmp_path) as (daemon, port):
        await _order(daemon, "acme", 10)
        run = await trio.to_thread.run_sync(partial(smpplib_partner, port, count=1, source="BETA"))
        assert [r.status for r in run.responses] == [CommandStatus.ESME_RINVSRCADR]


async def test_receipts_wait_for_an_unbound_partner(tmp_path: Path) -> None:
    async with partner_daemon(tmp_path) as (daemon, port):
        await _order(daemon, "acme", 100)
        sent = await trio.to_thread.run_sync(
            partial(smpplib_partner, port, count=5, bind="transmitter")
        )
        assert [r.status for r in sent.responses] == [0] * 5
        assert daemon.pipeline is not None
        await wait_for(
            lambda: (
                daemon.pipeline is not None and daemon.pipeline.statistics().receipts_matched == 5
            )
        )
        await trio.sleep(0.3)  # outcomes flushed, receipts in the outbox
        later = await trio.to_thread.run_sync(
            partial(smpplib_partner, port, bind="receiver", receipts=5)
        )
        got = {parse_receipt(r.short_message).message_id for r in later.receipts}
        assert got == {r.message_id.decode() for r in sent.responses}


async def test_mo_to_a_partners_short_code_reaches_the_partner(tmp_path: Path) -> None:
    async with partner_daemon(tmp_path) as (daemon, port):
        _, run = await mo_to_receiver(
            daemon,
            port,
            ("84912345678", "8055", "DK Nguyen Ha Noi"),
            ("84912345678", "9999", "nobody owns this short code"),
        )
        (mo,) = run.receipts
        assert mo.esm_class == 0
        assert mo.destination_addr.decode() == "8055"
        assert mo.source_addr.decode() == "84912345678"
        assert mo.short_message == b"DK Nguyen Ha Noi"


def _long_message_partner(port: int, text: bytes) -> PartnerRun:
    """An smpplib partner sending one long text in message_payload, awaiting 1 receipt."""
    run = PartnerRun()
    client = smpplib.client.Client("127.0.0.1", port, timeout=5, allow_unknown_opt_params=True)
    client.set_message_sent_handler(lambda pdu: run.responses.append(pdu))
    client.set_message_received_handler(lambda pdu: run.receipts.append(pdu))
    client.connect()
    try:
        client.bind_transceiver(system_id="acme", password=PASSWORD)
        client.send_message(
            source_addr_ton=smpplib.consts.SMPP_TON_ALNUM,
            source_addr="ACME",
            dest_addr_ton=smpplib.consts.SMPP_TON_INTL,
            destination_addr="84912345678",
            short_message=b"",
            message_payload=text,
            registered_delivery=1,
        )
        deadline = time.monotonic() + 15
        while (not run.responses or not run.receipts) and time.monotonic() < deadline:
            client.read_once()
        client.unbind()
    finally:
        client.disconnect()
    return run


async def test_long_message_goes_in_parts_and_gets_one_receipt(tmp_path: Path) -> None:
    text = b"Long message " + b"x" * 300
    async with partner_daemon(tmp_path) as (daemon, port):
        await _order(daemon, "acme", 10)
        run = await trio.to_thread.run_sync(_long_message_partner, port, text)
        (resp,) = run.responses
        assert resp.status == 0
        (receipt,) = run.receipts
        parsed = parse_receipt(receipt.short_message)
        assert parsed.message_id == resp.message_id.decode()
        assert parsed.stat == "DELIVRD"
        sim = daemon.simulator
        assert isinstance(sim, SimulatedSmsc)
        parts = [s for s in sim.submits if s.destinations == ("84912345678",)]
        assert len(parts) == 3  # 313 GSM characters: 153 + 153 + 7
        assert daemon.store is not None
        orders = await daemon.store.orders("acme")
        assert orders[0].reserved + orders[0].spent == 3  # quota counts parts


async def test_flash_sms_reaches_the_carrier_with_its_message_class(tmp_path: Path) -> None:
    async with partner_daemon(tmp_path) as (daemon, port):
        await _order(daemon, "acme", 10)
        run = await trio.to_thread.run_sync(
            partial(smpplib_partner, port, count=2, receipts=2, data_coding=0xF0)
        )
        assert [r.status for r in run.responses] == [0, 0]
        ids = {r.message_id.decode() for r in run.responses}
        assert {parse_receipt(r.short_message).message_id for r in run.receipts} == ids
        sim = daemon.simulator
        assert isinstance(sim, SimulatedSmsc)
        sent = [s for s in sim.submits if s.destinations[0].startswith("8491")]
        assert [s.data_coding for s in sent] == [0xF0, 0xF0]


async def test_the_partners_validity_reaches_the_carrier(tmp_path: Path) -> None:
    async with partner_daemon(tmp_path) as (daemon, port):
        await _order(daemon, "acme", 10)
        asked = time.time()
        run = await trio.to_thread.run_sync(
            partial(smpplib_partner, port, count=1, validity_period="000000000500000R")
        )
        assert [r.status for r in run.responses] == [0]
        sim = daemon.simulator
        assert isinstance(sim, SimulatedSmsc)
        await wait_for(lambda: any(s.destinations == ("84910000000",) for s in sim.submits))
        (sent,) = [s for s in sim.submits if s.destinations == ("84910000000",)]
        # Relative from the partner, absolute (UTC) to the carrier: five minutes on.
        until = parse_smpp_time(sent.validity_period, field="validity_period")
        assert isinstance(until, datetime)
        assert -0.1 <= until.timestamp() - (asked + 300) < 5  # tenths: the format's unit


async def _one(port: int, **fields: Any) -> PartnerRun:
    """One message from smpplib as the partner, with these submit_sm fields."""
    return await trio.to_thread.run_sync(partial(smpplib_partner, port, count=1, **fields))


def _sent_to(sim: SimulatedSmsc, destination: str) -> list[SubmitRecord]:
    return [s for s in sim.submits if s.destinations == (destination,)]


async def test_protocol_id_reaches_the_carrier_and_the_reference_comes_back(
    tmp_path: Path,
) -> None:
    """A partner allowed protocol_id 0x41 (replace short message type 1) has it sent
    with its message, not a plain SMS; its user_message_reference comes back in the
    receipt. One it is not allowed (0x40, a silent SMS) is refused, not sent visible."""
    async with partner_daemon(tmp_path) as (daemon, port):
        await _order(daemon, "acme", 10)
        run = await _one(port, receipts=1, protocol_id=0x41, user_message_reference=4242)
        assert [r.status for r in run.responses] == [0]
        (receipt,) = run.receipts
        assert receipt.receipted_message_id.decode() == run.responses[0].message_id.decode()
        assert receipt.user_message_reference == 4242
        sim = daemon.simulator
        assert isinstance(sim, SimulatedSmsc)
        (sent,) = _sent_to(sim, "84910000000")
        assert sent.protocol_id == 0x41
        assert sent.tlvs == ()  # the partner's reference is the partner's, not the carrier's
        silent = await _one(port, protocol_id=0x40)
        assert [r.status for r in silent.responses] == [CommandStatus.ESME_RSUBMITFAIL]
        assert len(_sent_to(sim, "84910000000")) == 1


async def test_application_ports_reach_the_carrier_with_every_part(tmp_path: Path) -> None:
    """A message for an application (destination_port) that lost its ports would land
    in the inbox as text; each part of a long one carries them."""
    async with partner_daemon(tmp_path) as (daemon, port):
        await _order(daemon, "acme", 10)
        run = await _one(
            port,
            source_port=0x23F0,
            destination_port=0x0B84,
            message_payload=b"x" * 200,
            short_message=None,
        )
        assert [r.status for r in run.responses] == [0]
        sim = daemon.simulator
        assert isinstance(sim, SimulatedSmsc)
        await wait_for(lambda: len(_sent_to(sim, "84910000000")) == 2)
        for part in _sent_to(sim, "84910000000"):
            tlvs = {t.tag: t.value for t in part.tlvs}
            assert tlvs == {Tag.SOURCE_PORT: b"\x23\xf0", Tag.DESTINATION_PORT: b"\x0b\x84"}


async def test_a_vendor_tlv_reaches_a_carrier_that_lists_its_tag(tmp_path: Path) -> None:
    """carriers[].vendor_tlvs: a partner's vendor TLV (a charging code, say) goes to
    the SMSC that asked for it; one nobody listed is not journaled or sent."""
    extra = ", vendor_tlvs: [0x1401]"
    async with partner_daemon(tmp_path, carrier_extra=extra) as (daemon, port):
        await _order(daemon, "acme", 10)
        async with esme(port) as link:
            tlvs = (Tlv(0x1401, b"CHG7"), Tlv(0x1402, b"nobody's"))
            resp = await link.request(_submit(destination="84910000000", tlvs=tlvs))
            assert resp.command_status == 0
        sim = daemon.simulator
        assert isinstance(sim, SimulatedSmsc)
        await wait_for(lambda: len(_sent_to(sim, "84910000000")) == 1)
        (sent,) = _sent_to(sim, "84910000000")
        assert sent.tlvs == (Tlv(0x1401, b"CHG7"),)


LONG_TEXT = b"Long message " + b"x" * 300


async def _long_message_parts(tmp_path: Path, split: str) -> tuple[int, list[SubmitRecord]]:
    """An smpplib partner's long message through a carrier with ``split``: the
    gateway's message id, once the partner has its one DELIVRD receipt, and the parts
    the SMSC got."""
    async with partner_daemon(tmp_path, carrier_extra=f", split: {split}") as (daemon, port):
        await _order(daemon, "acme", 10)
        run = await trio.to_thread.run_sync(_long_message_partner, port, LONG_TEXT)
        (resp,) = run.responses
        assert resp.status == 0
        (receipt,) = run.receipts
        assert parse_receipt(receipt.short_message).stat == "DELIVRD"
        sim = daemon.simulator
        assert isinstance(sim, SimulatedSmsc)
        return int(resp.message_id), _sent_to(sim, "84912345678")


async def test_a_sar_carrier_gets_the_parts_with_sar_tlvs_and_the_partner_one_receipt(
    tmp_path: Path,
) -> None:
    _, parts = await _long_message_parts(tmp_path, "sar")
    assert b"".join(p.short_message for p in parts) == LONG_TEXT  # no UDH left in them
    assert not any(p.esm_class & 0x40 for p in parts)
    sar = [{t.tag: int.from_bytes(t.value, "big") for t in p.tlvs} for p in parts]
    assert [s[Tag.SAR_SEGMENT_SEQNUM] for s in sar] == [1, 2, 3]
    assert {s[Tag.SAR_TOTAL_SEGMENTS] for s in sar} == {3}
    assert len({s[Tag.SAR_MSG_REF_NUM] for s in sar}) == 1


async def test_a_udh16_carrier_gets_the_parts_with_a_16_bit_reference(tmp_path: Path) -> None:
    """carriers[].split: udh16: the parts carry ``06 08 04 ref ref total seq``, the
    reference the message id's low 16 bits, one SMS each; the partner gets one receipt."""
    message_id, parts = await _long_message_parts(tmp_path, "udh16")
    reference = message_id & 0xFFFF
    assert [p.short_message[:7] for p in parts] == [
        bytes([6, 8, 4, reference >> 8, reference & 0xFF, 3, seq]) for seq in (1, 2, 3)
    ]
    assert all(p.esm_class & 0x40 and len(p.short_message) <= 7 + 152 for p in parts)
    assert b"".join(p.short_message[7:] for p in parts) == LONG_TEXT


async def test_reload_adds_a_partner_without_dropping_live_binds(tmp_path: Path) -> None:
    async with partner_daemon(tmp_path) as (daemon, port):
        assert daemon.config_path is not None
        before = await trio.to_thread.run_sync(partial(smpplib_partner, port, system_id="gamma"))
        assert before.bind_status == CommandStatus.ESME_RINVSYSID
        text = daemon.config_path.read_text()
        acme_hash = text.split("password_hash: '")[1].split("'")[0]
        daemon.config_path.write_text(
            text + f"  - {{system_id: gamma, password_hash: '{acme_hash}', billing: unmetered}}\n"
        )
        carrier_before = daemon.carriers["sim"].client
        assert await daemon.reload()
        assert daemon.carriers["sim"].client is carrier_before  # unchanged: bind kept
        after = await trio.to_thread.run_sync(
            partial(
                smpplib_partner,
                port,
                system_id="gamma",
                count=1,
                source="ANY",
                registered_delivery=0,
            )
        )
        assert after.bind_status == 0
        assert [r.status for r in after.responses] == [0]


async def test_moderated_messages_are_held_not_sent(tmp_path: Path) -> None:
    async with partner_daemon(tmp_path) as (daemon, port):
        run = await trio.to_thread.run_sync(
            partial(
                smpplib_partner, port, system_id="mod", count=3, source="ANY", registered_delivery=0
            )
        )
        assert [r.status for r in run.responses] == [0, 0, 0]
        await trio.sleep(0.5)
        assert daemon.store is not None
        for r in run.responses:
            stored = await daemon.store.get_message(int(r.message_id))
            assert stored is not None
            assert str(stored.state) == "held"
        sim = daemon.simulator
        assert isinstance(sim, SimulatedSmsc)
        assert not sim.submits
        # a restart's recovery does not send them either
        assert daemon.pipeline is not None
        assert await daemon.pipeline.recover() == 0


async def test_query_sm_reports_the_partners_own_message_only(tmp_path: Path) -> None:
    from smppgw.net.link import SmppLink
    from smppgw.protocol.pdus import BindTransceiver, QuerySm, QuerySmResp
    from smppgw.protocol.session import SmppConnection
    from smppgw.protocol.states import Role

    async def ignore(link: SmppLink, batch: object) -> None:
        return None

    async with partner_daemon(tmp_path) as (daemon, port):
        await _order(daemon, "acme", 10)
        run = await trio.to_thread.run_sync(partial(smpplib_partner, port, count=1, receipts=1))
        message_id = run.responses[0].message_id.decode()
        await wait_for(
            lambda: (
                daemon.pipeline is not None and daemon.pipeline.statistics().receipts_matched == 1
            )
        )
        await trio.sleep(0.3)  # the final state is flushed to the journal
        async with trio.open_nursery() as nursery:
            for system_id, expected in (("acme", 0), ("beta", CommandStatus.ESME_RINVMSGID)):
                stream = await trio.open_tcp_stream("127.0.0.1", port)
                link = SmppLink(stream, SmppConnection(Role.ESME), ignore)
                await nursery.start(link.run)
                await link.request(BindTransceiver(system_id=system_id, password="s3cret"))
                resp = await link.request(QuerySm(message_id=message_id, source_addr="ACME"))
                assert isinstance(resp, QuerySmResp)
                assert resp.command_status == expected
                if expected == 0:
                    assert resp.message_state == 2  # DELIVERED
                    assert len(resp.final_date) == 16
                link.close()


async def test_moderation_approve_sends_and_reject_finalises(tmp_path: Path) -> None:
    from smppgw.app.admin import admin_request

    async with partner_daemon(tmp_path) as (daemon, port):
        run = await trio.to_thread.run_sync(
            partial(
                smpplib_partner, port, system_id="mod", count=2, source="ANY", registered_delivery=0
            )
        )
        ids = [int(r.message_id) for r in run.responses]
        sock = tmp_path / "admin.sock"
        listed = await trio.to_thread.run_sync(admin_request, sock, {"cmd": "moderation.list"})
        assert [m["id"] for m in listed["messages"]] == ids
        approved = await trio.to_thread.run_sync(
            admin_request, sock, {"cmd": "moderation.approve", "ids": [ids[0]]}
        )
        assert approved == {"ok": True, "approved": [ids[0]], "opted_out": []}
        sim = daemon.simulator
        assert isinstance(sim, SimulatedSmsc)
        await wait_for(lambda: len(sim.submits) == 1)
        rejected = await trio.to_thread.run_sync(
            admin_request, sock, {"cmd": "moderation.reject", "ids": [ids[1]], "reason": "spam"}
        )
        assert rejected == {"ok": True, "rejected": [ids[1]]}
        assert daemon.store is not None
        stored = await daemon.store.get_message(ids[1])
        assert stored is not None
        assert str(stored.state) == "rejected"
        again = await trio.to_thread.run_sync(
            admin_request, sock, {"cmd": "moderation.approve", "ids": [ids[1]]}
        )
        assert again["approved"] == []  # no longer held
        assert len(sim.submits) == 1


async def test_a_carrier_s_binds_all_send_after_an_idle_moment(tmp_path: Path) -> None:
    """A carrier with two binds: after the queue has been empty (both binds' senders
    waiting), a burst larger than one bind's window (32) goes out on both, not only on
    the last sender to wait. The SMSC answers after 50 ms, so one bind cannot keep up."""
    async with partner_daemon(tmp_path, carrier_extra=", binds: 2") as (daemon, port):
        await _order(daemon, "acme", 200)
        await wait_for(lambda: sum(r.client.binds_up for r in daemon.carriers.values()) == 2)
        sim = daemon.simulator
        assert isinstance(sim, SimulatedSmsc)
        sim.faults.response_delay = 0.05
        for burst in range(2):
            before = len(sim.submits)
            run = await trio.to_thread.run_sync(
                partial(smpplib_partner, port, count=80, registered_delivery=0)
            )
            assert [r.status for r in run.responses] == [0] * 80
            await wait_for(lambda: len(sim.submits) == before + 80)  # noqa: B023
            sessions = {s.session for s in list(sim.submits)[before:]}
            assert len(sessions) == 2, (burst, sessions)
            await trio.sleep(0.3)  # idle: both senders wait on the empty queue
