"""Text encodings of SMPP short messages, and how many SMS a text takes.

One module per data_coding (:mod:`.gsm7`, :mod:`.ucs2`, :mod:`.latin1`), the
capacities and safe cut points of parts (:mod:`.parts`), and the choice of the cheapest
encoding (:mod:`.choose`). Splitting into parts and reassembling them is
:mod:`smppgw.protocol.concat`.
"""

from __future__ import annotations

from smppgw.protocol.text import gsm7, latin1, ucs2
from smppgw.protocol.text.choose import (
    EncodedText,
    choose_encoding,
    decode_text,
    encode_text,
    strip_diacritics,
)
from smppgw.protocol.text.errors import TextDecodeError, TextEncodeError
from smppgw.protocol.text.parts import (
    DC_BINARY,
    DC_DEFAULT,
    DC_IA5,
    DC_LATIN1,
    DC_OCTET,
    DC_UCS2,
    MAX_PARTS,
    MAX_PAYLOAD,
    SplitMode,
    UnitKind,
    count_parts,
    fits_one_sms,
    multi_capacity,
    part_bounds,
    single_capacity,
    unit_kind,
)

__all__ = [
    "DC_BINARY",
    "DC_DEFAULT",
    "DC_IA5",
    "DC_LATIN1",
    "DC_OCTET",
    "DC_UCS2",
    "MAX_PARTS",
    "MAX_PAYLOAD",
    "EncodedText",
    "SplitMode",
    "TextDecodeError",
    "TextEncodeError",
    "UnitKind",
    "choose_encoding",
    "count_parts",
    "decode_text",
    "encode_text",
    "fits_one_sms",
    "gsm7",
    "latin1",
    "multi_capacity",
    "part_bounds",
    "single_capacity",
    "strip_diacritics",
    "ucs2",
    "unit_kind",
]
