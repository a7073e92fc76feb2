"""Admission: the ordered checks and their statuses, throttling, moderation (long messages:
``test_admission_long.py``)."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from smppgw.app.config import PartnerSettings, partner_map
from smppgw.gateway.admission import Admission, Admitted, Refused
from smppgw.gateway.auth import hash_password
from smppgw.protocol.codec import unpack_tlvs
from smppgw.protocol.pdus import SubmitSm
from smppgw.protocol.status import CommandStatus as S
from smppgw.protocol.tlv import Tag, Tlv

HASH = hash_password("pw", salt=b"0123456789abcdef")
#: 2023-11-14 22:13:20 UTC.
WALL = 1_700_000_000.0


def _partner(system_id: str = "acme", **kw: object) -> PartnerSettings:
    fields: dict[str, object] = {
        "system_id": system_id,
        "password_hash": HASH,
        "sources": ["ACME", "8055"],
        "content": {"block_keywords": ["casino"]},
    }
    fields.update(kw)
    return PartnerSettings.model_validate(fields)


def _admission(*partners: PartnerSettings) -> Admission:
    return Admission(partner_map(partners or (_partner(),)), clock=lambda: WALL)


def _submit(**kw: object) -> SubmitSm:
    fields: dict[str, object] = {
        "source_addr_ton": 5,
        "source_addr_npi": 0,
        "source_addr": "ACME",
        "dest_addr_ton": 1,
        "dest_addr_npi": 1,
        "destination_addr": "84912345678",
        "short_message": b"Hello",
    }
    fields.update(kw)
    return SubmitSm(**fields)  # type: ignore[arg-type]


def _admitted(result: Admitted | Refused) -> Admitted:
    assert isinstance(result, Admitted), result
    return result


def _status(result: Admitted | Refused) -> int:
    assert isinstance(result, Refused), result
    return result.status


def test_plain_submit_is_admitted() -> None:
    result = _admitted(_admission().check("acme", _submit(registered_delivery=1), 0.0))
    m = result.message
    assert (result.system_id, result.parts, result.hold, result.text) == ("acme", 1, False, "Hello")
    assert (m.partner, m.source_addr, m.source_ton, m.destination_addr) == (
        "acme",
        "ACME",
        5,
        "84912345678",
    )
    assert (m.body, m.parts, m.data_coding, m.esm_class, m.registered_delivery) == (
        b"Hello",
        (),
        0,
        0,
        1,
    )
    assert m.priority == 0
    assert m.expires_at is None
    assert m.next_attempt_at is None


def test_source_is_case_insensitive_and_destination_plus_is_dropped() -> None:
    result = _admitted(
        _admission().check("acme", _submit(source_addr="acme", destination_addr="+8491"), 0.0)
    )
    assert result.message.source_addr == "acme"
    assert result.message.destination_addr == "8491"


def test_transactional_goes_in_the_priority_lane() -> None:
    admission = _admission(_partner(traffic_class="transactional"))
    assert _admitted(admission.check("acme", _submit(), 0.0)).message.priority == 1


def test_default_registered_delivery() -> None:
    admission = _admission(_partner(default_registered_delivery=1))
    assert _admitted(admission.check("acme", _submit(), 0.0)).message.registered_delivery == 1
    explicit = admission.check("acme", _submit(registered_delivery=2), 0.0)
    assert _admitted(explicit).message.registered_delivery == 2


def test_times() -> None:
    admission = _admission()
    relative = _admitted(
        admission.check(
            "acme",
            _submit(validity_period="000001000000000R", schedule_delivery_time="000000010000000R"),
            0.0,
        )
    )
    assert relative.message.expires_at == WALL + 86_400
    assert relative.message.next_attempt_at == WALL + 3600
    # 2023-11-15 12:00 at UTC+07:00 (28 quarter hours) is 05:00 UTC.
    absolute = _admitted(admission.check("acme", _submit(validity_period="231115120000028+"), 0.0))
    assert absolute.message.expires_at == datetime(2023, 11, 15, 5, tzinfo=UTC).timestamp()
    # A schedule in the past means now.
    past = _submit(schedule_delivery_time="230101000000000+")
    assert _admitted(admission.check("acme", past, 0.0)).message.next_attempt_at is None
    expired = _submit(validity_period="230101000000000+")
    assert _status(admission.check("acme", expired, 0.0)) == S.ESME_RINVEXPIRY


def test_unknown_or_disabled_partner() -> None:
    admission = _admission(_partner(), _partner("off", enabled=False))
    assert _status(admission.check("nobody", _submit(), 0.0)) == S.ESME_RINVSYSID
    assert _status(admission.check("off", _submit(), 0.0)) == S.ESME_RINVSYSID


# -- every refusal, in order ------------------------------------------------------------

Fault = Callable[[dict[str, object]], None]


def _set(**values: object) -> Fault:
    return lambda pdu: pdu.update(values)


def _add_payload_tlv(pdu: dict[str, object]) -> None:
    pdu["tlvs"] = (*pdu.get("tlvs", ()), Tlv(Tag.MESSAGE_PAYLOAD, b"payload"))  # type: ignore[misc]


def _partial_sar(pdu: dict[str, object]) -> None:
    pdu["tlvs"] = (*pdu.get("tlvs", ()), Tlv(Tag.SAR_MSG_REF_NUM, b"\x00\x07"))  # type: ignore[misc]


def _two_parts(pdu: dict[str, object]) -> None:
    pdu["short_message"] = pdu["short_message"] + b"x" * 200  # type: ignore[operator]


def _blocked_word(pdu: dict[str, object]) -> None:
    pdu["short_message"] = b"casino " + pdu["short_message"]  # type: ignore[operator]


#: One fault per check, in the order admission runs the checks.
FAULTS: list[tuple[str, Fault, int]] = [
    ("source TON", _set(source_addr_ton=7), S.ESME_RINVSRCTON),
    ("source NPI", _set(source_addr_npi=2), S.ESME_RINVSRCNPI),
    ("destination TON", _set(dest_addr_ton=9), S.ESME_RINVDSTTON),
    ("destination NPI", _set(dest_addr_npi=5), S.ESME_RINVDSTNPI),
    ("destination address", _set(destination_addr="84-912"), S.ESME_RINVDSTADR),
    ("data_coding", _set(data_coding=0x05), S.ESME_RSUBMITFAIL),
    ("short_message and message_payload", _add_payload_tlv, S.ESME_RINVPARLEN),
    ("schedule_delivery_time", _set(schedule_delivery_time="tomorrow"), S.ESME_RINVSCHED),
    ("validity_period", _set(validity_period="9912310000000R"), S.ESME_RINVEXPIRY),
    ("esm_class mode", _set(esm_class=0x02), S.ESME_RINVESMCLASS),
    ("priority_flag", _set(priority_flag=4), S.ESME_RINVPRTFLG),
    ("registered_delivery", _set(registered_delivery=3), S.ESME_RINVREGDLVFLG),
    ("replace_if_present", _set(replace_if_present_flag=1), S.ESME_RINVREPFLAG),
    ("sar_* TLVs", _partial_sar, S.ESME_RINVOPTPARAMVAL),
    ("message length", _two_parts, S.ESME_RINVMSGLEN),
    ("source address", _set(source_addr="OTHER"), S.ESME_RINVSRCADR),
    ("content", _blocked_word, S.ESME_RX_P_APPN),
]


def _faulty(*faults: Fault) -> SubmitSm:
    fields: dict[str, object] = {
        "source_addr_ton": 5,
        "source_addr_npi": 0,
        "source_addr": "ACME",
        "dest_addr_ton": 1,
        "dest_addr_npi": 1,
        "destination_addr": "84912345678",
        "short_message": b"Hello",
    }
    for fault in faults:
        fault(fields)
    return SubmitSm(**fields)  # type: ignore[arg-type]


def _strict_admission() -> Admission:
    return _admission(_partner(max_message_parts=1))


def test_statuses_are_all_different() -> None:
    statuses = [status for _, _, status in FAULTS]
    assert len(set(statuses)) == len(statuses)
    assert S.ESME_RTHROTTLED not in statuses


@pytest.mark.parametrize(("name", "fault", "status"), FAULTS, ids=[f[0] for f in FAULTS])
def test_each_refusal_has_its_status(name: str, fault: Fault, status: int) -> None:
    admission = _strict_admission()
    assert _status(admission.check("acme", _faulty(fault), 0.0)) == status
    assert admission.statistics().refused == {status: 1}


@pytest.mark.parametrize(
    ("first", "second"),
    list(itertools.combinations(range(len(FAULTS)), 2)),
    ids=[
        f"{FAULTS[i][0]}+{FAULTS[j][0]}" for i, j in itertools.combinations(range(len(FAULTS)), 2)
    ],
)
def test_two_faults_get_the_earlier_status(first: int, second: int) -> None:
    admission = _strict_admission()
    # Applied in both orders: the verdict depends on the checks' order only.
    for faults in ((FAULTS[first][1], FAULTS[second][1]), (FAULTS[second][1], FAULTS[first][1])):
        assert _status(admission.check("acme", _faulty(*faults), 0.0)) == FAULTS[first][2]


@pytest.mark.parametrize(("name", "fault", "status"), FAULTS, ids=[f[0] for f in FAULTS])
def test_every_check_comes_before_the_throttle(name: str, fault: Fault, status: int) -> None:
    admission = _admission(_partner(max_message_parts=1, tps=1))
    _admitted(admission.check("acme", _faulty(), 0.0))
    assert _status(admission.check("acme", _faulty(), 0.0)) == S.ESME_RTHROTTLED
    assert _status(admission.check("acme", _faulty(fault), 0.0)) == status


@pytest.mark.parametrize(
    ("kw", "status"),
    [
        ({"esm_class": 0x01}, S.ESME_RINVESMCLASS),  # datagram mode
        ({"esm_class": 0x08}, S.ESME_RINVESMCLASS),  # a message type
        ({"esm_class": 0x40, "short_message": b"\x09\x00\x03"}, S.ESME_RINVESMCLASS),  # bad UDH
        ({"esm_class": 0x40, "short_message": b""}, S.ESME_RINVESMCLASS),
        ({"destination_addr": ""}, S.ESME_RINVDSTADR),
        ({"destination_addr": "+"}, S.ESME_RINVDSTADR),
        ({"destination_addr": "\uff18\uff14\uff19"}, S.ESME_RINVDSTADR),  # full-width digits
        ({"source_addr": ""}, S.ESME_RINVSRCADR),
        ({"registered_delivery": 0x20}, S.ESME_RINVREGDLVFLG),
        # protocol_id other than 0 needs the partner's protocol_ids: a silent SMS (0x40)
        # must never go out as a visible one
        ({"protocol_id": 0x40}, S.ESME_RSUBMITFAIL),
        # a standard TLV of a length its spec forbids
        ({"tlvs": (Tlv(Tag.USER_MESSAGE_REFERENCE, b"\x01"),)}, S.ESME_RINVPARLEN),
        ({"tlvs": (Tlv(Tag.USER_MESSAGE_REFERENCE, b"\x00\x00\x01"),)}, S.ESME_RINVPARLEN),
        ({"tlvs": (Tlv(Tag.SAR_MSG_REF_NUM, b""),)}, S.ESME_RINVPARLEN),
        # a handset's message-waiting indicator, like data_coding 0xC0-0xEF
        ({"tlvs": (Tlv(Tag.MS_MSG_WAIT_FACILITIES, b"\x80"),)}, S.ESME_ROPTPARNOTALLWD),
    ],
)
def test_more_refusals(kw: dict[str, object], status: int) -> None:
    assert _status(_admission().check("acme", _submit(**kw), 0.0)) == status


def test_accepted_variants() -> None:
    admission = _admission()
    for kw in (
        {"esm_class": 0x03},  # store and forward
        {"esm_class": 0x80},  # reply path: kept
        {"dest_addr_ton": 5, "destination_addr": "not-a-number"},  # alphanumeric TON
        {"data_coding": 0x08, "short_message": "Xin chào".encode("utf-16-be")},
        {"short_message": b"", "tlvs": (Tlv(Tag.MESSAGE_PAYLOAD, b"via payload"),)},
    ):
        _admitted(admission.check("acme", _submit(**kw), 0.0))
    reply_path = _admitted(admission.check("acme", _submit(esm_class=0x83), 0.0))
    assert reply_path.message.esm_class == 0x80


@pytest.mark.parametrize(
    ("data_coding", "fits_one", "text"),
    [
        (0xF0, 160, "Hello"),  # flash SMS: GSM septets, class 0
        (0xF1, 160, "Hello"),
        (0xF3, 160, "Hello"),
        (0xF4, 140, "Hello"),  # 8-bit data, class 0: octets
        (0xF7, 140, "Hello"),
    ],
)
def test_message_class_codings_are_admitted_and_counted_by_their_alphabet(
    data_coding: int, fits_one: int, text: str
) -> None:
    admission = _admission()
    single = _admitted(
        admission.check(
            "acme", _submit(data_coding=data_coding, short_message=b"x" * fits_one), 0.0
        )
    )
    assert (single.parts, single.message.data_coding) == (1, data_coding)
    assert single.message.body == b"x" * fits_one
    longer = _admitted(
        admission.check(
            "acme", _submit(data_coding=data_coding, short_message=b"x" * (fits_one + 1)), 0.0
        )
    )
    assert longer.parts == 2
    assert longer.message.data_coding == data_coding  # every part keeps the class
    assert (
        _admitted(
            admission.check("acme", _submit(data_coding=data_coding, short_message=b"Hello"), 0.0)
        ).text
        == text
    )


@pytest.mark.parametrize(
    "data_coding", [0x05, 0x09, 0x0E, 0x10, 0xC0, 0xD8, 0xE0, 0xEF, 0xF8, 0xFF]
)
def test_codings_not_offered_are_refused(data_coding: int) -> None:
    refused = _admission().check("acme", _submit(data_coding=data_coding), 0.0)
    assert _status(refused) == S.ESME_RSUBMITFAIL


def test_empty_sources_allow_any() -> None:
    admission = _admission(_partner(sources=[]))
    _admitted(admission.check("acme", _submit(source_addr="ANYONE"), 0.0))


# -- throttle ---------------------------------------------------------------------------


def test_burst_at_a_fixed_now_is_throttled_exactly() -> None:
    admission = _admission(_partner(tps=5))
    results = [admission.check("acme", _submit(), 100.0) for _ in range(20)]
    assert sum(isinstance(r, Admitted) for r in results) == 5
    assert [r.status for r in results if isinstance(r, Refused)] == [S.ESME_RTHROTTLED] * 15
    assert admission.statistics().refused == {S.ESME_RTHROTTLED: 15}
    # One second later the bucket is full again.
    later = [admission.check("acme", _submit(), 101.0) for _ in range(6)]
    assert [isinstance(r, Admitted) for r in later] == [True] * 5 + [False]


def test_throttle_counts_parts() -> None:
    admission = _admission(_partner(tps=10))
    three_parts = _submit(short_message=b"", tlvs=(Tlv(Tag.MESSAGE_PAYLOAD, b"x" * 400),))
    assert _admitted(admission.check("acme", three_parts, 0.0)).parts == 3
    _admitted(admission.check("acme", three_parts, 0.0))
    _admitted(admission.check("acme", three_parts, 0.0))
    assert _status(admission.check("acme", three_parts, 0.0)) == S.ESME_RTHROTTLED
    assert _admitted(admission.check("acme", _submit(), 0.0)).parts == 1
    assert _status(admission.check("acme", _submit(), 0.0)) == S.ESME_RTHROTTLED
    _admitted(admission.check("acme", three_parts, 0.3))


def test_partners_have_their_own_buckets_and_zero_is_unlimited() -> None:
    admission = _admission(_partner(tps=1), _partner("free", tps=0))
    _admitted(admission.check("acme", _submit(), 0.0))
    assert _status(admission.check("acme", _submit(), 0.0)) == S.ESME_RTHROTTLED
    for _ in range(100):
        _admitted(admission.check("free", _submit(), 0.0))


def test_reconfigure_keeps_the_bucket_and_applies_the_new_rate() -> None:
    admission = _admission(_partner(tps=2))
    _admitted(admission.check("acme", _submit(), 0.0))
    _admitted(admission.check("acme", _submit(), 0.0))
    admission.reconfigure(partner_map([_partner(tps=2, sources=["NEW"])]))
    assert _status(admission.check("acme", _submit(source_addr="NEW"), 0.0)) == S.ESME_RTHROTTLED
    assert _status(admission.check("acme", _submit(), 5.0)) == S.ESME_RINVSRCADR
    admission.reconfigure({})
    assert _status(admission.check("acme", _submit(), 5.0)) == S.ESME_RINVSYSID


# -- content and moderation -------------------------------------------------------------

OTP = "Ma OTP cua ban la {code}"


@pytest.mark.parametrize(
    ("content", "moderation", "text", "outcome"),
    [
        ({}, "none", "anything", "send"),
        ({}, "all", "anything", "hold"),
        ({"templates": [OTP]}, "none", "Mã OTP của bạn là 1234", "send"),
        ({"templates": [OTP]}, "none", "Buy now", "refuse"),
        ({"templates": [OTP], "on_violation": "hold"}, "none", "Buy now", "hold"),
        ({"templates": [OTP]}, "unmatched", "Mã OTP của bạn là 1234", "send"),
        ({"templates": [OTP]}, "unmatched", "Buy now", "hold"),
        ({}, "unmatched", "no templates: nothing matches", "hold"),
        ({"templates": [OTP]}, "all", "Mã OTP của bạn là 1234", "hold"),
        ({"block_keywords": ["casino"]}, "unmatched", "casino", "refuse"),
        ({"block_keywords": ["casino"], "on_violation": "hold"}, "none", "casino", "hold"),
    ],
)
def test_content_and_moderation(
    content: dict[str, object], moderation: str, text: str, outcome: str
) -> None:
    admission = _admission(_partner(content=content, moderation=moderation))
    result = admission.check(
        "acme", _submit(data_coding=8, short_message=text.encode("utf-16-be")), 0.0
    )
    if outcome == "refuse":
        assert _status(result) == S.ESME_RX_P_APPN
        return
    admitted = _admitted(result)
    assert admitted.hold is (outcome == "hold")
    assert admitted.text == text


def test_statistics() -> None:
    admission = _admission(_partner(moderation="all"))
    _admitted(admission.check("acme", _submit(), 0.0))
    _admitted(admission.check("acme", _submit(short_message=b"x" * 200), 0.0))
    admission.check("acme", _submit(source_addr="X"), 0.0)
    stats = admission.statistics()
    assert (stats.admitted, stats.held, stats.parts) == (2, 2, 3)
    assert stats.refused == {S.ESME_RINVSRCADR: 1}


def test_protocol_ids_the_partner_may_use_are_kept() -> None:
    admission = _admission(_partner(protocol_ids=[0x40, 0x41]))
    for pid in (0x00, 0x40, 0x41):
        assert (
            _admitted(admission.check("acme", _submit(protocol_id=pid), 0.0)).message.protocol_id
            == pid
        )
    assert _status(admission.check("acme", _submit(protocol_id=0x42), 0.0)) == S.ESME_RSUBMITFAIL


def test_user_message_reference_is_kept_for_the_receipt() -> None:
    admission = _admission()
    ref = Tlv(Tag.USER_MESSAGE_REFERENCE, b"\x12\x34")
    assert _admitted(admission.check("acme", _submit(tlvs=(ref,)), 0.0)).message.user_ref == 0x1234
    assert _admitted(admission.check("acme", _submit(), 0.0)).message.user_ref is None
    # a vendor TLV has no length rule of ours
    vendor = Tlv(0x1401, b"\x00" * 9)
    assert _admitted(admission.check("acme", _submit(tlvs=(vendor,)), 0.0)).message.user_ref is None


def test_tlvs_that_shape_delivery_are_journaled_for_the_carrier() -> None:
    port = Tlv(Tag.DESTINATION_PORT, b"\x0b\x84")
    ref = Tlv(Tag.USER_MESSAGE_REFERENCE, b"\x00\x07")
    message = _admitted(_admission().check("acme", _submit(tlvs=(ref, port)), 0.0)).message
    assert unpack_tlvs(message.tlvs) == (port,)
    assert _admitted(_admission().check("acme", _submit(tlvs=(ref,)), 0.0)).message.tlvs == b""


@pytest.mark.parametrize(
    ("fields", "key"),
    [
        ({}, "84912345678"),  # marketing, the default: checked
        ({"traffic_class": "transactional"}, None),  # OTPs go regardless
        ({"traffic_class": "transactional", "opt_out": True}, "84912345678"),
        ({"opt_out": False}, None),
    ],
)
def test_which_partners_messages_the_opt_out_list_checks(
    fields: dict[str, object], key: str | None
) -> None:
    admission = Admission(partner_map((_partner(**fields),)), clock=lambda: WALL, country_code="84")
    national = _submit(destination_addr="0912345678", dest_addr_ton=2)
    assert _admitted(admission.check("acme", national, 0.0)).message.opt_out_key == key


def test_vendor_tlvs_are_journaled_only_when_some_carrier_takes_their_tag() -> None:
    vendor = (Tlv(0x1401, b"\x01"), Tlv(0x1402, b"\x02"), Tlv(Tag.DESTINATION_PORT, b"\x0b\x84"))
    submit = _submit(tlvs=vendor)
    plain = _admitted(_admission().check("acme", submit, 0.0))
    assert [t.tag for t in unpack_tlvs(plain.message.tlvs)] == [Tag.DESTINATION_PORT]
    admission = Admission(
        partner_map((_partner(),)), clock=lambda: WALL, vendor_tags=frozenset({0x1402})
    )
    taken = _admitted(admission.check("acme", submit, 0.0))
    assert [t.tag for t in unpack_tlvs(taken.message.tlvs)] == [0x1402, Tag.DESTINATION_PORT]
