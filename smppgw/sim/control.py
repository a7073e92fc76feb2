"""The simulator's control endpoint: a tiny HTTP/1.1 server (and client) on trio.

Routes (JSON in, JSON out, one request per connection):

- ``POST /mo`` ``{"from": "84912345678", "to": "8055", "text": "TD ABC123"}`` (optional
  ``ussd_session``: the MO comes as USSD in that session; ``count``: that many MO, with
  ``{i}`` in ``from`` and ``text`` numbering them from 0, e.g. ``"TD C{i:06d}"``;
  ``data_coding``, ``system_id``): injects an MO; answers ``{"parts": n}``.
- ``GET /stats``: the simulator's statistics and the faults in force.
- ``GET /messages?last=10``: the last messages submitted to it, text decoded (a long
  message shows as its parts).
- ``GET /submits?since=N&limit=M``: every recorded submit from absolute index ``N``
  (at most ``M``, default and cap 5000), compact: ``[destination, text, message_id,
  status, session, source]`` each (text decoded, UDH dropped; ``status`` null when never
  answered). Answers ``first`` (the oldest index still kept: records before it fell off
  the bounded record, ``smppgw sim --record N``) and ``next`` (the index to ask next), so
  a test can read *every* submit of a long run in pages and know if it missed any.
- ``GET /faults``, ``POST /faults`` ``{"throttle_every": 10, ...}``: read or change the
  faults; an invalid change is refused whole with ``400``.

Like the metrics endpoint it is a task of the simulator's nursery (no thread), reads the
request with a deadline and a size limit, and has no authentication: bind it to
127.0.0.1.
"""

from __future__ import annotations

import http
import itertools
import json
from functools import partial
from typing import TYPE_CHECKING, Any, Final

import structlog
import trio

from smppgw.protocol.text import TextEncodeError, decode_text
from smppgw.sim.faults import FaultError
from smppgw.sim.mo import ussd_tlvs

if TYPE_CHECKING:
    from smppgw.sim.smsc import SimulatedSmsc, SubmitRecord

__all__ = ["MAX_REQUEST_BYTES", "request_json", "serve_control"]

MAX_REQUEST_BYTES: Final = 65536
#: What :func:`request_json` reads of an answer at most: a page of ``/submits`` or
#: ``/messages?last=1000`` is far above a request's limit.
MAX_RESPONSE_BYTES: Final = 16 * 1024 * 1024
log = structlog.get_logger("smppgw.sim.control")


class _HttpError(Exception):
    def __init__(self, status: http.HTTPStatus, detail: str = "") -> None:
        super().__init__(detail or status.phrase)
        self.status = status
        self.detail = detail or status.phrase


async def serve_control(
    sim: SimulatedSmsc,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    request_timeout: float = 5.0,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve the control routes for ``sim`` on ``host:port`` until cancelled;
    ``task_status.started(port)`` once listening (port 0 picks a free one)."""
    listeners = await trio.open_tcp_listeners(port, host=host)
    for extra in listeners[1:]:
        await extra.aclose()
    actual: int = listeners[0].socket.getsockname()[1]
    handler = partial(_serve_one, sim=sim, request_timeout=request_timeout)
    async with trio.open_nursery() as nursery:
        await nursery.start(trio.serve_listeners, handler, listeners[:1])
        log.info("simulator control endpoint listening", host=host, port=actual)
        task_status.started(actual)


async def _serve_one(
    stream: trio.SocketStream, *, sim: SimulatedSmsc, request_timeout: float
) -> None:
    try:
        try:
            with trio.fail_after(request_timeout):
                method, path, body = await _read_message(stream, request=True)
            status, payload = _route(sim, method, path, body)
        except trio.TooSlowError:
            status, payload = http.HTTPStatus.REQUEST_TIMEOUT, {"error": "request timeout"}
        except _HttpError as exc:
            status, payload = exc.status, {"error": exc.detail}
        data = json.dumps(payload).encode()
        head = (
            f"HTTP/1.1 {status.value} {status.phrase}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n"
        )
        with trio.move_on_after(request_timeout):
            await stream.send_all(head.encode("latin-1") + data)
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        log.debug("control client went away")
    except Exception:
        log.exception("control request failed")
    finally:
        await trio.aclose_forcefully(stream)


#: The most records one ``GET /submits`` returns (a page; ask again from ``next``).
MAX_SUBMITS_PAGE = 5000

#: The most MO one ``POST /mo`` may inject (they queue in memory until delivered).
MAX_MO_BATCH = 100_000


def _message_view(record: SubmitRecord) -> dict[str, Any]:
    payload = record.short_message
    if record.esm_class & 0x40 and payload:
        payload = payload[payload[0] + 1 :]
    return {
        "from": record.source,
        "to": list(record.destinations),
        "text": decode_text(payload, record.data_coding),
        "message_id": record.message_id,
        "system_id": record.system_id,
    }


def _submits_page(sim: SimulatedSmsc, query: str) -> dict[str, Any]:
    since, limit = 0, MAX_SUBMITS_PAGE
    for item in query.split("&"):
        name, _, value = item.partition("=")
        if name == "since" and value.isdigit():
            since = int(value)
        elif name == "limit" and value.isdigit():
            limit = max(1, min(int(value), MAX_SUBMITS_PAGE))
    records = sim.submits
    end = sim.submits_recorded
    first = end - len(records)
    start = min(max(since, first), end)
    page: list[list[Any]] = []
    offset = start - first
    for record in itertools.islice(records, offset, offset + limit):
        text = _message_view(record)["text"]
        page.extend(
            [destination, text, record.message_id, record.status, record.session, record.source]
            for destination in record.destinations
        )
    return {"first": first, "next": start + min(limit, end - start), "submits": page}


def _route(sim: SimulatedSmsc, method: str, path: str, body: bytes) -> tuple[http.HTTPStatus, Any]:
    ok = http.HTTPStatus.OK
    path, _, query = path.partition("?")
    if path == "/stats" and method == "GET":
        return ok, {**sim.statistics().to_dict(), "faults": sim.faults.to_dict()}
    if path == "/faults" and method == "GET":
        return ok, sim.faults.to_dict()
    if path == "/messages" and method == "GET":
        last = 10
        for item in query.split("&"):
            name, _, value = item.partition("=")
            if name == "last" and value.isdigit():
                last = max(1, min(int(value), 1000))
        records = list(sim.submits)[-last:]
        return ok, {"messages": [_message_view(r) for r in records]}
    if path == "/submits" and method == "GET":
        return ok, _submits_page(sim, query)
    if path == "/faults" and method == "POST":
        changes = _json_object(body)
        try:
            sim.faults.update(changes)
        except FaultError as exc:
            raise _HttpError(http.HTTPStatus.BAD_REQUEST, str(exc)) from None
        log.info("faults changed", **changes)
        return ok, sim.faults.to_dict()
    if path == "/mo" and method == "POST":
        mo = _json_object(body)
        try:
            source, destination, text = (str(mo[k]) for k in ("from", "to", "text"))
            data_coding = mo.get("data_coding")
            system_id = mo.get("system_id")
            if data_coding is not None and not isinstance(data_coding, int):
                raise ValueError("data_coding must be an integer")
            session = mo.get("ussd_session")
            if session is not None and not isinstance(session, int):
                raise ValueError("ussd_session must be an integer")
            count = mo.get("count", 1)
            if not isinstance(count, int) or not 1 <= count <= MAX_MO_BATCH:
                raise ValueError(f"count must be an integer from 1 to {MAX_MO_BATCH}")
            parts = 0
            for i in range(count):
                parts += sim.inject_mo(
                    source.format(i=i) if count > 1 else source,
                    destination,
                    text.format(i=i) if count > 1 else text,
                    data_coding=data_coding,
                    system_id=None if system_id is None else str(system_id),
                    tlvs=() if session is None else ussd_tlvs(session),
                )
        except KeyError as exc:
            raise _HttpError(http.HTTPStatus.BAD_REQUEST, f"missing {exc}") from None
        except (TextEncodeError, ValueError, IndexError) as exc:
            raise _HttpError(http.HTTPStatus.BAD_REQUEST, str(exc)) from None
        return ok, {"parts": parts}
    if path in ("/stats", "/faults", "/mo", "/messages", "/submits"):
        raise _HttpError(http.HTTPStatus.METHOD_NOT_ALLOWED)
    raise _HttpError(http.HTTPStatus.NOT_FOUND)


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        value = json.loads(body or b"{}")
    except ValueError:
        raise _HttpError(http.HTTPStatus.BAD_REQUEST, "body is not JSON") from None
    if not isinstance(value, dict):
        raise _HttpError(http.HTTPStatus.BAD_REQUEST, "body must be a JSON object")
    return value


async def _read_message(stream: trio.abc.Stream, *, request: bool) -> tuple[str, str, bytes]:
    """Read a request (method, path, body) or a response (status, reason, body)."""
    data = bytearray()
    while (end := data.find(b"\r\n\r\n")) < 0:
        if len(data) > MAX_REQUEST_BYTES:
            raise _HttpError(http.HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE)
        chunk = await stream.receive_some(16384)
        if not chunk:
            raise _HttpError(http.HTTPStatus.BAD_REQUEST, "incomplete head")
        data += chunk
    lines = bytes(data[:end]).decode("latin-1").split("\r\n")
    first = lines[0].split(" ", 2)
    if len(first) < 2 or (request and len(first) != 3):
        raise _HttpError(http.HTTPStatus.BAD_REQUEST, "bad request line")
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            try:
                length = int(value.strip())
            except ValueError:
                raise _HttpError(http.HTTPStatus.BAD_REQUEST, "bad Content-Length") from None
    if not 0 <= length <= (MAX_REQUEST_BYTES if request else MAX_RESPONSE_BYTES):
        raise _HttpError(http.HTTPStatus.REQUEST_ENTITY_TOO_LARGE)
    body = bytearray(data[end + 4 :])
    while len(body) < length:
        chunk = await stream.receive_some(min(length - len(body), 1 << 20))
        if not chunk:
            raise _HttpError(http.HTTPStatus.BAD_REQUEST, "incomplete body")
        body += chunk
    if request:
        return first[0], first[1], bytes(body[:length])
    return first[1], first[2] if len(first) > 2 else "", bytes(body[:length])


async def request_json(
    host: str, port: int, method: str, path: str, payload: Any = None
) -> tuple[int, Any]:
    """A minimal client for the routes above: returns (HTTP status, decoded JSON body).

    Raises:
        OSError: the endpoint cannot be reached.

    Wrap it in ``trio.fail_after`` for a deadline.
    """
    body = b"" if payload is None else json.dumps(payload).encode()
    head = (
        f"{method} {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    stream = await trio.open_tcp_stream(host, port)
    async with stream:
        await stream.send_all(head.encode("latin-1") + body)
        status, _reason, data = await _read_message(stream, request=False)
    return int(status), json.loads(data or b"null")
