"""data_sm, submit_multi, cancel_sm and replace_sm from partners, end to end: the daemon
in process, partners on real loopback sockets (smpplib for data_sm, which it speaks; our
own link as the ESME for the PDUs smpplib lacks)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import smpplib.client
import smpplib.consts
import trio
from carrier_fixtures import wait_for
from partner_fixtures import PASSWORD, esme, partner_daemon

from smppgw.protocol.fields import DestAddress, DestFlag, UnsuccessSme
from smppgw.protocol.pdus import (
    BindTransceiver,
    CancelSm,
    DataSm,
    Pdu,
    QuerySm,
    ReplaceSm,
    SubmitMulti,
    SubmitMultiResp,
    SubmitSm,
)
from smppgw.protocol.receipt import MessageState as ReceiptState
from smppgw.protocol.status import CommandStatus as S
from smppgw.protocol.tlv import Tag, Tlv
from smppgw.sim.smsc import SimulatedSmsc, SubmitRecord
from smppgw.store import NewOrder, OrderKind

if TYPE_CHECKING:
    from pathlib import Path

    from smppgw.app.daemon import Daemon
    from smppgw.gateway.mt import MtPipeline
    from smppgw.net.link import SmppLink


async def _order(daemon: Daemon, partner: str, parts: int) -> int:
    assert daemon.store is not None
    return await daemon.store.create_order(
        NewOrder(partner=partner, kind=OrderKind.PREPAID, limit=parts)
    )


def _submit(text: bytes = b"hello", destination: str = "84912345678", **kw: Any) -> SubmitSm:
    return SubmitSm(
        source_addr_ton=5,
        source_addr=kw.pop("source", "ACME"),
        dest_addr_ton=1,
        dest_addr_npi=1,
        destination_addr=destination,
        short_message=text,
        **kw,
    )


async def _accepted(link: SmppLink, text: bytes = b"hello", **kw: Any) -> str:
    resp = await link.request(_submit(text, **kw))
    assert resp.command_status == 0
    message_id: str = resp.message_id  # type: ignore[attr-defined]
    return message_id


async def _state(daemon: Daemon, message_id: str) -> tuple[str, str | None, bytes]:
    assert daemon.store is not None
    stored = await daemon.store.get_message(int(message_id))
    assert stored is not None
    return str(stored.state), stored.error, stored.body


# -- data_sm ---------------------------------------------------------------------------


def _data_sm_partner(port: int, payload: bytes | None) -> list[Any]:
    """An smpplib transceiver sending one data_sm; returns the responses it got."""
    responses: list[Any] = []
    client = smpplib.client.Client("127.0.0.1", port, timeout=5, allow_unknown_opt_params=True)
    client.set_message_sent_handler(responses.append)
    client.set_message_received_handler(lambda pdu: None)
    client.connect()
    try:
        client.bind_transceiver(system_id="acme", password=PASSWORD)
        fields: dict[str, Any] = {
            "source_addr_ton": smpplib.consts.SMPP_TON_ALNUM,
            "source_addr": "ACME",
            "dest_addr_ton": smpplib.consts.SMPP_TON_INTL,
            "dest_addr_npi": smpplib.consts.SMPP_NPI_ISDN,
            "destination_addr": "84912345678",
            "registered_delivery": 0,
        }
        if payload is not None:
            fields["message_payload"] = payload
        client.send_pdu(smpplib.smpp.make_pdu("data_sm", client=client, **fields))
        deadline = time.monotonic() + 5
        while not responses and time.monotonic() < deadline:
            pdu = client.read_pdu()
            if pdu.command == "data_sm_resp":
                responses.append(pdu)
        client.unbind()
    finally:
        client.disconnect()
    return responses


async def test_data_sm_is_a_submit_answered_with_our_message_id(tmp_path: Path) -> None:
    async with partner_daemon(tmp_path) as (daemon, port):
        order = await _order(daemon, "acme", 10)
        (resp,) = await trio.to_thread.run_sync(_data_sm_partner, port, b"data sm text")
        assert resp.status == 0
        message_id = resp.message_id.decode()
        sim = daemon.simulator
        assert isinstance(sim, SimulatedSmsc)
        await wait_for(lambda: len(sim.submits) == 1)
        assert sim.submits[0].destinations == ("84912345678",)
        assert (await _state(daemon, message_id))[2] == b"data sm text"
        assert daemon.store is not None
        got = await daemon.store.get_order(order)
        assert got is not None
        assert got.reserved + got.spent == 1  # the same quota as a submit_sm


async def test_data_sm_without_message_payload_is_refused(tmp_path: Path) -> None:
    async with partner_daemon(tmp_path) as (daemon, port):
        await _order(daemon, "acme", 10)
        (resp,) = await trio.to_thread.run_sync(_data_sm_partner, port, None)
        assert resp.status == S.ESME_RMISSINGOPTPARAM


async def test_data_sm_goes_through_admission(tmp_path: Path) -> None:
    async with partner_daemon(tmp_path) as (daemon, port):
        await _order(daemon, "acme", 10)
        async with esme(port) as link:
            payload = (Tlv(Tag.MESSAGE_PAYLOAD, b"hi"),)
            wrong_source = DataSm(source_addr="NOTOURS", destination_addr="8491", tlvs=payload)
            assert (await link.request(wrong_source)).command_status == S.ESME_RINVSRCADR
            too_long = DataSm(source_addr="ACME", destination_addr="8" * 30, tlvs=payload)
            assert (await link.request(too_long)).command_status == S.ESME_RINVDSTADR


# -- submit_multi ------------------------------------------------------------------------


def _multi(*destinations: DestAddress, text: bytes = b"to many") -> SubmitMulti:
    return SubmitMulti(
        source_addr_ton=5, source_addr="ACME", dest_addresses=destinations, short_message=text
    )


def _sme(number: str) -> DestAddress:
    return DestAddress(DestFlag.SME_ADDRESS, 1, 1, number)


async def test_submit_multi_admits_each_destination_and_lists_the_refused(
    tmp_path: Path,
) -> None:
    async with partner_daemon(tmp_path) as (daemon, port):
        order = await _order(daemon, "acme", 10)
        async with esme(port) as link:
            resp = await link.request(
                _multi(
                    _sme("84911111111"),
                    DestAddress(DestFlag.DISTRIBUTION_LIST, dl_name="friends"),
                    _sme("not-a-number"),
                    _sme("84922222222"),
                )
            )
        assert isinstance(resp, SubmitMultiResp)
        assert resp.command_status == 0
        assert resp.unsuccess_smes == (
            UnsuccessSme(0, 0, "friends", S.ESME_RINVDLNAME),
            UnsuccessSme(1, 1, "not-a-number", S.ESME_RINVDSTADR),
        )
        first = int(resp.message_id)
        assert daemon.store is not None
        stored = [await daemon.store.get_message(first + n) for n in range(2)]
        assert [m.destination_addr for m in stored if m] == ["84911111111", "84922222222"]
        sim = daemon.simulator
        assert isinstance(sim, SimulatedSmsc)
        await wait_for(lambda: len(sim.submits) == 2)
        got = await daemon.store.get_order(order)
        assert got is not None
        assert got.reserved + got.spent == 2  # one part per destination


async def test_submit_multi_quota_is_per_destination_and_part(tmp_path: Path) -> None:
    long_text = b"x" * 200  # 2 parts
    async with partner_daemon(tmp_path) as (daemon, port):
        order = await _order(daemon, "acme", 3)
        async with esme(port) as link:
            resp = await link.request(
                _multi(_sme("84911111111"), _sme("84922222222"), text=long_text)
            )
            assert resp.command_status == 0
            assert isinstance(resp, SubmitMultiResp)
            assert resp.unsuccess_smes == (UnsuccessSme(1, 1, "84922222222", S.ESME_RX_R_APPN),)
            # None accepted: the PDU carries the first refusal's status, and the list.
            none = await link.request(_multi(_sme("84933333333"), text=long_text))
            assert none.command_status == S.ESME_RX_R_APPN
            assert isinstance(none, SubmitMultiResp)
            assert [u.error_status_code for u in none.unsuccess_smes] == [S.ESME_RX_R_APPN]
        assert daemon.store is not None
        got = await daemon.store.get_order(order)
        assert got is not None
        assert got.reserved + got.spent == 2


# -- cancel_sm ---------------------------------------------------------------------------


def _cancel(message_id: str, **kw: Any) -> CancelSm:
    return CancelSm(message_id=message_id, source_addr=kw.pop("source", "ACME"), **kw)


async def test_cancel_of_a_queued_message_takes_it_out_and_releases_quota(
    tmp_path: Path,
) -> None:
    async with partner_daemon(tmp_path, carrier_down=True) as (daemon, port):
        order = await _order(daemon, "acme", 10)
        assert daemon.pipeline is not None
        async with esme(port) as link:
            kept = await _accepted(link, b"keep me")
            gone = await _accepted(link, b"cancel me", registered_delivery=1)
            assert daemon.pipeline.queued == 2
            resp = await link.request(_cancel(gone, destination_addr="+84912345678"))
            assert resp.command_status == 0
            assert daemon.pipeline.queued == 1
            assert await _state(daemon, gone) == ("rejected", "cancelled by partner", b"cancel me")
            query = await link.request(QuerySm(message_id=gone, source_addr="ACME"))
            assert query.message_state == ReceiptState.DELETED  # type: ignore[attr-defined]
            again = await link.request(_cancel(gone))
            assert again.command_status == S.ESME_RCANCELFAIL
            wrong_dest = await link.request(_cancel(kept, destination_addr="84900000000"))
            assert wrong_dest.command_status == S.ESME_RINVDSTADR
            # No id and no destination: a cancel by addresses needs both (4.9.1).
            assert (await link.request(_cancel(""))).command_status == S.ESME_RINVDSTADR
        async with esme(port, "beta") as other:
            theirs = await other.request(_cancel(kept, source="BETA"))
            assert theirs.command_status == S.ESME_RINVMSGID
        assert daemon.store is not None
        got = await daemon.store.get_order(order)
        assert got is not None
        assert (got.reserved, got.spent) == (1, 0)  # only the kept message holds quota
        assert (await _state(daemon, kept))[0] == "accepted"
        assert [m.id for q in daemon.pipeline.queues.values() for m in q.drain()] == [int(kept)]


async def test_cancel_of_a_held_message_finalises_it(tmp_path: Path) -> None:
    async with partner_daemon(tmp_path) as (daemon, port), esme(port, "mod") as link:
        message_id = await _accepted(link, source="ANY")
        assert (await _state(daemon, message_id))[0] == "held"
        resp = await link.request(_cancel(message_id, source="ANY"))
        assert resp.command_status == 0
        assert (await _state(daemon, message_id))[0] == "rejected"
        assert daemon.store is not None
        assert await daemon.store.held_messages() == []


async def test_cancel_after_the_carrier_took_it_fails(tmp_path: Path) -> None:
    async with partner_daemon(tmp_path) as (daemon, port):
        await _order(daemon, "acme", 10)
        sim = daemon.simulator
        assert isinstance(sim, SimulatedSmsc)
        async with esme(port) as link:
            message_id = await _accepted(link)
            await wait_for(lambda: len(sim.submits) == 1)
            resp = await link.request(_cancel(message_id))
            assert resp.command_status == S.ESME_RCANCELFAIL
            replaced = await link.request(ReplaceSm(message_id=message_id, short_message=b"x"))
            assert replaced.command_status == S.ESME_RREPLACEFAIL
        assert (await _state(daemon, message_id))[0] in ("submitted", "sent", "delivered")


# -- replace_sm --------------------------------------------------------------------------


def _payload(text: bytes) -> tuple[Tlv, ...]:
    """A long replacement travels in message_payload (short_message takes 254 octets)."""
    return (Tlv(Tag.MESSAGE_PAYLOAD, text),)


async def test_replace_of_a_queued_message_changes_what_is_sent(tmp_path: Path) -> None:
    async with partner_daemon(tmp_path, carrier_down=True) as (daemon, port):
        order = await _order(daemon, "acme", 4)
        assert daemon.pipeline is not None
        assert daemon.store is not None
        async with esme(port) as link:
            message_id = await _accepted(link, b"old text")
            resp = await link.request(
                ReplaceSm(message_id=message_id, source_addr="ACME", short_message=b"new text")
            )
            assert resp.command_status == 0
            assert (await _state(daemon, message_id))[2] == b"new text"
            (queued,) = [m for q in daemon.pipeline.queues.values() for m in q._lanes[0]]
            assert queued.parts == (b"new text",)
            # Three parts: the reservation grows from 1 to 3 parts.
            long = await link.request(ReplaceSm(message_id=message_id, tlvs=_payload(b"y" * 400)))
            assert long.command_status == 0
            stored = await daemon.store.get_message(int(message_id))
            assert stored is not None
            assert stored.part_count == 3
            assert len(queued.parts) == 3
            got = await daemon.store.get_order(order)
            assert got is not None
            assert got.reserved == 3
            # Five parts cannot be paid for: nothing changes.
            over = await link.request(ReplaceSm(message_id=message_id, tlvs=_payload(b"z" * 700)))
            assert over.command_status == S.ESME_RX_R_APPN
            assert len(queued.parts) == 3
            assert daemon.pipeline.queued == 1
        async with esme(port, "beta") as other:
            theirs = await other.request(ReplaceSm(message_id=message_id, short_message=b"mine"))
            assert theirs.command_status == S.ESME_RINVMSGID
        got = await daemon.store.get_order(order)
        assert got is not None
        assert got.reserved == 3


async def test_replace_text_must_pass_the_content_policy(tmp_path: Path) -> None:
    async with partner_daemon(tmp_path, carrier_down=True) as (daemon, port):
        await _order(daemon, "beta", 10)
        async with esme(port, "beta") as link:
            message_id = await _accepted(link, b"fine", source="BETA")
            resp = await link.request(
                ReplaceSm(message_id=message_id, short_message=b"win at the casino")
            )
            assert resp.command_status == S.ESME_RX_P_APPN
        assert (await _state(daemon, message_id))[2] == b"fine"


async def test_transceiver_binds_get_the_commands_too(tmp_path: Path) -> None:
    async with partner_daemon(tmp_path, carrier_down=True) as (daemon, port):
        await _order(daemon, "acme", 10)
        async with esme(port, bind=BindTransceiver) as link:
            message_id = await _accepted(link)
            resp: Pdu = await link.request(_cancel(message_id))
            assert resp.command_status == 0


# -- schedule_delivery_time ------------------------------------------------------------


async def _scheduling(daemon: Daemon) -> tuple[SimulatedSmsc, MtPipeline]:
    """An order for acme, and the simulator and pipeline to watch."""
    await _order(daemon, "acme", 10)
    sim = daemon.simulator
    assert isinstance(sim, SimulatedSmsc)
    assert daemon.pipeline is not None
    return sim, daemon.pipeline


def _sent_to(sim: SimulatedSmsc, destination: str) -> list[SubmitRecord]:
    return [s for s in sim.submits if s.destinations == (destination,)]


async def test_a_scheduled_message_waits_for_its_time_and_can_be_cancelled_meanwhile(
    tmp_path: Path,
) -> None:
    async with partner_daemon(tmp_path) as (daemon, port), esme(port) as link:
        sim, pipeline = await _scheduling(daemon)

        def at_sim(destination: str) -> bool:
            return bool(_sent_to(sim, destination))

        soon = "000000000001000R"  # relative: one second
        await _accepted(
            link, b"in a second", destination="84911111111", schedule_delivery_time=soon
        )
        later = await _accepted(
            link,
            b"in a minute",
            destination="84922222222",
            schedule_delivery_time="000000000100000R",
        )
        await _accepted(link, b"now", destination="84933333333")
        await wait_for(lambda: at_sim("84933333333"))
        assert not at_sim("84911111111")
        assert pipeline.statistics().delayed == 2
        await wait_for(lambda: at_sim("84911111111"), within=5)
        assert not at_sim("84922222222")
        assert pipeline.statistics().delayed == 1
        resp = await link.request(_cancel(later))
        assert resp.command_status == 0
        assert pipeline.statistics().delayed == 0
        assert await _state(daemon, later) == ("rejected", "cancelled by partner", b"in a minute")


async def test_replace_of_a_scheduled_message_sends_the_new_text_at_the_new_time(
    tmp_path: Path,
) -> None:
    async with partner_daemon(tmp_path) as (daemon, port), esme(port) as link:
        sim, pipeline = await _scheduling(daemon)
        message_id = await _accepted(
            link,
            b"in an hour",
            destination="84944444444",
            schedule_delivery_time="000000010000000R",
        )
        assert pipeline.statistics().delayed == 1
        resp = await link.request(
            ReplaceSm(
                message_id=message_id,
                source_addr="ACME",
                short_message=b"in a second",
                schedule_delivery_time="000000000001000R",
            )
        )
        assert resp.command_status == 0
        await wait_for(lambda: bool(_sent_to(sim, "84944444444")))
        (sent,) = _sent_to(sim, "84944444444")
        assert sent.short_message == b"in a second"
        assert pipeline.statistics().delayed == 0


async def test_scheduled_messages_have_their_own_bound(tmp_path: Path) -> None:
    """A partner's campaign for later fills max_scheduled_messages, not the
    max_pending_messages that messages for now need."""
    async with partner_daemon(tmp_path, max_pending=2, max_scheduled=2) as (daemon, port):
        await _order(daemon, "acme", 10)
        assert daemon.pipeline is not None
        later = {"schedule_delivery_time": "000000010000000R"}  # an hour from now
        async with esme(port) as link:
            for n in range(2):
                await _accepted(link, b"later", destination=f"8491000000{n}", **later)
            third = await link.request(_submit(b"later", "84910000002", **later))
            assert third.command_status == S.ESME_RMSGQFUL
            assert (daemon.pipeline.scheduled, daemon.pipeline.pending) == (2, 0)
            await _accepted(link, b"now", destination="84910000003")  # still taken
