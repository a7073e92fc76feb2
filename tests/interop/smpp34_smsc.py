"""An independent SMSC for interop tests: the ``smpp34`` package's asyncio server.

``smpp34`` is a Rust-backed SMPP 3.4 implementation this project did not write. This
script runs its :class:`smpp34.Server` as a separate process, so our carrier client talks
to it over real loopback TCP and the two share no code::

    python smpp34_smsc.py --port 0 --system-id gw --record submits.jsonl

What it does:

- listens on ``--host``/``--port`` (0 picks a free port) and, once accepting, prints
  ``{"port": N}`` as one JSON line on stdout;
- keeps binds whose ``system_id`` is ``--system-id`` and unbinds any other at once
  (smpp34 answers ``bind_resp`` itself, before the application hears of the bind, and
  never shows the password: see "Limits" below);
- answers every ``submit_sm`` with its own message id: a counter shown as upper-case hex
  (``5A000001``), continuing after the highest id already in ``--record`` so that a
  restarted SMSC never reuses an id;
- for each ``submit_sm`` asking for a receipt (``registered_delivery & 1``) sends a
  ``deliver_sm`` receipt (esm_class 0x04) to the session that submitted, with the text
  ``id:<decimal id> sub:001 dlvrd:001 submit date:YYMMDDhhmm done date:YYMMDDhhmm
  stat:DELIVRD err:000 text:<first 20 chars>``. With ``--receipt-tlvs alternate`` (the
  default) every other receipt also carries ``receipted_message_id`` (the hex id, as in
  ``submit_sm_resp``, per SMPP 3.4 5.3.2.12) and ``message_state`` (2, DELIVERED), so a
  client must match both ways: the carrier convention "hex in the response, decimal in
  the receipt text";
- takes commands as JSON lines on stdin: ``{"cmd": "mo", "source_addr": ..,
  "destination_addr": .., "text": ..}`` sends an MO ``deliver_sm`` to a bound session
  that can receive and answers ``{"mo": <command_status>}`` on stdout;
  ``{"cmd": "unbind"}`` sends ``unbind`` to every bound session (``{"unbinding":
  [session ids]}``);
- writes every event as one JSON line to ``--record`` (flushed at once, so a
  ``kill -9`` loses no line written before it): ``submit`` (written before the
  ``submit_sm_resp`` goes out), ``bind``, ``bind_rejected``, ``unbind``, ``receipt``
  (written after the client's ``deliver_sm_resp``) and ``mo``;
- stops cleanly on SIGTERM or SIGINT: unbinds every live session (waiting up to a
  second for them to end), stops the server, and exits with status 0.

Limits of smpp34 1.5 (why the script does no more):

- ``Server`` has no authentication hook: every bind is answered ``ESME_ROK`` by the Rust
  core, and the password is not exposed, so it cannot be checked. ``--password`` is
  accepted for symmetry and recorded as "not checkable". A wrong ``system_id`` is
  unbound right after its bind.
- Exiting the interpreter while a session (server or client side) is still live can
  crash in smpp34's threads during finalization (``Fatal Python error:
  PyGILState_Release: thread state ... must be current when releasing``, SIGABRT, or
  SIGSEGV); seen in about a third of SIGTERMs with a bound client. The script unbinds
  every session first and then leaves with ``os._exit`` after closing its files.
- ``Server`` does not report the port it bound; with ``--port 0`` the script finds its
  own listening socket in ``/proc/self/net/tcp`` (Linux only), by socket inode.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import os
import re
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import smpp34
from smpp34._smpp34 import ESME_RSYSERR, TLV_MESSAGE_STATE, TLV_RECEIPTED_MESSAGE_ID

if TYPE_CHECKING:
    from collections.abc import Awaitable

ID_BASE = 0x5A000000
_SOCKET_LINK = re.compile(r"socket:\[(\d+)\]")
_TCP_LISTEN = "0A"


def own_listening_ports() -> list[int]:
    """TCP ports this process listens on (Linux: socket inodes of /proc/self/fd)."""
    inodes: set[str] = set()
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            match = _SOCKET_LINK.fullmatch(os.readlink(f"/proc/self/fd/{fd}"))
            if match is not None:
                inodes.add(match.group(1))
    ports: list[int] = []
    for table in ("/proc/self/net/tcp", "/proc/self/net/tcp6"):
        with contextlib.suppress(OSError), open(table) as f:
            for line in f.read().splitlines()[1:]:
                fields = line.split()
                if fields[3] == _TCP_LISTEN and fields[9] in inodes:
                    ports.append(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def last_id_in(record: Path) -> int:
    """The highest message id already recorded (0 if none), so ids never repeat."""
    highest = 0
    with contextlib.suppress(FileNotFoundError), open(record) as f:
        for line in f:
            with contextlib.suppress(ValueError, KeyError, TypeError):
                entry = json.loads(line)
                if entry.get("event") == "submit":
                    highest = max(highest, int(entry["message_id"], 16))
    return highest


def receipt_text(message_id: int, submitted: dt.datetime, text: str) -> bytes:
    stamp = submitted.strftime("%y%m%d%H%M")
    done = dt.datetime.now(dt.UTC).strftime("%y%m%d%H%M")
    return (
        f"id:{message_id} sub:001 dlvrd:001 submit date:{stamp} done date:{done} "
        f"stat:DELIVRD err:000 text:{text[:20]}"
    ).encode("ascii", "replace")


def user_text(event: smpp34.SubmitSmEvent) -> str:
    """The submit's text without its UDH, for the receipt's ``text:`` field."""
    data = event.short_message
    if event.esm_class & 0x40 and data:
        data = data[1 + data[0] :]
    if event.data_coding == 8:
        return data.decode("utf-16-be", "replace")
    return data.decode("latin-1")


class Smsc:
    def __init__(self, args: argparse.Namespace, out: TextIO) -> None:
        self.args = args
        self.out = out
        self.record_path: Path = args.record
        self.record = open(self.record_path, "a", buffering=1)  # noqa: SIM115
        self.next_id = max(last_id_in(self.record_path) + 1, args.id_base)
        self.server = smpp34.Server(args.host, args.port, system_id=args.server_system_id)
        self.sessions: dict[str, smpp34.Esme] = {}
        self.no_sessions = asyncio.Event()
        self.no_sessions.set()
        self.receipts_sent = 0
        self.tasks: set[asyncio.Future[Any]] = set()

    def write(self, event: str, **fields: Any) -> None:
        self.record.write(json.dumps({"event": event, **fields}) + "\n")

    def say(self, **fields: Any) -> None:
        self.out.write(json.dumps(fields) + "\n")
        self.out.flush()

    def spawn(self, work: Awaitable[Any]) -> None:
        # ensure_future, not create_task: smpp34's async methods return futures.
        task = asyncio.ensure_future(work)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def serve(self) -> None:
        await self.server.start()
        ports = own_listening_ports() if self.args.port == 0 else [self.args.port]
        if not ports:
            raise SystemExit("smpp34 server started but no listening socket was found")
        self.say(port=ports[0], pid=os.getpid())
        while True:
            event = await self.server.next()
            if isinstance(event, smpp34.Esme):
                self.on_bind(event)
            elif isinstance(event, smpp34.SubmitSmEvent):
                self.on_submit(event)
            else:
                self.sessions.pop(event.session_id, None)
                if not self.sessions:
                    self.no_sessions.set()
                self.write("unbind", session=event.session_id)

    def on_bind(self, esme: smpp34.Esme) -> None:
        if esme.system_id != self.args.system_id:
            self.write("bind_rejected", session=esme.session_id, system_id=esme.system_id)
            self.spawn(esme.unbind())
            return
        self.sessions[esme.session_id] = esme
        self.no_sessions.clear()
        self.write(
            "bind",
            session=esme.session_id,
            system_id=esme.system_id,
            can_receive=esme.can_receive,
            password="not checkable",
        )

    def on_submit(self, event: smpp34.SubmitSmEvent) -> None:
        if event.session_id not in self.sessions:
            event.reject(ESME_RSYSERR)
            return
        message_id = self.next_id
        self.next_id += 1
        hex_id = f"{message_id:08X}"
        self.write(
            "submit",
            session=event.session_id,
            message_id=hex_id,
            source_addr=event.source_addr,
            source_addr_ton=event.source_addr_ton,
            destination_addr=event.destination_addr,
            dest_addr_ton=event.dest_addr_ton,
            esm_class=event.esm_class,
            data_coding=event.data_coding,
            registered_delivery=event.registered_delivery,
            short_message=event.short_message.hex(),
            tlvs=[[t.tag, t.value.hex()] for t in event.tlvs],
        )
        event.accept(hex_id)
        if event.registered_delivery & 0x01:
            self.spawn(self.send_receipt(event, message_id, hex_id, dt.datetime.now(dt.UTC)))

    async def send_receipt(
        self, event: smpp34.SubmitSmEvent, message_id: int, hex_id: str, submitted: dt.datetime
    ) -> None:
        await asyncio.sleep(self.args.receipt_delay)
        esme = self.sessions.get(event.session_id)
        if esme is None or not esme.can_receive:
            esme = next((s for s in self.sessions.values() if s.can_receive), None)
        if esme is None:
            self.write("receipt_lost", message_id=hex_id, reason="no session can receive")
            return
        self.receipts_sent += 1
        mode = self.args.receipt_tlvs
        with_tlvs = mode == "all" or (mode == "alternate" and self.receipts_sent % 2 == 1)
        tlvs = (
            [
                smpp34.Tlv(TLV_RECEIPTED_MESSAGE_ID, hex_id.encode() + b"\0"),
                smpp34.Tlv(TLV_MESSAGE_STATE, bytes([2])),
            ]
            if with_tlvs
            else []
        )
        try:
            resp = await esme.deliver_sm(
                event.source_addr,
                receipt_text(message_id, submitted, user_text(event)),
                source_addr=event.destination_addr,
                source_addr_ton=event.dest_addr_ton,
                dest_addr_ton=event.source_addr_ton,
                esm_class=0x04,
                tlvs=tlvs,
            )
        except smpp34.SmppError as exc:
            self.write("receipt_lost", message_id=hex_id, reason=str(exc))
            return
        self.write(
            "receipt",
            message_id=hex_id,
            with_tlvs=with_tlvs,
            command_status=resp.command_status,
        )

    async def send_mo(self, command: dict[str, Any]) -> None:
        esme = next((s for s in self.sessions.values() if s.can_receive), None)
        if esme is None:
            self.say(mo=None, error="no bound session can receive")
            return
        try:
            resp = await esme.deliver_sm(
                command["destination_addr"],
                command["text"].encode("latin-1"),
                source_addr=command["source_addr"],
                source_addr_ton=1,
                source_addr_npi=1,
            )
        except smpp34.SmppError as exc:
            self.say(mo=None, error=str(exc))
            return
        self.write("mo", session=esme.session_id, command_status=resp.command_status, **command)
        self.say(mo=resp.command_status)

    async def commands(self) -> None:
        """JSON-line commands on stdin (EOF just ends the command channel)."""
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        while line := await reader.readline():
            try:
                command = json.loads(line)
            except ValueError:
                self.say(error=f"not JSON: {line!r}")
                continue
            if command.get("cmd") == "mo":
                self.spawn(self.send_mo(command))
            elif command.get("cmd") == "unbind":
                sessions = list(self.sessions)
                for esme in self.sessions.values():
                    self.spawn(esme.unbind())
                self.say(unbinding=sessions)
            else:
                self.say(error=f"unknown command: {command!r}")

    async def unbind_all(self, grace: float) -> None:
        """Unbind every live session and wait (``grace`` seconds at most) for its end."""
        for esme in list(self.sessions.values()):
            self.spawn(esme.unbind())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.no_sessions.wait(), grace)

    async def close(self) -> None:
        for task in list(self.tasks):
            task.cancel()
        await self.server.stop()
        self.record.close()


async def amain(args: argparse.Namespace) -> int:
    smsc = Smsc(args, sys.stdout)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    serving = asyncio.create_task(smsc.serve())
    commands = asyncio.create_task(smsc.commands())
    stopping = asyncio.create_task(stop.wait())
    done, _ = await asyncio.wait({serving, stopping}, return_when=asyncio.FIRST_COMPLETED)
    if stopping in done:
        await smsc.unbind_all(grace=1.0)  # while serve() still hears the Unbound events
    commands.cancel()
    serving.cancel()
    stopping.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.gather(commands, serving, stopping)
    await smsc.close()
    failure = serving.exception() if serving in done else None
    if failure is not None:
        raise failure
    return 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--system-id", required=True, help="the only system_id kept bound")
    parser.add_argument("--password", default="", help="accepted; smpp34 cannot check it")
    parser.add_argument("--server-system-id", default="SMPP34", help="ours, in bind_resp")
    parser.add_argument("--record", type=Path, required=True, help="JSON-lines event log")
    parser.add_argument("--id-base", type=lambda s: int(s, 0), default=ID_BASE)
    parser.add_argument("--receipt-delay", type=float, default=0.0, help="seconds")
    parser.add_argument(
        "--receipt-tlvs",
        choices=("alternate", "all", "none"),
        default="alternate",
        help="which receipts carry receipted_message_id + message_state",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    return asyncio.run(amain(parse_args(argv)))


if __name__ == "__main__":
    code = main()
    # smpp34 1.5 can crash the interpreter's finalization ("Fatal Python error:
    # PyGILState_Release: thread state ... must be current when releasing", or SIGSEGV)
    # when its tokio threads still hold a session: skip finalization once all is closed.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
