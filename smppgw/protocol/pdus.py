"""Every SMPP 3.4 PDU as a frozen, slotted dataclass (SMPP 3.4 section 4).

PDUs know nothing of sessions: the ``sequence_number`` a PDU carries is whatever it was
decoded with or built with, and the session (``session.py``) assigns its own when it
encodes. Each class lists its mandatory fields in ``FIELDS``, a table that the one generic
codec (``codec.py``) walks; the class's dataclass fields and its table are checked against
each other when this module is imported.

Optional parameters are a tuple of :class:`~smppgw.protocol.tlv.Tlv` in wire order, read
with :meth:`Pdu.tlv_int`, :meth:`Pdu.tlv_cstring` and :meth:`Pdu.tlv_octets`.

Classes that share a body layout share a private base (``submit_sm`` and ``deliver_sm``,
the three binds, the ``message_id`` responses). Do not subclass the public classes: the
codec finds a PDU's table by its exact type.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import ClassVar

from smppgw.protocol.commands import CommandId
from smppgw.protocol.fields import DestAddress, Field, FieldKind, UnsuccessSme
from smppgw.protocol.status import CommandStatus as S
from smppgw.protocol.tlv import Tlv, tlv_cstring, tlv_int, tlv_octets

__all__ = [
    "ADDRESS_LIMIT",
    "PDU_CLASSES",
    "RESPONSE_CLASS",
    "AlertNotification",
    "BindReceiver",
    "BindReceiverResp",
    "BindTransceiver",
    "BindTransceiverResp",
    "BindTransmitter",
    "BindTransmitterResp",
    "CancelSm",
    "CancelSmResp",
    "DataSm",
    "DataSmResp",
    "DeliverSm",
    "DeliverSmResp",
    "EnquireLink",
    "EnquireLinkResp",
    "GenericNack",
    "Outbind",
    "Pdu",
    "QuerySm",
    "QuerySmResp",
    "ReplaceSm",
    "ReplaceSmResp",
    "SubmitMulti",
    "SubmitMultiResp",
    "SubmitSm",
    "SubmitSmResp",
    "Unbind",
    "UnbindResp",
]

_TRUNCATED = S.ESME_RINVCMDLEN


def _cstr(name: str, limit: int, status: S) -> Field:
    return Field(name, FieldKind.CSTRING, limit, status)


def _u8(name: str) -> Field:
    return Field(name, FieldKind.U8, 255, _TRUNCATED)


def _time(name: str, status: S) -> Field:
    return Field(name, FieldKind.TIME, 17, status)


_SHORT_MESSAGE = Field("short_message", FieldKind.SHORT_MESSAGE, 254, S.ESME_RINVMSGLEN)
_MESSAGE_ID = _cstr("message_id", 65, S.ESME_RINVMSGID)
_SERVICE_TYPE = _cstr("service_type", 6, S.ESME_RINVSERTYP)


#: Octets of ``source_addr`` / ``destination_addr`` with their NUL, in most PDUs (5.2.8).
ADDRESS_LIMIT = 21


def _source(limit: int = ADDRESS_LIMIT) -> tuple[Field, ...]:
    return (
        _u8("source_addr_ton"),
        _u8("source_addr_npi"),
        _cstr("source_addr", limit, S.ESME_RINVSRCADR),
    )


def _dest(limit: int = ADDRESS_LIMIT) -> tuple[Field, ...]:
    return (
        _u8("dest_addr_ton"),
        _u8("dest_addr_npi"),
        _cstr("destination_addr", limit, S.ESME_RINVDSTADR),
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class Pdu:
    """Base of every PDU: the header fields a PDU owns, and its optional parameters."""

    command_id: ClassVar[CommandId]
    FIELDS: ClassVar[tuple[Field, ...]] = ()
    #: Whether this PDU type is a response (set per class from its command_id: read on
    #: every PDU in both directions, so not a property).
    is_response: ClassVar[bool] = False

    sequence_number: int = 0
    command_status: int = 0
    tlvs: tuple[Tlv, ...] = ()

    def __init_subclass__(cls) -> None:
        # No super() call: the slotted dataclass replaces this class, so its __class__
        # cell is stale; object.__init_subclass__ does nothing anyway.
        command_id = cls.__dict__.get("command_id")
        if command_id is not None:
            cls.is_response = bool(command_id & 0x80000000)

    def tlv_int(self, tag: int) -> int | None:
        """The TLV ``tag`` as an integer, or None when absent."""
        return tlv_int(self.tlvs, tag)

    def tlv_cstring(self, tag: int) -> str | None:
        """The TLV ``tag`` as text (NUL optional), or None when absent."""
        return tlv_cstring(self.tlvs, tag)

    def tlv_octets(self, tag: int) -> bytes | None:
        """The TLV ``tag``'s raw value, or None when absent."""
        return tlv_octets(self.tlvs, tag)


# -- bodies without mandatory fields -------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class GenericNack(Pdu):
    """Answer to a PDU that could not be read well enough for its own ``_resp`` (4.3)."""

    command_id = CommandId.GENERIC_NACK


@dataclass(frozen=True, slots=True, kw_only=True)
class Unbind(Pdu):
    command_id = CommandId.UNBIND


@dataclass(frozen=True, slots=True, kw_only=True)
class UnbindResp(Pdu):
    command_id = CommandId.UNBIND_RESP


@dataclass(frozen=True, slots=True, kw_only=True)
class EnquireLink(Pdu):
    command_id = CommandId.ENQUIRE_LINK


@dataclass(frozen=True, slots=True, kw_only=True)
class EnquireLinkResp(Pdu):
    command_id = CommandId.ENQUIRE_LINK_RESP


@dataclass(frozen=True, slots=True, kw_only=True)
class CancelSmResp(Pdu):
    command_id = CommandId.CANCEL_SM_RESP


@dataclass(frozen=True, slots=True, kw_only=True)
class ReplaceSmResp(Pdu):
    command_id = CommandId.REPLACE_SM_RESP


# -- binds (4.1) ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class _Bind(Pdu):
    FIELDS = (
        _cstr("system_id", 16, S.ESME_RINVSYSID),
        _cstr("password", 9, S.ESME_RINVPASWD),
        _cstr("system_type", 13, S.ESME_RINVSYSTYP),
        _u8("interface_version"),
        _u8("addr_ton"),
        _u8("addr_npi"),
        _cstr("address_range", 41, S.ESME_RINVPARLEN),
    )
    system_id: str = ""
    password: str = ""
    system_type: str = ""
    interface_version: int = 0x34
    addr_ton: int = 0
    addr_npi: int = 0
    address_range: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class BindTransmitter(_Bind):
    command_id = CommandId.BIND_TRANSMITTER


@dataclass(frozen=True, slots=True, kw_only=True)
class BindReceiver(_Bind):
    command_id = CommandId.BIND_RECEIVER


@dataclass(frozen=True, slots=True, kw_only=True)
class BindTransceiver(_Bind):
    command_id = CommandId.BIND_TRANSCEIVER


@dataclass(frozen=True, slots=True, kw_only=True)
class _BindResp(Pdu):
    """``system_id`` of the answering side; ``sc_interface_version`` may come as a TLV."""

    FIELDS = (_cstr("system_id", 16, S.ESME_RINVSYSID),)
    system_id: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class BindTransmitterResp(_BindResp):
    command_id = CommandId.BIND_TRANSMITTER_RESP


@dataclass(frozen=True, slots=True, kw_only=True)
class BindReceiverResp(_BindResp):
    command_id = CommandId.BIND_RECEIVER_RESP


@dataclass(frozen=True, slots=True, kw_only=True)
class BindTransceiverResp(_BindResp):
    command_id = CommandId.BIND_TRANSCEIVER_RESP


@dataclass(frozen=True, slots=True, kw_only=True)
class Outbind(Pdu):
    """The SMSC asks the ESME to bind as a receiver (4.1.7)."""

    command_id = CommandId.OUTBIND
    FIELDS = (
        _cstr("system_id", 16, S.ESME_RINVSYSID),
        _cstr("password", 9, S.ESME_RINVPASWD),
    )
    system_id: str = ""
    password: str = ""


# -- messages (4.4, 4.6) -------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class _ShortMessage(Pdu):
    """The body shared by ``submit_sm`` (4.4.1) and ``deliver_sm`` (4.6.1)."""

    FIELDS = (
        _SERVICE_TYPE,
        *_source(),
        *_dest(),
        _u8("esm_class"),
        _u8("protocol_id"),
        _u8("priority_flag"),
        _time("schedule_delivery_time", S.ESME_RINVSCHED),
        _time("validity_period", S.ESME_RINVEXPIRY),
        _u8("registered_delivery"),
        _u8("replace_if_present_flag"),
        _u8("data_coding"),
        _u8("sm_default_msg_id"),
        _SHORT_MESSAGE,
    )
    service_type: str = ""
    source_addr_ton: int = 0
    source_addr_npi: int = 0
    source_addr: str = ""
    dest_addr_ton: int = 0
    dest_addr_npi: int = 0
    destination_addr: str = ""
    esm_class: int = 0
    protocol_id: int = 0
    priority_flag: int = 0
    schedule_delivery_time: str = ""
    validity_period: str = ""
    registered_delivery: int = 0
    replace_if_present_flag: int = 0
    data_coding: int = 0
    sm_default_msg_id: int = 0
    short_message: bytes = b""


@dataclass(frozen=True, slots=True, kw_only=True)
class SubmitSm(_ShortMessage):
    command_id = CommandId.SUBMIT_SM


@dataclass(frozen=True, slots=True, kw_only=True)
class DeliverSm(_ShortMessage):
    """An MO message or, with ``esm_class`` 0x04, a delivery receipt."""

    command_id = CommandId.DELIVER_SM


@dataclass(frozen=True, slots=True, kw_only=True)
class _MessageIdResp(Pdu):
    """A response whose body is one ``message_id`` (absent when the status is an error)."""

    FIELDS = (_MESSAGE_ID,)
    message_id: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class SubmitSmResp(_MessageIdResp):
    command_id = CommandId.SUBMIT_SM_RESP


@dataclass(frozen=True, slots=True, kw_only=True)
class DeliverSmResp(_MessageIdResp):
    """``message_id`` is unused by the spec (NULL) but some SMSCs fill it."""

    command_id = CommandId.DELIVER_SM_RESP


@dataclass(frozen=True, slots=True, kw_only=True)
class DataSmResp(_MessageIdResp):
    command_id = CommandId.DATA_SM_RESP


@dataclass(frozen=True, slots=True, kw_only=True)
class SubmitMulti(Pdu):
    """One message to up to 254 destinations or distribution lists (4.5.1)."""

    command_id = CommandId.SUBMIT_MULTI
    FIELDS = (
        _SERVICE_TYPE,
        *_source(),
        Field("dest_addresses", FieldKind.DEST_LIST, 254, S.ESME_RINVNUMDESTS),
        _u8("esm_class"),
        _u8("protocol_id"),
        _u8("priority_flag"),
        _time("schedule_delivery_time", S.ESME_RINVSCHED),
        _time("validity_period", S.ESME_RINVEXPIRY),
        _u8("registered_delivery"),
        _u8("replace_if_present_flag"),
        _u8("data_coding"),
        _u8("sm_default_msg_id"),
        _SHORT_MESSAGE,
    )
    service_type: str = ""
    source_addr_ton: int = 0
    source_addr_npi: int = 0
    source_addr: str = ""
    dest_addresses: tuple[DestAddress, ...] = ()
    esm_class: int = 0
    protocol_id: int = 0
    priority_flag: int = 0
    schedule_delivery_time: str = ""
    validity_period: str = ""
    registered_delivery: int = 0
    replace_if_present_flag: int = 0
    data_coding: int = 0
    sm_default_msg_id: int = 0
    short_message: bytes = b""


@dataclass(frozen=True, slots=True, kw_only=True)
class SubmitMultiResp(Pdu):
    command_id = CommandId.SUBMIT_MULTI_RESP
    FIELDS = (
        _MESSAGE_ID,
        Field("unsuccess_smes", FieldKind.UNSUCCESS_LIST, 254, S.ESME_RINVNUMDESTS),
    )
    message_id: str = ""
    unsuccess_smes: tuple[UnsuccessSme, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class DataSm(Pdu):
    """Interactive/application data; the text travels in ``message_payload`` (4.7.1)."""

    command_id = CommandId.DATA_SM
    FIELDS = (
        _SERVICE_TYPE,
        *_source(65),
        *_dest(65),
        _u8("esm_class"),
        _u8("registered_delivery"),
        _u8("data_coding"),
    )
    service_type: str = ""
    source_addr_ton: int = 0
    source_addr_npi: int = 0
    source_addr: str = ""
    dest_addr_ton: int = 0
    dest_addr_npi: int = 0
    destination_addr: str = ""
    esm_class: int = 0
    registered_delivery: int = 0
    data_coding: int = 0


# -- message management (4.8-4.10) ---------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class QuerySm(Pdu):
    command_id = CommandId.QUERY_SM
    FIELDS = (_MESSAGE_ID, *_source())
    message_id: str = ""
    source_addr_ton: int = 0
    source_addr_npi: int = 0
    source_addr: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class QuerySmResp(Pdu):
    command_id = CommandId.QUERY_SM_RESP
    FIELDS = (
        _MESSAGE_ID,
        _time("final_date", S.ESME_RINVPARLEN),
        _u8("message_state"),
        _u8("error_code"),
    )
    message_id: str = ""
    final_date: str = ""
    message_state: int = 0
    error_code: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class CancelSm(Pdu):
    command_id = CommandId.CANCEL_SM
    FIELDS = (_SERVICE_TYPE, _MESSAGE_ID, *_source(), *_dest())
    service_type: str = ""
    message_id: str = ""
    source_addr_ton: int = 0
    source_addr_npi: int = 0
    source_addr: str = ""
    dest_addr_ton: int = 0
    dest_addr_npi: int = 0
    destination_addr: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class ReplaceSm(Pdu):
    command_id = CommandId.REPLACE_SM
    FIELDS = (
        _MESSAGE_ID,
        *_source(),
        _time("schedule_delivery_time", S.ESME_RINVSCHED),
        _time("validity_period", S.ESME_RINVEXPIRY),
        _u8("registered_delivery"),
        _u8("sm_default_msg_id"),
        _SHORT_MESSAGE,
    )
    message_id: str = ""
    source_addr_ton: int = 0
    source_addr_npi: int = 0
    source_addr: str = ""
    schedule_delivery_time: str = ""
    validity_period: str = ""
    registered_delivery: int = 0
    sm_default_msg_id: int = 0
    short_message: bytes = b""


@dataclass(frozen=True, slots=True, kw_only=True)
class AlertNotification(Pdu):
    """The SMSC tells the ESME a subscriber is reachable again (4.12.1); no response."""

    command_id = CommandId.ALERT_NOTIFICATION
    FIELDS = (
        *_source(65),
        _u8("esme_addr_ton"),
        _u8("esme_addr_npi"),
        _cstr("esme_addr", 65, S.ESME_RINVDSTADR),
    )
    source_addr_ton: int = 0
    source_addr_npi: int = 0
    source_addr: str = ""
    esme_addr_ton: int = 0
    esme_addr_npi: int = 0
    esme_addr: str = ""


PDU_CLASSES: dict[int, type[Pdu]] = {
    cls.command_id: cls
    for cls in (
        GenericNack,
        BindReceiver,
        BindReceiverResp,
        BindTransmitter,
        BindTransmitterResp,
        BindTransceiver,
        BindTransceiverResp,
        Outbind,
        Unbind,
        UnbindResp,
        EnquireLink,
        EnquireLinkResp,
        SubmitSm,
        SubmitSmResp,
        DeliverSm,
        DeliverSmResp,
        SubmitMulti,
        SubmitMultiResp,
        DataSm,
        DataSmResp,
        QuerySm,
        QuerySmResp,
        CancelSm,
        CancelSmResp,
        ReplaceSm,
        ReplaceSmResp,
        AlertNotification,
    )
}

#: The response class of each request class (``outbind`` and ``alert_notification`` have
#: none).
RESPONSE_CLASS: dict[type[Pdu], type[Pdu]] = {
    cls: PDU_CLASSES[cls.command_id | 0x80000000]
    for cls in PDU_CLASSES.values()
    if not cls.command_id & 0x80000000 and cls.command_id | 0x80000000 in PDU_CLASSES
}


def _check_tables() -> None:
    """Every class's table names exactly its own body fields, in declaration order."""
    header = {"sequence_number", "command_status", "tlvs"}
    for cls in PDU_CLASSES.values():
        body = [f.name for f in dataclasses.fields(cls) if f.name not in header]
        table = [f.name for f in cls.FIELDS]
        if body != table:
            raise AssertionError(f"{cls.__name__}: fields {body} != table {table}")


_check_tables()
