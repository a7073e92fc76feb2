"""The metrics endpoint on a real loopback socket (port 0), with a plain trio TCP client."""

from __future__ import annotations

from contextlib import asynccontextmanager
from functools import partial
from typing import TYPE_CHECKING

import pytest
import trio
from prometheus_client import CollectorRegistry, Counter
from prometheus_client.registry import Collector

from smppgw.app.metrics_http import MAX_HEAD_BYTES, Readiness, serve_metrics

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterable

    from prometheus_client.metrics_core import Metric


@asynccontextmanager
async def running(
    registry: CollectorRegistry | None = None,
    readiness: Readiness | None = None,
    header_timeout: float = 5.0,
) -> AsyncIterator[int]:
    """A server on 127.0.0.1, a free port; yields the port, cancels the server after."""
    if registry is None:
        registry = CollectorRegistry()
    async with trio.open_nursery() as nursery:
        port = await nursery.start(
            partial(
                serve_metrics,
                "127.0.0.1",
                0,
                registry,
                readiness=readiness,
                header_timeout=header_timeout,
            )
        )
        yield port
        nursery.cancel_scope.cancel()


async def fetch(port: int, raw: bytes) -> bytes:
    """Send ``raw``, read until the server closes; the whole answer."""
    with trio.fail_after(5):
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        async with stream:
            await stream.send_all(raw)
            answer = bytearray()
            while chunk := await stream.receive_some(65536):
                answer += chunk
    return bytes(answer)


def split(answer: bytes) -> tuple[str, dict[str, str], bytes]:
    head, _, body = answer.partition(b"\r\n\r\n")
    status, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
    return status, headers, body


def get(path: str, *headers: str) -> bytes:
    extra = "".join(f"{h}\r\n" for h in headers)
    return f"GET {path} HTTP/1.1\r\nHost: x\r\n{extra}\r\n".encode()


def _registry() -> CollectorRegistry:
    registry = CollectorRegistry()
    Counter("smppgw_test_submits", "test counter", ["carrier"], registry=registry).labels(
        "viettel"
    ).inc(3)
    return registry


async def test_metrics_in_prometheus_text() -> None:
    async with running(_registry()) as port:
        assert port > 0
        status, headers, body = split(await fetch(port, get("/metrics")))
    assert status == "HTTP/1.1 200 OK"
    assert headers["content-type"].startswith("text/plain; version=")
    assert headers["connection"] == "close"
    assert int(headers["content-length"]) == len(body)
    assert b'smppgw_test_submits_total{carrier="viettel"} 3.0\n' in body


async def test_openmetrics_on_request_and_query_ignored() -> None:
    accept = "Accept: application/openmetrics-text; version=1.0.0"
    async with running(_registry()) as port:
        status, headers, body = split(await fetch(port, get("/metrics?name[]=x", accept)))
    assert status == "HTTP/1.1 200 OK"
    assert headers["content-type"].startswith("application/openmetrics-text")
    assert body.endswith(b"# EOF\n")


async def test_head_has_length_but_no_body() -> None:
    async with running(_registry()) as port:
        _, full_headers, full_body = split(await fetch(port, get("/metrics")))
        status, headers, body = split(await fetch(port, b"HEAD /metrics HTTP/1.1\r\n\r\n"))
    assert status == "HTTP/1.1 200 OK"
    assert headers["content-length"] == str(len(full_body)) == full_headers["content-length"]
    assert body == b""


async def test_healthz_without_hook_is_ok() -> None:
    async with running() as port:
        answer = await fetch(port, get("/healthz"))
    assert split(answer)[0] == "HTTP/1.1 200 OK"
    assert split(answer)[2] == b"ok\n"


async def test_healthz_follows_readiness_hook() -> None:
    state = {"ready": (False, "store unavailable")}
    async with running(readiness=lambda: state["ready"]) as port:
        not_ready = split(await fetch(port, get("/healthz")))
        state["ready"] = (True, "3 of 3 binds up")
        ready = split(await fetch(port, get("/healthz")))
    assert (not_ready[0], not_ready[2]) == (
        "HTTP/1.1 503 Service Unavailable",
        b"unavailable: store unavailable\n",
    )
    assert (ready[0], ready[2]) == ("HTTP/1.1 200 OK", b"ok: 3 of 3 binds up\n")


async def test_failing_hook_and_collector_answer_errors_and_server_lives_on() -> None:
    def broken_hook() -> tuple[bool, str]:
        raise RuntimeError("hook bug")

    class Broken(Collector):
        def collect(self) -> Iterable[Metric]:
            raise RuntimeError("collector bug")

    registry = CollectorRegistry()
    registry.register(Broken())
    async with running(registry, readiness=broken_hook) as port:
        health = split(await fetch(port, get("/healthz")))
        metrics = split(await fetch(port, get("/metrics")))
        again = split(await fetch(port, get("/healthz")))
    assert health[0] == again[0] == "HTTP/1.1 503 Service Unavailable"
    assert health[2] == b"unavailable: readiness check failed\n"
    assert metrics[0] == "HTTP/1.1 500 Internal Server Error"


async def test_not_found_and_method_not_allowed() -> None:
    async with running() as port:
        missing = split(await fetch(port, get("/")))
        post = split(await fetch(port, b"POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n"))
    assert missing[0] == "HTTP/1.1 404 Not Found"
    assert post[0] == "HTTP/1.1 405 Method Not Allowed"
    assert post[1]["allow"] == "GET, HEAD"


async def test_garbage_gets_400() -> None:
    cases = [
        b"\x00\xff\xfe garbage\r\n\r\n",
        b"GET\r\n\r\n",
        b"GET /metrics SMPP/3.4\r\n\r\n",
        b"GET metrics HTTP/1.1\r\n\r\n",
        b"\r\n\r\n",
    ]
    async with running() as port:
        for raw in cases:
            assert split(await fetch(port, raw))[0] == "HTTP/1.1 400 Bad Request", raw
        assert split(await fetch(port, get("/healthz")))[0] == "HTTP/1.1 200 OK"


async def test_bare_lf_requests_are_served() -> None:
    async with running() as port:
        assert split(await fetch(port, b"GET /healthz HTTP/1.0\n\n"))[0] == "HTTP/1.1 200 OK"


async def test_oversized_head_gets_431() -> None:
    raw = get("/metrics", "X-Pad: " + "a" * MAX_HEAD_BYTES)
    async with running() as port:
        answer = await fetch(port, raw)
    assert split(answer)[0] == "HTTP/1.1 431 Request Header Fields Too Large"


async def test_slow_client_gets_408_after_the_header_timeout() -> None:
    async with running(header_timeout=0.2) as port:
        start = trio.current_time()
        answer = await fetch(port, b"GET /metrics HTTP/1.1\r\n")  # never finishes
        elapsed = trio.current_time() - start
    assert split(answer)[0] == "HTTP/1.1 408 Request Timeout"
    assert 0.15 < elapsed < 3


async def test_clients_that_vanish_do_not_hurt_the_server() -> None:
    async with running(_registry()) as port:
        for raw in (b"", b"GET /met", get("/metrics")):
            stream = await trio.open_tcp_stream("127.0.0.1", port)
            if raw:
                await stream.send_all(raw)
            await stream.aclose()  # before reading any answer
        assert split(await fetch(port, get("/metrics")))[0] == "HTTP/1.1 200 OK"


async def test_many_concurrent_scrapes() -> None:
    results: list[str] = []

    async def one(port: int) -> None:
        results.append(split(await fetch(port, get("/metrics")))[0])

    async with running(_registry()) as port, trio.open_nursery() as nursery:
        for _ in range(50):
            nursery.start_soon(one, port)
    assert results == ["HTTP/1.1 200 OK"] * 50


async def test_port_in_use_fails_the_start() -> None:
    async with running() as port, trio.open_nursery() as nursery:
        with pytest.raises(OSError, match="in use"):
            await nursery.start(serve_metrics, "127.0.0.1", port, CollectorRegistry())
