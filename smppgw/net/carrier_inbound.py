"""What a carrier sends us: ``deliver_sm`` (receipts and MO), journaled before answered.

Split from ``carrier.py`` by concern: the bind loops and the MT senders live there, the
inbound side here. Rules (see also the carrier module's theory of operation):

- a ``deliver_sm`` is answered ``deliver_sm_resp`` only once it is in the journal; if the
  journal cannot take it, ``ESME_RX_T_APPN`` asks the carrier to deliver it again;
- a redelivery is recognised by its dedup key (``smppgw.gateway.inbound``) and answered
  without being processed twice;
- a receipt is applied to its message through the MT pipeline; one that arrives before
  its ``submit_sm_resp`` is known is held and tried again a few times;
- a receipt journaled (so answered) but not applied when the daemon died is applied at
  the next start (:meth:`CarrierInbound.replay_unapplied`): the carrier will not send it
  again, and a redelivery would be dropped as a duplicate by its dedup key;
- an MO goes to the ``mo_sink`` (the daemon: partners' short codes, later scenarios).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import time
import weakref
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

import structlog
import trio

from smppgw.gateway.inbound import (
    MO_DEDUP_WINDOW,
    PROCESS_TOKEN,
    classify_receipt,
    is_receipt,
    mo_dedup_key,
    mo_key,
    receipt_dedup_key,
)
from smppgw.protocol.codec import pack_tlvs
from smppgw.protocol.message_id import MessageIdError, receipt_key, resp_key
from smppgw.protocol.pdus import AlertNotification, DataSm, DeliverSm, Pdu
from smppgw.protocol.receipt import MessageState as ReceiptState
from smppgw.protocol.receipt import ReceiptError, parse_receipt
from smppgw.protocol.session import make_response
from smppgw.protocol.status import CommandStatus
from smppgw.protocol.tlv import Tag
from smppgw.store import InboundKind, NewInbound, StoreError

if TYPE_CHECKING:
    from smppgw.gateway.mt import MtPipeline
    from smppgw.net.link import SmppLink
    from smppgw.store import Store, StoredInbound

__all__ = ["HELD_RECEIPT_DELAY", "HELD_RECEIPT_TRIES", "CarrierInbound", "MoSink"]

log = structlog.get_logger("smppgw.carrier")

#: ``sink(inbound_id, pdu, carrier)`` is given each new MO after it is journaled; it
#: marks it processed once it has done with it.
MoSink = Callable[[int, DeliverSm, str], Awaitable[None]]

#: Binds whose read answers are remembered (see ``CarrierInbound._answer_read``).
ANSWERS_READ_BINDS = 256

#: Receipts that arrive before their submit_sm_resp is known: tries and spacing.
HELD_RECEIPT_TRIES = 5
HELD_RECEIPT_DELAY = 2.0


class CarrierInbound:
    """The inbound side of one carrier's binds (all of them share it)."""

    def __init__(
        self,
        name: str,
        settings: Any,
        pipeline: MtPipeline,
        store: Store,
        *,
        mo_sink: MoSink | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.name = name
        self.settings = settings
        self.pipeline = pipeline
        self.store = store
        self._mo_sink = mo_sink
        self._clock = clock
        self._held: list[tuple[float, int, DeliverSm, int]] = []
        #: (when, one sender's MO from the first that failed on): handed on again then.
        self._mo_retry: list[tuple[float, list[tuple[int, DeliverSm]]]] = []
        self._sessions: weakref.WeakKeyDictionary[SmppLink, str] = weakref.WeakKeyDictionary()
        self._session_serial = 0
        # Per bind, the last MO serial whose answer the carrier read (MoKey); the
        # newest binds' only, so that reconnects cannot grow it.
        self._answers_read: OrderedDict[str, int] = OrderedDict()
        self.counts = {"deliveries": 0, "refused": 0, "dup_in": 0}
        self.log = log.bind(carrier=name)

    async def handle(self, link: SmppLink, batch: Sequence[Pdu]) -> None:
        """The link handler of a carrier bind: deliveries, alerts, and refusals."""
        deliveries: list[DeliverSm] = []
        for pdu in batch:
            if isinstance(pdu, DeliverSm):
                deliveries.append(pdu)
            elif isinstance(pdu, DataSm):
                link.respond(make_response(pdu, CommandStatus.ESME_RX_R_APPN))
            elif isinstance(pdu, AlertNotification):
                self.log.info("alert_notification", source=pdu.source_addr)
            else:
                link.respond(make_response(pdu, CommandStatus.ESME_RINVCMDID))
        if deliveries:
            await self._on_deliveries(link, deliveries)

    async def _on_deliveries(self, link: SmppLink, pdus: list[DeliverSm]) -> None:
        now = self._clock()
        session = self._session_of(link)
        live = self._live_sessions()
        answers_read = dict(self._answers_read)  # the writer thread reads a copy
        items: list[NewInbound] = []
        receipts: list[tuple[str, str, int, str | None] | None] = []
        last_mo = -1
        for pdu in pdus:
            carrier_id = None
            if is_receipt(pdu):
                try:
                    info = classify_receipt(pdu)
                except ReceiptError:
                    self.log.warning("unreadable receipt", text=pdu.short_message[:80])
                    receipts.append(None)
                    items.append(
                        self._inbound(pdu, InboundKind.RECEIPT, mo_dedup_key(pdu, now), None)
                    )
                    continue
                fmt = self.settings.message_id_format
                try:
                    key = (resp_key if info.from_tlv else receipt_key)(info.carrier_id, fmt)
                except MessageIdError:
                    key = info.carrier_id
                carrier_id = key
                receipts.append((key, info.stat, int(info.state), info.error))
                items.append(
                    self._inbound(pdu, InboundKind.RECEIPT, receipt_dedup_key(info), carrier_id)
                )
            else:
                receipts.append(None)
                window = getattr(self.settings, "mo_dedup_window", MO_DEDUP_WINDOW)
                mo = mo_key(pdu, now, session, window)
                last_mo = mo.serial
                item = self._inbound(pdu, InboundKind.MO, mo.key, None)
                items.append(
                    dataclasses.replace(
                        item,
                        redelivery_prefixes=mo.prefixes,
                        live_sessions=live,
                        answers_read=answers_read,
                    )
                )
        try:
            results = await self.store.journal_inbound(items)
        except StoreError as exc:
            self.counts["refused"] += len(pdus)
            self.log.warning(
                "cannot journal deliveries; asking the carrier to retry",
                error=str(exc),
                count=len(pdus),
            )
            for pdu in pdus:
                link.respond(make_response(pdu, CommandStatus.ESME_RX_T_APPN))
            return
        for pdu in pdus:
            link.respond(make_response(pdu))
        if last_mo >= 0:
            link.when_peer_has_read(functools.partial(self._answer_read, session, last_mo))
        self.counts["deliveries"] += len(pdus)
        processed: list[int] = []
        applied: list[int] = []
        mo_by_sender: dict[str, list[tuple[int, DeliverSm]]] = {}
        for pdu, result, receipt in zip(pdus, results, receipts, strict=True):
            if not result.new:
                self.counts["dup_in"] += 1
                continue
            if receipt is not None:
                key, _stat, state, error = receipt
                if await self._try_receipt(key, state, error):
                    applied.append(result.inbound_id)
                else:
                    self.pipeline.receipt_held()
                    self._held.append(
                        (trio.current_time() + HELD_RECEIPT_DELAY, 1, pdu, result.inbound_id)
                    )
            elif not is_receipt(pdu):
                if self._mo_sink is not None:
                    mo_by_sender.setdefault(pdu.source_addr, []).append((result.inbound_id, pdu))
                else:
                    self.log.info("MO received (no scenario engine)", inbound_id=result.inbound_id)
                    processed.append(result.inbound_id)
        if mo_by_sender:
            # One subscriber's MO in the order they came ("DOI X" before "Y"); different
            # subscribers' at once, so that their steps share the writer's commits.
            async with trio.open_nursery() as nursery:
                for sender_mo in mo_by_sender.values():
                    nursery.start_soon(self._sink_in_order, sender_mo)
        if applied:
            # Marked processed only once the outcome they caused is written (the
            # pipeline's next flush): a kill in between replays them at start.
            self.pipeline.receipts_applied(applied)
        if processed:
            await self.store.mark_inbound_processed(processed)

    def _session_of(self, link: SmppLink) -> str:
        """This bind's name in MO keys: unique in this run (see ``MoKey``)."""
        session = self._sessions.get(link)
        if session is None:
            self._session_serial += 1
            session = f"{PROCESS_TOKEN}.{self.name}.{self._session_serial}"
            self._sessions[link] = session
        return session

    def _answer_read(self, session: str, serial: int) -> None:
        """The carrier read our answers to this bind's MO up to ``serial``."""
        answers = self._answers_read
        answers[session] = max(serial, answers.get(session, -1))
        answers.move_to_end(session)
        if len(answers) > ANSWERS_READ_BINDS:
            answers.popitem(last=False)

    def _live_sessions(self) -> frozenset[str]:
        return frozenset(s for link, s in self._sessions.items() if not link.closed)

    async def _sink_in_order(self, items: list[tuple[int, DeliverSm]]) -> None:
        """Hand one sender's MO on in order. One the journal refuses now (a scenario's
        step or the partner's outbox cannot be written) is handed on again a little
        later, with those behind it: it is journaled and answered already, so nothing
        is lost, and the error must not end the bind (nor, through it, the daemon)."""
        assert self._mo_sink is not None
        for index, (inbound_id, pdu) in enumerate(items):
            try:
                await self._mo_sink(inbound_id, pdu, self.name)
            except StoreError as exc:
                self.log.warning(
                    "MO not handled now (the journal refused); trying again",
                    inbound_id=inbound_id,
                    error=str(exc),
                )
                self._mo_retry.append((trio.current_time() + HELD_RECEIPT_DELAY, items[index:]))
                return

    def _inbound(
        self,
        pdu: DeliverSm,
        kind: InboundKind,
        key: str,
        carrier_id: str | None,
    ) -> NewInbound:
        return NewInbound(
            smsc=self.name,
            dedup_key=key,
            kind=kind,
            source_addr=pdu.source_addr,
            destination_addr=pdu.destination_addr,
            # An MO may carry its text in message_payload instead (the journal keeps
            # whichever there is: a replay after a crash must see the text).
            body=pdu.short_message or pdu.tlv_octets(Tag.MESSAGE_PAYLOAD) or b"",
            source_ton=pdu.source_addr_ton,
            source_npi=pdu.source_addr_npi,
            dest_ton=pdu.dest_addr_ton,
            dest_npi=pdu.dest_addr_npi,
            data_coding=pdu.data_coding,
            esm_class=pdu.esm_class,
            carrier_id=carrier_id,
            tlvs=_kept_tlvs(pdu) if kind is InboundKind.MO else b"",
        )

    async def _apply_receipt(self, key: str, state: int, error: str | None) -> bool:
        return await self.pipeline.match_receipt(self.name, key, ReceiptState(state), error)

    async def _try_receipt(self, key: str, state: int, error: str | None) -> bool | None:
        """:meth:`_apply_receipt` on a live bind; None when the journal could not be
        read now: the receipt is held and tried again, as one that came too early, but
        such a try does not count towards giving up on it (it is not unmatched). A
        restart's replay uses the raising one: a receipt it cannot apply stays
        unprocessed for the next start."""
        try:
            return await self._apply_receipt(key, state, error)
        except StoreError as exc:
            self.log.warning("cannot match a receipt now; holding it", error=str(exc))
            return None

    async def replay_unapplied(self, rows: Sequence[StoredInbound]) -> int:
        """Apply this carrier's receipts among ``rows`` (the journal's unprocessed
        inbound, read at start-up before the carriers bind): journaled and answered
        before the daemon last stopped, never applied. Returns how many were replayed.

        The key and state are the ones journaled (``carrier_id``, the dedup key's last
        field), so a receipt that came only as TLVs replays too. Applying one that is
        being handled right now as well is harmless: the first final state wins. One
        that matches nothing now never will (its message was sent again under another
        carrier id): counted unmatched and marked processed, as a held one would be.
        """
        done: list[int] = []
        for row in rows:
            if row.kind is not InboundKind.RECEIPT or row.smsc != self.name:
                continue
            if row.carrier_id is None:  # an unreadable receipt, kept for the record
                continue
            try:
                state = ReceiptState(int(row.dedup_key.rsplit(":", 1)[1]))
            except (ValueError, IndexError):
                continue
            error: str | None = None
            with contextlib.suppress(ReceiptError):
                error = parse_receipt(row.body).err
            if not await self._apply_receipt(row.carrier_id, int(state), error):
                self.pipeline.receipt_unmatched()
                self.log.warning("replayed receipt matches no message", carrier_id=row.carrier_id)
            done.append(row.id)
        if done:
            self.pipeline.receipts_applied(done)
            await self.pipeline.flush()
            self.log.info("replayed receipts journaled before the last stop", count=len(done))
        return len(done)

    async def retry_held(self) -> None:
        """Receipts that came before their submit_sm_resp was known: try again a few
        times, then count them unmatched (they stay in the journal for reconciliation).
        And MO the journal refused to handle (:meth:`_sink_in_order`): again, as long
        as it takes."""
        while True:
            await trio.sleep(HELD_RECEIPT_DELAY / 2)
            now = trio.current_time()
            mo_due = [items for when, items in self._mo_retry if when <= now]
            self._mo_retry = [(w, items) for w, items in self._mo_retry if w > now]
            for items in mo_due:
                await self._sink_in_order(items)
            due = [h for h in self._held if h[0] <= now]
            if not due:
                continue
            self._held = [h for h in self._held if h[0] > now]
            done: list[int] = []
            for _, tries, pdu, inbound_id in due:
                info = classify_receipt(pdu)
                fmt = self.settings.message_id_format
                try:
                    key = (resp_key if info.from_tlv else receipt_key)(info.carrier_id, fmt)
                except MessageIdError:
                    key = info.carrier_id
                applied = await self._try_receipt(key, int(info.state), info.error)
                if applied:
                    done.append(inbound_id)
                elif applied is None or tries < HELD_RECEIPT_TRIES:
                    tries += applied is not None  # a journal that failed: not a try
                    self._held.append((now + HELD_RECEIPT_DELAY, tries, pdu, inbound_id))
                else:
                    self.pipeline.receipt_unmatched()
                    self.log.warning("receipt matches no message", carrier_id=info.carrier_id)
                    done.append(inbound_id)
            if done:
                self.pipeline.receipts_applied(done)


def _kept_tlvs(pdu: DeliverSm) -> bytes:
    """What of an MO's TLVs the journal keeps: all but ``message_payload``, whose text
    is the journaled body already. (``sar_*`` may be all that makes it a part of a
    longer message, and a restart's replay must still see that; a receipt's TLVs are
    read at once and not kept.)"""
    kept = tuple(t for t in pdu.tlvs if t.tag != Tag.MESSAGE_PAYLOAD)
    return pack_tlvs(kept) if kept else b""
