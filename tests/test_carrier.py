"""The carrier client end to end on real loopback sockets, against a fake SMSC:
the journal -> queue -> bind -> SMSC path, receipts back, and each fault."""

from __future__ import annotations

import time
from datetime import datetime
from typing import TYPE_CHECKING

import pytest
import trio
from carrier_fixtures import FakeSmsc, store_states, wait_for
from structlog.testing import capture_logs

from smppgw.app.config_models import CarrierSettings, ReconnectSettings, ValidityFormat
from smppgw.gateway.mt import MtPipeline
from smppgw.gateway.recovery import outbound_from_stored
from smppgw.gateway.routing import PrefixRouter
from smppgw.net.carrier import CarrierClient
from smppgw.protocol.codec import encode_pdu
from smppgw.protocol.message_id import IdFormat
from smppgw.protocol.pdus import BindTransceiver, DeliverSm
from smppgw.protocol.smpp_time import RelativeTime, parse_smpp_time
from smppgw.protocol.status import CommandStatus
from smppgw.store import Durability, NewMessage, NewReceipt, Store, StoreConfig

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path


class Rig:
    def __init__(
        self, store: Store, smsc: FakeSmsc, pipeline: MtPipeline, client: CarrierClient
    ) -> None:
        self.store = store
        self.smsc = smsc
        self.pipeline = pipeline
        self.client = client

    async def send(
        self,
        count: int,
        *,
        receipts: bool = True,
        parts: int = 1,
        expires_at: float | None = None,
        not_before: float | None = None,
    ) -> list[int]:
        messages = [
            NewMessage(
                partner="p1",
                source_addr="ACME",
                destination_addr=f"8491{i:07d}",
                body=b"hello",
                parts=tuple(b"part%d" % n for n in range(parts)) if parts > 1 else (),
                registered_delivery=1 if receipts else 0,
                expires_at=expires_at,
                next_attempt_at=not_before,
            )
            for i in range(count)
        ]
        ids = await self.store.journal_accept(messages)
        for message_id in ids:
            stored = await self.store.get_message(message_id)
            assert stored is not None
            self.pipeline.enqueue(outbound_from_stored(stored))
        return ids


@pytest.fixture
async def rig(tmp_path: Path, nursery: trio.Nursery) -> AsyncIterator[Rig]:
    smsc = FakeSmsc()
    port = await nursery.start(smsc.serve)
    store = Store(tmp_path / "gw.sqlite", config=StoreConfig(durability=Durability.PROCESS))
    await nursery.start(store.run)
    pipeline = MtPipeline(store, PrefixRouter({}, default=["c1"]), ["c1"], retry_delay=0.1)
    await nursery.start(pipeline.run)
    settings = CarrierSettings(
        name="c1",
        host="127.0.0.1",
        port=port,
        system_id="gw",
        password="pw",
        window=8,
        response_timeout=2.0,
        message_id_format=IdFormat.HEX_RESP_DEC_RECEIPT,
        reconnect=ReconnectSettings(initial=0.05, max=0.2, jitter=0),
    )
    client = CarrierClient(settings, pipeline, store)
    return Rig(store, smsc, pipeline, client)


async def _start(rig: Rig, nursery: trio.Nursery) -> None:
    await nursery.start(rig.client.run)
    await wait_for(lambda: rig.client.binds_up == 1)


async def test_messages_delivered_and_receipts_matched(rig: Rig, nursery: trio.Nursery) -> None:
    await _start(rig, nursery)
    ids = await rig.send(40)
    await wait_for(lambda: rig.pipeline.statistics().receipts_matched == 40)
    await rig.pipeline.flush()
    assert await store_states(rig.store, ids) == ["delivered"] * 40
    assert len(rig.smsc.accepted) == 40
    assert rig.pipeline.statistics().receipts_unmatched == 0


async def test_parts_in_order_and_message_final_after_last_receipt(
    rig: Rig, nursery: trio.Nursery
) -> None:
    await _start(rig, nursery)
    ids = await rig.send(5, parts=3)
    await wait_for(lambda: rig.pipeline.statistics().receipts_matched == 15)
    await rig.pipeline.flush()
    assert await store_states(rig.store, ids) == ["delivered"] * 5
    by_dest: dict[str, list[bytes]] = {}
    for submit in rig.smsc.submits:
        by_dest.setdefault(submit.destination_addr, []).append(submit.short_message)
        assert submit.esm_class & 0x40
    assert all(parts == [b"part0", b"part1", b"part2"] for parts in by_dest.values())


async def test_throttled_messages_are_retried_not_failed(rig: Rig, nursery: trio.Nursery) -> None:
    rig.smsc.throttle_every = 7
    await _start(rig, nursery)
    ids = await rig.send(30, receipts=False)
    await wait_for(lambda: len(rig.smsc.accepted) == 30, within=20)
    stats = rig.client.statistics()
    assert stats.throttled >= 4
    assert rig.pipeline.statistics().failed == 0
    await rig.pipeline.flush()
    # No receipt asked: final "sent" once the carrier accepted every part.
    assert set(await store_states(rig.store, ids)) == {"sent"}


async def test_dropped_connection_loses_nothing(rig: Rig, nursery: trio.Nursery) -> None:
    rig.smsc.drop_after = 10
    await _start(rig, nursery)
    ids = await rig.send(30, receipts=False)
    await wait_for(
        lambda: (
            len({s.destination_addr for s in rig.smsc.submits}) == 30
            and rig.pipeline.statistics().queued == 0
            and len(rig.smsc.accepted) >= 30
        ),
        within=20,
    )
    assert rig.client.statistics().reconnects >= 1
    await rig.pipeline.flush()
    # No receipt asked: final "sent" once the carrier accepted every part.
    assert set(await store_states(rig.store, ids)) == {"sent"}
    # every message the SMSC never acknowledged was sent again
    assert len({s.destination_addr for s in rig.smsc.submits}) == 30


async def test_refused_bind_is_retried_with_backoff(rig: Rig, nursery: trio.Nursery) -> None:
    rig.smsc.refuse_binds = 2
    await _start(rig, nursery)
    assert rig.smsc.binds == 3
    assert rig.client.statistics().bind_failures == 2


async def test_permanent_error_fails_message_with_status(rig: Rig, nursery: trio.Nursery) -> None:
    rig.smsc.fail_status = CommandStatus.ESME_RINVDSTADR
    await _start(rig, nursery)
    ids = await rig.send(3, receipts=False)
    await wait_for(lambda: rig.pipeline.statistics().failed == 3)
    await rig.pipeline.flush()
    for message_id in ids:
        message = await rig.store.get_message(message_id)
        assert message is not None
        assert str(message.state) == "failed"
        assert message.final_status == CommandStatus.ESME_RINVDSTADR


async def test_mo_journaled_before_ack_and_a_repeat_on_a_live_bind_is_new(
    rig: Rig, nursery: trio.Nursery
) -> None:
    await _start(rig, nursery)
    server_link = rig.smsc.links[-1]
    mo = DeliverSm(source_addr="84912345678", destination_addr="8055", short_message=b"DK An HN")
    first = await server_link.request(mo)
    # The same text again on the same, live bind: our answer reached the carrier, so
    # this is the subscriber sending it again, a new MO (redelivery after a broken
    # bind: tests/test_mo_dedup.py).
    second = await server_link.request(mo)
    assert first.command_status == 0
    assert second.command_status == 0
    assert rig.client.statistics().duplicates_inbound == 0
    rows = await rig.store.read(lambda c: c.execute("SELECT count(*) FROM inbound").fetchone())
    assert rows[0] == 2
    assert encode_pdu(mo)  # the PDU is well formed


async def test_outbind_from_the_smsc_binds_a_receiver_and_takes_mo(
    tmp_path: Path, nursery: trio.Nursery
) -> None:
    from daemon_fixtures import free_port

    from smppgw.app.config_models import Endpoint
    from smppgw.net.link import SmppLink
    from smppgw.protocol.pdus import BindReceiver, Outbind, Pdu
    from smppgw.protocol.session import SmppConnection, make_response
    from smppgw.protocol.states import Role

    store = Store(tmp_path / "gw.sqlite", config=StoreConfig(durability=Durability.PROCESS))
    await nursery.start(store.run)
    pipeline = MtPipeline(store, PrefixRouter({}, default=["c1"]), ["c1"])
    port = free_port()
    settings = CarrierSettings(
        name="c1",
        host="127.0.0.1",
        port=free_port(),
        system_id="gw",
        password="pw",
        outbind_listen=Endpoint("127.0.0.1", port),
        reconnect=ReconnectSettings(initial=5, max=5),
    )
    client = CarrierClient(settings, pipeline, store)
    await nursery.start(client.run)
    binds: list[Pdu] = []

    async def smsc_side(link: SmppLink, batch: object) -> None:
        for pdu in batch:  # type: ignore[attr-defined]
            if isinstance(pdu, BindReceiver):
                binds.append(pdu)
                link.respond(make_response(pdu, system_id="SMSC"))

    stream = await trio.open_tcp_stream("127.0.0.1", port)
    smsc = SmppLink(stream, SmppConnection(Role.SMSC, enquire_link_interval=None), smsc_side)
    await nursery.start(smsc.run)
    await smsc.send_request(Outbind(system_id="gw", password="pw"))
    await wait_for(lambda: len(binds) == 1)
    assert binds[0].system_id == "gw"
    await wait_for(lambda: smsc.connection.is_bound)
    mo = DeliverSm(source_addr="84912345678", destination_addr="8055", short_message=b"DIEM")
    resp = await smsc.request(mo)
    assert resp.command_status == 0
    assert client.statistics().deliveries == 1


async def test_unanswered_submits_time_out_and_are_sent_again(
    rig: Rig, nursery: trio.Nursery
) -> None:
    rig.smsc.silent_first = 3  # the rig's response_timeout is 2 s
    await _start(rig, nursery)
    ids = await rig.send(10, receipts=False)
    await wait_for(lambda: len(rig.smsc.accepted) == 10, within=20)
    stats = rig.client.statistics()
    assert stats.timeouts == 3
    assert stats.possible_duplicates >= 3  # each may have reached the SMSC
    assert rig.pipeline.statistics().failed == 0
    await rig.pipeline.flush()
    # No receipt asked: final "sent" once the carrier accepted every part.
    assert set(await store_states(rig.store, ids)) == {"sent"}


async def test_after_unbind_all_no_bind_opens_again(rig: Rig, nursery: trio.Nursery) -> None:
    """Stopping a carrier (shutdown, or a reload that removed it) unbinds its binds;
    one must not log "bind closed, reconnecting" and bind again before the daemon
    cancels the client (the reconnect delay here is 0.05 s; the daemon waits up to its
    grace before cancelling)."""
    await _start(rig, nursery)
    assert rig.smsc.binds == 1
    await rig.client.unbind_all(grace=2.0)
    await trio.sleep(0.5)  # ten reconnect delays
    assert rig.smsc.binds == 1
    assert rig.client.binds_up == 0
    assert rig.client.statistics().reconnects == 0  # nor counted, nor logged


@pytest.mark.parametrize("fmt", list(ValidityFormat))
async def test_the_partners_validity_goes_to_the_carrier_as_configured(
    rig: Rig, nursery: trio.Nursery, fmt: ValidityFormat
) -> None:
    rig.client.settings = rig.client.settings.model_copy(update={"validity_format": fmt})
    await _start(rig, nursery)
    expires = time.time() + 3_725  # 1 h 2 min 5 s from now
    await rig.send(1, receipts=False, expires_at=expires)
    await rig.send(1, receipts=False)  # no validity asked: the carrier's default
    await wait_for(lambda: len(rig.smsc.accepted) == 2)
    with_validity, without = rig.smsc.submits
    assert without.validity_period == ""
    sent = with_validity.validity_period
    if fmt is ValidityFormat.OMIT:
        assert sent == ""
        return
    parsed = parse_smpp_time(sent, field="validity_period")
    if fmt is ValidityFormat.ABSOLUTE:
        assert sent.endswith("00+")  # in UTC
        assert isinstance(parsed, datetime)
        assert abs(parsed.timestamp() - expires) < 1
    else:
        assert isinstance(parsed, RelativeTime)
        assert (parsed.days, parsed.hours, parsed.minutes) == (0, 1, 2)
        assert 0 <= 5 - parsed.seconds <= 2  # the seconds it waited in the queue


async def test_the_carrier_s_bind_address_range_and_service_type_are_sent(
    rig: Rig, nursery: trio.Nursery
) -> None:
    rig.client.settings = rig.client.settings.model_copy(
        update={"address_range": "^8055", "service_type": "CMT"}
    )
    await _start(rig, nursery)
    await rig.send(1, receipts=False)
    await wait_for(lambda: len(rig.smsc.accepted) == 1)
    (bind,) = rig.smsc.bind_pdus
    assert isinstance(bind, BindTransceiver)
    assert bind.address_range == "^8055"
    (submit,) = rig.smsc.submits
    assert submit.service_type == "CMT"


async def test_parts_accepted_without_an_id_are_counted_and_said_once(
    rig: Rig, nursery: trio.Nursery
) -> None:
    """A broken SMSC answers submit_sm with an empty message_id: no receipt can match
    those parts. Said once (not per message), counted, and no carrier reference row
    that the next such part would overwrite. The messages, which asked for receipts,
    are final ``sent`` at once and their partner told UNKNOWN (they waited for
    ``receipt_timeout_hours`` and were then guessed EXPIRED)."""
    owed: list[tuple[int, NewReceipt]] = []
    rig.pipeline.on_receipts = owed.extend
    rig.smsc.empty_ids = True
    rig.smsc.receipts = False
    await _start(rig, nursery)
    with capture_logs() as logs:
        ids = await rig.send(3)
        await wait_for(lambda: len(rig.smsc.accepted) == 3)
        await rig.pipeline.flush()
    assert await store_states(rig.store, ids) == ["sent"] * 3
    stored = await rig.store.get_message(ids[0])
    assert stored is not None
    assert stored.error == "c1 gave no message id: its receipt cannot be matched"
    assert sorted(r.message_id for _, r in owed) == ids
    assert {r.stat for _, r in owed} == {"UNKNOWN"}
    assert rig.client.statistics().empty_ids == 3
    said = [e for e in logs if "without a message id" in e["event"]]
    assert len(said) == 1
    assert said[0]["log_level"] == "warning"
    refs = await rig.store.read(lambda c: c.execute("SELECT COUNT(*) FROM carrier_ref").fetchone())
    assert refs[0] == 0


async def test_a_message_past_its_validity_is_expired_not_sent(
    rig: Rig, nursery: trio.Nursery
) -> None:
    owed: list[tuple[int, NewReceipt]] = []
    rig.pipeline.on_receipts = owed.extend
    # Journaled while the carrier is down; the validity passes before it is up.
    expired = await rig.send(2, expires_at=time.time() + 0.3)
    valid = await rig.send(1, receipts=False, expires_at=time.time() + 600)
    await trio.sleep(0.5)
    await _start(rig, nursery)
    await wait_for(lambda: len(rig.smsc.accepted) == 1)
    await wait_for(lambda: rig.pipeline.statistics().expired_unsent == 2)
    await rig.pipeline.flush()
    assert [s.destination_addr for s in rig.smsc.submits] == ["84910000000"]  # the valid one
    assert await store_states(rig.store, expired) == ["expired", "expired"]
    assert await store_states(rig.store, valid) == ["sent"]
    stored = await rig.store.get_message(expired[0])
    assert stored is not None
    assert stored.error == "validity_period passed before sending"
    assert sorted(r.message_id or 0 for _, r in owed) == expired
    assert {r.stat for _, r in owed} == {"EXPIRED"}


async def test_the_sweep_expires_what_waits_for_a_carrier_that_is_down(rig: Rig) -> None:
    owed: list[tuple[int, NewReceipt]] = []
    rig.pipeline.on_receipts = owed.extend
    soon = await rig.send(2, expires_at=time.time() + 0.2)
    later = await rig.send(1, expires_at=time.time() + 600)
    untimed = await rig.send(1)
    assert rig.pipeline.expire_queued() == 0  # nothing due yet
    await trio.sleep(0.3)
    assert rig.pipeline.expire_queued() == 2
    assert rig.pipeline.statistics().queued == 2  # the other two still wait
    await rig.pipeline.flush()
    assert await store_states(rig.store, soon) == ["expired", "expired"]
    assert await store_states(rig.store, later + untimed) == ["accepted", "accepted"]
    assert sorted(r.message_id or 0 for _, r in owed) == soon
    assert not rig.smsc.submits


async def test_a_message_journaled_for_later_waits_for_its_time(
    rig: Rig, nursery: trio.Nursery
) -> None:
    """What recovery does with a scheduled message, or a retry not yet due: it comes
    back from the journal with its time and waits for it."""
    await _start(rig, nursery)
    (later,) = await rig.send(1, receipts=False, not_before=time.time() + 0.6)
    await rig.send(1, receipts=False)
    await wait_for(lambda: len(rig.smsc.accepted) == 1)
    assert rig.pipeline.statistics().delayed == 1
    assert (rig.pipeline.scheduled, rig.pipeline.pending) == (1, 0)  # counted apart
    await wait_for(lambda: len(rig.smsc.accepted) == 2, within=5)
    assert rig.pipeline.statistics().delayed == 0
    assert rig.smsc.submits[-1].destination_addr == "84910000000"
    await rig.pipeline.flush()
    assert await store_states(rig.store, [later]) == ["sent"]


async def test_a_hung_bind_holds_no_message_its_siblings_could_send(
    rig: Rig, nursery: trio.Nursery
) -> None:
    """Two binds, the SMSC's side of the first one hung (it answers nothing): once its
    window is full it takes no more messages, so every other message goes out on the
    second bind at once instead of one waiting out the 30 s response timeout."""
    rig.smsc.silent_binds = 1
    settings = rig.client.settings.model_copy(
        update={"binds": 2, "window": 2, "response_timeout": 30.0}
    )
    client = CarrierClient(settings, rig.pipeline, rig.store)
    await nursery.start(client.run)
    await wait_for(lambda: client.binds_up == 2)
    await rig.send(20, receipts=False)
    # The two binds take messages in turn until the hung one's window (2) is full; it
    # holds those two, and the other 18 are accepted now.
    await wait_for(lambda: len(rig.smsc.accepted) == 18, within=3)
    assert len(rig.smsc.submits) == 20
    assert rig.pipeline.statistics().queued == 0


async def test_a_throttled_bind_sends_nothing_during_its_pause(
    rig: Rig, nursery: trio.Nursery
) -> None:
    """The SMSC answers a bind ESME_RTHROTTLED: that bind pauses (THROTTLE_PAUSE), and
    no message goes out on it meanwhile; the carrier's other bind sends them all."""
    from smppgw.net.carrier import THROTTLE_PAUSE

    rig.smsc.throttle_first = 1
    settings = rig.client.settings.model_copy(update={"binds": 2, "window": 1})
    client = CarrierClient(settings, rig.pipeline, rig.store)
    await nursery.start(client.run)
    await wait_for(lambda: client.binds_up == 2)
    await rig.send(6, receipts=False)
    await wait_for(lambda: len(rig.smsc.accepted) == 6, within=THROTTLE_PAUSE * 0.8)
    (throttled_on, throttled_at), *later = rig.smsc.submit_log
    assert all(
        at - throttled_at >= THROTTLE_PAUSE * 0.9 for index, at in later if index == throttled_on
    ), rig.smsc.submit_log
