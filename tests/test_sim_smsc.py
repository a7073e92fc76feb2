"""The simulated SMSC on real loopback sockets: binds, ids, receipts, faults, isolation."""

from __future__ import annotations

import contextlib
import itertools
import re
from typing import TYPE_CHECKING, Any

import pytest
import trio

from smppgw.net.link import LinkClosed, RequestTimeout, SmppLink
from smppgw.protocol.fields import DestAddress
from smppgw.protocol.pdus import (
    BindReceiver,
    BindTransceiver,
    BindTransmitter,
    DataSm,
    DataSmResp,
    DeliverSm,
    Pdu,
    QuerySm,
    SubmitMulti,
    SubmitMultiResp,
    SubmitSm,
    SubmitSmResp,
)
from smppgw.protocol.receipt import MessageState, parse_receipt
from smppgw.protocol.session import SmppConnection, make_response
from smppgw.protocol.states import Role
from smppgw.protocol.status import CommandStatus
from smppgw.protocol.tlv import Tag, Tlv, tlv_cstring, tlv_int
from smppgw.sim import Account, Faults, SimConfig, SimulatedSmsc, run_load
from smppgw.sim.loadgen import LoadError

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Sequence


@contextlib.asynccontextmanager
async def running(
    config: SimConfig | None = None, faults: Faults | None = None
) -> AsyncIterator[SimulatedSmsc]:
    sim = SimulatedSmsc(config or SimConfig(receipt_delay=0.005, seed=7), faults=faults)
    async with trio.open_nursery() as nursery:
        await nursery.start(sim.run)
        yield sim
        nursery.cancel_scope.cancel()


class Esme:
    """A raw partner session: records every deliver_sm and answers it."""

    def __init__(self) -> None:
        self.delivered: list[DeliverSm] = []
        self.link: SmppLink

    async def handler(self, link: SmppLink, batch: Sequence[Pdu]) -> None:
        for pdu in batch:
            if isinstance(pdu, DeliverSm):
                self.delivered.append(pdu)
            link.respond(make_response(pdu))

    async def wait_for(self, n: int, seconds: float = 5.0) -> list[DeliverSm]:
        await eventually(lambda: len(self.delivered) >= n, seconds)
        return self.delivered


async def eventually(predicate: Callable[[], bool], seconds: float = 5.0) -> None:
    """Poll ``predicate`` (real sockets: no autojump clock here) until true."""
    with trio.fail_after(seconds):
        for _ in itertools.count():
            if predicate():
                return
            await trio.sleep(0.005)


async def connect(
    nursery: trio.Nursery,
    port: int,
    bind: type[BindTransmitter | BindReceiver | BindTransceiver] = BindTransceiver,
    *,
    system_id: str = "smppgw",
    password: str = "smppgw",
    **conn: Any,
) -> tuple[Esme, Pdu]:
    esme = Esme()
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    esme.link = SmppLink(stream, SmppConnection(Role.ESME, **conn), esme.handler, name="esme")
    await nursery.start(esme.link.run)
    resp = await esme.link.request(bind(system_id=system_id, password=password))
    return esme, resp


def _submit(text: str = "hello world", rd: int = 1, dest: str = "84912345678") -> SubmitSm:
    return SubmitSm(
        source_addr="8055",
        destination_addr=dest,
        short_message=text.encode(),
        registered_delivery=rd,
    )


async def test_loadgen_to_sim_hex_ids_receipts_all_matched() -> None:
    async with running() as sim:
        assert sim.port is not None
        summary = await run_load(
            "127.0.0.1",
            sim.port,
            system_id="smppgw",
            password="smppgw",
            count=300,
            window=32,
            registered_delivery=True,
            wait_receipts_timeout=5,
        )
        assert summary.accepted == summary.sent == 300
        assert summary.refused == {}
        assert summary.failed == 0
        assert summary.duplicate_ids == 0
        assert summary.receipts_matched == summary.receipts_received == 300
        ids = [r.message_id for r in sim.submits]
        assert len(set(ids)) == 300
        assert all(re.fullmatch(r"[0-9A-F]+", i) for i in ids)
        assert any(re.search("[A-F]", i) for i in ids)  # upper-case hex letters occur
        stats = sim.statistics()
        assert stats.receipts_answered == 300
        assert stats.accepted == 300
        assert stats.queued == 0


async def test_decimal_ids_with_leading_zeros_and_receipt_content() -> None:
    config = SimConfig(id_format="decimal", id_width=12, receipt_delay=0.005)
    async with running(config) as sim, trio.open_nursery() as nursery:
        assert sim.port is not None
        esme, resp = await connect(nursery, sim.port)
        assert resp.command_status == 0
        r1 = await esme.link.request(_submit("Your code is 123456, valid 5 min"))
        r2 = await esme.link.request(_submit("second"))
        assert isinstance(r1, SubmitSmResp)
        assert isinstance(r2, SubmitSmResp)
        assert re.fullmatch(r"0{5}\d{7}", r1.message_id)
        assert int(r2.message_id) == int(r1.message_id) + 1
        receipt = (await esme.wait_for(2))[0]
        assert receipt.esm_class == 0x04
        assert receipt.source_addr == "84912345678"
        assert receipt.destination_addr == "8055"
        assert tlv_cstring(receipt.tlvs, Tag.RECEIPTED_MESSAGE_ID) == r1.message_id
        assert tlv_int(receipt.tlvs, Tag.MESSAGE_STATE) == MessageState.DELIVERED
        parsed = parse_receipt(receipt.short_message)
        assert parsed.message_id == r1.message_id
        assert (parsed.stat, parsed.sub, parsed.dlvrd, parsed.err) == ("DELIVRD", 1, 1, "000")
        assert parsed.text == "Your code is 123456,"
        assert b"sub:001 dlvrd:001 submit date:" in receipt.short_message
        nursery.cancel_scope.cancel()


@pytest.mark.parametrize(
    ("system_id", "password", "status"),
    [
        ("smppgw", "wrong", CommandStatus.ESME_RINVPASWD),
        ("nobody", "smppgw", CommandStatus.ESME_RINVSYSID),
    ],
)
async def test_bind_refusals(system_id: str, password: str, status: int) -> None:
    async with running() as sim, trio.open_nursery() as nursery:
        assert sim.port is not None
        for bind in (BindTransmitter, BindReceiver, BindTransceiver):
            _esme, resp = await connect(
                nursery, sim.port, bind, system_id=system_id, password=password
            )
            assert resp.command_status == status
        with pytest.raises(LoadError) as info:
            await run_load("127.0.0.1", sim.port, system_id=system_id, password=password, count=1)
        assert info.value.status == status
        assert sim.statistics().binds_refused == 4
        nursery.cancel_scope.cancel()


async def test_several_accounts_and_bind_kinds() -> None:
    accounts = (Account("alpha", "pw1"), Account("beta", "pw2"))
    async with running(SimConfig(accounts=accounts)) as sim, trio.open_nursery() as nursery:
        assert sim.port is not None
        for bind, system_id, password in [
            (BindTransmitter, "alpha", "pw1"),
            (BindReceiver, "beta", "pw2"),
            (BindTransceiver, "beta", "pw2"),
        ]:
            _esme, resp = await connect(
                nursery, sim.port, bind, system_id=system_id, password=password
            )
            assert resp.command_status == 0
        assert [(b.system_id, b.bind) for b in sim.binds] == [
            ("alpha", "transmitter"),
            ("beta", "receiver"),
            ("beta", "transceiver"),
        ]
        assert sim.statistics().receivers == 2
        nursery.cancel_scope.cancel()


async def test_receipt_waits_for_a_receiver_of_the_same_system_id() -> None:
    accounts = (Account("smppgw", "smppgw"), Account("other", "other"))
    config = SimConfig(accounts=accounts, receipt_delay=0.0)
    async with running(config) as sim, trio.open_nursery() as nursery:
        assert sim.port is not None
        tx, _ = await connect(nursery, sim.port, BindTransmitter)
        other, _ = await connect(
            nursery, sim.port, BindReceiver, system_id="other", password="other"
        )
        resp = await tx.link.request(_submit())
        await trio.sleep(0.05)
        assert sim.statistics().queued == 1
        assert not other.delivered
        rx, _ = await connect(nursery, sim.port, BindReceiver)
        (receipt,) = await rx.wait_for(1)
        assert isinstance(resp, SubmitSmResp)
        assert tlv_cstring(receipt.tlvs, Tag.RECEIPTED_MESSAGE_ID) == resp.message_id
        assert not other.delivered
        nursery.cancel_scope.cancel()


async def test_outcomes_and_failure_only_receipts() -> None:
    config = SimConfig(receipt_delay=0.0, outcomes={"DELIVRD": 1, "UNDELIV": 1}, seed=3)
    async with running(config) as sim, trio.open_nursery() as nursery:
        assert sim.port is not None
        esme, _ = await connect(nursery, sim.port)
        for _ in range(40):
            await esme.link.request(_submit(rd=2))  # receipts on failure only
        await trio.sleep(0.1)
        states = {tlv_int(d.tlvs, Tag.MESSAGE_STATE) for d in esme.delivered}
        assert states == {MessageState.UNDELIVERABLE}
        assert 5 < len(esme.delivered) < 35
        undeliv = esme.delivered[0]
        assert b"stat:UNDELIV err:001" in undeliv.short_message
        assert b"dlvrd:000" in undeliv.short_message
        nursery.cancel_scope.cancel()


async def test_data_sm_submit_multi_and_unsupported() -> None:
    async with running(SimConfig(receipt_delay=0.0)) as sim, trio.open_nursery() as nursery:
        assert sim.port is not None
        esme, _ = await connect(nursery, sim.port)
        data = DataSm(
            source_addr="8055",
            destination_addr="84900000001",
            registered_delivery=1,
            tlvs=(Tlv(Tag.MESSAGE_PAYLOAD, b"payload text"),),
        )
        r1 = await esme.link.request(data)
        multi = SubmitMulti(
            source_addr="8055",
            dest_addresses=(
                DestAddress(destination_addr="84900000002"),
                DestAddress(destination_addr="84900000003"),
            ),
            short_message=b"to many",
            registered_delivery=1,
        )
        r2 = await esme.link.request(multi)
        assert isinstance(r1, DataSmResp)
        assert r1.message_id
        assert isinstance(r2, SubmitMultiResp)
        assert r2.message_id
        r3 = await esme.link.request(QuerySm(message_id=r1.message_id))
        assert r3.command_status == CommandStatus.ESME_RQUERYFAIL
        delivered = await esme.wait_for(3)
        assert sorted(d.source_addr for d in delivered) == [
            "84900000001",
            "84900000002",
            "84900000003",
        ]
        assert b"text:payload text" in delivered[0].short_message.lower()
        assert [s.command for s in sim.submits] == ["data_sm", "submit_multi"]
        nursery.cancel_scope.cancel()


async def test_throttle_every_nth_exact_count_and_queue_full() -> None:
    faults = Faults(throttle_every=7, queue_full_every=5)
    async with running(faults=faults) as sim:
        assert sim.port is not None
        summary = await run_load(
            "127.0.0.1", sim.port, system_id="smppgw", password="smppgw", count=100, window=8
        )
        # 100 // 7 = 14 throttled; multiples of 5 not of 7: 20 - 2 = 18 queue full.
        assert summary.refused == {"ESME_RTHROTTLED": 14, "ESME_RMSGQFUL": 18}
        assert summary.accepted == 100 - 14 - 18
        assert sim.statistics().refused == summary.refused


async def test_throttle_friendly_retry_gets_everything_accepted() -> None:
    async with running(faults=Faults(throttle_every=10)) as sim:
        assert sim.port is not None
        summary = await run_load(
            "127.0.0.1",
            sim.port,
            system_id="smppgw",
            password="smppgw",
            count=100,
            window=8,
            retry_throttled=True,
            retry_pause=0.01,
        )
        assert summary.accepted == 100
        assert summary.refused == {}
        assert summary.retried == sim.statistics().refused["ESME_RTHROTTLED"] > 10
        assert summary.sent == 100 + summary.retried


async def test_faults_change_at_run_time() -> None:
    faults = Faults()
    async with running(faults=faults) as sim, trio.open_nursery() as nursery:
        assert sim.port is not None
        esme, _ = await connect(nursery, sim.port)
        assert (await esme.link.request(_submit())).command_status == 0
        faults.update({"throttle_every": 1})
        assert (await esme.link.request(_submit())).command_status == CommandStatus.ESME_RTHROTTLED
        faults.update({"throttle_every": 0})
        assert (await esme.link.request(_submit())).command_status == 0
        faults.update({"refuse_binds": True})
        _, resp = await connect(nursery, sim.port)
        assert resp.command_status == CommandStatus.ESME_RBINDFAIL
        nursery.cancel_scope.cancel()


async def test_drop_after_n_submits_closes_the_link() -> None:
    async with running(faults=Faults(drop_after=10)) as sim:
        assert sim.port is not None
        summary = await run_load(
            "127.0.0.1", sim.port, system_id="smppgw", password="smppgw", count=50, window=4
        )
        assert summary.accepted == 10
        assert summary.failed == 40
        await eventually(lambda: sim.statistics().sessions == 0, 2)
        assert [r.status for r in sim.submits][:10] == [0] * 10


async def test_slow_responses_are_delayed_but_pipelined() -> None:
    async with running(faults=Faults(response_delay=0.2)) as sim:
        assert sim.port is not None
        summary = await run_load(
            "127.0.0.1", sim.port, system_id="smppgw", password="smppgw", count=20, window=20
        )
        assert summary.accepted == 20
        assert summary.latency_p50_ms >= 195
        assert summary.latency_max_ms < 600
        assert summary.submit_duration < 0.6  # one delay for the whole window, not 20


async def test_unanswered_enquire_link_kills_the_client_link() -> None:
    async with (
        running(faults=Faults(ignore_enquire_link=True)) as sim,
        trio.open_nursery() as nursery,
    ):
        assert sim.port is not None
        esme, _ = await connect(nursery, sim.port, enquire_link_interval=0.1, response_timeout=0.2)
        await eventually(lambda: esme.link.closed, 3)
        assert esme.link.close_reason == "link dead"


async def test_enquire_link_answered_without_the_fault() -> None:
    async with running() as sim, trio.open_nursery() as nursery:
        assert sim.port is not None
        esme, _ = await connect(nursery, sim.port, enquire_link_interval=0.05, response_timeout=0.2)
        await trio.sleep(0.5)
        assert not esme.link.closed
        # bind_resp + at least two enquire_link_resp (SmppLink's timer re-arms at the
        # enquire_link's response deadline, so the period here is ~0.2 s, not 0.05 s)
        assert esme.link.connection.statistics().responses_received >= 3
        nursery.cancel_scope.cancel()


async def test_never_answer_times_out_the_client() -> None:
    async with running(faults=Faults(never_answer=True)) as sim, trio.open_nursery() as nursery:
        assert sim.port is not None
        # The bind waits as long as the submit: 0.2 s failed it once on a loaded machine.
        esme, _ = await connect(nursery, sim.port, response_timeout=1.0)
        with pytest.raises(RequestTimeout):
            await esme.link.request(_submit())
        assert sim.statistics().unanswered == 1
        assert sim.submits[0].status is None
        nursery.cancel_scope.cancel()


async def test_a_crashing_session_closes_only_itself(monkeypatch: pytest.MonkeyPatch) -> None:
    async with running() as sim, trio.open_nursery() as nursery:
        assert sim.port is not None
        good, _ = await connect(nursery, sim.port)
        bad, _ = await connect(nursery, sim.port)
        original = sim._on_submit

        def explode(session: Any, pdu: Pdu) -> None:
            if session.id == "sim-2":
                raise RuntimeError("boom")
            original(session, pdu)

        monkeypatch.setattr(sim, "_on_submit", explode)
        with pytest.raises(LinkClosed):
            await bad.link.request(_submit())
        assert (await good.link.request(_submit())).command_status == 0
        assert sim.statistics().sessions == 1
        nursery.cancel_scope.cancel()


async def test_receipts_requeued_when_the_receiver_goes_away() -> None:
    config = SimConfig(receipt_delay=0.1)
    async with running(config) as sim, trio.open_nursery() as nursery:
        assert sim.port is not None
        first, _ = await connect(nursery, sim.port)
        for _ in range(5):
            await first.link.request(_submit())
        first.link.close("test")
        await trio.sleep(0.2)
        assert sim.statistics().queued == 5
        second, _ = await connect(nursery, sim.port, BindReceiver)
        assert len(await second.wait_for(5)) == 5
        nursery.cancel_scope.cancel()
