"""The carrier side: client binds to one SMSC, each in its own reconnect loop.

Theory of operation
-------------------
A :class:`CarrierClient` runs ``binds`` bind loops. Each loop connects (TCP or TLS),
binds, and while the bind lives runs ``window`` sender workers that take messages from
the carrier's queue. A worker sends a message's parts one after the other (parts never
go out of order), waiting for each part's ``submit_sm_resp``; the window is the number
of workers, so it is always full when there is traffic. The carrier's TPS cap is one
token bucket shared by its binds, counted in parts.

What the SMSC answers decides what happens to a message:

- ``ESME_ROK``: the part's carrier id is recorded (normalised for receipt matching);
- ``ESME_RTHROTTLED`` / ``ESME_RMSGQFUL``: the bind pauses, the bucket slows down and
  climbs back (slow start), and the *same part* is sent again: retried, not failed;
- another temporary status: the message is retried later, attempts counted;
- any other status: the message fails with that status recorded;
- no answer in time, or the connection lost: the message goes back to the queue from the
  unacknowledged part (possibly a duplicate at the carrier: counted).

Incoming ``deliver_sm`` (``carrier_inbound.py``) are journaled first and only then answered
``deliver_sm_resp``; if the journal cannot take them they are answered
``ESME_RX_T_APPN`` so the carrier delivers them again. A redelivered one is recognised by
its dedup key and answered without being processed twice.

Only expected failures restart a bind (``OSError``, broken streams, timeouts, a refused
bind, a lost link); anything else propagates and is a bug.
"""

from __future__ import annotations

import ssl
import time
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING

import structlog
import trio

from smppgw.app.config_models import BindMode, CarrierSettings, DefaultAlphabet, SplitMode
from smppgw.gateway.carrier_pdu import CarrierShape, part_pdu
from smppgw.gateway.throttle import TokenBucket
from smppgw.net.backoff import Backoff
from smppgw.net.carrier_inbound import CarrierInbound, MoSink
from smppgw.net.link import LinkClosed, RequestTimeout, SmppLink
from smppgw.protocol.message_id import MessageIdError, resp_key
from smppgw.protocol.pdus import (
    BindReceiver,
    BindTransceiver,
    BindTransmitter,
    Outbind,
    Pdu,
    SubmitSm,
)
from smppgw.protocol.session import SmppConnection
from smppgw.protocol.states import Role
from smppgw.protocol.status import CommandStatus, describe_status, is_temporary

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from smppgw.gateway.mt import MtPipeline
    from smppgw.gateway.outbound import OutboundMessage
    from smppgw.store import Store

__all__ = ["BindRefused", "CarrierClient", "CarrierStatistics", "MoSink"]

log = structlog.get_logger("smppgw.carrier")


_BIND_CLASS = {
    BindMode.TRANSMITTER: BindTransmitter,
    BindMode.RECEIVER: BindReceiver,
    BindMode.TRANSCEIVER: BindTransceiver,
}
_THROTTLED = frozenset({CommandStatus.ESME_RTHROTTLED, CommandStatus.ESME_RMSGQFUL})
#: Pause of a bind after a throttling answer, before slow start resumes.
THROTTLE_PAUSE = 1.0


def _first_leaf(group: BaseExceptionGroup[BaseException]) -> BaseException:
    exc: BaseException = group
    while isinstance(exc, BaseExceptionGroup):
        exc = exc.exceptions[0]
    return exc


class BindRefused(Exception):
    """The SMSC answered our bind with an error status."""

    def __init__(self, status: int) -> None:
        super().__init__(f"bind refused: {describe_status(status)}")
        self.status = status


#: Failures after which a bind reconnects (with backoff); anything else is a bug.
_EXPECTED = (
    OSError,
    trio.BrokenResourceError,
    trio.TooSlowError,
    BindRefused,
    LinkClosed,
    RequestTimeout,
)


@dataclass(frozen=True, slots=True)
class CarrierStatistics:
    name: str
    binds_configured: int
    binds_up: int
    connects: int
    bind_failures: int
    reconnects: int
    throttled: int
    submits: int
    submit_errors: int
    timeouts: int
    possible_duplicates: int
    deliveries: int
    deliveries_refused: int
    duplicates_inbound: int
    window_used: int
    window_size: int
    latency_sum: float
    latency_count: int
    #: Parts the carrier accepted without a message id (their receipts cannot match).
    empty_ids: int = 0


class CarrierClient:
    """Binds to one carrier SMSC; see the module docstring."""

    def __init__(
        self,
        settings: CarrierSettings,
        pipeline: MtPipeline,
        store: Store,
        *,
        mo_sink: MoSink | None = None,
        clock: Callable[[], float] = time.time,
        on_submit_latency: Callable[[str, float], None] | None = None,
    ) -> None:
        self.settings = settings
        #: What the settings ask of each PDU, worked out again if they are replaced.
        self._shape, self._shape_of = carrier_shape(settings), settings
        self.name = settings.name
        self.pipeline = pipeline
        self.store = store
        self.inbound = CarrierInbound(
            settings.name, settings, pipeline, store, mo_sink=mo_sink, clock=clock
        )
        self._clock = clock
        self._on_latency = on_submit_latency
        self.bucket = TokenBucket(settings.tps, now=0.0)
        self._links: dict[int, SmppLink] = {}
        self._bound: set[int] = set()
        self._paused_until: dict[int, float] = {}
        self._counts = dict.fromkeys(
            (
                "connects",
                "bind_failures",
                "reconnects",
                "throttled",
                "submits",
                "submit_errors",
                "timeouts",
                "dups",
                "lat_n",
                "empty_ids",
            ),
            0,
        )
        self._empty_id_logged_at: float | None = None
        self._latency_sum = 0.0
        # Set by unbind_all: the daemon is stopping this carrier (shutdown, or a reload
        # that removed it); a bind that closes stays closed until the client is
        # cancelled, instead of logging "reconnecting" and binding again meanwhile.
        self._stopping = False
        self.log = log.bind(carrier=self.name)

    # -- supervision -----------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Run every bind loop until cancelled. Reports started at once: an SMSC that is
        down must not keep the daemon from starting (the loops keep trying)."""
        async with trio.open_nursery() as nursery:
            for index in range(self.settings.binds):
                nursery.start_soon(self._bind_loop, index)
            nursery.start_soon(self.inbound.retry_held)
            if self.settings.outbind_listen is not None:
                endpoint = self.settings.outbind_listen
                await nursery.start(
                    partial(trio.serve_tcp, self._on_outbind, endpoint.port, host=endpoint.host)
                )
            task_status.started()

    def stopping(self) -> bool:
        """Whether :meth:`unbind_all` was called: no bind opens again."""
        return self._stopping

    async def unbind_all(self, grace: float = 5.0) -> None:
        """Unbind every live bind politely (for shutdown); no bind opens again."""
        self._stopping = True
        async with trio.open_nursery() as nursery:
            for link in list(self._links.values()):
                nursery.start_soon(link.unbind, grace)

    async def _bind_loop(self, index: int) -> None:
        s = self.settings
        backoff = Backoff(
            s.reconnect.initial, s.reconnect.max, s.reconnect.multiplier, s.reconnect.jitter
        )
        bind_name = f"{self.name}#{index}"
        first = True
        while True:
            if self.stopping():
                self.log.info("bind stays closed: stopping", bind=bind_name)
                await trio.sleep_forever()
            if not first:
                self._counts["reconnects"] += 1
            first = False
            failure: BaseException | None = None
            try:
                await self._connect_and_serve(index, bind_name, backoff)
            except _EXPECTED as exc:
                failure = exc
            except BaseExceptionGroup as group:
                # The bind's nursery wraps its tasks' errors: restart only when every
                # one of them is an expected failure, propagate anything else.
                expected, rest = group.split(_EXPECTED)
                if rest is not None or expected is None:
                    raise
                failure = _first_leaf(expected)
            if self.stopping():
                continue  # unbound on purpose, or lost while stopping: not reopened
            if isinstance(failure, BindRefused | trio.TooSlowError):
                self._counts["bind_failures"] += 1
            delay = backoff.next_delay()
            self.log.warning(
                "bind down, reconnecting" if failure else "bind closed, reconnecting",
                bind=bind_name,
                error=str(failure) if failure else None,
                retry_in=round(delay, 2),
            )
            await trio.sleep(delay)

    async def _open_stream(self) -> trio.abc.Stream:
        s = self.settings
        if s.tls is not None and s.tls.enabled:
            context = ssl.create_default_context(
                cafile=str(s.tls.ca_file) if s.tls.ca_file else None
            )
            if not s.tls.verify:
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
            tcp = await trio.open_tcp_stream(s.host, s.port)
            tls = trio.SSLStream(tcp, context, server_hostname=s.tls.server_hostname or s.host)
            await tls.do_handshake()
            return tls
        return await trio.open_tcp_stream(s.host, s.port)

    async def _connect_and_serve(self, index: int, bind_name: str, backoff: Backoff) -> None:
        s = self.settings
        with trio.fail_after(s.response_timeout + 5):
            stream = await self._open_stream()
        self._counts["connects"] += 1
        connection = SmppConnection(
            Role.ESME,
            window=s.window,
            enquire_link_interval=s.enquire_link_interval,
            response_timeout=s.response_timeout,
            max_command_length=s.max_command_length,
        )
        link = SmppLink(stream, connection, self.inbound.handle, name=bind_name)
        async with trio.open_nursery() as nursery:
            await nursery.start(self._run_link, link, nursery.cancel_scope)
            password = s.password.get_secret_value() if s.password is not None else ""
            bind = _BIND_CLASS[s.bind_mode](
                system_id=s.system_id,
                password=password,
                system_type=s.system_type,
                address_range=s.address_range,
            )
            with trio.fail_after(s.response_timeout):
                response = await link.request(bind)
            if response.command_status != 0:
                link.close("bind refused")
                raise BindRefused(response.command_status)
            backoff.reset()
            self._links[index] = link
            self._bound.add(index)
            self.pipeline.carrier_up(self.name)
            self.log.info(
                "bound",
                bind=bind_name,
                mode=s.bind_mode.value,
                smsc_system_id=getattr(response, "system_id", ""),
            )
            try:
                if s.bind_mode.can_send:
                    nursery.start_soon(self._sender, index, link)
                await trio.sleep_forever()
            finally:
                self._bound.discard(index)
                self._links.pop(index, None)
                self.pipeline.carrier_down(self.name)

    async def _run_link(
        self,
        link: SmppLink,
        scope: trio.CancelScope,
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        try:
            await link.run(task_status=task_status)
        finally:
            scope.cancel()

    async def _on_outbind(self, stream: trio.SocketStream) -> None:
        """An SMSC called us (``outbind``): check who it is, bind as a receiver on the
        same connection, and take its deliveries like any receiver bind."""
        s = self.settings
        outbinds: list[Outbind] = []
        arrived = trio.Event()

        async def handler(link: SmppLink, batch: Sequence[Pdu]) -> None:
            rest = []
            for pdu in batch:
                if isinstance(pdu, Outbind):
                    outbinds.append(pdu)
                    arrived.set()
                else:
                    rest.append(pdu)
            if rest:
                await self.inbound.handle(link, rest)

        connection = SmppConnection(
            Role.ESME,
            window=s.window,
            enquire_link_interval=s.enquire_link_interval,
            response_timeout=s.response_timeout,
            max_command_length=s.max_command_length,
        )
        link = SmppLink(stream, connection, handler, name=f"{self.name}#outbind")
        password = s.password.get_secret_value() if s.password is not None else ""
        async with trio.open_nursery() as nursery:
            await nursery.start(self._run_link, link, nursery.cancel_scope)
            with trio.move_on_after(s.response_timeout):
                await arrived.wait()
            if not outbinds or (outbinds[0].system_id, outbinds[0].password) != (
                s.system_id,
                password,
            ):
                self.log.warning("outbind refused: unknown caller or no outbind in time")
                link.close("outbind refused")
                return
            try:
                with trio.fail_after(s.response_timeout):
                    response = await link.request(
                        BindReceiver(
                            system_id=s.system_id,
                            password=password,
                            system_type=s.system_type,
                            address_range=s.address_range,
                        )
                    )
            except (trio.TooSlowError, LinkClosed, RequestTimeout):
                link.close("outbind: bind failed")
                return
            if response.command_status != 0:
                link.close("outbind: bind refused")
                return
            self.log.info("bound after outbind", bind=link.name)
            await trio.sleep_forever()

    # -- MT --------------------------------------------------------------------------

    def _pause_end(self, index: int) -> float:
        """When bind ``index``'s pause after a throttling answer ends; 0 when it is not
        paused (the map is empty until an SMSC throttles: no clock read then)."""
        end = self._paused_until.get(index, 0.0) if self._paused_until else 0.0
        return end if end > trio.current_time() else 0.0

    async def _throttle(self, index: int, parts: int) -> None:
        while True:
            paused = self._pause_end(index)
            if paused:
                await trio.sleep_until(paused)
                continue
            wait = self.bucket.try_take(parts, trio.current_time())
            if wait == 0:
                return
            await trio.sleep(wait)

    async def _sender(self, index: int, link: SmppLink) -> None:
        """Keep the bind's window full: take a message, send its next part, move on.

        The part's answer is handled by :meth:`_on_part_result` when it arrives (from the
        link's reader), so one task keeps the whole window in flight. A message's next
        part goes back to the front of the queue only once the previous part was
        accepted, so parts never overtake each other.
        """
        queue = self.pipeline.queues[self.name]
        while True:
            # Room and no throttling pause first, then a message: a bind whose SMSC
            # stopped answering, or asked it to slow down, holds no message meanwhile
            # (an OTP taken here waited out the response timeout while the carrier's
            # other binds were free; and a message taken before a throttling answer
            # went out on the paused bind the moment its window freed).
            try:
                await link.wait_window()
            except LinkClosed:
                return
            paused = self._pause_end(index)
            if paused:
                await trio.sleep_until(paused)
            message = await queue.get()
            if link.closed:
                self.pipeline.put_back(message)
                return
            if self._pause_end(index):
                self.pipeline.put_back(message)  # throttled while this sender waited
                continue
            # (expires_at first: most messages have none, and then no clock is read)
            if message.expires_at is not None and message.expired(self._clock()):
                self.pipeline.expire(message)
                continue
            handed_over = False
            try:
                await self._throttle(index, 1)
                part_no = message.next_part
                await link.send_request(
                    self._part_pdu(message, part_no),
                    partial(self._on_part_result, index, message, part_no, trio.current_time()),
                )
                handed_over = True
            except LinkClosed:
                # The link ended before this part left: back to the queue, no attempt
                # counted, and this sender stops with its link.
                handed_over = True
                self.pipeline.put_back(message)
                return
            finally:
                if not handed_over:
                    # Cancelled before the part left (the bind is going down).
                    self.pipeline.put_back(message)

    def _on_part_result(
        self,
        index: int,
        message: OutboundMessage,
        part_no: int,
        started: float,
        request: Pdu,
        result: Pdu | BaseException,
    ) -> None:
        """What the SMSC said about one part (or why it never will)."""
        if isinstance(result, LinkClosed | RequestTimeout):
            if isinstance(result, RequestTimeout):
                self._counts["timeouts"] += 1
            self._counts["dups"] += 1
            self.pipeline.retry(message, str(result) or "no answer", possible_duplicate=True)
            return
        if isinstance(result, BaseException):  # pragma: no cover - the link sends only these
            self.pipeline.retry(message, repr(result), possible_duplicate=True)
            return
        now = trio.current_time()
        elapsed = now - started
        self._counts["submits"] += 1
        self._latency_sum += elapsed
        self._counts["lat_n"] += 1
        if self._on_latency is not None:
            self._on_latency(self.name, elapsed)
        status = result.command_status
        if status == 0:
            raw_id = getattr(result, "message_id", "")
            try:
                key = resp_key(raw_id, self.settings.message_id_format)
            except MessageIdError:
                key = raw_id.strip()
                if not key:
                    self._empty_id(now)
            self.pipeline.part_accepted(message, part_no, key)
            self.bucket.recover()
            message.next_part = part_no + 1
            if message.next_part < len(message.parts):
                self.pipeline.put_back(message)  # the next part, first in line
            return
        self._counts["submit_errors"] += 1
        if status in _THROTTLED:
            self._counts["throttled"] += 1
            self.bucket.penalise(now)
            self._paused_until[index] = max(
                self._paused_until.get(index, 0.0), now + THROTTLE_PAUSE
            )
            self.log.info("throttled by carrier", bind=index, status=describe_status(status))
            self.pipeline.put_back(message)  # the same part again, after the pause
        elif is_temporary(status):
            self.pipeline.retry(message, describe_status(status), possible_duplicate=False)
        else:
            self.pipeline.fail(message, status, describe_status(status))

    def _empty_id(self, now: float) -> None:
        """The carrier accepted a part without an id (SMPP 3.4 4.4.2 says it gives one):
        no receipt can ever be matched to it, so a message that asked for one is final
        ``sent`` once all its parts are taken, its partner told ``UNKNOWN``
        (``MtPipeline.part_accepted``). Said at most once a minute (a carrier that does
        it does it to every message), counted in :meth:`statistics`."""
        self._counts["empty_ids"] += 1
        if self._empty_id_logged_at is None or now - self._empty_id_logged_at >= 60.0:
            self._empty_id_logged_at = now
            self.log.warning(
                "carrier accepted a part without a message id: its receipt cannot be matched,"
                " the message is final 'sent' (receipt UNKNOWN)",
                so_far=self._counts["empty_ids"],
            )

    def _part_pdu(self, message: OutboundMessage, part_no: int) -> SubmitSm:
        if self._shape_of is not self.settings:
            self._shape, self._shape_of = carrier_shape(self.settings), self.settings
        return part_pdu(message, part_no, self._shape, self._clock())

    # -- inbound ---------------------------------------------------------------------

    # -- introspection -----------------------------------------------------------------

    @property
    def binds_up(self) -> int:
        return len(self._bound)

    def statistics(self) -> CarrierStatistics:
        c = self._counts
        used = sum(link.connection.statistics().window_used for link in self._links.values())
        return CarrierStatistics(
            name=self.name,
            binds_configured=self.settings.binds,
            binds_up=len(self._bound),
            connects=c["connects"],
            bind_failures=c["bind_failures"],
            reconnects=c["reconnects"],
            throttled=c["throttled"],
            submits=c["submits"],
            submit_errors=c["submit_errors"],
            timeouts=c["timeouts"],
            possible_duplicates=c["dups"],
            deliveries=self.inbound.counts["deliveries"],
            deliveries_refused=self.inbound.counts["refused"],
            duplicates_inbound=self.inbound.counts["dup_in"],
            window_used=used,
            window_size=self.settings.window * len(self._links),
            latency_sum=self._latency_sum,
            latency_count=c["lat_n"],
            empty_ids=c["empty_ids"],
        )


def carrier_shape(settings: CarrierSettings) -> CarrierShape:
    """What a carrier's settings ask of its PDUs (``gateway/carrier_pdu.py``)."""
    return CarrierShape(
        source_ton=settings.source_ton,
        source_npi=settings.source_npi,
        dest_ton=settings.dest_ton,
        dest_npi=settings.dest_npi,
        sar=settings.split is SplitMode.SAR,
        udh16=settings.split is SplitMode.UDH16,
        latin1_default=settings.data_coding.default_alphabet is DefaultAlphabet.LATIN1,
        allow_latin1=settings.data_coding.allow_latin1,
        validity=settings.validity_format,
        service_type=settings.service_type,
        drop_tlvs=frozenset(settings.drop_tlvs),
        vendor_tlvs=frozenset(settings.vendor_tlvs),
    )
