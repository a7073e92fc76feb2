"""Admission: may this partner's ``submit_sm`` be accepted, and as what message?

Theory of operation
-------------------
:meth:`Admission.check` runs the checks below **in this order** and answers with the
first refusal, each with its own ``command_status``, so a message with two faults is
refused for the earlier one. Quota is *not* checked here: it needs the journal, so the
server reserves it (asynchronously) for the messages this module admits.

=====================  =========================  =========================================
check                  status                     when
=====================  =========================  =========================================
partner                ESME_RINVSYSID             unknown or disabled (a reload removed it)
source TON             ESME_RINVSRCTON            not 0-6 (SMPP 3.4 5.2.5)
source NPI             ESME_RINVSRCNPI            not an SMPP 3.4 NPI (5.2.6)
destination TON        ESME_RINVDSTTON            not 0-6
destination NPI        ESME_RINVDSTNPI            not an SMPP 3.4 NPI
destination address    ESME_RINVDSTADR            empty; for TON 0/1/2 not digits (one
                                                  leading ``+`` is tolerated and dropped)
data_coding            ESME_RSUBMITFAIL           not 0, 1, 2, 3, 4, 8 or 0xF0-0xF7 (GSM
                                                  message class: flash SMS). SMPP 3.4 has
                                                  no "invalid data coding" status (5.0's
                                                  ESME_RINVDCS 0x104 is unknown to 3.4
                                                  clients); RSUBMITFAIL is permanent
protocol_id            ESME_RSUBMITFAIL           not 0 and not in ``protocol_ids``
TLVs                   ESME_RINVPARLEN            a standard TLV's length is wrong
                       ESME_ROPTPARNOTALLWD       ``ms_msg_wait_facilities`` (see
                                                  :mod:`smppgw.gateway.submit_tlvs`)
short_message and      ESME_RINVPARLEN            both given (3.4 5.3.2.32: with
message_payload                                   message_payload, sm_length must be 0)
schedule_delivery_time ESME_RINVSCHED             malformed (:mod:`smppgw.protocol.smpp_time`)
validity_period        ESME_RINVEXPIRY            malformed, or an absolute time passed
esm_class              ESME_RINVESMCLASS          messaging mode datagram (1) or forward
                                                  (2); a message type (bits 2-5) set; UDHI
                                                  with a malformed UDH
priority_flag          ESME_RINVPRTFLG            above 3
registered_delivery    ESME_RINVREGDLVFLG         receipt bits 3, or bits 5-7 set
replace_if_present     ESME_RINVREPFLAG           set: replacing is not offered
sar_* TLVs             ESME_RINVOPTPARAMVAL       only some given, or impossible values
message length         ESME_RINVMSGLEN            more parts than ``max_message_parts``; a
                                                  partner's own part larger than one SMS
source address         ESME_RINVSRCADR            empty, or not in the partner's
                                                  ``sources`` (exact, case-insensitive)
content policy         ESME_RX_P_APPN             a violation under ``on_violation: reject``
                                                  ("permanent application error": do not
                                                  retry; ESME_RX_R_APPN is the server's
                                                  quota refusal)
throttle               ESME_RTHROTTLED            the partner's ``tps`` bucket is empty
=====================  =========================  =========================================

Long messages:

- a partner's own part (esm_class UDHI 0x40, or ``sar_*`` TLVs) is admitted as a
  one-part message whose body carries the UDH (``sar_*`` values are turned into a
  concatenation UDH, 16-bit when the reference needs it and there is room); the gateway
  forwards parts as they come, and quota counts 1 part. Templates cannot judge a piece
  of a text, so such parts get the block checks only
  (:meth:`~smppgw.gateway.content.ContentFilter.check_fragment`);
- a ``message_payload`` or a ``short_message`` longer than one SMS is split here
  (8-bit UDH, the reference from a counter) into :attr:`NewMessage.parts`, each part
  as long as :attr:`Admission.cut_room` allows: ``UDH16``'s (one octet less) when some
  carrier wants a 16-bit reference (``carriers[].split: udh16``), so that the parts
  quota counted fit every carrier the message may fail over to.

Held messages (``moderation: all``, ``moderation: unmatched`` with no template matched,
or a violation under ``on_violation: hold``) are admitted with ``hold=True``: the server
journals them but does not send them until a moderator decides.

Time: ``now`` is the caller's monotonic clock (``trio.current_time()``), used by the
token buckets only. Absolute times for the journal (``expires_at``, ``next_attempt_at``,
epoch seconds) come from ``clock``, the one injectable wall clock.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Protocol

from smppgw.gateway.content import ContentFilter, ContentRules, ContentVerdict
from smppgw.gateway.opt_out import opt_out_key
from smppgw.gateway.submit_tlvs import forwarded_tlvs, tlv_refusal
from smppgw.gateway.throttle import TokenBucket
from smppgw.protocol.concat import SegmentError, concat_udh, incoming_part, split_message
from smppgw.protocol.smpp_time import SmppTimeError, parse_smpp_time, resolve_smpp_time
from smppgw.protocol.status import CommandStatus as S
from smppgw.protocol.text import (
    SplitMode,
    count_parts,
    decode_text,
    fits_one_sms,
    unit_kind,
)
from smppgw.protocol.tlv import Tag
from smppgw.protocol.udh import UdhError, parse_udh
from smppgw.store.records import NewMessage

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

    from smppgw.protocol.pdus import SubmitSm

__all__ = [
    "DATA_CODINGS",
    "Admission",
    "AdmissionPolicy",
    "AdmissionStatistics",
    "Admitted",
    "ContentSettings",
    "Refused",
]

#: data_coding values accepted from partners: GSM default, IA5, the two binary ones,
#: Latin-1 and UCS2, and the GSM message class group (SMPP 3.4 5.2.19, GSM 03.38 section
#: 4: 0xF0-0xF3 GSM text, 0xF4-0xF7 8-bit data, the low two bits the class; 0xF0 is the
#: flash SMS partners send for OTPs and alerts). They travel to the carrier as given.
#: Not offered: the message waiting groups 0xC0-0xEF (they set a handset's voicemail
#: indicator: not a partner's to set), the reserved 0xF8-0xFF, and the national and
#: Asian codings (no carrier of ours takes them; they would be split as octets and could
#: cut a character in two).
DATA_CODINGS = frozenset({0x00, 0x01, 0x02, 0x03, 0x04, 0x08, *range(0xF0, 0xF8)})
#: SMPP 3.4 5.2.6: NPI values the spec defines.
_NPI_VALUES = frozenset({0, 1, 3, 4, 6, 8, 9, 10, 14, 18})
_MAX_TON = 6
#: TONs whose addresses are phone numbers: unknown, international, national.
_NUMERIC_TONS = frozenset({0, 1, 2})
_UDHI = 0x40
_GSM_FEATURES = 0xC0  # UDHI and reply path: kept; the messaging mode is ours to choose
_STORE_AND_FORWARD_MODES = frozenset({0, 3})  # default, store and forward


class ContentSettings(ContentRules, Protocol):
    """A partner's content policy (``smppgw.app`` ``ContentPolicy``)."""

    @property
    def on_violation(self) -> str: ...


class AdmissionPolicy(Protocol):
    """What admission reads of a partner (``smppgw.app`` ``PartnerSettings``)."""

    @property
    def enabled(self) -> bool: ...
    @property
    def sources(self) -> Sequence[str]: ...
    @property
    def content(self) -> ContentSettings: ...
    @property
    def moderation(self) -> str: ...
    @property
    def traffic_class(self) -> str: ...
    @property
    def tps(self) -> float: ...
    @property
    def max_message_parts(self) -> int: ...
    @property
    def default_registered_delivery(self) -> int: ...
    @property
    def protocol_ids(self) -> Sequence[int]: ...
    @property
    def opt_out(self) -> bool | None: ...


@dataclass(frozen=True, slots=True)
class Admitted:
    """A submit that may be journaled (once its quota is reserved).

    Attributes:
        system_id: the partner.
        message: what to journal.
        parts: the SMS it takes, for quota and throttling.
        hold: journal it but do not send it: it awaits moderation.
        text: the decoded text (of this part, for a partner's own part), for logs.
        content: the content filter's verdict (a held violation says why).
    """

    system_id: str
    message: NewMessage
    parts: int
    hold: bool
    text: str
    content: ContentVerdict = field(default_factory=lambda: ContentVerdict(ok=True))


@dataclass(frozen=True, slots=True)
class Refused:
    """A submit to answer with ``status``; ``reason`` is for logs."""

    status: int
    reason: str


@dataclass(frozen=True, slots=True)
class AdmissionStatistics:
    admitted: int
    held: int
    parts: int
    refused: dict[int, int]


class _Refusal(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(slots=True)
class _Partner:
    settings: AdmissionPolicy
    sources: frozenset[str]
    content: ContentFilter
    bucket: TokenBucket | None = None
    #: Its messages are checked against the opt-out list (``gateway/opt_out.py``).
    opt_out: bool = False


@dataclass(slots=True)  # internal, one per submit: not frozen, for speed
class _Shape:
    """What validation learnt of a submit's user data."""

    body: bytes
    parts: tuple[bytes, ...]
    count: int
    esm_class: int
    text: str
    fragment: bool
    destination: str
    registered_delivery: int
    expires_at: float | None
    next_attempt_at: float | None


class Admission:
    """Decides partners' ``submit_sm``; see the module notes for the checks and statuses.

    Args:
        partners: partner settings by ``system_id``.
        clock: wall-clock epoch seconds, for the journal's absolute times.
        country_code: of national destinations, for the opt-out list's key.
        vendor_tags: vendor TLV tags some carrier takes (``carriers[].vendor_tlvs``):
            journaled with the message; other vendor tags are not.
        cut_room: the room of the parts long messages are cut into: ``UDH8``, or
            ``UDH16`` when some carrier wants a 16-bit reference.

    Raises:
        ContentPolicyError: a partner's content policy does not compile (the config
            models compile the same rules, so a validated config never does this).
    """

    def __init__(
        self,
        partners: Mapping[str, AdmissionPolicy],
        *,
        clock: Callable[[], float] = time.time,
        country_code: str = "84",
        vendor_tags: frozenset[int] = frozenset(),
        cut_room: SplitMode = SplitMode.UDH8,
    ) -> None:
        self._clock = clock
        self.country_code = country_code
        self.vendor_tags = vendor_tags
        self.cut_room = cut_room
        self._partners: dict[str, _Partner] = {}
        self._reference = 0
        self._admitted = 0
        self._held = 0
        self._parts = 0
        self._refused: dict[int, int] = {}
        self.reconfigure(partners)

    def reconfigure(self, partners: Mapping[str, AdmissionPolicy]) -> None:
        """Apply a reloaded config; a kept partner keeps its token bucket's tokens."""
        fresh: dict[str, _Partner] = {}
        for system_id, settings in partners.items():
            old = self._partners.get(system_id)
            bucket = old.bucket if old is not None else None
            if bucket is not None:
                bucket.reconfigure(settings.tps)
            opt_out = settings.opt_out
            if opt_out is None:  # the default: marketing is checked, transactional not
                opt_out = settings.traffic_class != "transactional"
            fresh[system_id] = _Partner(
                settings,
                frozenset(s.casefold() for s in settings.sources),
                ContentFilter.compile(settings.content),
                bucket,
                opt_out,
            )
        self._partners = fresh

    def opt_out_applies(self, system_id: str) -> bool:
        """Whether the opt-out list refuses this partner's messages (see ``_Partner``)."""
        partner = self._partners.get(system_id)
        return partner is not None and partner.opt_out

    def statistics(self) -> AdmissionStatistics:
        """Counts since start: admitted (held included), held, their parts, refusals."""
        return AdmissionStatistics(self._admitted, self._held, self._parts, dict(self._refused))

    def check(self, system_id: str, pdu: SubmitSm, now: float) -> Admitted | Refused:
        """Admit or refuse one ``submit_sm`` of a bound partner.

        Args:
            system_id: the partner the session is bound as.
            pdu: the submit.
            now: the caller's monotonic time, for the throttle.
        """
        try:
            admitted = self._check(system_id, pdu, now)
        except _Refusal as refusal:
            self._refused[refusal.status] = self._refused.get(refusal.status, 0) + 1
            return Refused(refusal.status, refusal.reason)
        self._admitted += 1
        self._parts += admitted.parts
        if admitted.hold:
            self._held += 1
        return admitted

    def check_replace(self, system_id: str, pdu: SubmitSm) -> Admitted | Refused:
        """The checks of :meth:`check` for a ``replace_sm``'s new text, rebuilt by the
        caller as a submit of the original message: a replacement must pass the same
        validation, source and content policy as a new message, or replace_sm would be a
        way round them. The throttle is not applied (no new message is sent) and nothing
        is counted in :meth:`statistics` (they count submits)."""
        try:
            return self._check(system_id, pdu, 0.0, throttle=False)
        except _Refusal as refusal:
            return Refused(refusal.status, refusal.reason)

    # -- the checks, in order -------------------------------------------------------------

    def _check(
        self, system_id: str, pdu: SubmitSm, now: float, *, throttle: bool = True
    ) -> Admitted:
        partner = self._partners.get(system_id)
        if partner is None or not partner.settings.enabled:
            raise _Refusal(S.ESME_RINVSYSID, f"partner {system_id!r} is unknown or disabled")
        settings = partner.settings
        shape = self._validate(pdu, settings)
        self._check_source(pdu.source_addr, partner)
        hold, verdict = self._check_content(shape, partner)
        if throttle and partner.bucket is None:
            partner.bucket = TokenBucket(settings.tps, now=now)
        wait = partner.bucket.try_take(shape.count, now) if partner.bucket and throttle else 0.0
        if wait > 0:
            raise _Refusal(
                S.ESME_RTHROTTLED, f"over {settings.tps:g} parts/s; retry in {wait:.3f} s"
            )
        message = NewMessage(
            partner=system_id,
            source_addr=pdu.source_addr,
            source_ton=pdu.source_addr_ton,
            source_npi=pdu.source_addr_npi,
            destination_addr=shape.destination,
            dest_ton=pdu.dest_addr_ton,
            dest_npi=pdu.dest_addr_npi,
            body=shape.body,
            data_coding=pdu.data_coding,
            esm_class=shape.esm_class,
            registered_delivery=shape.registered_delivery,
            priority=1 if settings.traffic_class == "transactional" else 0,
            parts=shape.parts,
            expires_at=shape.expires_at,
            next_attempt_at=shape.next_attempt_at,
            protocol_id=pdu.protocol_id,
            user_ref=pdu.tlv_int(Tag.USER_MESSAGE_REFERENCE) if pdu.tlvs else None,
            tlvs=forwarded_tlvs(pdu.tlvs, self.vendor_tags) if pdu.tlvs else b"",
            opt_out_key=opt_out_key(shape.destination, pdu.dest_addr_ton, self.country_code)
            if partner.opt_out
            else None,
        )
        return Admitted(system_id, message, shape.count, hold, shape.text, verdict)

    def _validate(self, pdu: SubmitSm, settings: AdmissionPolicy) -> _Shape:
        if not 0 <= pdu.source_addr_ton <= _MAX_TON:
            raise _Refusal(S.ESME_RINVSRCTON, f"source TON {pdu.source_addr_ton}")
        if pdu.source_addr_npi not in _NPI_VALUES:
            raise _Refusal(S.ESME_RINVSRCNPI, f"source NPI {pdu.source_addr_npi}")
        if not 0 <= pdu.dest_addr_ton <= _MAX_TON:
            raise _Refusal(S.ESME_RINVDSTTON, f"destination TON {pdu.dest_addr_ton}")
        if pdu.dest_addr_npi not in _NPI_VALUES:
            raise _Refusal(S.ESME_RINVDSTNPI, f"destination NPI {pdu.dest_addr_npi}")
        destination = _destination(pdu.destination_addr, pdu.dest_addr_ton)

        dc = pdu.data_coding
        if dc not in DATA_CODINGS:
            raise _Refusal(S.ESME_RSUBMITFAIL, f"data_coding 0x{dc:02X} is not offered")
        pid = pdu.protocol_id
        if pid and pid not in settings.protocol_ids:
            raise _Refusal(S.ESME_RSUBMITFAIL, f"protocol_id 0x{pid:02X} is not allowed")
        tlvs = pdu.tlvs  # most submits carry none: skip every TLV lookup then
        if tlvs:
            refused = tlv_refusal(tlvs)
            if refused is not None:
                raise _Refusal(*refused)
        payload_tlv = pdu.tlv_octets(Tag.MESSAGE_PAYLOAD) if tlvs else None
        if payload_tlv is not None and pdu.short_message:
            raise _Refusal(S.ESME_RINVPARLEN, "both short_message and message_payload are set")
        payload = pdu.short_message if payload_tlv is None else payload_tlv

        scheduled = expires = None
        wall_dt = None
        if pdu.schedule_delivery_time or pdu.validity_period:
            wall_dt = datetime.fromtimestamp(self._clock(), UTC)
            try:
                schedule = parse_smpp_time(
                    pdu.schedule_delivery_time, field="schedule_delivery_time"
                )
                validity = parse_smpp_time(pdu.validity_period, field="validity_period")
            except SmppTimeError as exc:
                raise _Refusal(exc.command_status, str(exc)) from None
            scheduled = resolve_smpp_time(schedule, wall_dt)
            expires = resolve_smpp_time(validity, wall_dt)
            if expires is not None and expires <= wall_dt:
                raise _Refusal(
                    S.ESME_RINVEXPIRY, f"validity_period {pdu.validity_period} has passed"
                )

        esm = pdu.esm_class
        if esm & 0x03 not in _STORE_AND_FORWARD_MODES:
            raise _Refusal(S.ESME_RINVESMCLASS, f"esm_class 0x{esm:02X}: messaging mode")
        if esm & 0x3C:
            raise _Refusal(S.ESME_RINVESMCLASS, f"esm_class 0x{esm:02X}: message type")
        udhi = bool(esm & _UDHI)
        user = payload
        if udhi:
            try:
                _, user = parse_udh(payload)
            except UdhError as exc:
                raise _Refusal(S.ESME_RINVESMCLASS, str(exc)) from None

        if pdu.priority_flag > 3:
            raise _Refusal(S.ESME_RINVPRTFLG, f"priority_flag {pdu.priority_flag}")
        rd = pdu.registered_delivery
        if rd & 0x03 == 0x03 or rd & 0xE0:
            raise _Refusal(S.ESME_RINVREGDLVFLG, f"registered_delivery 0x{rd:02X}")
        if pdu.replace_if_present_flag:
            raise _Refusal(S.ESME_RINVREPFLAG, "replace_if_present is not offered")

        sar = (
            (
                pdu.tlv_int(Tag.SAR_MSG_REF_NUM),
                pdu.tlv_int(Tag.SAR_TOTAL_SEGMENTS),
                pdu.tlv_int(Tag.SAR_SEGMENT_SEQNUM),
            )
            if tlvs
            else _NO_SAR
        )
        body, count = payload, 1
        parts: tuple[bytes, ...] = ()
        esm_out = esm & _GSM_FEATURES
        fragment = udhi
        kind = unit_kind(dc)
        if udhi:
            if not fits_one_sms(len(payload) - len(user), len(user), kind):
                raise _Refusal(S.ESME_RINVMSGLEN, "a part with UDH larger than one SMS")
        elif any(v is not None for v in sar):
            try:
                part = incoming_part(
                    "", "", payload, sar_ref=sar[0], sar_total=sar[1], sar_seq=sar[2]
                )
            except SegmentError as exc:
                raise _Refusal(S.ESME_RINVOPTPARAMVAL, str(exc)) from None
            wide = part.reference > 0xFF and fits_one_sms(7, len(payload), kind)
            reference = part.reference if wide else part.reference & 0xFF
            udh = concat_udh(reference, part.total, part.seq, wide=wide)
            if not fits_one_sms(len(udh), len(payload), kind):
                raise _Refusal(S.ESME_RINVMSGLEN, "a sar_* part larger than one SMS")
            body, esm_out, fragment = udh + payload, esm_out | _UDHI, True
        else:
            count = count_parts(payload, dc, self.cut_room)
            if count > settings.max_message_parts:
                raise _Refusal(
                    S.ESME_RINVMSGLEN,
                    f"{count} parts, more than the {settings.max_message_parts} allowed",
                )
            if count > 1:
                segments = split_message(
                    payload, dc, SplitMode.UDH8, reference=self._next_ref(), room=self.cut_room
                )
                parts = tuple(s.short_message for s in segments)
        return _Shape(
            body=body,
            parts=parts,
            count=count,
            esm_class=esm_out,
            text=decode_text(user, dc),
            fragment=fragment,
            destination=destination,
            registered_delivery=rd or settings.default_registered_delivery,
            expires_at=None if expires is None else expires.timestamp(),
            next_attempt_at=None
            if scheduled is None or wall_dt is None or scheduled <= wall_dt
            else scheduled.timestamp(),
        )

    @staticmethod
    def _check_source(source: str, partner: _Partner) -> None:
        if not source:
            raise _Refusal(S.ESME_RINVSRCADR, "no source address")
        if partner.sources and source.casefold() not in partner.sources:
            raise _Refusal(S.ESME_RINVSRCADR, f"source {source!r} is not registered")

    @staticmethod
    def _check_content(shape: _Shape, partner: _Partner) -> tuple[bool, ContentVerdict]:
        settings = partner.settings
        content = partner.content
        verdict = (
            content.check_fragment(shape.text) if shape.fragment else content.check(shape.text)
        )
        moderation = settings.moderation
        hold = moderation == "all"
        if moderation == "unmatched" and verdict.matched_template is None:
            # Unmatched: moderated rather than a violation; a block still is one.
            hold = True
            violation = verdict.blocked
        else:
            violation = not verdict.ok
        if violation:
            if settings.content.on_violation == "reject":
                raise _Refusal(S.ESME_RX_P_APPN, f"content: {verdict.violation}")
            hold = True
        return hold, verdict

    def _next_ref(self) -> int:
        self._reference = (self._reference + 1) & 0xFF
        return self._reference


_NO_SAR: tuple[None, None, None] = (None, None, None)


def _destination(address: str, ton: int) -> str:
    if not address:
        raise _Refusal(S.ESME_RINVDSTADR, "no destination address")
    if ton in _NUMERIC_TONS:
        digits = address.removeprefix("+")
        if not digits or not digits.isascii() or not digits.isdigit():
            raise _Refusal(S.ESME_RINVDSTADR, f"destination {address!r} is not a number")
        return digits
    return address
