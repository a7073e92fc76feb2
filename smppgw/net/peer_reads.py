"""Knowing when the peer has read what we sent: the bookkeeping behind
``SmppLink.when_peer_has_read``.

A byte stream keeps its order, so a peer that answers a request has read everything we
queued before that request. A callback that wants to know "the peer has read what is
queued now" therefore waits for the answer to the *next* request we send: it is
*unread* until a request follows it, then *attached* to that request's sequence number,
and told when the answer comes (never, if the request fails or the link ends).

Why: an SMSC delivers an MO again when our ``deliver_sm_resp`` did not reach it; one it
provably read is not delivered again (see ``gateway.inbound.MoKey``). When no request
of ours follows soon (a receiver bind carries none), the link sends an ``enquire_link``
at once, at most one every :data:`NUDGE_SPACING` seconds (:meth:`PeerReads.wait` says
when); later callbacks wait for the next request.

No I/O and no trio here: the link tells this object what it sent and what was answered.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["NUDGE_SPACING", "PeerReads"]

#: Seconds between the enquire_links sent to follow waiting callbacks.
NUDGE_SPACING = 1.0


class PeerReads:
    """Callbacks waiting for the peer to show it read what was queued before them."""

    def __init__(self) -> None:
        # Not yet followed by a request, and those waiting for the answer to the
        # request that followed them (by its sequence number).
        self._unread: list[Callable[[], None]] = []
        self._attached: dict[int, list[Callable[[], None]]] = {}
        self._last_nudge = -math.inf

    def wait(self, callback: Callable[[], None], now: float) -> bool:
        """Add ``callback``; True when the caller should send an ``enquire_link`` now
        to follow it (none was sent for this in the last :data:`NUDGE_SPACING`)."""
        self._unread.append(callback)
        if now - self._last_nudge >= NUDGE_SPACING:
            self._last_nudge = now
            return True
        return False

    def sent(self, sequence_number: int) -> None:
        """A request went out after everything queued so far: its answer tells the
        callbacks still unread."""
        if self._unread:
            self._attached[sequence_number] = self._unread
            self._unread = []

    def answered(self, sequence_number: int, *, ok: bool) -> None:
        """The request ``sequence_number`` got an answer (``ok``) or failed."""
        if self._attached:
            told = self._attached.pop(sequence_number, None)
            if told is not None and ok:
                for callback in told:
                    callback()

    def clear(self) -> None:
        """The link ended: no callback waiting now will ever be told."""
        self._unread, self._attached = [], {}
