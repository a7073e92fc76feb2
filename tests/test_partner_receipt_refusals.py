"""A partner that answers its receipts with an error: sent again after a pause that
grows (not at once, over and over), or never again when the error says so; and an
SMPP 3.3 receiver gets them without TLVs."""

from __future__ import annotations

from typing import TYPE_CHECKING

import trio
from carrier_fixtures import wait_for
from partner_fixtures import PASSWORD, esme, partner_daemon

from smppgw.net.link import SmppLink
from smppgw.net.partner_delivery import without_tlvs
from smppgw.protocol.codec import decode_pdu, encode_pdu
from smppgw.protocol.pdus import BindReceiver, DeliverSm, Pdu, SubmitSm
from smppgw.protocol.receipt import parse_receipt
from smppgw.protocol.session import SmppConnection, make_response
from smppgw.protocol.states import Role
from smppgw.protocol.status import CommandStatus as S
from smppgw.protocol.tlv import Tag, Tlv
from smppgw.store import NewOrder, OrderKind

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

    from smppgw.app.daemon import Daemon


async def _submit_with_receipt(daemon: Daemon, port: int) -> str:
    assert daemon.store is not None
    await daemon.store.create_order(NewOrder(partner="acme", kind=OrderKind.PREPAID, limit=10))
    async with esme(port) as sender:
        resp = await sender.request(
            SubmitSm(
                source_addr_ton=5,
                source_addr="ACME",
                dest_addr_ton=1,
                dest_addr_npi=1,
                destination_addr="84912345678",
                short_message=b"hello",
                registered_delivery=1,
            )
        )
    assert resp.command_status == 0
    message_id: str = resp.message_id  # type: ignore[attr-defined]
    return message_id


async def _receive(
    port: int, answer: int, seconds: float, interface_version: int = 0x34
) -> list[DeliverSm]:
    """Bind a receiver that answers every deliver_sm with ``answer`` for ``seconds``."""
    got: list[DeliverSm] = []

    async def take(link: SmppLink, batch: Sequence[Pdu]) -> None:
        for pdu in batch:
            if isinstance(pdu, DeliverSm):
                got.append(pdu)
                link.respond(make_response(pdu, answer))

    async with trio.open_nursery() as nursery:
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        link = SmppLink(stream, SmppConnection(Role.ESME), take)
        await nursery.start(link.run)
        bound = await link.request(
            BindReceiver(system_id="acme", password=PASSWORD, interface_version=interface_version)
        )
        assert bound.command_status == 0
        await trio.sleep(seconds)
        nursery.cancel_scope.cancel()
    return got


async def test_a_refused_receipt_is_sent_again_after_growing_pauses(tmp_path: Path) -> None:
    async with partner_daemon(tmp_path) as (daemon, port):
        message_id = await _submit_with_receipt(daemon, port)
        got = await _receive(port, S.ESME_RSYSERR, 3.5)
        # At once, after 1 s, after 2 s more: three tries in 3.5 s (it was thousands).
        assert 2 <= len(got) <= 4, len(got)
        assert {parse_receipt(d.short_message).message_id for d in got} == {message_id}
        assert daemon.store is not None
        assert len(await daemon.store.pending_receipts("acme")) == 1  # still owed
        # A partner that takes it now gets it at once on its next bind.
        again = await _receive(port, S.ESME_ROK, 0.5)
        assert [parse_receipt(d.short_message).message_id for d in again] == [message_id]
        await wait_for(lambda: daemon.server is not None and daemon.server.delivery.acked == 1)


async def test_a_receipt_refused_for_good_is_not_sent_again(tmp_path: Path) -> None:
    async with partner_daemon(tmp_path) as (daemon, port):
        await _submit_with_receipt(daemon, port)
        got = await _receive(port, S.ESME_RX_P_APPN, 1.5)
        assert len(got) == 1
        assert daemon.store is not None
        await wait_for(lambda: daemon.server is not None and daemon.server.delivery.acked == 1)
        assert await daemon.store.pending_receipts("acme") == []
        assert daemon.server is not None
        assert daemon.server.delivery.refused == 1


async def test_a_33_receiver_gets_its_receipts_without_tlvs(tmp_path: Path) -> None:
    async with partner_daemon(tmp_path) as (daemon, port):
        message_id = await _submit_with_receipt(daemon, port)
        got = await _receive(port, S.ESME_ROK, 1.0, interface_version=0x33)
        (receipt,) = got
        assert receipt.tlvs == ()  # 3.3 has none: no receipted_message_id, no message_state
        assert parse_receipt(receipt.short_message).message_id == message_id


def test_without_tlvs_keeps_everything_else() -> None:
    with_tlvs = DeliverSm(
        sequence_number=7,
        source_addr="84912345678",
        destination_addr="ACME",
        esm_class=0x04,
        short_message=b"id:1 stat:DELIVRD",
        tlvs=(Tlv.of_cstring(Tag.RECEIPTED_MESSAGE_ID, "1"), Tlv.of_int(Tag.MESSAGE_STATE, 2)),
    )
    stripped = decode_pdu(without_tlvs(encode_pdu(with_tlvs)))
    assert stripped == DeliverSm(
        sequence_number=7,
        source_addr="84912345678",
        destination_addr="ACME",
        esm_class=0x04,
        short_message=b"id:1 stat:DELIVRD",
    )
    plain = encode_pdu(stripped)
    assert without_tlvs(plain) is plain
