"""Receipts (and MOs) to partners: one deliverer task per partner, at-least-once.

The pipeline journals each partner's receipts in the outbox and tells the server which
partners have new ones (:meth:`ReceiptDelivery.queued`); the partner's deliverer sends
them through any of its receiver/transceiver links that has room in its window
(``_next_receiver``: a session that stopped answering holds back none of the others'
receipts), and acknowledges them in the outbox (in batches) only after the partner's
``deliver_sm_resp``. Receipts of a partner that is not bound stay in the outbox and go
out when it binds; a receipt that
was refused or timed out is read back from the outbox after a pause (``RETRY_FIRST``,
doubling up to ``RETRY_MAX``; at once when the partner binds again), and one refused
with an error that says "never" (``ESME_RX_P_APPN``, ``ESME_RX_R_APPN``) is dropped. A
bind made as SMPP 3.3 gets what it is sent without TLVs (:func:`without_tlvs`).

Split from ``partner_server.py`` (sessions, binds and submits stay there).
"""

from __future__ import annotations

import dataclasses
from collections import deque
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING

import structlog
import trio

from smppgw.net.link import LinkClosed, SmppLink
from smppgw.protocol.codec import decode_pdu, encode_pdu
from smppgw.protocol.errors import SmppError
from smppgw.protocol.pdus import Pdu
from smppgw.protocol.status import CommandStatus
from smppgw.store import StoreError

if TYPE_CHECKING:
    from collections.abc import Callable

    from smppgw.store import NewReceipt, Store

__all__ = [
    "MAX_FRESH",
    "RECEIPT_BATCH",
    "RETRY_FIRST",
    "RETRY_MAX",
    "ReceiptDelivery",
    "without_tlvs",
]

log = structlog.get_logger("smppgw.partners")

#: Receipts taken from the outbox per read, per partner.
RECEIPT_BATCH = 500
#: Receipts held in memory per bound partner before the rest wait in the outbox.
MAX_FRESH = 10_000
#: Seconds before the outbox is read again after a read failed.
READ_RETRY = 1.0
#: After a partner answers a receipt with an error (or not at all), the outbox is read
#: again only after a pause: this long the first time, twice as long each time after,
#: at most :data:`RETRY_MAX`. Without it a partner that refuses a receipt got it back
#: at once, thousands of times a second.
RETRY_FIRST = 1.0
RETRY_MAX = 60.0
#: Answers that say the partner will never take it (SMPP 3.4: "permanent application
#: error", "reject message"): not sent again.
_REFUSED_FOR_GOOD = frozenset({CommandStatus.ESME_RX_P_APPN, CommandStatus.ESME_RX_R_APPN})


@dataclass
class _Partner:
    """The live state of one partner: its receiving links and receipt deliverer."""

    system_id: str
    receivers: list[SmppLink] = field(default_factory=list)
    wake: trio.Event = field(default_factory=trio.Event)
    #: Receipts handed over from memory as they were journaled: (outbox id, PDU octets,
    #: the message id it reports on, None for an MO).
    fresh: deque[tuple[int, bytes, int | None]] = field(default_factory=deque)
    #: The outbox may hold receipts not in ``fresh`` (sent while unbound, or failed).
    backlog: bool = True
    #: Outbox ids in ``fresh``, in flight, or answered but not yet marked in the outbox.
    known: set[int] = field(default_factory=set)
    #: The highest outbox id an outbox read returned: a receipt handed over from memory
    #: at or below it was read (and sent) already, or acknowledged since. Outbox ids
    #: are never reused (AUTOINCREMENT, schema v8), so the mark stays true.
    read_up_to: int = 0
    #: Ids acknowledged (and so gone from ``known``) while an outbox read ran: that read
    #: may still return them. Empty (and not filled) between reads.
    reading: bool = False
    acked_since_read: set[int] = field(default_factory=set)
    acked: list[int] = field(default_factory=list)
    ack_wake: trio.Event = field(default_factory=trio.Event)
    rr: int = 0
    #: Pauses in a row (see RETRY_FIRST) and when the current one ends (trio time);
    #: ``unpause`` ends it early (the partner bound again).
    failures: int = 0
    retry_at: float = 0.0
    unpause: trio.Event = field(default_factory=trio.Event)


class ReceiptDelivery:
    """The deliverers of every partner that ever bound to receive (or got an MO).

    Args:
        store: the outbox.
        on_sent: called with ``(system_id, message_id)`` when a receipt for an MT
            message was written to the partner (the server's latency histogram).
    """

    def __init__(self, store: Store, *, on_sent: Callable[[str, int], None]) -> None:
        self.store = store
        self._on_sent = on_sent
        self._live: dict[str, _Partner] = {}
        #: Receiving links bound as SMPP 3.3: what they get is sent without TLVs.
        self._no_tlvs: set[SmppLink] = set()
        self._nursery: trio.Nursery | None = None
        self.sent = 0
        self.acked = 0
        #: Receipts the partner answered with an error (sent again later, or dropped
        #: when the error says never).
        self.refused = 0

    def start(self, nursery: trio.Nursery) -> None:
        """Deliverer tasks run in ``nursery`` (the server's)."""
        self._nursery = nursery

    def receiver_bound(self, system_id: str, link: SmppLink, *, tlvs: bool = True) -> None:
        """``tlvs`` False: an SMPP 3.3 bind, which has no TLVs; its receipts and MO go
        without them (the receipt text carries the id and state)."""
        live = self.partner(system_id)
        live.receivers.append(link)
        live.failures, live.retry_at = 0, 0.0  # a new bind: try it at once
        live.unpause.set()
        if not tlvs:
            self._no_tlvs.add(link)
        live.backlog = True
        live.wake.set()

    def receiver_gone(self, system_id: str, link: SmppLink) -> None:
        live = self._live.get(system_id)
        if live is not None and link in live.receivers:
            live.receivers.remove(link)
        self._no_tlvs.discard(link)

    def queued(self, receipts: list[tuple[int, NewReceipt]]) -> None:
        """These receipts were journaled: send them from memory when the partner is bound
        (no outbox read), else they wait in the outbox for its next bind."""
        for receipt_id, receipt in receipts:
            live = self._live.get(receipt.partner)
            if live is None:
                continue
            if receipt_id in live.known or receipt_id <= live.read_up_to:
                # An outbox read (while the pipeline's flush was finishing) got it first.
                continue
            if live.receivers and len(live.fresh) < MAX_FRESH:
                live.fresh.append((receipt_id, receipt.body, receipt.message_id))
                live.known.add(receipt_id)
            else:
                live.backlog = True
            live.wake.set()

    def partner(self, system_id: str) -> _Partner:
        """The partner's live state; its deliverer task starts with it."""
        live = self._live.get(system_id)
        if live is None:
            live = self._live[system_id] = _Partner(system_id)
            assert self._nursery is not None
            self._nursery.start_soon(self._deliver, live)
        return live

    async def _deliver(self, live: _Partner) -> None:
        """One task per partner that ever bound to receive: send its receipts, fresh
        ones from memory and any backlog from the outbox, and mark them delivered in
        the outbox (in batches) once the partner answered ``deliver_sm_resp``."""
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._ack, live)
            while True:
                await live.wake.wait()
                live.wake = trio.Event()
                while live.receivers:
                    items = await self._next_receipts(live)
                    if not items:
                        break
                    for index, (receipt_id, body, message_id) in enumerate(items):
                        link = self._next_receiver(live)
                        if link is None:
                            for rid, _, _ in items[index:]:
                                live.known.discard(rid)
                            live.backlog = True
                            break
                        try:
                            # The journaled octets as they are: no decode and encode again
                            # (but for a 3.3 bind, which must not get TLVs).
                            await link.send_encoded_request(
                                without_tlvs(body) if link in self._no_tlvs else body,
                                partial(self._receipt_answered, live, receipt_id),
                            )
                            self.sent += 1
                            if message_id is not None:
                                self._on_sent(live.system_id, message_id)
                        except (LinkClosed, SmppError):
                            live.known.discard(receipt_id)
                            live.backlog = True

    async def _next_receipts(self, live: _Partner) -> list[tuple[int, bytes, int | None]]:
        items = [live.fresh.popleft() for _ in range(min(len(live.fresh), RECEIPT_BATCH))]
        if items or not live.backlog:
            return items
        if live.retry_at > trio.current_time():  # the partner refused: a pause first
            with trio.move_on_at(live.retry_at):
                await live.unpause.wait()
        live.unpause = trio.Event()
        live.backlog = False
        live.reading = True
        try:
            pending = await self.store.pending_receipts(live.system_id, limit=RECEIPT_BATCH)
        except StoreError as exc:
            log.warning(
                "cannot read waiting receipts; trying again",
                system_id=live.system_id,
                error=str(exc),
            )
            live.backlog = True
            await trio.sleep(READ_RETRY)
            live.wake.set()
            return []
        finally:
            live.reading = False
        if pending:
            live.read_up_to = max(live.read_up_to, pending[-1].id)
        skip = live.known | live.acked_since_read
        live.acked_since_read.clear()
        items = [(r.id, r.body, r.message_id) for r in pending if r.id not in skip]
        live.known.update(rid for rid, _, _ in items)
        if len(pending) == RECEIPT_BATCH:
            live.backlog = True  # more may wait behind these
        return items

    def _receipt_answered(
        self, live: _Partner, receipt_id: int, request: Pdu, result: Pdu | BaseException
    ) -> None:
        status = result.command_status if isinstance(result, Pdu) else None
        if status == 0:
            live.failures = 0
            live.acked.append(receipt_id)
            live.ack_wake.set()
            return
        if status is not None:
            self.refused += 1
        if status in _REFUSED_FOR_GOOD:
            log.warning(
                "partner refused a receipt for good; not sent again",
                system_id=live.system_id,
                outbox_id=receipt_id,
                status=status,
            )
            live.acked.append(receipt_id)  # out of the outbox, as an answered one
            live.ack_wake.set()
            return
        # Not delivered (refused, timed out, session gone): it stays in the outbox and
        # is read back from there, after a pause.
        now = trio.current_time()
        if now >= live.retry_at:  # the first failure since the last pause: a longer one
            live.failures += 1
            live.retry_at = now + min(RETRY_MAX, RETRY_FIRST * 2 ** (live.failures - 1))
        live.known.discard(receipt_id)
        live.backlog = True
        live.wake.set()

    async def _ack(self, live: _Partner) -> None:
        while True:
            await live.ack_wake.wait()
            live.ack_wake = trio.Event()
            ids, live.acked = live.acked, []
            if not ids:
                continue
            try:
                await self.store.ack_receipts(ids)
            except StoreError:
                live.acked[:0] = ids  # try again with the next ones
                await trio.sleep(0.5)
                live.ack_wake.set()
                continue
            self.acked += len(ids)
            live.known.difference_update(ids)
            if live.reading:
                live.acked_since_read.update(ids)

    def _next_receiver(self, live: _Partner) -> SmppLink | None:
        """The link for the next receipt: the last one while its window has room, else
        the next that has room (round robin), else the next (its window will free).

        Why not plain round robin: receipts spread one by one over four sessions cost
        four writes (and four reads of the answers) where one would do, and every
        fourth receipt waited for a slow session's window while the others had room."""
        receivers = [link for link in live.receivers if not link.closed]
        if not receivers:
            return None
        count = len(receivers)
        for step in range(count):
            index = (live.rr + step) % count
            if receivers[index].window_free:
                live.rr = index
                return receivers[index]
        live.rr = (live.rr + 1) % count
        return receivers[live.rr]


def without_tlvs(octets: bytes) -> bytes:
    """An encoded PDU again without its TLVs (for an SMPP 3.3 peer); as it was if it
    has none."""
    pdu = decode_pdu(octets)
    return octets if not pdu.tlvs else encode_pdu(dataclasses.replace(pdu, tlvs=()))
