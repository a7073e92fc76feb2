"""MO parts that say so only in ``sar_*`` TLVs, replayed after a restart, are still put
together: the journal keeps an MO's TLVs (schema v9). Before, the replay rebuilt each
part without them and the scenario ran on each fragment on its own."""

from __future__ import annotations

from typing import TYPE_CHECKING

from smppgw.app.scenario_service import replay_unprocessed_mo
from smppgw.net.carrier_inbound import _kept_tlvs
from smppgw.protocol.pdus import DeliverSm
from smppgw.protocol.tlv import Tag, Tlv
from smppgw.scenarios.mo_parts import MoAssembler, part_of
from smppgw.store import InboundKind, NewInbound, open_store

if TYPE_CHECKING:
    from pathlib import Path


def _sar_part(seq: int, text: bytes) -> DeliverSm:
    return DeliverSm(
        source_addr="84912345678",
        destination_addr="8099",
        short_message=text,
        tlvs=(
            Tlv.of_int(Tag.SAR_MSG_REF_NUM, 7),
            Tlv.of_int(Tag.SAR_TOTAL_SEGMENTS, 2),
            Tlv.of_int(Tag.SAR_SEGMENT_SEQNUM, seq),
        ),
    )


def _journaled(pdu: DeliverSm, key: str) -> NewInbound:
    return NewInbound(
        smsc="sim",
        dedup_key=key,
        kind=InboundKind.MO,
        source_addr=pdu.source_addr,
        destination_addr=pdu.destination_addr,
        body=pdu.short_message,
        tlvs=_kept_tlvs(pdu),
    )


async def test_sar_parts_replayed_after_a_restart_are_put_together(tmp_path: Path) -> None:
    parts = [_sar_part(1, b"ECHO hello "), _sar_part(2, b"world")]
    async with open_store(tmp_path / "j.db") as store:
        # Journaled and acknowledged to the carrier, never processed: the daemon died.
        await store.journal_inbound([_journaled(p, f"m:{n}") for n, p in enumerate(parts)])

    replayed: list[tuple[int, DeliverSm]] = []

    async def on_mo(inbound_id: int, pdu: DeliverSm, smsc: str) -> None:
        replayed.append((inbound_id, pdu))

    async with open_store(tmp_path / "j.db") as store:  # the restart
        assert await replay_unprocessed_mo(store, on_mo) == 2

    assembler = MoAssembler()
    wholes = []
    for inbound_id, pdu in replayed:
        part = part_of(pdu)
        assert part is not None, "a replayed part must still read as a part"
        wholes += assembler.add(inbound_id, pdu, part, now=0.0)
    [whole] = wholes
    assert whole.complete
    assert whole.pdu.short_message == b"ECHO hello world"
    assert whole.inbound_ids == (replayed[0][0], replayed[1][0])


def test_the_journal_keeps_an_mo_s_tlvs_but_not_its_payload_twice() -> None:
    pdu = DeliverSm(
        source_addr="849",
        destination_addr="8099",
        tlvs=(
            Tlv.of_int(Tag.SAR_MSG_REF_NUM, 7),
            Tlv(Tag.MESSAGE_PAYLOAD, b"the text, journaled as the body"),
        ),
    )
    kept = _kept_tlvs(pdu)
    assert b"the text" not in kept
    assert Tag.SAR_MSG_REF_NUM.to_bytes(2, "big") in kept
    assert _kept_tlvs(DeliverSm(source_addr="849", destination_addr="8099")) == b""
