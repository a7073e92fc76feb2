"""Which of a partner's submit_sm TLVs admission refuses, and which go to the carrier."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from smppgw.gateway.submit_tlvs import FORWARDED_TAGS, forwarded_tlvs, tlv_refusal
from smppgw.protocol.codec import unpack_tlvs
from smppgw.protocol.status import CommandStatus as S
from smppgw.protocol.tlv import TLV_SPECS, Tag, Tlv

_NEVER_FORWARDED = (
    Tag.USER_MESSAGE_REFERENCE,  # the partner's, echoed in its receipt
    Tag.SAR_MSG_REF_NUM,  # rebuilt by the gateway
    Tag.SAR_TOTAL_SEGMENTS,
    Tag.SAR_SEGMENT_SEQNUM,
    Tag.MESSAGE_PAYLOAD,  # the text itself
    Tag.MORE_MESSAGES_TO_SEND,  # about the partner's session
    Tag.QOS_TIME_TO_LIVE,  # data_sm only
    Tag.SET_DPF,
)


def _valid(tag: int) -> Tlv:
    spec = TLV_SPECS.get(tag)
    return Tlv(tag, b"\x01" * (1 if spec is None else spec.min_len))


_tags = st.sampled_from([*FORWARDED_TAGS, *_NEVER_FORWARDED, 0x1400, 0x2233, 0x3FFF])


@given(st.lists(_tags, max_size=12))
def test_only_the_forwarded_tags_are_kept_in_their_order(tags: list[int]) -> None:
    tlvs = tuple(_valid(t) for t in tags)
    assert tlv_refusal(tlvs) is None
    packed = forwarded_tlvs(tlvs)
    kept = unpack_tlvs(packed) if packed else ()
    assert kept == tuple(t for t in tlvs if t.tag in FORWARDED_TAGS)


def test_ports_and_subunit_go_on_the_reference_does_not() -> None:
    tlvs = (
        Tlv(Tag.DESTINATION_PORT, b"\x0b\x84"),  # WAP push
        Tlv(Tag.USER_MESSAGE_REFERENCE, b"\x00\x07"),
        Tlv(Tag.DEST_ADDR_SUBUNIT, b"\x03"),  # SIM
        Tlv(0x1401, b"vendor"),
    )
    assert unpack_tlvs(forwarded_tlvs(tlvs)) == (tlvs[0], tlvs[2])
    assert forwarded_tlvs(tlvs[1:2]) == b""


def test_a_message_waiting_indicator_is_refused_a_bad_length_too() -> None:
    refused = tlv_refusal((Tlv(Tag.MS_MSG_WAIT_FACILITIES, b"\x80"),))
    assert refused is not None
    assert refused[0] == S.ESME_ROPTPARNOTALLWD
    bad = tlv_refusal((Tlv(Tag.DESTINATION_PORT, b"\x0b"),))
    assert bad is not None
    assert bad[0] == S.ESME_RINVPARLEN
