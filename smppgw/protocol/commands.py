"""SMPP 3.4 command ids (section 5.1.2.1).

A response's id is its request's id with the high bit set; :func:`response_id_for`
derives it rather than listing it twice.
"""

from __future__ import annotations

import enum

__all__ = ["RESPONSE_BIT", "CommandId", "is_response", "response_id_for"]

RESPONSE_BIT = 0x80000000


class CommandId(enum.IntEnum):
    GENERIC_NACK = 0x80000000
    BIND_RECEIVER = 0x00000001
    BIND_RECEIVER_RESP = 0x80000001
    BIND_TRANSMITTER = 0x00000002
    BIND_TRANSMITTER_RESP = 0x80000002
    QUERY_SM = 0x00000003
    QUERY_SM_RESP = 0x80000003
    SUBMIT_SM = 0x00000004
    SUBMIT_SM_RESP = 0x80000004
    DELIVER_SM = 0x00000005
    DELIVER_SM_RESP = 0x80000005
    UNBIND = 0x00000006
    UNBIND_RESP = 0x80000006
    REPLACE_SM = 0x00000007
    REPLACE_SM_RESP = 0x80000007
    CANCEL_SM = 0x00000008
    CANCEL_SM_RESP = 0x80000008
    BIND_TRANSCEIVER = 0x00000009
    BIND_TRANSCEIVER_RESP = 0x80000009
    OUTBIND = 0x0000000B
    ENQUIRE_LINK = 0x00000015
    ENQUIRE_LINK_RESP = 0x80000015
    SUBMIT_MULTI = 0x00000021
    SUBMIT_MULTI_RESP = 0x80000021
    ALERT_NOTIFICATION = 0x00000102
    DATA_SM = 0x00000103
    DATA_SM_RESP = 0x80000103


def is_response(command_id: int) -> bool:
    """Whether ``command_id`` names a response (``generic_nack`` included)."""
    return bool(command_id & RESPONSE_BIT)


def response_id_for(command_id: int) -> int:
    """The response command id for a request id (``submit_sm`` -> ``submit_sm_resp``)."""
    return command_id | RESPONSE_BIT
