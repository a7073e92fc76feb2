"""Which number a destination is, as the opt-out list writes it; and the list's check of
messages that waited since admission.

:func:`opt_out_key` is sans-I/O. The list (``store/opt_out.py``) keeps international
digits; partners write the same subscriber as ``84912345678``, ``+84912345678``,
``0084912345678``, national ``0912345678``, or ``912345678`` with TON 2 (national).
All of them must find the subscriber's opt-out, or a refusal is bypassed by writing the
number another way.
"""

from __future__ import annotations

import sqlite3
from functools import partial
from typing import TYPE_CHECKING

import structlog

from smppgw.gateway.routing import normalise_msisdn
from smppgw.store import StoreError
from smppgw.store.opt_out import opted_out, refuses

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Sequence

    from smppgw.gateway.outbound import OutboundMessage
    from smppgw.store import Store

    #: ``MtPipeline.release_check``: the ids of the messages that must not go.
    ReleaseCheckFn = Callable[[Sequence[OutboundMessage]], Awaitable[set[int]]]

__all__ = ["NATIONAL_TON", "OPTED_OUT_ERROR", "ReleaseCheck", "opt_out_key", "refused_on_release"]

log = structlog.get_logger("smppgw.mt")

#: The error of a message refused when it was due: its number had opted out meanwhile.
OPTED_OUT_ERROR = "the number opted out of marketing before it was sent"

#: SMPP 3.4 5.2.5: TON 2 is a national number.
NATIONAL_TON = 2


def opt_out_key(destination: str, ton: int, country_code: str) -> str | None:
    """``destination`` in international digits; None when it is not a phone number
    (an alphanumeric address cannot opt out)."""
    written = destination.strip().replace(" ", "")
    digits = normalise_msisdn(written)  # "+" and "00" dropped, as routing does
    if digits == written:  # no international prefix: national forms
        if digits.startswith("0"):
            digits = country_code + digits[1:]
        elif ton == NATIONAL_TON:
            digits = country_code + digits
    if not digits or not digits.isascii() or not digits.isdigit():
        return None
    return digits


class ReleaseCheck:
    """The opt-out check of messages that waited since admission (a schedule, a
    moderator): ``MtPipeline.release_check``. A subscriber who opts out tonight must not
    get tomorrow morning's campaign, though admission let it in yesterday.

    Args:
        applies: whether a partner's messages are checked (admission's rule: its
            ``opt_out``, by default its traffic class).
        payers: a partner and its parents, whose opt-outs also refuse its messages.
        country_code: of national destinations.
        store: the journal, read (not written) for the list.
    """

    def __init__(
        self,
        applies: Callable[[str], bool],
        payers: Callable[[str], Sequence[str]],
        country_code: Callable[[], str],
        store: Store,
    ) -> None:
        self._applies = applies
        self._payers = payers
        self._country_code = country_code
        self._store = store

    async def __call__(self, messages: Sequence[OutboundMessage]) -> set[int]:
        """The ids of ``messages`` whose number is on the list for their partner."""
        country = self._country_code()
        keys: dict[int, tuple[str, Sequence[str]]] = {}
        for m in messages:
            if self._applies(m.partner):
                key = opt_out_key(m.destination_addr, m.dest_ton, country)
                if key is not None:
                    keys[m.id] = (key, self._payers(m.partner))
        if not keys:
            return set()
        numbers = [key for key, _ in keys.values()]
        lists = await self._store.read(partial(opted_out, msisdns=numbers))
        return {i for i, (key, payers) in keys.items() if refuses(lists.get(key), payers)}


async def refused_on_release(
    messages: Sequence[OutboundMessage],
    check: ReleaseCheckFn | None,
) -> set[int]:
    """The ids ``check`` (a :class:`ReleaseCheck`) refuses among ``messages``; none when
    there is no check or it cannot read the journal: they go, as admission let them in
    (logged)."""
    if check is None or not messages:
        return set()
    try:
        return await check(messages)
    except (StoreError, sqlite3.Error, RuntimeError) as exc:  # RuntimeError: readers closed
        log.warning("opt-out list unreadable: waiting messages sent", error=str(exc))
        return set()
