"""The Prometheus scrape endpoint: a tiny HTTP/1.1 server that is a trio task.

Why not ``prometheus_client.start_http_server``: it runs a thread, outside the
daemon's nursery, so it starts before the daemon is up, outlives a failed start-up
and cannot be cancelled. Here the server is one more service in the supervision tree:
it reports ``task_status.started(port)`` only once it listens, and dies with its
nursery.

Scope, on purpose: ``GET``/``HEAD`` of three paths, one request per connection
(``Connection: close``), no request bodies, no keep-alive, no chunking. A scraper needs
no more, and every extra feature would be attack surface on a port that has no
authentication. Paths:

- ``/metrics``: the registry in the format the ``Accept`` header asks for (Prometheus
  text by default, OpenMetrics on request), generated at scrape time, which is when
  collectors read components' ``statistics()``.
- ``/healthz``: ``200 ok`` while the optional readiness hook says so, ``503`` with its
  detail when it does not (the store unavailable, no carrier bound...). Without a hook
  the answer is ``200 ok``: the event loop is alive enough to answer.
- anything else: ``404``; another method: ``405``.

Robustness: the request head is read with a deadline (``header_timeout``) and at most
:data:`MAX_HEAD_BYTES`, so a slow or flooding client holds a connection for a bounded
time and memory. Garbage gets ``400``; a client that vanishes is forgotten; a failing
collector or readiness hook gets ``500``/``503`` and a logged traceback, never a dead
server.
"""

from __future__ import annotations

import http
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Final

import structlog
import trio
from prometheus_client.exposition import choose_encoder

if TYPE_CHECKING:
    from prometheus_client.registry import CollectorRegistry

__all__ = ["MAX_HEAD_BYTES", "Readiness", "serve_metrics"]

#: ``() -> (ok, detail)``: whether the daemon can do its work now, and why not.
Readiness = Callable[[], tuple[bool, str]]

#: Longest request line plus headers we read; more gets ``431``.
MAX_HEAD_BYTES: Final = 8192
SEND_TIMEOUT: Final = 10.0
#: After answering, how long and how much we read before closing (see _lingering_close).
LINGER_TIMEOUT: Final = 2.0
LINGER_BYTES: Final = 65536

log = structlog.get_logger(__name__)


class _Reject(Exception):
    """The request cannot be served; answer ``status`` and close."""

    def __init__(self, status: http.HTTPStatus, detail: str = "", headers: str = "") -> None:
        super().__init__(status, detail)
        self.status = status
        self.detail = detail or status.phrase
        self.headers = headers


async def serve_metrics(
    host: str,
    port: int,
    registry: CollectorRegistry,
    *,
    readiness: Readiness | None = None,
    header_timeout: float = 5.0,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``/metrics`` and ``/healthz`` on ``host:port`` until cancelled.

    Args:
        host: address to listen on (``127.0.0.1`` keeps it off the network).
        port: TCP port; 0 picks a free one (tests), reported through ``task_status``.
        registry: what ``/metrics`` exposes.
        readiness: hook for ``/healthz``; see the module docstring.
        header_timeout: seconds a client has to send its request head.
        task_status: ``started(port)`` is called once the socket listens.

    Raises:
        OSError: the address cannot be bound (in use, not local); raised from
            ``nursery.start`` so the daemon does not start half-up.
    """
    listeners = await trio.open_tcp_listeners(port, host=host)
    if port == 0:
        # Each address of a multi-address host would get its own free port; keep one,
        # so the port we report is the only one we listen on.
        for extra in listeners[1:]:
            await extra.aclose()
        listeners = listeners[:1]
    actual_port: int = listeners[0].socket.getsockname()[1]
    handler = partial(
        _serve_connection, registry=registry, readiness=readiness, header_timeout=header_timeout
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(trio.serve_listeners, handler, listeners)
        log.info("metrics endpoint listening", host=host, port=actual_port)
        task_status.started(actual_port)


async def _serve_connection(
    stream: trio.SocketStream,
    *,
    registry: CollectorRegistry,
    readiness: Readiness | None,
    header_timeout: float,
) -> None:
    # The connection boundary: whatever happens stays with this client.
    try:
        try:
            with trio.move_on_after(header_timeout) as scope:
                method, path, accept = await _read_request(stream)
            if scope.cancelled_caught:
                raise _Reject(http.HTTPStatus.REQUEST_TIMEOUT)
            response = _route(method, path, accept, registry, readiness)
        except _Reject as reject:
            body = f"{reject.detail}\n".encode()
            response = _response(reject.status, body, head=False, headers=reject.headers)
        with trio.move_on_after(SEND_TIMEOUT):
            await stream.send_all(response)
        await _lingering_close(stream)
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        log.debug("metrics client went away")
    except Exception:
        log.exception("metrics request failed")
    finally:
        await trio.aclose_forcefully(stream)


async def _lingering_close(stream: trio.SocketStream) -> None:
    """Half-close, then discard what the client still sends until it closes.

    Closing a socket with unread input makes the kernel send a reset, and the client
    may then lose the answer it has not read yet (a 431 to an oversized request, a 405
    to a POST with a body). Reading is bounded in time and bytes.
    """
    await stream.send_eof()
    with trio.move_on_after(LINGER_TIMEOUT):
        discarded = 0
        while discarded <= LINGER_BYTES:
            chunk = await stream.receive_some(16384)
            if not chunk:
                break
            discarded += len(chunk)


async def _read_request(stream: trio.SocketStream) -> tuple[str, str, str]:
    """Read the request head; return method, path (no query) and the Accept header."""
    head = bytearray()
    while True:
        end = head.find(b"\r\n\r\n")
        if end < 0:
            end = head.find(b"\n\n")  # tolerate bare LF, as most servers do
        if end >= 0:
            break
        if len(head) > MAX_HEAD_BYTES:
            raise _Reject(http.HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE)
        chunk = await stream.receive_some(MAX_HEAD_BYTES + 1 - len(head))
        if not chunk:
            raise trio.ClosedResourceError("client closed before a full request")
        head += chunk
    if end > MAX_HEAD_BYTES:
        raise _Reject(http.HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE)

    lines = bytes(head[:end]).decode("latin-1").splitlines()
    parts = lines[0].split(" ") if lines else []
    if len(parts) != 3 or not parts[2].startswith("HTTP/1.") or not parts[1].startswith("/"):
        raise _Reject(http.HTTPStatus.BAD_REQUEST, "bad request line")
    method, target, _version = parts
    accept = ""
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep and name.strip().lower() == "accept":
            accept = value.strip()
    return method, target.partition("?")[0], accept


def _route(
    method: str,
    path: str,
    accept: str,
    registry: CollectorRegistry,
    readiness: Readiness | None,
) -> bytes:
    if path not in ("/metrics", "/healthz"):
        raise _Reject(http.HTTPStatus.NOT_FOUND)
    if method not in ("GET", "HEAD"):
        raise _Reject(http.HTTPStatus.METHOD_NOT_ALLOWED, headers="Allow: GET, HEAD\r\n")
    head = method == "HEAD"
    if path == "/metrics":
        encoder, content_type = choose_encoder(accept)
        try:
            body = encoder(registry)
        except Exception:
            log.exception("metrics collection failed")
            raise _Reject(http.HTTPStatus.INTERNAL_SERVER_ERROR, "collection failed") from None
        return _response(http.HTTPStatus.OK, body, head=head, content_type=content_type)
    ok, detail = True, ""
    if readiness is not None:
        try:
            ok, detail = readiness()
        except Exception:
            log.exception("readiness check failed")
            ok, detail = False, "readiness check failed"
    text = ("ok" if ok else "unavailable") + (f": {detail}" if detail else "")
    status = http.HTTPStatus.OK if ok else http.HTTPStatus.SERVICE_UNAVAILABLE
    return _response(status, f"{text}\n".encode(), head=head)


def _response(
    status: http.HTTPStatus,
    body: bytes,
    *,
    head: bool,
    content_type: str = "text/plain; charset=utf-8",
    headers: str = "",
) -> bytes:
    header = (
        f"HTTP/1.1 {status.value} {status.phrase}\r\n"
        f"Content-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\n"
        f"{headers}Connection: close\r\n\r\n"
    ).encode("latin-1")
    return header if head else header + body
