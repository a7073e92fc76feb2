"""A carrier bind as ``CarrierInbound`` sees it, for tests that feed it deliveries
without a socket: answers are kept, it may be closed, and the test says when the
carrier has read our answers (``SmppLink.when_peer_has_read``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

    from smppgw.protocol.pdus import Pdu


class AnsweredLink:
    def __init__(self) -> None:
        self.closed = False
        self.answers: list[Pdu] = []
        self.unread: list[Callable[[], None]] = []

    def respond(self, pdu: Pdu) -> None:
        self.answers.append(pdu)

    def when_peer_has_read(self, callback: Callable[[], None]) -> None:
        self.unread.append(callback)

    def peer_reads(self) -> None:
        """The carrier answers a request we sent after our answers so far."""
        for told in self.unread:
            told()
        self.unread.clear()
