"""The pieces of the chaos test (``test_chaos.py``): processes, partners, records.

Why separate processes: the simulator must outlive every ``kill -9`` of the daemon, so
its record of what reached the "carrier" is the ground truth the invariants are checked
against; the daemon is a real ``smppgw run`` so that SIGKILL really loses its memory.

Everything the checks need is *recorded by someone other than the gateway*:

- :class:`Partner` (our ``SmppLink`` as an ESME) records every message id acknowledged
  with status 0, with the destination and text it sent, and every receipt copy it got
  (whether it answered it, and how many daemon kills had happened by then);
- the simulator (``smppgw sim``, read through ``GET /submits``) records every submit;
- :class:`Chaos` records every MO injected, every kill, and the simulator's submit
  count right after each kill (which daemon *run* each carrier copy belongs to).

The journal is read read-only at the end (:func:`read_journal`) to explain what those
records show. The invariants themselves are in :func:`check_invariants`; each rule is
written in its docstring.
"""

from __future__ import annotations

import itertools
import os
import signal
import sqlite3
import sys
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import trio
from daemon_fixtures import free_port

from smppgw.gateway.auth import hash_password
from smppgw.gateway.inbound import classify_receipt
from smppgw.net.link import LinkClosed, RequestTimeout, SmppLink
from smppgw.protocol.pdus import BindTransceiver, DeliverSm, Pdu, SubmitSm
from smppgw.protocol.receipt import ReceiptError
from smppgw.protocol.session import SmppConnection, make_response
from smppgw.protocol.states import Role
from smppgw.protocol.text import decode_text
from smppgw.sim.control import request_json

if TYPE_CHECKING:
    import random
    from collections.abc import Callable, Sequence

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "chaos-pw"
_HASH = hash_password(PASSWORD, salt=b"chaos-test-salt!")
SHORT_CODE = "8055"
#: The faults that mean "none": sent when a fault episode ends and before the drain.
NO_FAULTS: dict[str, Any] = {
    "throttle_every": 0,
    "queue_full_every": 0,
    "response_delay": 0.0,
    "drop_after": 0,
    "refuse_binds": False,
    "ignore_enquire_link": False,
    "never_answer": False,
}


# ---------------------------------------------------------------------------- processes


@dataclass
class Ports:
    sim: int = field(default_factory=free_port)
    control: int = field(default_factory=free_port)
    server: int = field(default_factory=free_port)
    metrics: int = field(default_factory=free_port)


def write_config(tmp_path: Path, ports: Ports, partners: Sequence[str]) -> Path:
    """The daemon's config: the external simulator as its only carrier (short timeouts
    and reconnects so that a fault costs seconds, not minutes), prepaid partners, the
    scenario directory with the shipped points scenario."""
    partner_lines = "\n".join(
        f"  - {{system_id: {p}, password_hash: '{_HASH}', sources: [{p.upper()}],"
        f" billing: prepaid, max_binds: 8}}"
        for p in partners
    )
    text = f"""
store: {{path: '{tmp_path / "gw.sqlite"}', durability: process}}
metrics: {{listen: '127.0.0.1:{ports.metrics}'}}
admin_socket: '{tmp_path / "admin.sock"}'
scenarios: {{directory: '{tmp_path / "scenarios"}', events_dir: '{tmp_path / "events"}'}}
logging: {{level: info, format: json}}
carriers:
  - name: sim
    host: 127.0.0.1
    port: {ports.sim}
    system_id: gw
    password: secret
    window: 16
    binds: 2
    response_timeout: 2
    enquire_link_interval: 2
    reconnect: {{initial: 0.1, max: 1.0}}
default_route: [sim]
server: {{listen: '127.0.0.1:{ports.server}', window: 64}}
partners:
{partner_lines}
"""
    path = tmp_path / "smppgw.yaml"
    path.write_text(text)
    return path


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(ROOT)}


async def _wait_port(port: int, proc: trio.Process, what: str, within: float = 30.0) -> None:
    with trio.fail_after(within):
        while True:
            if proc.returncode is not None:
                raise RuntimeError(f"{what} exited with {proc.returncode} while starting")
            try:
                stream = await trio.open_tcp_stream("127.0.0.1", port)
            except OSError:
                await trio.sleep(0.05)
                continue
            await stream.aclose()
            return


class SimProcess:
    """``smppgw sim`` as its own process, driven through its control endpoint."""

    def __init__(self, tmp_path: Path, ports: Ports, seed: int) -> None:
        self.ports = ports
        self.seed = seed
        self.log = tmp_path / "sim.log"
        self.proc: trio.Process | None = None

    async def start(self) -> None:
        p = self.ports
        argv = [
            sys.executable, "-m", "smppgw.cli", "sim",
            "--listen", f"127.0.0.1:{p.sim}", "--control", f"127.0.0.1:{p.control}",
            "--account", "gw:secret", "--receipt-delay-ms", "30",
            "--outcomes", "DELIVRD=9,UNDELIV=1", "--seed", str(self.seed),
            "--record", "1000000", "--log-level", "warning",
        ]  # fmt: skip
        with self.log.open("ab") as out:
            self.proc = await trio.lowlevel.open_process(
                argv, cwd=ROOT, env=_env(), stdout=out, stderr=out
            )
        await _wait_port(p.control, self.proc, "the simulator")

    async def call(self, method: str, path: str, payload: Any = None) -> Any:
        with trio.fail_after(30):
            status, body = await request_json(
                "127.0.0.1", self.ports.control, method, path, payload
            )
        if status != 200:
            raise RuntimeError(f"{method} {path}: HTTP {status} {body}")
        return body

    async def faults(self, **changes: Any) -> None:
        await self.call("POST", "/faults", changes)

    async def stats(self) -> dict[str, Any]:
        stats: dict[str, Any] = await self.call("GET", "/stats")
        return stats

    async def mo(self, source: str, text: str) -> None:
        await self.call("POST", "/mo", {"from": source, "to": SHORT_CODE, "text": text})

    async def all_submits(self) -> list[list[Any]]:
        """Every submit the simulator recorded, oldest first (fails if any fell off)."""
        out: list[list[Any]] = []
        since = 0
        while True:
            page = await self.call("GET", f"/submits?since={since}")
            if page["first"] > since:
                raise AssertionError(f"simulator records lost before {page['first']}")
            out.extend(page["submits"])
            if page["next"] == since:
                return out
            since = page["next"]

    async def stop(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
            with trio.move_on_after(10):
                await self.proc.wait()
            if self.proc.returncode is None:
                self.proc.kill()
                await self.proc.wait()


class DaemonProcess:
    """``smppgw run`` as a process that the chaos kills with SIGKILL and starts again."""

    def __init__(self, config: Path, ports: Ports) -> None:
        self.config = config
        self.ports = ports
        self.log = config.parent / "daemon.log"
        self.proc: trio.Process | None = None
        self.starts = 0

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    async def start(self, *, wait: bool = True) -> None:
        argv = [sys.executable, "-m", "smppgw.cli", "run", "--config", str(self.config)]
        with self.log.open("ab") as out:
            self.proc = await trio.lowlevel.open_process(
                argv, cwd=self.config.parent, env=_env(), stdout=out, stderr=out
            )
        self.starts += 1
        if wait:
            await _wait_port(self.ports.server, self.proc, "the daemon")

    async def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        await self.proc.wait()

    async def stop(self) -> int | None:
        if self.proc is None or self.proc.returncode is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        with trio.move_on_after(30):
            await self.proc.wait()
        if self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()
        return self.proc.returncode

    async def metric(self, name: str) -> float | None:
        """One unlabelled-or-summed family from ``/metrics`` (None when unreachable)."""
        try:
            with trio.fail_after(3):
                stream = await trio.open_tcp_stream("127.0.0.1", self.ports.metrics)
                async with stream:
                    await stream.send_all(
                        b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                    )
                    data = bytearray()
                    while chunk := await stream.receive_some(65536):
                        data += chunk
        except (OSError, trio.TooSlowError, trio.BrokenResourceError):
            return None
        total = None
        for line in data.decode("utf-8", "replace").splitlines():
            if line.startswith(name) and line[len(name) : len(name) + 1] in ("{", " "):
                total = (total or 0.0) + float(line.rsplit(" ", 1)[1])
        return total


# ---------------------------------------------------------------------------- partners


@dataclass(frozen=True, slots=True)
class Sent:
    destination: str
    text: str
    registered_delivery: int
    session: int


@dataclass(frozen=True, slots=True)
class ReceiptCopy:
    """One receipt PDU a partner got: ``epoch`` is the number of daemon kills so far."""

    epoch: int
    answered: bool
    stat: str
    session: int


@dataclass
class Partner:
    """A partner ESME with its own records (see the module docstring).

    It binds as a transceiver, submits at ``rate`` a second (one in ``long_every`` a
    two-part message, one in ``no_receipt_every`` without a receipt asked), answers
    every receipt, and, while ``chaos`` is on, now and then leaves: either at once
    (what it answered may still be in flight) or *dropping* the next receipt
    unanswered, so the gateway has receipts pending for it while it is away.
    """

    system_id: str
    port: int
    rng: random.Random
    epoch: Callable[[], int]
    rate: float = 20.0
    long_every: int = 7
    no_receipt_every: int = 9
    chaos: bool = True
    sending: bool = True
    finished: bool = False
    serial: int = 0
    sessions: int = 0
    bind_failures: int = 0
    disconnects: int = 0
    disconnects_with_pending: int = 0
    submitted: int = 0
    acked: dict[int, Sent] = field(default_factory=dict)
    refused: Counter[int] = field(default_factory=Counter)
    unanswered_submits: int = 0
    receipts: dict[int, list[ReceiptCopy]] = field(default_factory=lambda: defaultdict(list))
    foreign_receipts: list[str] = field(default_factory=list)
    _closing: bool = False
    _drop_next: bool = False
    _dropped: trio.Event = field(default_factory=trio.Event)
    _link: SmppLink | None = None

    async def run(self) -> None:
        """Stay bound (reconnecting) until :attr:`finished`; submit while :attr:`sending`."""
        while not self.finished:
            try:
                stream = await trio.open_tcp_stream("127.0.0.1", self.port)
            except OSError:
                await trio.sleep(0.2)
                continue
            self.sessions += 1
            session = self.sessions
            link = SmppLink(
                stream,
                SmppConnection(Role.ESME, window=32, response_timeout=5.0),
                partial(self._on_batch, session=session),
                name=f"{self.system_id}-{session}",
            )
            self._closing = self._drop_next = False
            ended = trio.Event()
            async with trio.open_nursery() as nursery:
                await nursery.start(self._run_link, link, ended)
                nursery.start_soon(self._session, link, session, ended)
            self._link = None
            await trio.sleep(self.rng.uniform(0.05, 0.4))

    async def _run_link(
        self, link: SmppLink, ended: trio.Event, *, task_status: trio.TaskStatus[None]
    ) -> None:
        try:
            await link.run(task_status=task_status)
        finally:
            ended.set()

    async def _session(self, link: SmppLink, session: int, ended: trio.Event) -> None:
        try:
            resp = await link.request(BindTransceiver(system_id=self.system_id, password=PASSWORD))
        except (LinkClosed, RequestTimeout):
            link.close()
            return
        if resp.command_status != 0:
            self.bind_failures += 1
            link.close()
            return
        self._link = link
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._submitter, link, session)
                if self.chaos:
                    nursery.start_soon(self._leaver, link)
                await ended.wait()
                nursery.cancel_scope.cancel()
        finally:
            link.close()

    async def _leaver(self, link: SmppLink) -> None:
        await trio.sleep(self.rng.uniform(2.0, 8.0))
        if not self.chaos or link.closed:
            return
        self.disconnects += 1
        pending = sum(
            1 for i, s in self.acked.items() if s.registered_delivery and i not in self.receipts
        )
        self.disconnects_with_pending += pending > 0
        if self.rng.random() < 0.5:
            # Drop the next receipt unanswered and leave: the gateway must deliver it
            # again after the partner binds again.
            self._drop_next = True
            self._dropped = trio.Event()
            with trio.move_on_after(2.0):
                await self._dropped.wait()
        else:
            # Stop answering, let what was answered reach the gateway, then leave.
            self._closing = True
            await trio.sleep(0.3)
        link.close("partner leaves")

    async def _submitter(self, link: SmppLink, session: int) -> None:
        while not link.closed:
            if not self.sending or self._closing:
                await trio.sleep(0.1)
                continue
            self.serial += 1
            n = self.serial
            text = f"{self.system_id} m{n:06d} chaos"
            if self.long_every and n % self.long_every == 0:
                text = f"{text} {'x' * 170} end {self.system_id}{n:06d}"
            rd = 0 if self.no_receipt_every and n % self.no_receipt_every == 0 else 1
            sent = Sent(f"8490{self.rng.randrange(10**7):07d}", text, rd, session)
            pdu = SubmitSm(
                source_addr_ton=5,
                source_addr=self.system_id.upper(),
                dest_addr_ton=1,
                dest_addr_npi=1,
                destination_addr=sent.destination,
                short_message=text.encode("ascii"),
                registered_delivery=rd,
            )
            try:
                await link.send_request(pdu, partial(self._on_resp, sent))
            except LinkClosed:
                return
            self.submitted += 1
            await trio.sleep(self.rng.expovariate(self.rate))

    def _on_resp(self, sent: Sent, request: Pdu, result: Pdu | BaseException) -> None:
        if not isinstance(result, Pdu):
            self.unanswered_submits += 1
        elif result.command_status == 0:
            self.acked[int(result.message_id)] = sent  # type: ignore[attr-defined]
        else:
            self.refused[result.command_status] += 1

    async def _on_batch(self, link: SmppLink, batch: Sequence[Pdu], session: int) -> None:
        for pdu in batch:
            if not isinstance(pdu, DeliverSm):
                continue
            try:
                info = classify_receipt(pdu)
            except ReceiptError:
                self.foreign_receipts.append(repr(pdu))
                link.respond(make_response(pdu))
                continue
            drop = self._closing or self._drop_next
            try:
                message_id = int(info.carrier_id)
            except ValueError:
                self.foreign_receipts.append(info.carrier_id)
                message_id = -1
            self.receipts[message_id].append(
                ReceiptCopy(self.epoch(), not drop, info.stat, session)
            )
            if self._drop_next:
                self._drop_next = False
                self._dropped.set()
                link.close("partner drops a receipt and leaves")
                return
            if not drop:
                link.respond(make_response(pdu))

    def pending_receipts(self) -> int:
        return sum(
            1 for i, s in self.acked.items() if s.registered_delivery and i not in self.receipts
        )


# ---------------------------------------------------------------------------- journal


@dataclass
class JournalMessage:
    id: int
    partner: str
    destination: str
    state: str
    attempts: int
    part_count: int
    registered_delivery: int
    final_status: int | None
    error: str | None
    order_id: int | None
    reservation_id: int | None
    part_texts: list[str]


@dataclass
class Journal:
    messages: dict[int, JournalMessage]
    orders: list[tuple[int, str, int, int, int]]  # id, partner, limit, reserved, spent
    ledger: dict[int, tuple[str, int | None, int]]  # reservation -> state, charged, amount
    outbox: list[tuple[str, int | None, str]]  # partner, message id, stat
    inbound_mo: list[tuple[int, str, str, str, int | None]]  # id, from, to, text, processed
    inbound_unprocessed: int
    mo_log: Counter[int]  # inbound id -> logged 'mo' rows
    codes: dict[str, tuple[int, str | None]]  # code -> points, used_by
    members: dict[str, tuple[str, int]]  # member_id -> msisdn, points
    points_ledger: list[tuple[str, int, int, str, str | None]]  # member, delta, after, why, ref


def _text_of(payload: bytes, data_coding: int, udh: bool) -> str:
    if udh and payload:
        payload = payload[payload[0] + 1 :]
    return decode_text(payload, data_coding)


def read_journal(db: Path) -> Journal:
    """Everything the checks need from the journal, read-only."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        parts: dict[int, list[bytes]] = defaultdict(list)
        for mid, payload in conn.execute(
            "SELECT message_id, payload FROM mt_part ORDER BY message_id, part_no"
        ):
            parts[int(mid)].append(bytes(payload))
        messages: dict[int, JournalMessage] = {}
        for row in conn.execute(
            "SELECT id, partner, destination_addr, state, attempts, part_count,"
            " registered_delivery, final_status, error, order_id, reservation_id, body,"
            " data_coding, esm_class FROM mt_message"
        ):
            mid, dc, esm = int(row[0]), int(row[12]), int(row[13])
            texts = (
                [_text_of(p, dc, True) for p in parts[mid]]
                if parts.get(mid)
                else [_text_of(bytes(row[11]), dc, bool(esm & 0x40))]
            )
            messages[mid] = JournalMessage(
                mid, str(row[1]), str(row[2]), str(row[3]), int(row[4]), int(row[5]),
                int(row[6]), row[7], row[8], row[9], row[10], texts,
            )  # fmt: skip
        inbound = [
            (int(r[0]), str(r[1]), str(r[2]), _text_of(bytes(r[3]), int(r[4]), False), r[5])
            for r in conn.execute(
                "SELECT id, source_addr, destination_addr, body, data_coding, processed_at"
                " FROM inbound WHERE kind = 'mo'"
            )
        ]
        return Journal(
            messages=messages,
            orders=[
                (int(r[0]), str(r[1]), int(r[2]), int(r[3]), int(r[4]))
                for r in conn.execute(
                    "SELECT id, partner, quota_limit, reserved, spent FROM partner_order"
                )
            ],
            ledger={
                int(r[0]): (str(r[1]), r[2], int(r[3]))
                for r in conn.execute("SELECT id, state, charged, amount FROM quota_ledger")
            },
            outbox=[
                (str(r[0]), r[1], str(r[2]))
                for r in conn.execute("SELECT partner, message_id, stat FROM receipt_outbox")
            ],
            inbound_mo=inbound,
            inbound_unprocessed=conn.execute(
                "SELECT count(*) FROM inbound WHERE processed_at IS NULL"
            ).fetchone()[0],
            mo_log=Counter(
                int(r[0])
                for r in conn.execute(
                    "SELECT inbound_id FROM message_log WHERE direction = 'mo'"
                    " AND inbound_id IS NOT NULL"
                )
            ),
            codes={
                str(r[0]): (int(r[1]), r[2])
                for r in conn.execute("SELECT code, points, used_by FROM code_inventory")
            },
            members={
                str(r[0]): (str(r[1]), int(r[2]))
                for r in conn.execute("SELECT member_id, msisdn, points FROM member")
            },
            points_ledger=[
                (str(r[0]), int(r[1]), int(r[2]), str(r[3]), r[4])
                for r in conn.execute(
                    "SELECT member_id, delta, balance_after, reason, ref FROM points_ledger"
                )
            ],
        )
    finally:
        conn.close()


def unfinished(db: Path) -> dict[str, int]:
    """What is still moving in the journal (the drain waits for all zeros)."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:

        def one(sql: str) -> int:
            return int(conn.execute(sql).fetchone()[0])

        return {
            "mt": one("SELECT count(*) FROM mt_message WHERE state IN ('accepted','submitted')"),
            "inbound": one("SELECT count(*) FROM inbound WHERE processed_at IS NULL"),
            "outbox": one("SELECT count(*) FROM receipt_outbox"),
        }
    finally:
        conn.close()


# ---------------------------------------------------------------------------- checks


@dataclass(frozen=True, slots=True)
class Mo:
    source: str
    text: str
    epoch: int


@dataclass
class Report:
    """What the checks found: ``violations`` fail the test; the rest is the summary."""

    violations: list[str] = field(default_factory=list)
    rows: list[tuple[str, str]] = field(default_factory=list)

    def fail(self, text: str) -> None:
        self.violations.append(text)

    def row(self, name: str, value: object) -> None:
        self.rows.append((name, str(value)))

    def table(self) -> str:
        width = max((len(n) for n, _ in self.rows), default=10)
        lines = [f"  {n:<{width}}  {v}" for n, v in self.rows]
        if self.violations:
            lines.append(f"  VIOLATIONS ({len(self.violations)}):")
            lines += [f"    - {v}" for v in self.violations[:40]]
        return "\n".join(lines)


_CHARGED_ON_RECEIPT = ("failed", "expired", "rejected")


def check_invariants(
    journal: Journal,
    submits: Sequence[Sequence[Any]],
    run_bounds: Sequence[int],
    partners: Sequence[Partner],
    mos: Sequence[Mo],
    report: Report,
) -> None:
    """Check the five invariants; each rule is written where it is checked.

    ``submits`` are the simulator's records in order; ``run_bounds`` the simulator's
    submit count read right after each kill (after the dead process's last bytes were
    read), so record ``i`` belongs to daemon run ``bisect(run_bounds, i)``.
    """
    _check_acknowledged(journal, partners, report)
    _check_carrier_copies(journal, submits, run_bounds, report)
    _check_quotas(journal, partners, report)
    _check_receipts(journal, partners, report)
    _check_scenarios(journal, mos, report)


def _check_acknowledged(journal: Journal, partners: Sequence[Partner], report: Report) -> None:
    """1a. Every id a partner got status 0 for is in the journal, as that partner's, with
    the destination and the text it sent (parts joined)."""
    acked = 0
    for partner in partners:
        for mid, sent in partner.acked.items():
            acked += 1
            m = journal.messages.get(mid)
            if m is None:
                report.fail(f"LOST: {partner.system_id} message {mid} acknowledged, not journaled")
            elif (m.partner, m.destination, "".join(m.part_texts)) != (
                partner.system_id,
                sent.destination,
                sent.text,
            ):
                report.fail(f"message {mid} journaled as {m} but was sent as {sent}")
    report.row("messages acknowledged to partners", acked)


def _run_of(index: int, bounds: Sequence[int]) -> int:
    run = 0
    for bound in bounds:
        if index >= bound:
            run += 1
    return run


def _check_carrier_copies(
    journal: Journal, submits: Sequence[Sequence[Any]], bounds: Sequence[int], report: Report
) -> None:
    """1b and 2: what reached the carrier, and every duplicate explained.

    Copies are matched by (destination, part text): the simulator does not know our
    ids. Scenario replies may repeat a text to one number, so messages are grouped by
    that key. Per group of ``n`` messages with ``A`` attempts recorded between them:

    - at least one accepted copy (status 0) of each part of every message the journal
      has as ``sent`` or ``delivered`` (and of a ``failed``/``expired`` one that a
      carrier receipt finalised), else the message was lost;
    - in any one daemon run, at most ``n + A`` accepted copies: a second copy in the
      same run needs a resend the journal counted (a timeout or a lost connection
      increments ``attempts``: ``MtPipeline.retry(possible_duplicate=True)``);
    - copies in a later run than the first are explained by the kill between: the
      carrier's answer (or its journaling) died with the process and recovery sent the
      message again (at-least-once, documented in ``gateway/mt.py``).

    Copies the carrier refused (throttled, queue full) or never answered are not
    duplicates: the subscriber never got them.
    """
    copies: dict[tuple[str, str], Counter[int]] = defaultdict(Counter)
    for index, record in enumerate(submits):
        destination, text, _carrier_id, status = record[:4]
        if status == 0:
            copies[(destination, text)][_run_of(index, bounds)] += 1
    groups: dict[tuple[str, str], list[JournalMessage]] = defaultdict(list)
    for m in journal.messages.values():
        for text in m.part_texts:
            groups[(m.destination, text)].append(m)
    reached = lost = 0
    dup_retry = dup_kill = 0
    for key, members in groups.items():
        runs = copies.get(key, Counter())
        must = [
            m
            for m in members
            if m.state in ("sent", "delivered")
            or (m.state in _CHARGED_ON_RECEIPT and m.final_status is None)
        ]
        total = sum(runs.values())
        if total < len(must):
            lost += len(must) - total
            ids = [m.id for m in must]
            report.fail(f"LOST at the carrier: {key} messages {ids} have {total} copies")
        elif must:
            reached += len(must)
        n = len(members)
        attempts = sum(m.attempts for m in members)
        for run, count in sorted(runs.items()):
            if count > n + attempts:
                report.fail(
                    f"UNEXPLAINED DUPLICATE: {key} {count} copies in run {run}, "
                    f"{n} messages {[m.id for m in members]} with {attempts} attempts"
                )
        extra = max(0, total - n)
        within = sum(max(0, c - n) for c in runs.values())
        dup_retry += min(extra, within)
        dup_kill += extra - min(extra, within)
    known = set(groups)
    stray = sum(c.total() for k, c in copies.items() if k not in known)
    if stray:
        report.fail(f"{stray} accepted copies at the carrier match no journaled message")
    report.row("message parts that reached the carrier", reached)
    report.row("duplicate copies explained by a resend (attempts>0)", dup_retry)
    report.row("duplicate copies explained by a kill between runs", dup_kill)
    report.row("carrier copies accepted / refused / unanswered",
               f"{sum(c.total() for c in copies.values())} / "
               f"{sum(1 for r in submits if r[3] not in (0, None))} / "
               f"{sum(1 for r in submits if r[3] is None)}")  # fmt: skip


def _check_quotas(journal: Journal, partners: Sequence[Partner], report: Report) -> None:
    """3. Quotas exact, from the messages themselves (``store/quota.py``'s semantics):

    - a message still unfinished (accepted, submitted) holds its parts as *reserved*;
    - one the carrier took and that is final as ``sent``/``delivered``, or final from a
      carrier receipt (failed/expired with no status of ours), is *charged* its parts;
    - one the gateway failed itself (final_status set: refused, out of attempts) is
      charged nothing.

    For every order: reserved and spent equal those sums over its messages, every
    ledger row agrees with its message, and reserved + spent <= limit.
    """
    by_order: dict[int, list[JournalMessage]] = defaultdict(list)
    for m in journal.messages.values():
        if m.order_id is not None:
            by_order[m.order_id].append(m)
    for order_id, owner, limit, reserved, spent in journal.orders:
        want_reserved = want_spent = 0
        for m in by_order.get(order_id, []):
            row = journal.ledger.get(m.reservation_id or -1)
            if m.state in ("accepted", "submitted"):
                want_reserved += m.part_count
                if row is None or row[0] != "reserved":
                    report.fail(f"message {m.id} unfinished but its reservation is {row}")
                continue
            charge = m.part_count if (
                m.state in ("sent", "delivered")
                or (m.state in _CHARGED_ON_RECEIPT and m.final_status is None)
            ) else 0  # fmt: skip
            want_spent += charge
            if row is None or row[0] != "settled" or row[1] != charge:
                report.fail(f"message {m.id} ({m.state}) should be charged {charge}: {row}")
        if (reserved, spent) != (want_reserved, want_spent):
            report.fail(
                f"order {order_id} of {owner}: reserved/spent {reserved}/{spent}, "
                f"its messages say {want_reserved}/{want_spent}"
            )
        if reserved + spent > limit:
            report.fail(f"order {order_id} of {owner} over its limit: {reserved}+{spent}>{limit}")
        report.row(
            f"order {order_id} ({owner}) limit/spent/reserved", f"{limit}/{spent}/{reserved}"
        )
    for partner in partners:
        report.row(
            f"{partner.system_id}: submitted/acked/refused(status:n)",
            f"{partner.submitted}/{len(partner.acked)}/"
            + ",".join(f"{s:#x}:{n}" for s, n in sorted(partner.refused.items())),
        )


def _check_receipts(journal: Journal, partners: Sequence[Partner], report: Report) -> None:
    """4. Receipts to partners: exactly once per message id, or still owed.

    - every journaled message of the partner that asked for a receipt and is final got
      at least one copy the partner answered, or is still in ``receipt_outbox`` (then
      reported as undelivered);
    - a second copy of a receipt the partner had *answered* is a duplicate, explained
      only by a daemon kill between the two copies (the answer was acknowledged in the
      outbox in a batch that died with the process); a copy the partner dropped
      unanswered is expected to come again and is not a duplicate;
    - no receipt for an id that is not the partner's message.
    """
    owed = {(p, mid) for p, mid, _ in journal.outbox if mid is not None}
    delivered = in_outbox = dups = dup_kill = dropped = 0
    for partner in partners:
        sid = partner.system_id
        for mid, copies in partner.receipts.items():
            m = journal.messages.get(mid)
            if m is None or m.partner != sid:
                report.fail(f"{sid} got a receipt for {mid}, not its message")
                continue
            answered = [c for c in copies if c.answered]
            dropped += len(copies) - len(answered)
            for first, later in itertools.pairwise(answered):
                dups += 1
                if later.epoch > first.epoch:
                    dup_kill += 1
                else:
                    report.fail(
                        f"DUPLICATE RECEIPT: {sid} message {mid} answered twice without a kill"
                        f" between ({copies})"
                    )
        for m in journal.messages.values():
            if m.partner != sid or not m.registered_delivery & 0x03:
                continue
            if m.state in ("accepted", "submitted"):
                continue
            if any(c.answered for c in partner.receipts.get(m.id, [])):
                delivered += 1
            elif (sid, m.id) in owed:
                in_outbox += 1
            else:
                report.fail(f"receipt for {sid} message {m.id} ({m.state}) never delivered")
    report.row("receipts delivered to partners (answered)", delivered)
    report.row("receipts still in the outbox (undelivered)", in_outbox)
    report.row("receipt copies dropped unanswered by a leaving partner", dropped)
    report.row("duplicate receipts (all after a kill)", f"{dups} ({dup_kill} after a kill)")


def _check_scenarios(journal: Journal, mos: Sequence[Mo], report: Report) -> None:
    """5. Scenario state.

    - every code credited at most once: one ``points_ledger`` row (reason ``code``) per
      used code, for the member in ``used_by``, of the code's points; none for an unused
      code;
    - each member's points equal the sum of its ledger deltas; no balance negative;
    - every MO injected is in ``inbound`` once: per content (number, text) the rows
      equal the injections. Fewer is allowed only for a content injected more than
      once (a subscriber's repeat taken for the carrier's redelivery after a dropped
      bind: the documented price of content-based dedup, ``gateway/inbound.py``); more
      would be an MO processed twice;
    - every inbound MO processed, and logged once.
    """
    credits: dict[str, list[tuple[str, int]]] = defaultdict(list)
    sums: Counter[str] = Counter()
    for member, delta, after, why, ref in journal.points_ledger:
        sums[member] += delta
        if after < 0:
            report.fail(f"member {member} balance went to {after}")
        if why == "code" and ref is not None:
            credits[ref].append((member, delta))
    used = 0
    for code, (points, used_by) in journal.codes.items():
        credited = credits.get(code, [])
        if used_by is None:
            if credited:
                report.fail(f"code {code} unused but credited {credited}")
            continue
        used += 1
        if credited != [(used_by, points)]:
            report.fail(
                f"code {code} used by {used_by} credited {credited} (once, {points} expected)"
            )
    for member_id, (_msisdn, points) in journal.members.items():
        if points < 0 or points != sums[member_id]:
            report.fail(f"member {member_id} has {points} points, ledger says {sums[member_id]}")
    injected = Counter((m.source, m.text) for m in mos)
    stored = Counter(
        (src, text) for _, src, dst, text, _ in journal.inbound_mo if dst == SHORT_CODE
    )
    merged = 0
    for key in injected.keys() | stored.keys():
        want, got = injected[key], stored[key]
        if got > want:
            report.fail(f"MO {key} injected {want} times, journaled {got} times")
        elif got < want:
            if want == 1 or got == 0:
                report.fail(f"MO {key} injected {want} times, journaled {got} times")
            merged += want - got
    for inbound_id, *_rest, processed in journal.inbound_mo:
        if processed is None:
            report.fail(f"inbound MO {inbound_id} never processed")
        elif journal.mo_log[inbound_id] != 1:
            report.fail(f"inbound MO {inbound_id} logged {journal.mo_log[inbound_id]} times")
    report.row("MO injected / journaled", f"{len(mos)} / {len(journal.inbound_mo)}")
    report.row("MO repeats taken for a redelivery", merged)
    report.row("codes credited (each once)", used)
    report.row("members / total points", f"{len(journal.members)} / {sum(sums.values())}")
