"""A partner's ``submit_sm`` TLVs: which are refused, which go on to the carrier.

Sans-I/O, used by admission. Why not forward everything, nor nothing:

- The gateway itself acts on some: ``message_payload`` (the text), ``sar_*`` (a part of
  the partner's own long message, rebuilt as a UDH or as the carrier's ``split``
  wants), ``user_message_reference`` (echoed in the partner's receipt: it is the
  partner's reference, not the carrier's) and ``more_messages_to_send`` (about the
  partner's session, not ours). These never go on.
- The other standard ``submit_sm`` TLVs (SMPP 3.4 4.4.1) change how the handset gets
  the message: application ports (a message for an app, not the inbox), the subunit
  (SIM data download), display time, callback number, ``ms_validity``, privacy,
  language, USSD. Dropping one turned such a message into a plain SMS in the inbox, so
  they are journaled with the message and sent with every part (an SMSC ignores a TLV
  it does not know: SMPP 3.4 3.2.3).
- ``ms_msg_wait_facilities`` sets a handset's message-waiting indicator, which
  admission refuses as data_coding too (0xC0-0xEF): ``ESME_ROPTPARNOTALLWD``.
- A vendor tag (0x1400-0x3FFF) means something to one SMSC only, and the partner does
  not know which carrier its message takes: it is journaled only when some carrier
  lists it (``carriers[].vendor_tlvs``), and sent only to the carriers that list it
  (``gateway/carrier_pdu.py``). Nor are ``data_sm``'s own
  TLVs (network and bearer types, ``qos_time_to_live``, ``set_dpf``), which a
  ``submit_sm`` does not carry.

A standard TLV of a length its spec forbids is refused with ``ESME_RINVPARLEN``.
"""

from __future__ import annotations

from smppgw.protocol.codec import pack_tlvs
from smppgw.protocol.status import CommandStatus as S
from smppgw.protocol.tlv import Tag, Tlv, validate_tlv

__all__ = ["FORWARDED_TAGS", "NOT_ALLOWED_TAGS", "forwarded_tlvs", "tlv_refusal"]

#: Standard submit_sm TLVs the carrier gets with every part of the message.
FORWARDED_TAGS = frozenset(
    {
        Tag.SOURCE_PORT,
        Tag.DESTINATION_PORT,
        Tag.SOURCE_ADDR_SUBUNIT,
        Tag.DEST_ADDR_SUBUNIT,
        Tag.PAYLOAD_TYPE,
        Tag.PRIVACY_INDICATOR,
        Tag.CALLBACK_NUM,
        Tag.CALLBACK_NUM_PRES_IND,
        Tag.CALLBACK_NUM_ATAG,
        Tag.SOURCE_SUBADDRESS,
        Tag.DEST_SUBADDRESS,
        Tag.USER_RESPONSE_CODE,
        Tag.DISPLAY_TIME,
        Tag.SMS_SIGNAL,
        Tag.MS_VALIDITY,
        Tag.NUMBER_OF_MESSAGES,
        Tag.ALERT_ON_MESSAGE_DELIVERY,
        Tag.LANGUAGE_INDICATOR,
        Tag.ITS_REPLY_TYPE,
        Tag.ITS_SESSION_INFO,
        Tag.USSD_SERVICE_OP,
    }
)
#: Refused with ESME_ROPTPARNOTALLWD (see the module docstring).
NOT_ALLOWED_TAGS = frozenset({Tag.MS_MSG_WAIT_FACILITIES})


def tlv_refusal(tlvs: tuple[Tlv, ...]) -> tuple[int, str] | None:
    """The status and reason for the first TLV admission cannot take, or None."""
    for tlv in tlvs:
        if validate_tlv(tlv) is not None:
            return S.ESME_RINVPARLEN, f"TLV 0x{tlv.tag:04X}: {len(tlv.value)} octets"
        if tlv.tag in NOT_ALLOWED_TAGS:
            return S.ESME_ROPTPARNOTALLWD, f"TLV 0x{tlv.tag:04X} is not offered"
    return None


def forwarded_tlvs(tlvs: tuple[Tlv, ...], vendor_tags: frozenset[int] = frozenset()) -> bytes:
    """The TLVs to journal and send with every part, packed (``b""``: none):
    the standard ones of :data:`FORWARDED_TAGS`, and the vendor tags some carrier takes."""
    kept = tuple(t for t in tlvs if t.tag in FORWARDED_TAGS or t.tag in vendor_tags)
    return pack_tlvs(kept) if kept else b""
