"""Security review: what a remote peer or a partner can do to the gateway, each on a real
daemon over loopback (127.0.0.1 and 127.0.0.2 stand for two addresses).

Covered elsewhere, and referenced here rather than repeated:

- sending as another partner's brandname is refused ``ESME_RINVSRCADR``:
  ``test_partner_e2e.py::test_source_not_registered_is_refused``;
- ``query_sm`` of another partner's message is ``ESME_RINVMSGID``:
  ``test_partner_e2e.py::test_query_sm_reports_the_partners_own_message_only``; so are
  ``cancel_sm`` and ``replace_sm``: ``test_partner_commands.py::
  test_cancel_of_a_queued_message_takes_it_out_and_releases_quota`` and
  ``::test_replace_of_a_queued_message_changes_what_is_sent``;
- the verdicts themselves (allow-list before password, bind caps, delay growth, the
  tracked-address bound, no plaintext kept): ``test_auth.py``;
- hostile byte streams on the partner port and from an SMSC:
  ``test_fuzz_partner_port.py``, ``test_fuzz_carrier_side.py``,
  ``test_fuzz_regressions.py``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from typing import TYPE_CHECKING

import trio
from carrier_fixtures import wait_for
from daemon_fixtures import free_port
from fuzz_streams import tuned_partner_daemon
from partner_fixtures import PASSWORD, write_partner_config

from smppgw.gateway.auth import hash_password
from smppgw.net.link import LinkClosed, SmppLink
from smppgw.protocol.pdus import (
    BindReceiver,
    BindTransceiver,
    BindTransmitter,
    DeliverSm,
    EnquireLink,
    Pdu,
    SubmitSm,
)
from smppgw.protocol.receipt import parse_receipt
from smppgw.protocol.session import SmppConnection, make_response
from smppgw.protocol.states import Role
from smppgw.protocol.status import CommandStatus as S
from smppgw.store import NewOrder, OrderKind

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

ATTACKER = "127.0.0.2"


async def _ignore(link: SmppLink, batch: Sequence[Pdu]) -> None:
    return None


async def _bind(
    port: int,
    system_id: str,
    password: str,
    *,
    local_address: str | None = None,
    cls: type[BindTransmitter | BindReceiver | BindTransceiver] = BindTransmitter,
) -> tuple[int, float]:
    """One connection, one bind: its status and how long the answer took."""
    stream = await trio.open_tcp_stream("127.0.0.1", port, local_address=local_address)
    link = SmppLink(stream, SmppConnection(Role.ESME), _ignore)
    async with trio.open_nursery() as nursery:
        await nursery.start(link.run)
        start = trio.current_time()
        resp = await link.request(cls(system_id=system_id, password=password))
        elapsed = trio.current_time() - start
        link.close()
    return resp.command_status, elapsed


# -- (a) bind brute force ---------------------------------------------------------------


async def test_bind_brute_force_is_slowed_down_for_that_address_only(tmp_path: Path) -> None:
    server = "bind_failures_before_delay: 1, bind_failure_delay_max: 2.0"
    async with tuned_partner_daemon(tmp_path, server=server) as (_daemon, port):
        delays = []
        for guess in ("a", "b", "c"):
            status, elapsed = await _bind(port, "acme", guess, local_address=ATTACKER)
            assert status == S.ESME_RINVPASWD
            delays.append(elapsed)
        # The first failure is answered at once, the next after 1 s, then 2 s (capped).
        assert delays[0] < 0.9, delays
        assert 0.9 <= delays[1] < delays[2], delays
        assert delays[2] >= 1.9, delays
        # Meanwhile the real partner, from its own address, is not delayed.
        status, elapsed = await _bind(port, "acme", PASSWORD)
        assert status == 0
        assert elapsed < 0.9


async def test_parallel_guesses_from_one_address_queue_behind_each_other(tmp_path: Path) -> None:
    """Parallel connections do not multiply a guesser's rate: one address's bind checks
    run one at a time, each after the delay its failures so far earned."""
    server = "bind_failures_before_delay: 1, bind_failure_delay_max: 1.0"
    async with tuned_partner_daemon(tmp_path, server=server) as (_daemon, port):
        results: list[tuple[int, float]] = []

        async def guess(word: str) -> None:
            results.append(await _bind(port, "acme", word, local_address=ATTACKER))

        start = trio.current_time()
        async with trio.open_nursery() as nursery:
            for word in ("a", "b", "c", "d"):
                nursery.start_soon(guess, word)
        assert [status for status, _ in results] == [S.ESME_RINVPASWD] * 4
        # one at once, then three more each after about 1 s: about 3 s in all, not 1 s
        assert trio.current_time() - start >= 2.7


# -- (c) receipts go to their own partner only --------------------------------------------


class _Receiver:
    """A receiver bind that records every deliver_sm and acknowledges it."""

    def __init__(self) -> None:
        self.delivered: list[DeliverSm] = []

    async def handler(self, link: SmppLink, batch: Sequence[Pdu]) -> None:
        for pdu in batch:
            if isinstance(pdu, DeliverSm):
                self.delivered.append(pdu)
                link.respond(make_response(pdu))


async def test_receipts_of_one_partner_never_reach_another(tmp_path: Path) -> None:
    async with tuned_partner_daemon(tmp_path) as (daemon, port):
        assert daemon.store is not None
        assert daemon.pipeline is not None
        await daemon.store.create_order(NewOrder(partner="acme", kind=OrderKind.PREPAID, limit=10))
        spy = _Receiver()
        async with trio.open_nursery() as nursery:
            stream = await trio.open_tcp_stream("127.0.0.1", port)
            beta = SmppLink(stream, SmppConnection(Role.ESME), spy.handler)
            await nursery.start(beta.run)
            resp = await beta.request(BindReceiver(system_id="beta", password=PASSWORD))
            assert resp.command_status == 0
            stream = await trio.open_tcp_stream("127.0.0.1", port)
            acme = SmppLink(stream, SmppConnection(Role.ESME), _ignore)
            await nursery.start(acme.run)
            bound = await acme.request(BindTransmitter(system_id="acme", password=PASSWORD))
            assert bound.command_status == 0
            ids = []
            for i in range(3):
                r = await acme.request(
                    SubmitSm(
                        source_addr_ton=5,
                        source_addr="ACME",
                        dest_addr_ton=1,
                        dest_addr_npi=1,
                        destination_addr=f"849100000{i}",
                        short_message=b"otp",
                        registered_delivery=1,
                    )
                )
                assert r.command_status == 0
                ids.append(r.message_id)  # type: ignore[attr-defined]
            pipeline = daemon.pipeline
            await wait_for(lambda: pipeline.statistics().receipts_matched == 3)
            await trio.sleep(0.5)  # the receipts are in acme's outbox, beta is bound
            assert spy.delivered == []
            # acme's own receiver gets them.
            mine = _Receiver()
            stream = await trio.open_tcp_stream("127.0.0.1", port)
            acme_rx = SmppLink(stream, SmppConnection(Role.ESME), mine.handler)
            await nursery.start(acme_rx.run)
            bound = await acme_rx.request(BindReceiver(system_id="acme", password=PASSWORD))
            assert bound.command_status == 0
            await wait_for(lambda: len(mine.delivered) == 3)
            got = {parse_receipt(d.short_message).message_id for d in mine.delivered}
            assert got == set(ids)
            assert spy.delivered == []
            for link in (beta, acme, acme_rx):
                link.close()


# -- (d) idle connections -----------------------------------------------------------------


async def test_idle_connections_are_closed_and_free_their_slots(tmp_path: Path) -> None:
    """Connections that never bind hold a ``max_sessions`` slot for at most
    ``idle_timeout``: at the cap a newcomer is turned away (closed at once), after the
    timeout the idlers are gone and the real partner binds."""
    server = "max_sessions: 5, idle_timeout: 1.0, enquire_link_interval: 60"
    async with tuned_partner_daemon(tmp_path, server=server) as (daemon, port):
        assert daemon.server is not None
        server_ = daemon.server
        idlers = [
            await trio.open_tcp_stream("127.0.0.1", port, local_address=ATTACKER) for _ in range(5)
        ]
        await wait_for(lambda: server_.statistics().sessions == 5)
        refused = await trio.open_tcp_stream("127.0.0.1", port)
        with trio.fail_after(2):
            assert await refused.receive_some(100) == b""  # turned away at the cap
        await refused.aclose()
        with trio.fail_after(5):
            for idler in idlers:
                assert await idler.receive_some(100) == b""  # closed by the idle timeout
                await idler.aclose()
        status, _ = await _bind(port, "acme", PASSWORD)
        assert status == 0


async def test_idle_connections_below_the_cap_do_not_stop_a_partner(tmp_path: Path) -> None:
    server = "max_sessions: 50, idle_timeout: 5.0"
    async with tuned_partner_daemon(tmp_path, server=server) as (_daemon, port):
        idlers = [
            await trio.open_tcp_stream("127.0.0.1", port, local_address=ATTACKER) for _ in range(40)
        ]
        status, elapsed = await _bind(port, "acme", PASSWORD)
        assert status == 0
        assert elapsed < 2
        for idler in idlers:
            await idler.aclose()


async def test_a_bound_partner_that_sends_nothing_is_closed_after_the_idle_timeout(
    tmp_path: Path,
) -> None:
    server = "idle_timeout: 1.0, enquire_link_interval: 60"
    async with tuned_partner_daemon(tmp_path, server=server) as (daemon, port):
        assert daemon.server is not None
        server_ = daemon.server
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        link = SmppLink(stream, SmppConnection(Role.ESME, enquire_link_interval=None), _ignore)
        async with trio.open_nursery() as nursery:
            await nursery.start(link.run)
            resp = await link.request(BindTransmitter(system_id="acme", password=PASSWORD))
            assert resp.command_status == 0
            start = trio.current_time()
            await wait_for(lambda: link.closed, within=5)
            assert 0.8 <= trio.current_time() - start < 4
        await wait_for(lambda: server_.statistics().sessions == 0)


async def test_a_connection_that_never_binds_is_closed_however_chatty(tmp_path: Path) -> None:
    """Refused PDUs (a submit before any bind) keep a connection active, so the idle
    timeout alone would never free its slot: ``bind_timeout`` does."""
    server = "idle_timeout: 60, bind_timeout: 1.0, enquire_link_interval: 60"
    async with tuned_partner_daemon(tmp_path, server=server) as (daemon, port):
        assert daemon.server is not None
        server_ = daemon.server
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        link = SmppLink(stream, SmppConnection(Role.ESME, enquire_link_interval=None), _ignore)
        async with trio.open_nursery() as nursery:
            await nursery.start(link.run)
            start = trio.current_time()
            with trio.move_on_after(5):
                while not link.closed:
                    with contextlib.suppress(LinkClosed):
                        await link.send_request(EnquireLink())
                    await trio.sleep(0.2)
            assert link.closed
            assert 0.8 <= trio.current_time() - start < 4
        await wait_for(lambda: server_.statistics().sessions == 0)


# -- (e) max_binds, (f) allowed_networks ---------------------------------------------------

_EXTRA = f"""  - system_id: capped
    password_hash: '{hash_password(PASSWORD)}'
    max_binds: 1
    billing: unmetered
  - system_id: fenced
    password_hash: '{hash_password(PASSWORD)}'
    allowed_networks: ['{ATTACKER}/32']
    billing: unmetered
"""


async def test_binds_over_max_binds_are_refused(tmp_path: Path) -> None:
    async with tuned_partner_daemon(tmp_path, partners=_EXTRA) as (_daemon, port):
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        first = SmppLink(stream, SmppConnection(Role.ESME), _ignore)
        async with trio.open_nursery() as nursery:
            await nursery.start(first.run)
            resp = await first.request(BindTransmitter(system_id="capped", password=PASSWORD))
            assert resp.command_status == 0
            status, _ = await _bind(port, "capped", PASSWORD)
            assert status == S.ESME_RBINDFAIL
            first.close()
        # The slot comes back once the first bind is gone.
        await trio.sleep(0.2)
        status, _ = await _bind(port, "capped", PASSWORD)
        assert status == 0


async def test_binds_from_outside_allowed_networks_are_refused(tmp_path: Path) -> None:
    async with tuned_partner_daemon(tmp_path, partners=_EXTRA) as (_daemon, port):
        outside, _ = await _bind(port, "fenced", PASSWORD)  # from 127.0.0.1
        assert outside == S.ESME_RBINDFAIL
        inside, _ = await _bind(port, "fenced", PASSWORD, local_address=ATTACKER)
        assert inside == 0


# -- (g) passwords never in logs -------------------------------------------------------------


def test_passwords_never_appear_in_the_logs(tmp_path: Path) -> None:
    """The real daemon process at debug level: a failed and a successful bind, then
    every line it wrote is searched for both passwords."""
    server_port = free_port()
    config = write_partner_config(tmp_path, sim_port=free_port(), server_port=server_port)
    config.write_text(config.read_text().replace("level: warning", "level: debug"))
    wrong = "Wr0ngHrs"  # SMPP passwords are 8 characters at most
    proc = subprocess.Popen(
        [sys.executable, "-m", "smppgw.cli", "run", "--config", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        trio.run(_two_binds, server_port, wrong)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            out, _ = proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:  # pragma: no cover
            proc.kill()
            out, _ = proc.communicate()
    text = out.decode("utf-8", "replace")
    assert "bind refused" in text, text[-2000:]  # the failure was logged ...
    assert "partner bound" in text  # ... and the success
    assert wrong not in text
    assert PASSWORD not in text


async def _two_binds(port: int, wrong: str) -> None:
    deadline = time.monotonic() + 20
    while True:
        try:
            status, _ = await _bind(port, "acme", wrong)
            break
        except (OSError, LinkClosed):
            if time.monotonic() > deadline:
                raise
            await trio.sleep(0.1)
    assert status == S.ESME_RINVPASWD
    status, _ = await _bind(port, "acme", PASSWORD)
    assert status == 0
