"""The simulated SMSC: a server of SMPP sessions with accounts, receipts, MO and faults.

Theory of operation
-------------------
:meth:`SimulatedSmsc.run` listens and serves every connection as one
:class:`~smppgw.net.link.SmppLink` (``Role.SMSC``) in a session nursery, beside two
helper tasks of that session: the *sender*, which sends the session's queued
``deliver_sm`` (receipts and MO) from one task with ``send_request`` and a callback, so
a whole window is in flight; and the *delayer*, which releases submit responses held
back by the ``response_delay`` fault. A session that crashes is logged and closed; the
others go on.

Receipts and MO go to a system_id, not to a session:
:class:`~smppgw.sim.receipts.DeliveryRouter` picks one of the receiver or transceiver
sessions bound with that system_id (round robin), or queues the delivery, bounded per
system_id, until one binds. A delivery whose session ends before the answer comes is
queued again (at-least-once, as a real SMSC retries). Receipts come due in one heap
served by one task (:class:`~smppgw.sim.receipts.DueQueue`), never a task per message.

Message ids count up from ``first_id``, in hex (upper case, to exercise a gateway's
normalisation) or decimal, zero-padded to ``id_width``.

Records (``submits``, ``receipts``, ``mos``, ``binds``) are bounded deques for tests and
demos (``max_records`` each); :meth:`statistics` gives the counters. ``submits_recorded``
counts every submit ever recorded, so a reader paging through ``submits`` by absolute
index (``GET /submits?since=N``) can tell when old records already fell off the deque.
"""

from __future__ import annotations

import contextlib
import random
from collections import Counter, deque
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING, Any, Literal

import structlog
import trio

from smppgw.net.link import SmppLink
from smppgw.protocol.pdus import (
    BindReceiver,
    BindTransceiver,
    BindTransmitter,
    CancelSm,
    DataSm,
    Pdu,
    QuerySm,
    ReplaceSm,
    SubmitMulti,
    SubmitSm,
)
from smppgw.protocol.receipt import stat_word
from smppgw.protocol.session import SmppConnection, make_response
from smppgw.protocol.states import Role
from smppgw.protocol.status import CommandStatus
from smppgw.sim.faults import Faults, FaultStream
from smppgw.sim.mo import build_mo
from smppgw.sim.receipts import (
    Delivery,
    DeliveryRouter,
    DueQueue,
    Outbox,
    OutcomePicker,
    PendingReceipt,
    build_receipt,
    receipt_text,
)
from smppgw.sim.receipts import wants_receipt as _wants_receipt

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from smppgw.protocol.tlv import Tlv

__all__ = [
    "Account",
    "BindRecord",
    "MoRecord",
    "ReceiptRecord",
    "SimConfig",
    "SimStatistics",
    "SimulatedSmsc",
    "SubmitRecord",
]

log = structlog.get_logger("smppgw.sim")

_BIND_KINDS: dict[type[Pdu], str] = {
    BindTransmitter: "transmitter",
    BindReceiver: "receiver",
    BindTransceiver: "transceiver",
}
_UNSUPPORTED: dict[type[Pdu], int] = {
    QuerySm: CommandStatus.ESME_RQUERYFAIL,
    CancelSm: CommandStatus.ESME_RCANCELFAIL,
    ReplaceSm: CommandStatus.ESME_RREPLACEFAIL,
}


@dataclass(frozen=True, slots=True)
class Account:
    system_id: str
    password: str


@dataclass(frozen=True, slots=True, kw_only=True)
class SimConfig:
    """The simulator's settings; :meth:`from_settings` reads the daemon's
    ``SimulatorSettings`` (same shape, delays in seconds here)."""

    accounts: tuple[Account, ...] = (Account("smppgw", "smppgw"),)
    id_format: Literal["hex", "decimal"] = "hex"
    id_width: int = 0
    first_id: int = 0xF4240
    receipt_delay: float = 0.05
    outcomes: Mapping[str, float] = field(default_factory=lambda: {"DELIVRD": 1.0})
    seed: int | None = None
    system_id: str = "SMPPSIM"
    window: int = 64
    enquire_link_interval: float | None = 30.0
    response_timeout: float = 10.0
    max_queued: int = 100_000
    max_records: int = 100_000
    mo_source: str = "84912345678"
    mo_short_code: str = "8055"

    @classmethod
    def from_settings(cls, settings: Any, **overrides: Any) -> SimConfig:
        """From an ``smppgw.app.config_models.SimulatorSettings`` (read by attribute, so
        that this package need not import the app layer)."""
        values: dict[str, Any] = {
            "accounts": tuple(
                Account(a.system_id, a.password.get_secret_value()) for a in settings.accounts
            ),
            "id_format": settings.id_format,
            "receipt_delay": settings.receipt.delay_ms / 1000.0,
            "outcomes": dict(settings.receipt.outcomes.model_dump()),
            "mo_source": settings.mo.source_addr,
            "mo_short_code": settings.mo.short_code,
        }
        values.update(overrides)
        return cls(**values)


@dataclass(frozen=True, slots=True)
class SubmitRecord:
    session: str
    system_id: str
    command: str
    source: str
    destinations: tuple[str, ...]
    message_id: str
    status: int | None  # None: never answered (fault)
    registered_delivery: int
    data_coding: int
    short_message: bytes
    esm_class: int = 0
    tlvs: tuple[Tlv, ...] = ()
    validity_period: str = ""
    protocol_id: int = 0


@dataclass(frozen=True, slots=True)
class ReceiptRecord:
    system_id: str
    message_id: str
    stat: str
    status: int | None  # the deliver_sm_resp status; None if the session ended first


@dataclass(frozen=True, slots=True)
class MoRecord:
    system_id: str
    source: str
    destination: str
    text: str
    parts: int


@dataclass(frozen=True, slots=True)
class BindRecord:
    session: str
    system_id: str
    bind: str
    status: int


@dataclass(frozen=True, slots=True)
class SimStatistics:
    sessions: int
    receivers: int
    binds_ok: int
    binds_refused: int
    submits: int
    accepted: int
    refused: Mapping[str, int]
    unanswered: int
    receipts_scheduled: int
    receipts_sent: int
    receipts_answered: int
    mo_sent: int
    mo_answered: int
    redelivered: int
    queued: int
    dropped: int

    def to_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__slots__}


class _Session:
    def __init__(self, sid: str, stream: FaultStream) -> None:
        self.id = sid
        self.stream = stream
        self.link: SmppLink
        self.system_id = ""
        self.submits = 0
        self.outbox: Outbox
        self.delayed: deque[tuple[float, Pdu, bool]] = deque()
        self.delayed_ready = trio.Event()


class SimulatedSmsc:
    """A simulated SMSC; see the module's theory of operation.

    Args:
        config: accounts, id format, receipts, limits.
        faults: the faults in force (shared and changeable at run time).
        clock: wall-clock time for receipt dates (injectable for tests).
    """

    def __init__(
        self,
        config: SimConfig | None = None,
        *,
        faults: Faults | None = None,
        clock: Any = datetime.now,
    ) -> None:
        self.config = cfg = config or SimConfig()
        self.faults = faults or Faults()
        self.port: int | None = None
        self._clock = clock
        self._rng = random.Random(cfg.seed)
        self._outcomes = OutcomePicker(cfg.outcomes, self._rng)
        self._passwords = {a.system_id: a.password for a in cfg.accounts}
        self._next_id = cfg.first_id
        self._mo_ref = 0
        self._session_seq = 0
        self._sessions: dict[str, _Session] = {}
        self._router = DeliveryRouter(max_queued=cfg.max_queued, on_answer=self._answered)
        self._receipts: DueQueue[PendingReceipt] = DueQueue()
        n = cfg.max_records
        self.submits: deque[SubmitRecord] = deque(maxlen=n)
        self.receipts: deque[ReceiptRecord] = deque(maxlen=n)
        self.mos: deque[MoRecord] = deque(maxlen=n)
        self.binds: deque[BindRecord] = deque(maxlen=n)
        #: Submits ever appended to ``submits`` (the absolute index of the next one).
        self.submits_recorded = 0
        self._count: Counter[str] = Counter()
        self._refused: Counter[str] = Counter()

    # -- service -----------------------------------------------------------------------

    async def run(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Listen on ``host:port`` (0: any free port) and serve until cancelled;
        ``task_status.started(port)`` once listening.

        Raises:
            OSError: the address cannot be bound (raised from ``nursery.start``).
        """
        listeners = await trio.open_tcp_listeners(port, host=host)
        for extra in listeners[1:]:
            await extra.aclose()
        listener = listeners[0]
        self.port = listener.socket.getsockname()[1]
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self.run_receipts)
            await nursery.start(trio.serve_listeners, self.handle_connection, [listener])
            log.info("simulated SMSC listening", host=host, port=self.port)
            task_status.started(self.port)

    async def run_receipts(self) -> None:
        """Send receipts as they come due; :meth:`run` runs it. Run it yourself beside
        :meth:`handle_connection` when serving memory streams in tests."""
        await self._receipts.run(self._emit_receipt)

    async def handle_connection(self, stream: trio.abc.Stream) -> None:
        """Serve one connection until it ends; errors end this session only."""
        self._session_seq += 1
        session = _Session(f"sim-{self._session_seq}", FaultStream(stream, self.faults))
        cfg = self.config
        conn = SmppConnection(
            Role.SMSC,
            window=cfg.window,
            enquire_link_interval=cfg.enquire_link_interval,
            response_timeout=cfg.response_timeout,
        )
        session.link = SmppLink(
            session.stream, conn, partial(self._on_batch, session), name=session.id
        )
        session.outbox = Outbox(session.link)
        self._sessions[session.id] = session
        with structlog.contextvars.bound_contextvars(session=session.id):
            try:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._router.run_sender, session.outbox)
                    nursery.start_soon(self._delayer, session)
                    await session.link.run()
                    nursery.cancel_scope.cancel()
            except Exception:
                log.exception("simulator session failed")
            finally:
                self._end_session(session)

    def _end_session(self, session: _Session) -> None:
        self._sessions.pop(session.id, None)
        self._router.detach(session.outbox)
        log.info("simulator session ended", reason=session.link.close_reason)

    # -- requests ----------------------------------------------------------------------

    async def _on_batch(self, session: _Session, link: SmppLink, batch: Sequence[Pdu]) -> None:
        for pdu in batch:
            kind = type(pdu)
            if kind is SubmitSm or kind is DataSm or kind is SubmitMulti:
                self._on_submit(session, pdu)
            elif kind in _BIND_KINDS:
                self._on_bind(session, pdu)
            elif kind in _UNSUPPORTED:
                link.respond(make_response(pdu, _UNSUPPORTED[kind]))
            else:
                with contextlib.suppress(TypeError):  # e.g. a generic_nack has no answer
                    link.respond(make_response(pdu, CommandStatus.ESME_RINVCMDID))

    def _bind_status(self, pdu: BindTransmitter | BindReceiver | BindTransceiver) -> int:
        if self.faults.refuse_binds:
            return CommandStatus.ESME_RBINDFAIL
        password = self._passwords.get(pdu.system_id)
        if password is None:
            return CommandStatus.ESME_RINVSYSID
        if password != pdu.password:
            return CommandStatus.ESME_RINVPASWD
        return CommandStatus.ESME_ROK

    def _on_bind(self, session: _Session, pdu: Pdu) -> None:
        assert isinstance(pdu, BindTransmitter | BindReceiver | BindTransceiver)
        bind = _BIND_KINDS[type(pdu)]
        status = self._bind_status(pdu)
        session.link.respond(make_response(pdu, status, system_id=self.config.system_id))
        self.binds.append(BindRecord(session.id, pdu.system_id, bind, status))
        if status:
            self._count["binds_refused"] += 1
            log.info("bind refused", system_id=pdu.system_id, bind=bind, status=status)
            return
        self._count["binds_ok"] += 1
        session.system_id = pdu.system_id
        log.info("bound", system_id=pdu.system_id, bind=bind)
        if bind != "transmitter":
            self._router.attach(session.outbox, pdu.system_id)

    def _on_submit(self, session: _Session, pdu: Pdu) -> None:
        assert isinstance(pdu, SubmitSm | DataSm | SubmitMulti)
        faults = self.faults
        session.submits += 1
        self._count["submits"] += 1
        if faults.drop_after and session.submits > faults.drop_after:
            return  # the connection is being cut: this one is never answered
        if isinstance(pdu, SubmitMulti):
            destinations = tuple(d.destination_addr for d in pdu.dest_addresses)
        else:
            destinations = (pdu.destination_addr,)
        short_message = b"" if isinstance(pdu, DataSm) else pdu.short_message
        status: int | None = None
        message_id = ""
        if faults.never_answer:
            self._count["unanswered"] += 1
        else:
            status = faults.next_submit_status()
            if status == CommandStatus.ESME_ROK:
                message_id = self._new_id()
                self._count["accepted"] += 1
                self._schedule_receipts(session, pdu, message_id, destinations)
                response = make_response(pdu, message_id=message_id)
            else:
                self._refused[CommandStatus(status).name] += 1
                response = make_response(pdu, status)
            cut = bool(faults.drop_after) and session.submits == faults.drop_after
            self._answer(session, response, cut)
        self.submits.append(
            SubmitRecord(
                session.id,
                session.system_id,
                pdu.command_id.name.lower(),
                pdu.source_addr,
                destinations,
                message_id,
                status,
                pdu.registered_delivery,
                pdu.data_coding,
                short_message,
                pdu.esm_class,
                pdu.tlvs,
                "" if isinstance(pdu, DataSm) else pdu.validity_period,
                0 if isinstance(pdu, DataSm) else pdu.protocol_id,
            )
        )
        self.submits_recorded += 1

    def _answer(self, session: _Session, response: Pdu, cut: bool) -> None:
        delay = self.faults.response_delay
        if delay > 0:
            session.delayed.append((trio.current_time() + delay, response, cut))
            session.delayed_ready.set()
            return
        session.link.respond(response)
        if cut:
            session.stream.cut_after_next_write()

    async def _delayer(self, session: _Session) -> None:
        # One fixed delay for all: the deque is in due order.
        while True:
            if not session.delayed:
                session.delayed_ready = trio.Event()
                await session.delayed_ready.wait()
                continue
            due, response, cut = session.delayed[0]
            await trio.sleep_until(due)
            session.delayed.popleft()
            session.link.respond(response)
            if cut:
                session.stream.cut_after_next_write()

    def _new_id(self) -> str:
        n = self._next_id
        self._next_id += 1
        width = self.config.id_width
        return f"{n:0{width}X}" if self.config.id_format == "hex" else f"{n:0{width}d}"

    # -- receipts and MO ---------------------------------------------------------------

    def _schedule_receipts(
        self,
        session: _Session,
        pdu: SubmitSm | DataSm | SubmitMulti,
        message_id: str,
        destinations: tuple[str, ...],
    ) -> None:
        if not pdu.registered_delivery & 0x03:
            return
        state = self._outcomes.pick()
        if not _wants_receipt(pdu.registered_delivery, state):
            return
        due = trio.current_time() + self.config.receipt_delay
        text = receipt_text(pdu)
        now = self._clock()
        for destination in destinations:
            self._count["receipts_scheduled"] += 1
            pending = PendingReceipt(
                system_id=session.system_id,
                message_id=message_id,
                state=state,
                source_addr=pdu.source_addr,
                source_addr_ton=pdu.source_addr_ton,
                source_addr_npi=pdu.source_addr_npi,
                destination_addr=destination,
                dest_addr_ton=getattr(pdu, "dest_addr_ton", 0),
                dest_addr_npi=getattr(pdu, "dest_addr_npi", 0),
                text=text,
                submitted_at=now,
            )
            self._receipts.push(due, pending)

    def _emit_receipt(self, pending: PendingReceipt) -> None:
        pdu = build_receipt(pending, self._clock())
        stat = stat_word(pending.state)
        self._router.deliver(Delivery(pending.system_id, pdu, "receipt", pending.message_id, stat))

    def inject_mo(
        self,
        source: str,
        destination: str,
        text: str,
        *,
        data_coding: int | None = None,
        system_id: str | None = None,
        tlvs: tuple[Tlv, ...] = (),
    ) -> int:
        """Send ``text`` as an MO (several UDH parts if long) to a receiver of
        ``system_id`` (None: any bound receiver, else the first account); queued until
        one binds. Returns the number of parts. ``tlvs`` go on every part (USSD:
        see :func:`smppgw.sim.mo.ussd_tlvs`).

        Raises:
            TextEncodeError: the text does not fit ``data_coding``.
            ConcatError: the text needs more than 255 parts.
        """
        if system_id is None:
            bound = self._router.bound_system_ids()
            system_id = bound[0] if bound else self.config.accounts[0].system_id
        self._mo_ref = (self._mo_ref + 1) & 0xFF
        pdus = build_mo(
            source, destination, text, data_coding=data_coding, reference=self._mo_ref, tlvs=tlvs
        )
        for pdu in pdus:
            self._router.deliver(Delivery(system_id, pdu, "mo"))
        self.mos.append(MoRecord(system_id, source, destination, text, len(pdus)))
        log.debug("mo injected", system_id=system_id, parts=len(pdus))
        return len(pdus)

    def _answered(self, delivery: Delivery, response: Pdu | None) -> None:
        if delivery.kind == "receipt":
            status = None if response is None else response.command_status
            self.receipts.append(
                ReceiptRecord(delivery.system_id, delivery.message_id, delivery.stat, status)
            )

    def statistics(self) -> SimStatistics:
        c = self._count + self._router.counts
        return SimStatistics(
            sessions=len(self._sessions),
            receivers=self._router.receivers,
            binds_ok=c["binds_ok"],
            binds_refused=c["binds_refused"],
            submits=c["submits"],
            accepted=c["accepted"],
            refused=dict(self._refused),
            unanswered=c["unanswered"],
            receipts_scheduled=c["receipts_scheduled"],
            receipts_sent=c["receipts_sent"],
            receipts_answered=c["receipts_answered"],
            mo_sent=c["mo_sent"],
            mo_answered=c["mo_answered"],
            redelivered=c["redelivered"],
            queued=self._router.queued + len(self._receipts),
            dropped=c["dropped"],
        )
