"""The admin control socket: operators act on the running daemon, safely.

The journal belongs to the daemon (its lock file keeps a second writer out), so an
admin command that changes what the gateway does goes *through* the daemon: a Unix
socket (mode 0600: only the daemon's user and root) under ``var/``, one JSON request
line in, one JSON answer line out. No network port, so nothing remote can reach it.

Commands:

- ``{"cmd": "moderation.list", "limit": 100}`` -> ``{"ok": true, "messages": [...]}``
- ``{"cmd": "moderation.approve", "ids": [..]}`` -> the held ones are sent now
- ``{"cmd": "moderation.reject", "ids": [..], "reason": ".."}`` -> final ``rejected``,
  nothing charged, a REJECTD receipt when the partner asked for receipts
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import structlog
import trio

from smppgw.gateway.recovery import outbound_from_stored
from smppgw.protocol.text import decode_text
from smppgw.protocol.udh import UdhError, parse_udh
from smppgw.store import StoreError

if TYPE_CHECKING:
    from pathlib import Path

    from smppgw.gateway.mt import MtPipeline
    from smppgw.store import Store, StoredMessage

__all__ = ["AdminCommand", "AdminCommands", "admin_request", "moderated_text", "serve_admin"]

#: A command another module adds (``AdminCommands.register``): the request in, the
#: answer out (a dict with ``ok``). Raising ``ValueError`` answers ``ok: false``.
AdminCommand = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]

log = structlog.get_logger("smppgw.admin")

_MAX_REQUEST = 1 << 16
_REQUEST_TIMEOUT = 10.0


class AdminCommands:
    """What the control socket can do, against the daemon's own store and pipeline."""

    def __init__(self, store: Store, pipeline: MtPipeline) -> None:
        self.store = store
        self.pipeline = pipeline
        self._extra: dict[str, AdminCommand] = {}

    def register(self, name: str, command: AdminCommand) -> None:
        """Add a command (scenario events, imports...) owned by another module."""
        self._extra[name] = command

    async def run(self, request: dict[str, Any]) -> dict[str, Any]:
        cmd = request.get("cmd")
        extra = self._extra.get(str(cmd))
        if extra is not None:
            try:
                return await extra(request)
            except ValueError as exc:
                return {"ok": False, "error": str(exc)}
        if cmd == "moderation.list":
            held = await self.store.held_messages(int(request.get("limit", 100)))
            return {
                "ok": True,
                "messages": [
                    {
                        "id": m.id,
                        "partner": m.partner,
                        "source": m.source_addr,
                        "destination": m.destination_addr,
                        "data_coding": m.data_coding,
                        "body_hex": m.body.hex(),
                        "text": moderated_text(m),
                        "created_at": m.created_at,
                    }
                    for m in held
                ],
            }
        ids = [int(i) for i in request.get("ids", [])]
        if cmd == "moderation.approve":
            released = await self.store.release_held(ids)
            approved = []
            for message_id in released:
                stored = await self.store.get_message(message_id)
                if stored is not None:
                    approved.append(outbound_from_stored(stored))
            # A number may have opted out while its message waited for the moderator.
            opted_out = await self.pipeline.release(approved)
            if opted_out:
                await self.pipeline.flush()
            log.info("moderation approved", ids=released, opted_out=opted_out)
            return {"ok": True, "approved": released, "opted_out": opted_out}
        if cmd == "moderation.reject":
            reason = str(request.get("reason") or "rejected by moderation")
            rejected = []
            for message_id in ids:
                stored = await self.store.get_message(message_id)
                if stored is not None and str(stored.state) == "held":
                    self.pipeline.reject_held(stored, reason)
                    rejected.append(message_id)
            await self.pipeline.flush()
            log.info("moderation rejected", ids=rejected)
            return {"ok": True, "rejected": rejected}
        return {"ok": False, "error": f"unknown command {cmd!r}"}


def moderated_text(m: StoredMessage) -> str:
    """What a moderator reads: the text without its UDH (a partner's own part of a long
    message), decoded by its data_coding (never fails: see ``decode_text``)."""
    body = m.body
    if m.esm_class & 0x40:
        with contextlib.suppress(UdhError):
            _, body = parse_udh(body)
    return decode_text(body, m.data_coding)


async def serve_admin(
    path: Path,
    commands: AdminCommands,
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve the control socket at ``path`` until cancelled (the file is removed after)."""
    await trio.to_thread.run_sync(_prepare, path)
    sock = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        await sock.bind(str(path))
        os.chmod(path, 0o600)
        sock.listen(16)
        listener = trio.SocketListener(sock)
        log.info("admin socket listening", path=str(path))
        task_status.started()

        async def handler(stream: trio.SocketStream) -> None:
            await _serve_one(stream, commands)

        await trio.serve_listeners(handler, [listener])
    finally:
        sock.close()
        _remove(path)


def _prepare(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove(path)  # a stale socket of a previous run


def _remove(path: Path) -> None:
    path.unlink(missing_ok=True)


async def _serve_one(stream: trio.SocketStream, commands: AdminCommands) -> None:
    try:
        with trio.fail_after(_REQUEST_TIMEOUT):
            data = b""
            while b"\n" not in data and len(data) < _MAX_REQUEST:
                chunk = await stream.receive_some(4096)
                if not chunk:
                    break
                data += chunk
            request: Any = {}
            try:
                request = json.loads(data.split(b"\n", 1)[0] or b"{}")
                if not isinstance(request, dict):
                    raise ValueError("a request is a JSON object")
                answer = await commands.run(request)
            except (ValueError, TypeError) as exc:
                answer = {"ok": False, "error": str(exc)}
            except StoreError as exc:  # the journal refuses now: the operator is told
                answer = {"ok": False, "error": f"the journal refused: {exc}"}
            except Exception as exc:  # a bug in one command must not end the daemon
                log.exception("admin command failed", cmd=str(request.get("cmd")))
                answer = {"ok": False, "error": f"the command failed: {exc!r} (see the log)"}
            await stream.send_all(json.dumps(answer).encode() + b"\n")
    except (trio.TooSlowError, trio.BrokenResourceError):
        pass
    finally:
        await stream.aclose()


def admin_request(path: Path, request: dict[str, Any], timeout: float = 15.0) -> dict[str, Any]:
    """Blocking client for the CLI: send one request, return the answer."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
        client.settimeout(timeout)
        client.connect(str(path))
        client.sendall(json.dumps(request).encode() + b"\n")
        data = b""
        while not data.endswith(b"\n"):
            chunk = client.recv(65536)
            if not chunk:
                break
            data += chunk
    answer: dict[str, Any] = json.loads(data or b"{}")
    return answer
