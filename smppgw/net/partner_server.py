"""The partner side: an SMPP server where partners bind and submit.

Theory of operation
-------------------
Every connection is an :class:`~smppgw.net.link.SmppLink` in the ``SMSC`` role, run in
the server's session nursery (a session's failure closes that session only). The link
hands each read's requests to :meth:`PartnerServer._on_batch`:

- a bind is answered after the authenticator's verdict (password hashes are checked in
  a worker thread: scrypt costs tens of milliseconds), delayed when the address keeps
  failing, so a brute-force attempt is slow;
- the ``submit_sm`` of one read go through admission (validation, source, content,
  throttle: :mod:`smppgw.gateway.admission`), then all admitted ones are reserved against
  quota and journaled in ONE store call, and only then answered ``submit_sm_resp`` with
  the gateway's message id. A message is acknowledged only once it is durable;
- admitted messages go to the MT pipeline (held ones wait for moderation instead).

Receipts: the pipeline journals each partner's receipts in the outbox and tells the
server which partners have new ones; a per-partner deliverer sends them through any of
the partner's receiver/transceiver sessions and acknowledges them in the outbox only
after the partner's ``deliver_sm_resp`` (at-least-once). Receipts of a partner that is
not bound stay in the outbox and go out when it binds.

Back-pressure: when the gateway holds more than ``max_pending_messages`` unsent, new
submits are answered ``ESME_RMSGQFUL``; a journal that cannot write answers
``ESME_RX_T_APPN``; memory per session is bounded by the link.
"""

from __future__ import annotations

import ssl
import time
from collections import deque
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from functools import partial
from typing import TYPE_CHECKING, Any

import structlog
import trio

from smppgw.gateway.admission import Admission, Admitted, Refused
from smppgw.gateway.outbound import OutboundMessage
from smppgw.net.link import LinkClosed, SmppLink
from smppgw.protocol.codec import decode_pdu, encode_pdu
from smppgw.protocol.errors import SmppError
from smppgw.protocol.pdus import (
    BindReceiver,
    BindTransceiver,
    BindTransmitter,
    DeliverSm,
    Pdu,
    QuerySm,
    SubmitSm,
)
from smppgw.protocol.receipt import MessageState as ReceiptState
from smppgw.protocol.session import SmppConnection, make_response
from smppgw.protocol.smpp_time import format_smpp_time
from smppgw.protocol.states import Role
from smppgw.protocol.status import CommandStatus
from smppgw.store import NewReceipt, QuotaRefusal, Store, StoreError

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

    from smppgw.gateway.auth import Authenticator
    from smppgw.gateway.mt import MtPipeline

__all__ = ["PartnerServer", "ServerStatistics"]

log = structlog.get_logger("smppgw.partners")

_BINDS = (BindTransmitter, BindReceiver, BindTransceiver)
_RECEIVING = (BindReceiver, BindTransceiver)
#: Receipts taken from the outbox per read, per partner.
RECEIPT_BATCH = 500
#: Receipts held in memory per bound partner before the rest wait in the outbox.
MAX_FRESH = 10_000


@dataclass(eq=False)
class _Session:
    sid: str
    peer_ip: str
    link: SmppLink | None = None
    system_id: str | None = None
    receives: bool = False


@dataclass(frozen=True, slots=True)
class ServerStatistics:
    sessions: int
    bound: int
    binds_refused: int
    submits: int
    accepted: int
    refused_by_status: Mapping[int, int]
    receipts_sent: int
    receipts_acked: int


@dataclass
class _Partner:
    """The live state of one partner: its receiving sessions and receipt deliverer."""

    system_id: str
    receivers: list[_Session] = field(default_factory=list)
    wake: trio.Event = field(default_factory=trio.Event)
    #: Receipts handed over from memory as they were journaled: (outbox id, PDU octets).
    fresh: deque[tuple[int, bytes]] = field(default_factory=deque)
    #: The outbox may hold receipts not in ``fresh`` (sent while unbound, or failed).
    backlog: bool = True
    #: Outbox ids in ``fresh``, in flight, or answered but not yet marked in the outbox.
    known: set[int] = field(default_factory=set)
    acked: list[int] = field(default_factory=list)
    ack_wake: trio.Event = field(default_factory=trio.Event)
    rr: int = 0


class PartnerServer:
    """See the module docstring.

    Args:
        settings: the ``server`` section (listen, window, timeouts, limits).
        partners: the ``partners`` section by system_id (quota applies to every partner
            whose ``billing`` is not ``unmetered``: a message needs an order to cover it).
        store, pipeline: the journal and the MT pipeline.
        authenticator, admission: the decisions (``smppgw.gateway``).
    """

    def __init__(
        self,
        settings: Any,
        partners: Mapping[str, Any],
        *,
        store: Store,
        pipeline: MtPipeline,
        authenticator: Authenticator,
        admission: Admission,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.partners = dict(partners)
        self.store = store
        self.pipeline = pipeline
        self.auth = authenticator
        self.admission = admission
        self._clock = clock
        self.port: int | None = None
        self.tls_port: int | None = None
        self._sessions: dict[str, _Session] = {}
        self._live: dict[str, _Partner] = {}
        self._seq = 0
        self._nursery: trio.Nursery | None = None
        self._accepting = trio.CancelScope()
        self._counts = {"refused_binds": 0, "submits": 0, "accepted": 0, "sent": 0, "acked": 0}
        self._refused: dict[int, int] = {}
        self._short_codes = _short_code_owners(partners)

    # -- service ---------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
        """Listen and serve until cancelled; ``started(port)`` once listening."""
        listen = self.settings.listen
        listeners: list[Any] = list(await trio.open_tcp_listeners(listen.port, host=listen.host))
        self.port = listeners[0].socket.getsockname()[1]
        tls = self.settings.tls
        if tls is not None:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(str(tls.cert_file), str(tls.key_file))
            tls_listeners = await trio.open_ssl_over_tcp_listeners(
                tls.listen.port, context, host=tls.listen.host
            )
            transport = tls_listeners[0].transport_listener
            assert isinstance(transport, trio.SocketListener)
            self.tls_port = transport.socket.getsockname()[1]
            listeners += tls_listeners
        async with trio.open_nursery() as nursery:
            self._nursery = nursery

            async def accept(
                *, task_status: trio.TaskStatus[Any] = trio.TASK_STATUS_IGNORED
            ) -> None:
                with self._accepting:
                    await trio.serve_listeners(
                        self._on_connection,
                        listeners,
                        handler_nursery=nursery,
                        task_status=task_status,
                    )

            await nursery.start(accept)
            log.info(
                "partner server listening", host=listen.host, port=self.port, tls_port=self.tls_port
            )
            task_status.started(self.port)

    async def stop(self, grace: float) -> None:
        """Stop accepting, then unbind every partner session (bounded by ``grace``)."""
        self._accepting.cancel()
        async with trio.open_nursery() as nursery:
            for session in list(self._sessions.values()):
                if session.link is not None:
                    nursery.start_soon(session.link.unbind, grace)

    def reconfigure(self, settings: Any, partners: Mapping[str, Any]) -> None:
        """Apply a reloaded config; live binds stay (a disabled partner's next bind fails)."""
        self.settings = settings
        self.partners = dict(partners)
        self._short_codes = _short_code_owners(partners)
        self.auth.reconfigure(partners)
        self.admission.reconfigure(partners)

    async def _on_connection(self, stream: trio.SocketStream | trio.SSLStream[Any]) -> None:
        if len(self._sessions) >= self.settings.max_sessions:
            await stream.aclose()
            return
        self._seq += 1
        tcp = stream.transport_stream if isinstance(stream, trio.SSLStream) else stream
        try:
            peer_ip = str(tcp.socket.getpeername()[0])
        except OSError:
            return
        session = _Session(f"p{self._seq}", peer_ip)
        s = self.settings
        connection = SmppConnection(
            Role.SMSC,
            window=s.window,
            enquire_link_interval=s.enquire_link_interval,
            response_timeout=s.response_timeout,
            inactivity_timeout=s.idle_timeout,
        )
        link = SmppLink(
            stream,
            connection,
            partial(self._on_batch, session),
            name=session.sid,
            concurrent_batches=4,
        )
        session.link = link
        self._sessions[session.sid] = session
        try:
            await link.run()
        except Exception:
            log.exception("partner session failed", session=session.sid)
        finally:
            self._end_session(session)

    def _end_session(self, session: _Session) -> None:
        self._sessions.pop(session.sid, None)
        if session.system_id is not None:
            self.auth.bind_closed(session.system_id)
            live = self._live.get(session.system_id)
            if live is not None and session in live.receivers:
                live.receivers.remove(session)
            log.info("partner unbound", session=session.sid, system_id=session.system_id)

    # -- requests --------------------------------------------------------------------

    async def _on_batch(self, session: _Session, link: SmppLink, batch: Sequence[Pdu]) -> None:
        submits: list[SubmitSm] = []
        for pdu in batch:
            if isinstance(pdu, _BINDS):
                await self._on_bind(session, link, pdu)
            elif isinstance(pdu, SubmitSm):
                submits.append(pdu)
            elif isinstance(pdu, QuerySm):
                link.respond(await self._query(session, pdu))
            else:
                # data_sm, submit_multi, cancel/replace: not offered (yet).
                link.respond(make_response(pdu, CommandStatus.ESME_RINVCMDID))
        if submits:
            await self._on_submits(session, link, submits)

    async def _on_bind(
        self,
        session: _Session,
        link: SmppLink,
        pdu: BindTransmitter | BindReceiver | BindTransceiver,
    ) -> None:
        now = trio.current_time()
        delay = self.auth.bind_delay(session.peer_ip, now)
        if delay > 0:
            await trio.sleep(delay)
        status = await trio.to_thread.run_sync(
            self.auth.check_bind, pdu.system_id, pdu.password, session.peer_ip, trio.current_time()
        )
        if status != 0:
            self._counts["refused_binds"] += 1
            log.info(
                "bind refused",
                session=session.sid,
                system_id=pdu.system_id,
                peer=session.peer_ip,
                status=status,
            )
            link.respond(make_response(pdu, status))
            return
        if not self.auth.bind_opened(pdu.system_id):
            # Another bind took the last slot while this one was being checked.
            self._counts["refused_binds"] += 1
            link.respond(make_response(pdu, CommandStatus.ESME_RBINDFAIL))
            return
        session.system_id = pdu.system_id
        link.respond(make_response(pdu, system_id="SMPPGW"))
        log.info(
            "partner bound",
            session=session.sid,
            system_id=pdu.system_id,
            mode=type(pdu).__name__,
            peer=session.peer_ip,
        )
        if isinstance(pdu, _RECEIVING):
            session.receives = True
            live = self._partner(pdu.system_id)
            live.receivers.append(session)
            live.backlog = True
            live.wake.set()

    async def _on_submits(self, session: _Session, link: SmppLink, pdus: list[SubmitSm]) -> None:
        system_id = session.system_id
        if system_id is None:  # pragma: no cover - the state machine refuses it first
            for pdu in pdus:
                link.respond(make_response(pdu, CommandStatus.ESME_RINVBNDSTS))
            return
        self._counts["submits"] += len(pdus)
        if self.pipeline.queued >= self.settings.max_pending_messages:
            for pdu in pdus:
                self._refuse(link, pdu, CommandStatus.ESME_RMSGQFUL)
            return
        now = trio.current_time()
        admitted: list[tuple[SubmitSm, Admitted]] = []
        for pdu in pdus:
            verdict = self.admission.check(system_id, pdu, now)
            if isinstance(verdict, Refused):
                self._refuse(link, pdu, verdict.status)
            else:
                admitted.append((pdu, verdict))
        if not admitted:
            return
        metered = str(getattr(self.partners.get(system_id), "billing", "prepaid")) != "unmetered"
        quota: list[int | None] = [a.parts if metered else None for _, a in admitted]
        try:
            chain = self._payers(system_id)
            messages = [replace(a.message, held=True) if a.hold else a.message for _, a in admitted]
            results = await self.store.admit(messages, quota, payers=[chain] * len(admitted))
        except StoreError as exc:
            log.warning("journal refused submits", error=str(exc), count=len(admitted))
            for pdu, _ in admitted:
                self._refuse(link, pdu, exc.command_status)
            return
        for (pdu, verdict), result in zip(admitted, results, strict=True):
            if isinstance(result, QuotaRefusal):
                # No active order, or not enough left: the message cannot be paid for.
                self._refuse(link, pdu, CommandStatus.ESME_RX_R_APPN)
                continue
            self._counts["accepted"] += 1
            link.respond(make_response(pdu, message_id=str(result)))
            if not verdict.hold:
                self.pipeline.enqueue(OutboundMessage.of(result, verdict.message))

    def _payers(self, system_id: str) -> tuple[str, ...]:
        """Whose orders may pay: the partner, then its parent, and so on up (the
        config refuses cycles; the bound is a second guard)."""
        chain = [system_id]
        parent = getattr(self.partners.get(system_id), "parent", None)
        while parent and parent not in chain and len(chain) < 16:
            chain.append(parent)
            parent = getattr(self.partners.get(parent), "parent", None)
        return tuple(chain)

    async def _query(self, session: _Session, pdu: QuerySm) -> Pdu:
        """``query_sm``: the state of one of the partner's own messages (SMPP 3.4 4.8)."""
        try:
            message_id = int(pdu.message_id)
        except ValueError:
            return make_response(pdu, CommandStatus.ESME_RINVMSGID)
        try:
            stored = await self.store.get_message(message_id)
        except StoreError:
            return make_response(pdu, CommandStatus.ESME_RQUERYFAIL)
        if stored is None or stored.partner != session.system_id:
            # Another partner's message is as unknown as a missing one.
            return make_response(pdu, CommandStatus.ESME_RINVMSGID)
        state = _QUERY_STATE.get(str(stored.state), ReceiptState.UNKNOWN)
        final = state not in (ReceiptState.ENROUTE, ReceiptState.ACCEPTED)
        return make_response(
            pdu,
            message_id=pdu.message_id,
            final_date=(
                format_smpp_time(datetime.fromtimestamp(stored.updated_at, tz=UTC)) if final else ""
            ),
            message_state=int(state),
            error_code=(stored.final_status or 0) & 0xFF,
        )

    def _refuse(self, link: SmppLink, pdu: SubmitSm, status: int) -> None:
        self._refused[status] = self._refused.get(status, 0) + 1
        link.respond(make_response(pdu, status))

    # -- receipts to partners ----------------------------------------------------------

    def _partner(self, system_id: str) -> _Partner:
        live = self._live.get(system_id)
        if live is None:
            live = self._live[system_id] = _Partner(system_id)
            assert self._nursery is not None
            self._nursery.start_soon(self._deliver_receipts, live)
        return live

    async def forward_mo(self, pdu: DeliverSm) -> bool:
        """Put an MO for a partner's short code in that partner's outbox; False when no
        partner owns the short code. Parts of a long MO go as they came (with their
        UDH): the partner reassembles them, as its handsets' messages always were."""
        owner = self._short_codes.get(pdu.destination_addr.strip())
        if owner is None:
            return False
        item = NewReceipt(partner=owner, message_id=None, stat="MO", err=0, body=encode_pdu(pdu))
        [outbox_id] = await self.store.enqueue_receipts([item])
        self._partner(owner)  # a deliverer exists even before the partner's first bind
        self.receipts_queued([(outbox_id, item)])
        return True

    def receipts_queued(self, receipts: list[tuple[int, NewReceipt]]) -> None:
        """The pipeline journaled these receipts: send them from memory when the partner
        is bound (no outbox read), else they wait in the outbox for its next bind."""
        for receipt_id, receipt in receipts:
            live = self._live.get(receipt.partner)
            if live is None:
                continue
            if live.receivers and len(live.fresh) < MAX_FRESH:
                live.fresh.append((receipt_id, receipt.body))
                live.known.add(receipt_id)
            else:
                live.backlog = True
            live.wake.set()

    async def _deliver_receipts(self, live: _Partner) -> None:
        """One task per partner that ever bound to receive: send its receipts, fresh
        ones from memory and any backlog from the outbox, and mark them delivered in
        the outbox (in batches) once the partner answered ``deliver_sm_resp``."""
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._ack_receipts, live)
            while True:
                await live.wake.wait()
                live.wake = trio.Event()
                while live.receivers:
                    items = await self._next_receipts(live)
                    if not items:
                        break
                    for index, (receipt_id, body) in enumerate(items):
                        session = self._next_receiver(live)
                        if session is None or session.link is None:
                            for rid, _ in items[index:]:
                                live.known.discard(rid)
                            live.backlog = True
                            break
                        try:
                            await session.link.send_request(
                                decode_pdu(body), partial(self._receipt_answered, live, receipt_id)
                            )
                            self._counts["sent"] += 1
                        except (LinkClosed, SmppError):
                            live.known.discard(receipt_id)
                            live.backlog = True

    async def _next_receipts(self, live: _Partner) -> list[tuple[int, bytes]]:
        items = [live.fresh.popleft() for _ in range(min(len(live.fresh), RECEIPT_BATCH))]
        if items or not live.backlog:
            return items
        live.backlog = False
        pending = await self.store.pending_receipts(live.system_id, limit=RECEIPT_BATCH)
        items = [(r.id, r.body) for r in pending if r.id not in live.known]
        live.known.update(rid for rid, _ in items)
        if len(pending) == RECEIPT_BATCH:
            live.backlog = True  # more may wait behind these
        return items

    def _receipt_answered(
        self, live: _Partner, receipt_id: int, request: Pdu, result: Pdu | BaseException
    ) -> None:
        if isinstance(result, Pdu) and result.command_status == 0:
            live.acked.append(receipt_id)
            live.ack_wake.set()
        else:
            # Not delivered (refused, timed out, session gone): it stays in the outbox
            # and is read back from there.
            live.known.discard(receipt_id)
            live.backlog = True
            live.wake.set()

    async def _ack_receipts(self, live: _Partner) -> None:
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
            self._counts["acked"] += len(ids)
            live.known.difference_update(ids)

    def _next_receiver(self, live: _Partner) -> _Session | None:
        receivers = [s for s in live.receivers if s.link is not None and not s.link.closed]
        if not receivers:
            return None
        live.rr = (live.rr + 1) % len(receivers)
        return receivers[live.rr]

    def statistics(self) -> ServerStatistics:
        c = self._counts
        return ServerStatistics(
            sessions=len(self._sessions),
            bound=sum(1 for s in self._sessions.values() if s.system_id is not None),
            binds_refused=c["refused_binds"],
            submits=c["submits"],
            accepted=c["accepted"],
            refused_by_status=dict(self._refused),
            receipts_sent=c["sent"],
            receipts_acked=c["acked"],
        )


#: The journal's states as ``message_state`` values (SMPP 3.4 section 5.2.28).
_QUERY_STATE = {
    "accepted": ReceiptState.ENROUTE,
    "submitted": ReceiptState.ENROUTE,
    "held": ReceiptState.ACCEPTED,
    "delivered": ReceiptState.DELIVERED,
    "expired": ReceiptState.EXPIRED,
    "failed": ReceiptState.UNDELIVERABLE,
    "rejected": ReceiptState.REJECTED,
}


def _short_code_owners(partners: Mapping[str, Any]) -> dict[str, str]:
    return {
        code.strip(): system_id
        for system_id, partner in partners.items()
        for code in getattr(partner, "short_codes", ())
    }
