"""The ``submit_sm`` a carrier gets for one part of a message, shaped by that carrier's
settings (``carriers[]`` in the config).

Sans-I/O: :func:`part_pdu` takes the message, the part, the carrier's
:class:`CarrierShape` and the wall clock, and returns the PDU. What a carrier's settings
change, and why here (at sending, not at admission): a message is routed, and may fail
over, only after it was journaled, so only the bind that sends it knows the carrier.

- **TON/NPI**: a source or destination whose TON and NPI are both 0 ("unknown": the
  partner left it to the network) gets the carrier's ``source_ton/source_npi`` or
  ``dest_ton/dest_npi``; one the partner set goes as it is. The defaults, 0/0, change
  nothing.
- **split** ``sar``: long messages are cut at admission, where quota counts their parts,
  with an 8-bit concatenation UDH. A carrier that wants ``sar_*`` TLVs instead gets the
  same parts with the UDH taken off and the three TLVs carrying its reference, total and
  sequence (the room is the same: the SMSC puts the 8-bit UDH back on the air). A UDH
  holding more than the concatenation element (application ports...) stays as it is:
  TLVs cannot carry the rest. ``udh16``: the same parts with the 16-bit concatenation
  element instead (``06 08 04``), its reference the message id's low 16 bits (fewer
  clashes in a handset than 256 references); admission cuts the parts one octet shorter
  while some carrier has ``udh16`` (``Admission.cut_room``), so they fit. Only the
  gateway's own cut is rewritten: a partner's own parts (each one message here) keep
  their UDH, as do the parts of a message one of whose parts would not fit (cut before
  a reload added ``udh16``: all or none, a handset joins parts by one reference kind).
  ``payload`` would leave the cut to the SMSC, elsewhere than quota counted, so the
  config refuses it.
- **data_coding** ``default_alphabet: latin1``: an SMSC that reads data_coding 0 as
  Latin-1 gets GSM text (data_coding 0) rewritten in Latin-1 (a character Latin-1 lacks,
  such as the euro sign or a Greek capital, becomes ``?``), else "@" and "_" arrive as
  other characters. ``allow_latin1``: a UCS2 message whose text Latin-1 can write and
  GSM cannot goes as data_coding 3, half the octets.
- **validity_format**: the partner's ``validity_period``, absolute in UTC, relative (the
  time left) or left out. Never a time already past: the later parts of a message whose
  first part left in time (a retry, a throttled carrier) get :data:`LATE_PART_VALIDITY`
  seconds, which an SMSC takes, rather than a past time it would refuse, which would
  leave the message cut short.
- **service_type**: the carrier's, on every part (some bill or route by it); the
  partner's own is not passed on. **protocol_id** is the partner's (admission allowed it).
- **drop_tlvs**: the partner's TLVs go with every part (``gateway/submit_tlvs.py``),
  but one carrier may refuse a tag (``ESME_ROPTPARNOTALLWD``, failing the message): the
  tags listed are left out for it. **vendor_tlvs**: a partner's vendor TLVs go only to
  the carriers that list their tags.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from smppgw.protocol.concat import concat_udh
from smppgw.protocol.pdus import SubmitSm
from smppgw.protocol.smpp_time import ValidityFormat, format_smpp_time, relative_until
from smppgw.protocol.text import (
    DC_DEFAULT,
    DC_LATIN1,
    DC_UCS2,
    fits_one_sms,
    gsm7,
    latin1,
    ucs2,
    unit_kind,
)
from smppgw.protocol.tlv import Tag, Tlv, is_vendor_tag
from smppgw.protocol.udh import IEI_CONCAT_8BIT, UdhError, parse_udh

if TYPE_CHECKING:
    from smppgw.gateway.outbound import OutboundMessage as _Message

__all__ = ["CarrierShape", "part_pdu"]

_UDHI = 0x40
#: The least validity a part is sent with (see the module docstring).
LATE_PART_VALIDITY = 60.0


@dataclass(frozen=True, slots=True)
class CarrierShape:
    """What a carrier's settings ask of the PDUs it gets (the defaults ask nothing)."""

    source_ton: int = 0
    source_npi: int = 0
    dest_ton: int = 0
    dest_npi: int = 0
    sar: bool = False
    udh16: bool = False
    latin1_default: bool = False
    allow_latin1: bool = False
    validity: ValidityFormat = ValidityFormat.ABSOLUTE
    service_type: str = ""
    #: TLV tags this carrier is not sent (one that refuses a TLV partners may send).
    drop_tlvs: frozenset[int] = frozenset()
    #: Vendor TLV tags this carrier is sent; a message's other vendor TLVs are not (they
    #: were journaled for another carrier).
    vendor_tlvs: frozenset[int] = frozenset()

    @property
    def plain(self) -> bool:
        """Whether parts go as they are journaled (the common case: no rewriting)."""
        return not (self.sar or self.udh16 or self.latin1_default or self.allow_latin1)


def part_pdu(message: _Message, part_no: int, shape: CarrierShape, now: float) -> SubmitSm:
    """The submit_sm for part ``part_no`` of ``message`` (``now``: wall-clock seconds)."""
    short_message = message.parts[part_no]
    esm_class = message.esm_class | (_UDHI if len(message.parts) > 1 else 0)
    data_coding = message.data_coding
    tlvs = message.tlvs
    if tlvs:
        tlvs = _kept_tlvs(tlvs, shape)
    if not shape.plain:
        short_message, esm_class, data_coding, tlvs = _reshaped(
            message, short_message, esm_class, data_coding, tlvs, shape
        )
    source_ton, source_npi = message.source_ton, message.source_npi
    if not (source_ton or source_npi):
        source_ton, source_npi = shape.source_ton, shape.source_npi
    dest_ton, dest_npi = message.dest_ton, message.dest_npi
    if not (dest_ton or dest_npi):
        dest_ton, dest_npi = shape.dest_ton, shape.dest_npi
    return SubmitSm(
        service_type=shape.service_type,
        source_addr_ton=source_ton,
        source_addr_npi=source_npi,
        source_addr=message.source_addr,
        dest_addr_ton=dest_ton,
        dest_addr_npi=dest_npi,
        destination_addr=message.destination_addr,
        esm_class=esm_class,
        protocol_id=message.protocol_id,
        registered_delivery=1 if message.registered_delivery & 0x03 else 0,
        data_coding=data_coding,
        short_message=short_message,
        tlvs=tlvs,
        validity_period=""
        if message.expires_at is None
        else _validity(message.expires_at, shape.validity, now),
    )


def _kept_tlvs(tlvs: tuple[Tlv, ...], shape: CarrierShape) -> tuple[Tlv, ...]:
    """A message's TLVs this carrier is sent: not those it drops, nor the vendor tags it
    does not list."""
    drop, vendor = shape.drop_tlvs, shape.vendor_tlvs
    if not drop and not any(is_vendor_tag(t.tag) for t in tlvs):
        return tlvs
    return tuple(
        t for t in tlvs if t.tag not in drop and (t.tag in vendor or not is_vendor_tag(t.tag))
    )


def _validity(expires_at: float, fmt: ValidityFormat, now: float) -> str:
    if fmt is ValidityFormat.OMIT:
        return ""
    expires_at = max(expires_at, now + LATE_PART_VALIDITY)
    if fmt is ValidityFormat.RELATIVE:
        return format_smpp_time(relative_until(expires_at - now))
    return format_smpp_time(datetime.fromtimestamp(expires_at, UTC))


def _reshaped(
    message: _Message,
    short_message: bytes,
    esm_class: int,
    data_coding: int,
    tlvs: tuple[Tlv, ...],
    shape: CarrierShape,
) -> tuple[bytes, int, int, tuple[Tlv, ...]]:
    header, user = b"", short_message
    if esm_class & _UDHI:
        try:
            udh, user = parse_udh(short_message)
        except UdhError:  # admission checked it; never rewrite what cannot be read
            return short_message, esm_class, data_coding, tlvs
        header = short_message[: len(short_message) - len(user)]
        concat = udh.concat
        # Only a UDH that is nothing but the 8-bit concatenation element is rewritten.
        if (
            concat is not None
            and not concat.wide
            and [e.iei for e in udh.elements] == [IEI_CONCAT_8BIT]
        ):
            if shape.sar:
                header, esm_class = b"", esm_class & ~_UDHI
                tlvs = (
                    *tlvs,
                    Tlv.of_int(Tag.SAR_MSG_REF_NUM, concat.reference),
                    Tlv.of_int(Tag.SAR_TOTAL_SEGMENTS, concat.total),
                    Tlv.of_int(Tag.SAR_SEGMENT_SEQNUM, concat.seq),
                )
            elif shape.udh16 and len(message.parts) > 1 and _wide_fits(message, len(header)):
                header = concat_udh(message.id & 0xFFFF, concat.total, concat.seq, wide=True)
    if data_coding == DC_DEFAULT and shape.latin1_default:
        user = gsm7.decode(user).encode("latin-1", errors="replace")
    elif data_coding == DC_UCS2 and shape.allow_latin1 and _latin1_not_gsm(message):
        user, data_coding = latin1.encode(ucs2.decode(user)), DC_LATIN1
    return header + user, esm_class, data_coding, tlvs


def _wide_fits(message: _Message, header_octets: int) -> bool:
    """Whether every part of the gateway's cut fits one SMS with the 16-bit element (one
    octet more): all of them change, or none (a handset joins the parts of one message
    by one kind of reference)."""
    longest = max(len(part) for part in message.parts) - header_octets
    return fits_one_sms(header_octets + 1, longest, unit_kind(message.data_coding))


def _latin1_not_gsm(message: _Message) -> bool:
    """Whether the whole message (every part: they go in one coding) is text Latin-1
    can write and GSM cannot."""
    text = "".join(ucs2.decode(_user_data(part, message)) for part in message.parts)
    return latin1.is_encodable(text) and not gsm7.is_encodable(text)


def _user_data(part: bytes, message: _Message) -> bytes:
    if len(message.parts) > 1 or message.esm_class & _UDHI:
        try:
            return parse_udh(part)[1]
        except UdhError:
            return part
    return part
