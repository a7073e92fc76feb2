"""Mobile-originated messages from the simulated SMSC: building them, and a generator.

A text that does not fit one SMS is cut with :func:`smppgw.protocol.concat.split_message`
into parts carrying an 8-bit concatenation UDH (esm_class UDHI), as a handset's long
message reaches an SMSC. The encoding is the cheapest that carries the text (GSM 03.38,
else UCS2) unless the caller fixes ``data_coding``.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

import trio

from smppgw.protocol.concat import split_message
from smppgw.protocol.pdus import DeliverSm
from smppgw.protocol.text import SplitMode, choose_encoding, encode_text
from smppgw.protocol.tlv import Tag, Tlv

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

__all__ = ["ESM_CLASS_UDHI", "build_mo", "generate_mo", "ussd_tlvs"]

#: esm_class UDH indicator (SMPP 3.4 5.2.12).
ESM_CLASS_UDHI = 0x40


def ussd_tlvs(session: int) -> tuple[Tlv, ...]:
    """An MO as a USSD PSSR indication (``ussd_service_op`` 1) in session ``session``
    (``its_session_info``, two octets), as an SMSC relaying USSD over SMPP sends it."""
    return (
        Tlv(Tag.USSD_SERVICE_OP, b"\x01"),
        Tlv(Tag.ITS_SESSION_INFO, (session & 0xFFFF).to_bytes(2, "big")),
    )


def build_mo(
    source: str,
    destination: str,
    text: str,
    *,
    data_coding: int | None = None,
    reference: int = 0,
    tlvs: tuple[Tlv, ...] = (),
) -> list[DeliverSm]:
    """The ``deliver_sm`` PDUs (esm_class 0, or UDHI for parts) that carry ``text``.

    Raises:
        TextEncodeError: ``text`` does not fit ``data_coding``.
        ConcatError: the text needs more than 255 parts.
    """
    encoded = choose_encoding(text) if data_coding is None else encode_text(text, data_coding)
    segments = split_message(
        encoded.payload, encoded.data_coding, SplitMode.UDH8, reference=reference & 0xFF
    )
    return [
        DeliverSm(
            source_addr=source,
            source_addr_ton=1 if len(source) > 8 else 0,
            source_addr_npi=1 if len(source) > 8 else 0,
            destination_addr=destination,
            esm_class=ESM_CLASS_UDHI if segment.udhi else 0,
            data_coding=encoded.data_coding,
            short_message=segment.short_message,
            tlvs=tlvs,
        )
        for segment in segments
    ]


async def generate_mo(
    inject: Callable[[str, str, str], object],
    *,
    rate: float,
    count: int | None,
    sources: Sequence[str],
    destinations: Sequence[str],
    texts: Sequence[str],
    rng: random.Random | None = None,
) -> int:
    """Call ``inject(source, destination, text)`` ``count`` times (None: until cancelled)
    at ``rate`` per second, drawing each value from its list; returns how many.

    The pace is kept against a schedule (the n-th at ``start + n / rate``), so a slow
    call does not lower the average rate.
    """
    if rate <= 0:
        raise ValueError("rate must be above 0")
    if not sources or not destinations or not texts:
        raise ValueError("sources, destinations and texts must not be empty")
    rng = rng or random.Random()
    start = trio.current_time()
    sent = 0
    while count is None or sent < count:
        await trio.sleep_until(start + sent / rate)
        inject(rng.choice(sources), rng.choice(destinations), rng.choice(texts))
        sent += 1
    return sent
