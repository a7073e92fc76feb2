"""HTTP charging through the outbox: a step queues, the task posts to a real local HTTP
server (port 0, a thread owned by the test), settles, retries, and compensates."""

from __future__ import annotations

import json
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

import pytest
import trio
from scenario_fixtures import SUBSCRIBER, ScenarioRig, scenario, scenario_rig
from test_scenario_airtime import COMMANDS, OTHER, advances, profile
from test_store_failures import FailingRead

from smppgw.scenarios import charging_http
from smppgw.scenarios.charging_http import (
    ChargingStatistics,
    deliver_pending,
    run_http_charging,
    settle_kind,
)
from smppgw.store import airtime

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path


@dataclass
class Charging:
    """What the fake charging system saw, and what it answers next (200 when empty)."""

    url: str = ""
    seen: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    answers: list[int] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


@contextmanager
def charging_server() -> Iterator[Charging]:
    state = Charging()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            with state.lock:
                state.seen.append((self.path, self.headers["Idempotency-Key"], body))
                status = state.answers.pop(0) if state.answers else 200
            reply = b'{"ok": true}'
            self.send_response(status)
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/charge"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def airtime_http(url: str) -> Any:
    return scenario(
        name="airtime",
        short_codes=["9090"],
        handler="airtime",
        commands=COMMANDS,
        settings={"fee": {"percent": 10}, "charging": {"http": {"url": url}}},
    )


async def requests(rig: ScenarioRig) -> list[tuple[Any, ...]]:
    rows = await rig.query(
        "SELECT subject, payload, processed_at IS NOT NULL FROM event"
        " WHERE kind = 'charge_request' ORDER BY id"
    )
    out = []
    for subject, payload, done in rows:
        p = json.loads(payload)
        out.append((subject, p["op"], p["amount"], p["ref"], p.get("status"), bool(done)))
    return out


async def test_advance_and_recovery_are_posted_once_with_their_keys(tmp_path: Path) -> None:
    with charging_server() as charging:
        async with scenario_rig(tmp_path, airtime_http(charging.url)) as rig:
            await profile(rig, registered=True)
            [reply] = await rig.mo("UNG 10000", short_code="9090")
            assert reply.startswith("Ban da duoc ung 10.000d, phi 1.000d.")
            assert await rig.query("SELECT count(*) FROM balance_ledger") == [(0,)]
            assert await requests(rig) == [
                (SUBSCRIBER, "credit", 10000, "advance:1:credit", None, False)
            ]
            stats = await deliver_pending(rig.store, clock=rig.clock)
            assert (stats.done, stats.refused, stats.retried) == (1, 0, 0)
            assert charging.seen == [
                (
                    "/charge",
                    "advance:1:credit",
                    {
                        "op": "credit",
                        "msisdn": SUBSCRIBER,
                        "amount": 10000,
                        "ref": "advance:1:credit",
                        "reason": "advance",
                    },
                )
            ]
            assert (await requests(rig))[0][4:] == ("done", True)

            await rig.event("topup", amount=4000, key="t1")
            await rig.event("topup", amount=4000, key="t1")  # the same key: once
            await rig.event("topup", amount=50000, key="t2")
            assert [r[1:4] for r in (await requests(rig))[1:]] == [
                ("debit", 4000, "advance:1:recover:0"),
                ("debit", 7000, "advance:1:recover:4000"),
            ]
            await deliver_pending(rig.store, clock=rig.clock)
            assert [key for _, key, _ in charging.seen] == [
                "advance:1:credit",
                "advance:1:recover:0",
                "advance:1:recover:4000",
            ]
            assert await deliver_pending(rig.store, clock=rig.clock) == ChargingStatistics()
            assert len(charging.seen) == 3
            assert await advances(rig) == [(SUBSCRIBER, 10000, 1000, 11000, "recovered")]


async def test_a_failed_post_is_retried_with_the_same_key_and_order_is_kept(
    tmp_path: Path,
) -> None:
    with charging_server() as charging:
        async with scenario_rig(tmp_path, airtime_http(charging.url)) as rig:
            await profile(rig, registered=True)
            await profile(rig, OTHER, registered=True)
            await rig.mo("UNG 10000", short_code="9090")
            await rig.event("topup", amount=20000, key="t1")  # queued behind the credit
            await rig.mo("UNG 20000", msisdn=OTHER, short_code="9090")
            charging.answers = [503]
            stats = await deliver_pending(rig.store, clock=rig.clock)
            assert (stats.done, stats.retried) == (1, 1)
            # the subscriber's debit waited for its credit; the other number went on
            assert [key for _, key, _ in charging.seen] == ["advance:1:credit", "advance:2:credit"]
            assert [r[4:] for r in await requests(rig)] == [
                ("retry", False),
                (None, False),
                ("done", True),
            ]
            stats = await deliver_pending(rig.store, clock=rig.clock)
            assert (stats.done, stats.retried) == (2, 0)
            assert [key for _, key, _ in charging.seen][2:] == [
                "advance:1:credit",
                "advance:1:recover:0",
            ]
            attempts = await rig.query(
                "SELECT json_extract(payload, '$.attempts') FROM event"
                " WHERE kind = 'charge_request' ORDER BY id"
            )
            assert attempts == [(2,), (1,), (1,)]


async def test_a_refused_credit_cancels_the_advance(tmp_path: Path) -> None:
    with charging_server() as charging:
        async with scenario_rig(tmp_path, airtime_http(charging.url)) as rig:
            await profile(rig, registered=True)
            await rig.mo("UNG 10000", short_code="9090")
            charging.answers = [400]
            stats = await deliver_pending(rig.store, clock=rig.clock)
            assert stats.refused == 1
            assert await advances(rig) == [(SUBSCRIBER, 10000, 1000, 0, "cancelled")]
            [reply] = await rig.mo("UNG 10000", short_code="9090")  # may ask again
            assert reply.startswith("Ban da duoc ung 10.000d")


async def test_a_refused_credit_drops_the_debits_that_would_recover_it(tmp_path: Path) -> None:
    with charging_server() as charging:
        async with scenario_rig(tmp_path, airtime_http(charging.url)) as rig:
            await profile(rig, registered=True)
            await rig.mo("UNG 10000", short_code="9090")
            await rig.event("topup", amount=50000, key="t1")  # recovered, optimistically
            charging.answers = [403]
            await deliver_pending(rig.store, clock=rig.clock)
            assert [key for _, key, _ in charging.seen] == ["advance:1:credit"]
            assert await advances(rig) == [(SUBSCRIBER, 10000, 1000, 0, "cancelled")]
            assert [r[4:] for r in await requests(rig)] == [("refused", True), ("dropped", True)]


async def test_a_refused_debit_reopens_the_debt(tmp_path: Path) -> None:
    with charging_server() as charging:
        async with scenario_rig(tmp_path, airtime_http(charging.url)) as rig:
            await profile(rig, registered=True)
            await rig.mo("UNG 10000", short_code="9090")
            await rig.event("topup", amount=50000, key="t1")
            assert await advances(rig) == [(SUBSCRIBER, 10000, 1000, 11000, "recovered")]
            charging.answers = [200, 422]
            await deliver_pending(rig.store, clock=rig.clock)
            assert await advances(rig) == [(SUBSCRIBER, 10000, 1000, 0, "outstanding")]
            assert [r[4:] for r in await requests(rig)] == [("done", True), ("refused", True)]


async def test_no_server_means_retry_later(tmp_path: Path) -> None:
    with charging_server() as charging:
        url = charging.url
    # the server is gone: nothing listens on its port now
    async with scenario_rig(tmp_path, airtime_http(url)) as rig:
        await profile(rig, registered=True)
        await rig.mo("UNG 10000", short_code="9090")
        stats = await deliver_pending(rig.store, clock=rig.clock, http_timeout=2)
        assert stats.retried == 1
        assert [r[4:] for r in await requests(rig)] == [("retry", False)]
        with charging_server() as moved:  # the endpoint moved: the task may override
            await deliver_pending(rig.store, moved.url, clock=rig.clock)
            assert [key for _, key, _ in moved.seen] == ["advance:1:credit"]
        assert [r[4:] for r in await requests(rig)] == [("done", True)]


@pytest.mark.parametrize("failed_reads", [0, 2])
async def test_the_task_posts_what_steps_queue(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failed_reads: int
) -> None:
    """Also when its first reads of the journal fail: it tries again (it used to end,
    and the daemon with it)."""
    pending = FailingRead(failed_reads, airtime.pending_charge_requests)
    monkeypatch.setattr(charging_http, "pending_charge_requests", pending)
    with charging_server() as charging:
        async with scenario_rig(tmp_path, airtime_http(charging.url)) as rig:
            await profile(rig, registered=True)
            stats = ChargingStatistics()
            async with trio.open_nursery() as nursery:
                await nursery.start(
                    lambda task_status: run_http_charging(
                        rig.store,
                        poll_interval=0.01,
                        max_backoff=0.05,
                        stats=stats,
                        task_status=task_status,
                    )
                )
                await rig.mo("UNG 10000", short_code="9090")
                for _ in range(1000):  # up to 10 s
                    if stats.done:
                        break
                    await trio.sleep(0.01)
                nursery.cancel_scope.cancel()
            assert [key for _, key, _ in charging.seen] == ["advance:1:credit"]
            assert pending.calls > failed_reads


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (200, "done"),
        (204, "done"),
        (409, "done"),
        (400, "refused"),
        (404, "refused"),
        (302, "refused"),
        (408, "retry"),
        (429, "retry"),
        (500, "retry"),
        (503, "retry"),
        (None, "retry"),
    ],
)
def test_settle_kind(status: int | None, kind: str) -> None:
    assert settle_kind(status) == kind
