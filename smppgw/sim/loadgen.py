"""A partner load generator: bind, keep a window of submits in flight, count everything.

Theory of operation
-------------------
:func:`run_load` opens ``sessions`` SMPP sessions (``Role.ESME``), each bound as a
transceiver, or as a transmitter plus a receiver (``bind="tx+rx"``). Each session has
one sender task that takes the next message number from a counter shared by all
sessions (a fast session takes more) and sends it with ``SmppLink.send_request`` and a
callback: the link's window (``window``) is what bounds the messages in flight, and no
task is created per message. The callback records the latency (monotonic, from the
moment a window slot was free to the ``submit_sm_resp``), the status and the
``message_id``.

With ``registered_delivery`` every accepted message asks for a receipt; receipts are
matched by id (the ``receipted_message_id`` TLV, else the text's ``id:``), answered, and
the sessions stay bound until all are in or ``wait_receipts_timeout`` passes. A receipt
that arrives before its ``submit_sm_resp`` (possible with separate tx and rx sessions)
is kept aside and matched when the response comes.

Throttle-friendly mode (``retry_throttled``): a message refused with
``ESME_RTHROTTLED`` or ``ESME_RMSGQFUL`` is sent again after every session pauses
``retry_pause`` seconds; such refusals count as ``retried``, not as ``refused``.

Timeline (``timeline``, ``--timeline FILE``): the summary alone cannot show a stall or a
latency spike in the middle of a run, nor line up two loads that run at the same time
(a marketing batch and the transactional traffic beside it). With a timeline file the
run also writes JSON lines, one an interval of the run (``timeline_interval``, a second
by default; ``"kind": "interval"``: responses, accepted and ``accepted_per_s``, receipts,
the submit latency percentiles of the responses that came in that interval, ``start_s``
from the first send, and ``t``, the wall-clock time it began, to align files), then one
``"kind": "total"`` line with the overall submit latency and the receipt round trip
(submit sent to its receipt in, i.e. through the server to the SMSC and back). Only the
timeline keeps the per-id send times, so a run without it pays nothing.
"""

from __future__ import annotations

import contextlib
import json
import math
import time
from collections import Counter, deque
from dataclasses import asdict
from functools import partial
from typing import TYPE_CHECKING, Any, Literal

import structlog
import trio

from smppgw.net.link import LinkClosed, SmppLink
from smppgw.protocol.codec import encode_pdu
from smppgw.protocol.errors import SendStateError
from smppgw.protocol.pdus import (
    BindReceiver,
    BindTransceiver,
    BindTransmitter,
    DeliverSm,
    Pdu,
    SubmitSm,
    SubmitSmResp,
)
from smppgw.protocol.receipt import ReceiptError, parse_receipt, stat_word
from smppgw.protocol.session import SmppConnection, make_response
from smppgw.protocol.states import Role
from smppgw.protocol.status import CommandStatus
from smppgw.protocol.text import choose_encoding, encode_text
from smppgw.protocol.tlv import Tag, tlv_cstring, tlv_int
from smppgw.sim.load_report import LoadSummary, Timeline, percentile

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

__all__ = ["LoadError", "LoadSummary", "command_line", "run_load"]

log = structlog.get_logger("smppgw.loadgen")

_RETRYABLE = frozenset({CommandStatus.ESME_RTHROTTLED, CommandStatus.ESME_RMSGQFUL})


class LoadError(Exception):
    """The load could not run: connection refused, or a bind refused (``status``)."""

    def __init__(self, msg: str, status: int | None = None) -> None:
        super().__init__(msg)
        self.status = status


class _Load:
    def __init__(
        self,
        *,
        count: int,
        rate: float | None,
        registered_delivery: bool,
        retry_throttled: bool,
        retry_pause: float,
        pdus: Sequence[SubmitSm],
        timeline: Timeline | None = None,
    ) -> None:
        self.timeline = timeline
        self.count = count
        self.rate = rate
        self.registered_delivery = registered_delivery
        self.retry_throttled = retry_throttled
        self.retry_pause = retry_pause
        # Encoded once: the submits are all alike, so the session only sets each copy's
        # sequence number (send_encoded_request) instead of encoding it again.
        self.encoded = [encode_pdu(pdu) for pdu in pdus]
        self.next_index = 0
        self.senders = 0
        self.retry: deque[int] = deque()
        self.pause_until = -math.inf
        self.start: float | None = None
        self.cpu_start = time.process_time()
        self.paced = 0
        self.submits_done_at: float | None = None
        self.sent = 0
        self.final = 0
        self.accepted = 0
        self.retried = 0
        self.failed = 0
        self.refused: Counter[str] = Counter()
        self.latencies: list[float] = []
        self.ids: set[str] = set()
        self.duplicates = 0
        self.matched: set[str] = set()
        self.early: set[str] = set()
        self.receipts = 0
        self.receipt_states: Counter[str] = Counter()
        self.mo = 0
        self.wakeup = trio.Event()
        self.submits_done = trio.Event()
        self.receipts_done = trio.Event()

    def _wake(self) -> None:
        self.wakeup.set()
        self.wakeup = trio.Event()

    def _take(self) -> int | None:
        if self.retry:
            return self.retry.popleft()
        if self.next_index < self.count:
            self.next_index += 1
            return self.next_index - 1
        return None

    async def send_loop(self, link: SmppLink) -> None:
        """Send from the shared counter on ``link`` until every message is answered."""
        self.senders += 1
        try:
            await self._send(link)
        except LinkClosed:
            log.info("loadgen link closed", reason=link.close_reason)
        finally:
            self.senders -= 1
            if not self.senders and not self.submits_done.is_set():
                # No session left to send: what was never sent fails now.
                unsent = self.count - self.next_index + len(self.retry)
                self.next_index = self.count
                self.retry.clear()
                for _ in range(unsent):
                    self._finish_one(trio.current_time(), failed=True)

    async def _send(self, link: SmppLink) -> None:
        while True:
            now = trio.current_time()
            if self.pause_until > now:
                await trio.sleep_until(self.pause_until)
            index = self._take()
            if index is None:
                if self.submits_done.is_set():
                    return
                await self.wakeup.wait()
                continue
            if self.start is None:
                self.start = trio.current_time()
                self.cpu_start = time.process_time()
                if self.timeline is not None:
                    self.timeline.begin(self.start)
            if self.rate is not None:
                await trio.sleep_until(self.start + self.paced / self.rate)
                self.paced += 1
            data = self.encoded[index % len(self.encoded)]
            try:
                await link.wait_window()
                t0 = trio.current_time()
                # No checkpoint between wait_window and the write: t0 is the send time.
                await link.send_encoded_request(data, partial(self.on_resp, index, t0))
            except (LinkClosed, SendStateError) as exc:
                # SendStateError: the peer's EOF was read but the link is still winding
                # down (older SmppLink versions raised it instead of LinkClosed).
                self.retry.appendleft(index)
                raise LinkClosed(str(exc)) from exc
            self.sent += 1

    def on_resp(self, index: int, t0: float, request: Pdu, result: Pdu | BaseException) -> None:
        now = trio.current_time()
        failed = isinstance(result, BaseException)
        if isinstance(result, Pdu):
            self.latencies.append(now - t0)
            status = result.command_status
            if self.timeline is not None:
                self.timeline.response(now, t0, accepted=status == CommandStatus.ESME_ROK)
            if status == CommandStatus.ESME_ROK:
                self.accepted += 1
                assert isinstance(result, SubmitSmResp)
                self._accepted_id(result.message_id)
                if self.timeline is not None:
                    self.timeline.accepted_id(result.message_id, t0)
            elif self.retry_throttled and status in _RETRYABLE:
                self.retried += 1
                self.retry.append(index)
                self.pause_until = max(self.pause_until, now + self.retry_pause)
                self._wake()
                return
            else:
                self.refused[_status_name(status)] += 1
        self._finish_one(now, failed=failed)

    def _finish_one(self, now: float, *, failed: bool) -> None:
        if failed:
            self.failed += 1
            if self.timeline is not None:
                self.timeline.failure(now)
        self.final += 1
        if self.final == self.count:
            self.submits_done_at = now
            self.submits_done.set()
            self._wake()
            self._check_receipts()

    def _accepted_id(self, message_id: str) -> None:
        if message_id in self.ids:
            self.duplicates += 1
        self.ids.add(message_id)
        if message_id in self.early:
            self.early.discard(message_id)
            self.matched.add(message_id)

    def _check_receipts(self) -> None:
        if self.submits_done.is_set() and len(self.matched) >= self.accepted:
            self.receipts_done.set()

    async def on_requests(self, link: SmppLink, batch: Sequence[Pdu]) -> None:
        for pdu in batch:
            if isinstance(pdu, DeliverSm):
                link.respond(make_response(pdu))
                if pdu.esm_class & 0x3C == 0x04:
                    self._on_receipt(pdu)
                else:
                    self.mo += 1
            else:
                with contextlib.suppress(TypeError):
                    link.respond(make_response(pdu))

    def _on_receipt(self, pdu: DeliverSm) -> None:
        self.receipts += 1
        message_id = tlv_cstring(pdu.tlvs, Tag.RECEIPTED_MESSAGE_ID)
        state = tlv_int(pdu.tlvs, Tag.MESSAGE_STATE)
        stat = stat_word(state) if state is not None else "UNKNOWN"
        if message_id is None or state is None:
            with contextlib.suppress(ReceiptError):
                receipt = parse_receipt(pdu.short_message)
                message_id = message_id or receipt.message_id
                stat = receipt.stat
        self.receipt_states[stat] += 1
        if self.timeline is not None:
            self.timeline.receipt(trio.current_time(), message_id)
        if message_id is None:
            return
        if message_id in self.ids:
            self.matched.add(message_id)
            self._check_receipts()
        else:
            self.early.add(message_id)

    def summary(self, sessions: int, window: int, end: float) -> LoadSummary:
        start = self.start if self.start is not None else end
        submit_end = self.submits_done_at if self.submits_done_at is not None else end
        submit_duration = max(submit_end - start, 1e-9)
        ordered = sorted(self.latencies)
        return LoadSummary(
            sessions=sessions,
            window=window,
            sent=self.sent,
            accepted=self.accepted,
            refused=dict(self.refused),
            retried=self.retried,
            failed=self.failed,
            duplicate_ids=self.duplicates,
            receipts_expected=self.accepted if self.registered_delivery else 0,
            receipts_received=self.receipts,
            receipts_matched=len(self.matched),
            receipt_states=dict(self.receipt_states),
            mo_received=self.mo,
            submit_duration=submit_duration,
            duration=max(end - start, 0.0),
            throughput=self.accepted / submit_duration,
            latency_p50_ms=percentile(ordered, 0.50),
            latency_p95_ms=percentile(ordered, 0.95),
            latency_p99_ms=percentile(ordered, 0.99),
            latency_max_ms=ordered[-1] * 1000.0 if ordered else 0.0,
            cpu_seconds=time.process_time() - self.cpu_start,
        )


def _status_name(status: int) -> str:
    try:
        return CommandStatus(status).name
    except ValueError:
        return f"0x{status:08X}"


def _submit_pdus(
    text: str, source: str, destinations: Sequence[str], registered_delivery: bool
) -> list[SubmitSm]:
    encoded = choose_encoding(text)
    if encoded.parts > 1:
        raise ValueError("the load text must fit one SMS")
    encoded = encode_text(encoded.text, encoded.data_coding)
    return [
        SubmitSm(
            source_addr=source,
            destination_addr=destination,
            data_coding=encoded.data_coding,
            short_message=encoded.payload,
            registered_delivery=1 if registered_delivery else 0,
        )
        for destination in destinations
    ]


async def run_load(
    host: str,
    port: int,
    *,
    system_id: str,
    password: str,
    sessions: int = 1,
    window: int = 64,
    count: int = 1000,
    rate: float | None = None,
    registered_delivery: bool = False,
    wait_receipts_timeout: float = 30.0,
    text: str = "smppgw load test",
    source: str = "8055",
    destinations: Sequence[str] = ("84912345678",),
    bind: Literal["trx", "tx+rx"] = "trx",
    retry_throttled: bool = False,
    retry_pause: float = 0.05,
    response_timeout: float = 10.0,
    timeline: str | Path | None = None,
    timeline_interval: float = 1.0,
) -> LoadSummary:
    """Send ``count`` messages to ``host:port`` as a partner would; see the module doc.

    Args:
        rate: messages per second over all sessions; None sends as fast as the window
            allows.
        destinations: numbers used in turn.
        timeline: where to write the per-interval JSON lines (see the module doc).
        timeline_interval: their width in seconds.

    Raises:
        LoadError: a connection or a bind failed (no message was counted then).
    """
    if sessions < 1 or window < 1 or count < 0:
        raise ValueError("sessions and window must be >= 1, count >= 0")
    load = _Load(
        count=count,
        rate=rate,
        registered_delivery=registered_delivery,
        retry_throttled=retry_throttled,
        retry_pause=retry_pause,
        pdus=_submit_pdus(text, source, destinations, registered_delivery),
        timeline=Timeline(timeline_interval) if timeline is not None else None,
    )
    if count == 0:
        load.submits_done.set()
    errors: list[LoadError] = []

    async def one_session(number: int) -> None:
        async with trio.open_nursery() as nursery:
            try:
                links = await _open_session(
                    nursery, load, host, port, system_id, password, bind, window, response_timeout
                )
            except LoadError as exc:
                errors.append(exc)
                main.cancel_scope.cancel()
                return
            log.debug("loadgen session bound", session=number)
            await load.send_loop(links[0])
            await load.submits_done.wait()
            if registered_delivery:
                with trio.move_on_after(wait_receipts_timeout):
                    await load.receipts_done.wait()
            for link in links:
                await link.unbind(grace=2.0)
            nursery.cancel_scope.cancel()

    async with trio.open_nursery() as main:
        for number in range(sessions):
            main.start_soon(one_session, number)
    if errors:
        raise errors[0]
    summary = load.summary(sessions, window, trio.current_time())
    if timeline is not None and load.timeline is not None:
        lines = load.timeline.lines(load.latencies)
        text_out = "".join(json.dumps(line, sort_keys=True) + "\n" for line in lines)
        await trio.Path(timeline).write_text(text_out)
    log.info("load finished", accepted=summary.accepted, throughput=round(summary.throughput))
    return summary


async def _open_session(
    nursery: trio.Nursery,
    load: _Load,
    host: str,
    port: int,
    system_id: str,
    password: str,
    bind: str,
    window: int,
    response_timeout: float,
) -> list[SmppLink]:
    binds: list[type[BindTransceiver | BindTransmitter | BindReceiver]]
    binds = [BindTransceiver] if bind == "trx" else [BindTransmitter, BindReceiver]
    links: list[SmppLink] = []
    for bind_cls in binds:
        try:
            stream = await trio.open_tcp_stream(host, port)
        except OSError as exc:
            raise LoadError(f"cannot connect to {host}:{port}: {exc}") from exc
        conn = SmppConnection(Role.ESME, window=window, response_timeout=response_timeout)
        link = SmppLink(stream, conn, load.on_requests, name=f"loadgen-{bind_cls.__name__}")
        await nursery.start(link.run)
        try:
            resp = await link.request(bind_cls(system_id=system_id, password=password))
        except Exception as exc:
            raise LoadError(f"bind failed: {exc}") from exc
        if resp.command_status:
            name = _status_name(resp.command_status)
            raise LoadError(f"bind refused: {name}", resp.command_status)
        links.append(link)
    return links


def summary_dict(summary: LoadSummary) -> dict[str, Any]:
    """The summary as JSON-ready values."""
    return asdict(summary)


def command_line(argv: Sequence[str] | None = None) -> int:
    """``python -m smppgw.sim.loadgen [options]``: ``smppgw loadgen`` under another name
    (the benchmark scripts start it this way)."""
    import sys

    from smppgw.cli import main

    return main(["loadgen", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    raise SystemExit(command_line())
