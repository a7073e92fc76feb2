"""Optional parameters (TLVs), SMPP 3.4 section 5.3.

A TLV is kept as its tag and its raw value octets. That is what makes unknown and vendor
tags (0x1400-0x3FFF) survive a decode/encode round trip unchanged, and it keeps decoding
cheap: a value is interpreted only when someone asks for it, through the typed helpers
below, with the kind and length rules of :data:`TLV_SPECS`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import NamedTuple

from smppgw.protocol.status import CommandStatus

__all__ = [
    "TLV_SPECS",
    "Tag",
    "Tlv",
    "TlvKind",
    "TlvSpec",
    "is_vendor_tag",
    "tlv_cstring",
    "tlv_int",
    "tlv_octets",
    "validate_tlv",
]


class Tag(enum.IntEnum):
    """Every standard SMPP 3.4 optional parameter tag (section 5.3.2)."""

    DEST_ADDR_SUBUNIT = 0x0005
    DEST_NETWORK_TYPE = 0x0006
    DEST_BEARER_TYPE = 0x0007
    DEST_TELEMATICS_ID = 0x0008
    SOURCE_ADDR_SUBUNIT = 0x000D
    SOURCE_NETWORK_TYPE = 0x000E
    SOURCE_BEARER_TYPE = 0x000F
    SOURCE_TELEMATICS_ID = 0x0010
    QOS_TIME_TO_LIVE = 0x0017
    PAYLOAD_TYPE = 0x0019
    ADDITIONAL_STATUS_INFO_TEXT = 0x001D
    RECEIPTED_MESSAGE_ID = 0x001E
    MS_MSG_WAIT_FACILITIES = 0x0030
    PRIVACY_INDICATOR = 0x0201
    SOURCE_SUBADDRESS = 0x0202
    DEST_SUBADDRESS = 0x0203
    USER_MESSAGE_REFERENCE = 0x0204
    USER_RESPONSE_CODE = 0x0205
    SOURCE_PORT = 0x020A
    DESTINATION_PORT = 0x020B
    SAR_MSG_REF_NUM = 0x020C
    LANGUAGE_INDICATOR = 0x020D
    SAR_TOTAL_SEGMENTS = 0x020E
    SAR_SEGMENT_SEQNUM = 0x020F
    SC_INTERFACE_VERSION = 0x0210
    CALLBACK_NUM_PRES_IND = 0x0302
    CALLBACK_NUM_ATAG = 0x0303
    NUMBER_OF_MESSAGES = 0x0304
    CALLBACK_NUM = 0x0381
    DPF_RESULT = 0x0420
    SET_DPF = 0x0421
    MS_AVAILABILITY_STATUS = 0x0422
    NETWORK_ERROR_CODE = 0x0423
    MESSAGE_PAYLOAD = 0x0424
    DELIVERY_FAILURE_REASON = 0x0425
    MORE_MESSAGES_TO_SEND = 0x0426
    MESSAGE_STATE = 0x0427
    USSD_SERVICE_OP = 0x0501
    DISPLAY_TIME = 0x1201
    SMS_SIGNAL = 0x1203
    MS_VALIDITY = 0x1204
    ALERT_ON_MESSAGE_DELIVERY = 0x130C
    ITS_REPLY_TYPE = 0x1380
    ITS_SESSION_INFO = 0x1383


class TlvKind(enum.Enum):
    INT = "int"  # unsigned big-endian integer of a fixed size
    CSTRING = "cstring"  # NUL-terminated text, length includes the NUL
    OCTETS = "octets"  # raw octets
    EMPTY = "empty"  # presence is the value (length 0)


@dataclass(frozen=True, slots=True)
class TlvSpec:
    """How a standard tag's value is shaped: its kind and allowed length range (octets)."""

    kind: TlvKind
    min_len: int
    max_len: int


def _int(size: int) -> TlvSpec:
    return TlvSpec(TlvKind.INT, size, size)


def _octets(lo: int, hi: int) -> TlvSpec:
    return TlvSpec(TlvKind.OCTETS, lo, hi)


#: Kind and length of each standard tag (SMPP 3.4 section 5.3.2.x).
TLV_SPECS: dict[int, TlvSpec] = {
    Tag.DEST_ADDR_SUBUNIT: _int(1),
    Tag.DEST_NETWORK_TYPE: _int(1),
    Tag.DEST_BEARER_TYPE: _int(1),
    Tag.DEST_TELEMATICS_ID: _int(2),
    Tag.SOURCE_ADDR_SUBUNIT: _int(1),
    Tag.SOURCE_NETWORK_TYPE: _int(1),
    Tag.SOURCE_BEARER_TYPE: _int(1),
    Tag.SOURCE_TELEMATICS_ID: _int(1),
    Tag.QOS_TIME_TO_LIVE: _int(4),
    Tag.PAYLOAD_TYPE: _int(1),
    Tag.ADDITIONAL_STATUS_INFO_TEXT: TlvSpec(TlvKind.CSTRING, 1, 256),
    Tag.RECEIPTED_MESSAGE_ID: TlvSpec(TlvKind.CSTRING, 1, 65),
    Tag.MS_MSG_WAIT_FACILITIES: _int(1),
    Tag.PRIVACY_INDICATOR: _int(1),
    Tag.SOURCE_SUBADDRESS: _octets(2, 23),
    Tag.DEST_SUBADDRESS: _octets(2, 23),
    Tag.USER_MESSAGE_REFERENCE: _int(2),
    Tag.USER_RESPONSE_CODE: _int(1),
    Tag.SOURCE_PORT: _int(2),
    Tag.DESTINATION_PORT: _int(2),
    Tag.SAR_MSG_REF_NUM: _int(2),
    Tag.LANGUAGE_INDICATOR: _int(1),
    Tag.SAR_TOTAL_SEGMENTS: _int(1),
    Tag.SAR_SEGMENT_SEQNUM: _int(1),
    Tag.SC_INTERFACE_VERSION: _int(1),
    Tag.CALLBACK_NUM_PRES_IND: _int(1),
    Tag.CALLBACK_NUM_ATAG: _octets(0, 65),
    Tag.NUMBER_OF_MESSAGES: _int(1),
    Tag.CALLBACK_NUM: _octets(4, 19),
    Tag.DPF_RESULT: _int(1),
    Tag.SET_DPF: _int(1),
    Tag.MS_AVAILABILITY_STATUS: _int(1),
    Tag.NETWORK_ERROR_CODE: _octets(3, 3),
    Tag.MESSAGE_PAYLOAD: _octets(0, 0xFFFF),
    Tag.DELIVERY_FAILURE_REASON: _int(1),
    Tag.MORE_MESSAGES_TO_SEND: _int(1),
    Tag.MESSAGE_STATE: _int(1),
    Tag.USSD_SERVICE_OP: _int(1),
    Tag.DISPLAY_TIME: _int(1),
    Tag.SMS_SIGNAL: _int(2),
    Tag.MS_VALIDITY: _int(1),
    Tag.ALERT_ON_MESSAGE_DELIVERY: TlvSpec(TlvKind.EMPTY, 0, 0),
    Tag.ITS_REPLY_TYPE: _int(1),
    Tag.ITS_SESSION_INFO: _octets(2, 2),
}


def is_vendor_tag(tag: int) -> bool:
    """Vendor-specific tags live in 0x1400-0x3FFF (section 5.3.2)."""
    return 0x1400 <= tag <= 0x3FFF


class Tlv(NamedTuple):
    """One optional parameter: its tag and its value octets, exactly as on the wire."""

    tag: int
    value: bytes

    @classmethod
    def of_int(cls, tag: int, value: int) -> Tlv:
        """An integer TLV sized by the tag's spec (1 octet for unknown tags)."""
        spec = TLV_SPECS.get(tag)
        size = spec.min_len if spec is not None and spec.kind is TlvKind.INT else 1
        return cls(tag, value.to_bytes(size, "big"))

    @classmethod
    def of_cstring(cls, tag: int, value: str) -> Tlv:
        """A C-octet-string TLV: the text plus its terminating NUL."""
        return cls(tag, value.encode("latin-1") + b"\0")


def validate_tlv(tlv: Tlv) -> CommandStatus | None:
    """The status to answer if a *standard* tag has a length its spec forbids, else None.

    Unknown and vendor tags are accepted as they are.
    """
    spec = TLV_SPECS.get(tlv.tag)
    if spec is None:
        return None
    if not spec.min_len <= len(tlv.value) <= spec.max_len:
        return CommandStatus.ESME_RINVPARLEN
    return None


def _find(tlvs: tuple[Tlv, ...], tag: int) -> bytes | None:
    for t in tlvs:
        if t.tag == tag:
            return t.value
    return None


def tlv_octets(tlvs: tuple[Tlv, ...], tag: int) -> bytes | None:
    """The raw value of the first TLV with ``tag``, or None."""
    return _find(tlvs, tag)


def tlv_int(tlvs: tuple[Tlv, ...], tag: int) -> int | None:
    """The first TLV with ``tag`` read as an unsigned big-endian integer, or None.

    Tolerant of a carrier that sends an integer in more or fewer octets than the spec.
    """
    value = _find(tlvs, tag)
    if value is None or not value:
        return None
    return int.from_bytes(value, "big")


def tlv_cstring(tlvs: tuple[Tlv, ...], tag: int) -> str | None:
    """The first TLV with ``tag`` read as text, or None.

    Tolerant of a missing terminating NUL, which some SMSCs omit on
    ``receipted_message_id``.
    """
    value = _find(tlvs, tag)
    if value is None:
        return None
    nul = value.find(b"\0")
    if nul >= 0:
        value = value[:nul]
    return value.decode("latin-1")
