"""Field kinds and the field tables' vocabulary (SMPP 3.4 sections 3.1 and 4).

A PDU body is a fixed sequence of mandatory fields; each PDU class lists its fields as a
table of :class:`Field` rows, and one generic encoder/decoder (``codec.py``) serves them
all (the table-driven idea of python-smpplib, without its session coupling).

Lengths follow the spec's "Var. max N" convention: ``limit`` counts the terminating NUL
of a C-octet string, so ``system_id`` (max 16) carries at most 15 characters.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from smppgw.protocol.status import CommandStatus

__all__ = [
    "DestAddress",
    "DestFlag",
    "Field",
    "FieldKind",
    "UnsuccessSme",
]


class FieldKind(enum.IntEnum):
    """How a mandatory field is laid out on the wire."""

    CSTRING = 1  # C-octet string: octets then NUL; limit includes the NUL
    U8 = 2  # 1-octet unsigned integer
    TIME = 3  # C-octet string that is empty or exactly 16 characters (section 7.1.1)
    SHORT_MESSAGE = 4  # sm_length (1 octet) then that many octets
    DEST_LIST = 5  # submit_multi: number_of_dests then dest_address entries
    UNSUCCESS_LIST = 6  # submit_multi_resp: no_unsuccess then unsuccess_sme entries


class Field(NamedTuple):
    """One row of a PDU's field table."""

    name: str
    kind: FieldKind
    limit: int  # max octets (C-strings: including the NUL); 255 for U8
    status: CommandStatus  # what to answer when this field is malformed


class DestFlag(enum.IntEnum):
    SME_ADDRESS = 1
    DISTRIBUTION_LIST = 2


@dataclass(frozen=True, slots=True)
class DestAddress:
    """One ``dest_address`` of ``submit_multi`` (section 4.5.1.1).

    A distribution list carries only ``dl_name``; an SME address carries ton, npi, addr.
    """

    dest_flag: int = DestFlag.SME_ADDRESS
    dest_addr_ton: int = 0
    dest_addr_npi: int = 0
    destination_addr: str = ""
    dl_name: str = ""


@dataclass(frozen=True, slots=True)
class UnsuccessSme:
    """One ``unsuccess_sme`` of ``submit_multi_resp`` (section 4.5.2.1)."""

    dest_addr_ton: int = 0
    dest_addr_npi: int = 0
    destination_addr: str = ""
    error_status_code: int = 0
