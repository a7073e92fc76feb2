"""Hypothesis strategies for every SMPP PDU, driven by the PDU classes' ``FIELDS`` tables.

Reusable by any test module (``tests/`` is on ``sys.path`` under pytest)::

    from pdu_strategies import any_pdu, pdus

    @given(pdus(SubmitSm))
    def test_something(pdu: SubmitSm) -> None: ...

Every PDU drawn is *valid within the spec limits the codec enforces*: C-octet strings are
latin-1 without NUL and at most ``limit - 1`` characters, TIME fields are empty or 16
characters, integers are octets, ``short_message`` is at most 254 octets, destination
lists hold 1..``max_dests`` entries (the spec allows 254; kept small for speed), and
TLVs mix standard, vendor (0x1400-0x3FFF) and unknown tags with arbitrary values (the
codec keeps TLV values raw, so any value of any standard tag must survive a round trip).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeVar

from hypothesis import strategies as st

from smppgw.protocol.fields import DestAddress, DestFlag, Field, FieldKind, UnsuccessSme
from smppgw.protocol.pdus import PDU_CLASSES, Pdu
from smppgw.protocol.tlv import Tag, Tlv

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = [
    "ALL_PDU_CLASSES",
    "any_pdu",
    "cstrings",
    "dest_addresses",
    "pdus",
    "tlv_lists",
    "tlvs",
    "u8",
    "u32",
]

P = TypeVar("P", bound=Pdu)

ALL_PDU_CLASSES: tuple[type[Pdu], ...] = tuple(PDU_CLASSES.values())

u8 = st.integers(min_value=0, max_value=0xFF)
u32 = st.integers(min_value=0, max_value=0xFFFFFFFF)

#: Every latin-1 character but NUL, digits and letters first so shrinking stays readable.
LATIN1 = st.characters(min_codepoint=1, max_codepoint=0xFF)
ASCII = st.characters(min_codepoint=0x20, max_codepoint=0x7E)


def cstrings(limit: int, alphabet: st.SearchStrategy[str] = LATIN1) -> st.SearchStrategy[str]:
    """Text for a C-octet string whose spec limit (NUL included) is ``limit``."""
    return st.text(alphabet, max_size=limit - 1)


#: A TIME field: empty, or 16 characters (absolute ``YYMMDDhhmmsstnnp`` or relative
#: ``...R``; the codec only checks the length, ``smppgw.protocol.time`` the syntax).
times = st.one_of(
    st.just(""),
    st.just("261125120000000+"),
    st.just("000001000000000R"),
    st.text(LATIN1, min_size=16, max_size=16),
)

_STANDARD_TAGS = [int(t) for t in Tag]


def tlvs(max_value_size: int = 64) -> st.SearchStrategy[Tlv]:
    """One TLV: a standard tag, a vendor tag or any tag at all, with an arbitrary value."""
    tag = st.one_of(
        st.sampled_from(_STANDARD_TAGS),
        st.integers(min_value=0x1400, max_value=0x3FFF),  # vendor-specific range
        st.integers(min_value=0, max_value=0xFFFF),  # reserved/unknown included
    )
    return st.builds(Tlv, tag, st.binary(max_size=max_value_size))


def tlv_lists(max_size: int = 4, max_value_size: int = 64) -> st.SearchStrategy[tuple[Tlv, ...]]:
    """TLVs in wire order (duplicates allowed: the codec keeps them as they come)."""
    return st.lists(tlvs(max_value_size), max_size=max_size).map(tuple)


def dest_addresses(max_dests: int = 5) -> st.SearchStrategy[tuple[DestAddress, ...]]:
    """``submit_multi`` destinations: SME addresses and distribution lists, 1..max_dests.

    A distribution list carries only ``dl_name`` and an SME address no ``dl_name``: the
    other fields are not on the wire, so anything else could not round-trip.
    """
    sme = st.builds(
        DestAddress,
        dest_flag=st.just(int(DestFlag.SME_ADDRESS)),
        dest_addr_ton=u8,
        dest_addr_npi=u8,
        destination_addr=cstrings(21),
    )
    dl = st.builds(
        DestAddress, dest_flag=st.just(int(DestFlag.DISTRIBUTION_LIST)), dl_name=cstrings(21)
    )
    return st.lists(st.one_of(sme, dl), min_size=1, max_size=max_dests).map(tuple)


def unsuccess_smes(max_smes: int = 5) -> st.SearchStrategy[tuple[UnsuccessSme, ...]]:
    sme = st.builds(
        UnsuccessSme,
        dest_addr_ton=u8,
        dest_addr_npi=u8,
        destination_addr=cstrings(21),
        error_status_code=u32,
    )
    return st.lists(sme, max_size=max_smes).map(tuple)


def field_values(
    field: Field, *, alphabet: st.SearchStrategy[str] = LATIN1, max_dests: int = 5
) -> st.SearchStrategy[Any]:
    """Valid values for one row of a ``FIELDS`` table."""
    kind = field.kind
    if kind is FieldKind.CSTRING:
        return cstrings(field.limit, alphabet)
    if kind is FieldKind.TIME:
        return times
    if kind is FieldKind.U8:
        return u8
    if kind is FieldKind.SHORT_MESSAGE:
        return st.binary(max_size=field.limit)
    if kind is FieldKind.DEST_LIST:
        return dest_addresses(max_dests)
    if kind is FieldKind.UNSUCCESS_LIST:
        return unsuccess_smes()
    raise AssertionError(f"no strategy for {kind!r}")


def pdus(
    cls: type[P],
    *,
    tlv_strategy: st.SearchStrategy[tuple[Tlv, ...]] | None = None,
    alphabet: st.SearchStrategy[str] = LATIN1,
    overrides: dict[str, st.SearchStrategy[Any]] | None = None,
) -> st.SearchStrategy[P]:
    """Valid PDUs of class ``cls`` with any header values.

    Args:
        tlv_strategy: the ``tlvs`` tuple; default :func:`tlv_lists`.
        alphabet: characters of the C-octet strings (default: latin-1 without NUL).
        overrides: strategies replacing the table-derived one for named fields.
    """
    kwargs: dict[str, st.SearchStrategy[Any]] = {
        "sequence_number": u32,
        "command_status": u32,
        "tlvs": tlv_lists() if tlv_strategy is None else tlv_strategy,
    }
    for field in cls.FIELDS:
        kwargs[field.name] = field_values(field, alphabet=alphabet)
    kwargs.update(overrides or {})
    build: Callable[..., P] = cls
    return st.fixed_dictionaries(kwargs).map(lambda d: build(**d))


#: Any valid PDU of any of the 27 classes.
any_pdu: st.SearchStrategy[Pdu] = st.sampled_from(ALL_PDU_CLASSES).flatmap(pdus)
