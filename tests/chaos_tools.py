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

import os
import signal
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
