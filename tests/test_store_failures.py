"""The journal failing under a running daemon: a read that fails (an I/O error, a lock
held past the busy timeout) is a :class:`StoreReadFailed` the caller answers or
retries, and no store error (nor a bug) in a partner command, an admin command, a
reload or the stop ends the partner's session or the daemon. Made to fail by replacing
the read function the store calls with one that raises what SQLite raises."""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING, Any

import pytest
import trio
from carrier_fixtures import wait_for
from partner_fixtures import esme, partner_daemon
from test_opt_out import _Log
from test_partner_receipt_refusals import _receive, _submit_with_receipt

from smppgw.app import daemon as daemon_module
from smppgw.app import partner_accounts
from smppgw.app.admin import admin_request
from smppgw.gateway import mt
from smppgw.net import carrier_inbound
from smppgw.protocol.pdus import CancelSm, EnquireLink, QuerySm
from smppgw.protocol.receipt import parse_receipt
from smppgw.protocol.status import CommandStatus as S
from smppgw.store import (
    StoreReadFailed,
    StoreUnavailable,
    admin_queries,
    inbound,
    message_reads,
    open_store,
)

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path


class FailingRead:
    """``real``, but the first ``times`` calls raise SQLite's disk I/O error; counts
    the calls."""

    def __init__(self, times: int, real: Callable[..., Any]) -> None:
        self.times = times
        self.real = real
        self.calls = 0

    def __call__(self, *args: Any, **kw: Any) -> Any:
        self.calls += 1
        if self.calls <= self.times:
            raise sqlite3.OperationalError("disk I/O error")
        return self.real(*args, **kw)


async def test_a_failed_read_is_a_store_error_and_the_connection_serves_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with open_store(tmp_path / "r.db") as store:
        monkeypatch.setattr(message_reads, "get_message", FailingRead(1, message_reads.get_message))
        with pytest.raises(StoreReadFailed, match="disk I/O error") as raised:
            await store.get_message(1)
        assert raised.value.command_status == S.ESME_RSYSERR
        assert await store.get_message(1) is None  # the pool still lends its connection


async def test_a_partner_command_whose_read_fails_is_refused_and_the_session_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with partner_daemon(tmp_path, carrier_down=True) as (_daemon, port):
        monkeypatch.setattr(message_reads, "get_message", FailingRead(9, message_reads.get_message))
        monkeypatch.setattr(
            message_reads, "queued_by_addresses", FailingRead(9, message_reads.queued_by_addresses)
        )
        async with esme(port) as link:
            query = await link.request(QuerySm(message_id="1", source_addr="ACME"))
            assert query.command_status == S.ESME_RQUERYFAIL
            cancel = await link.request(CancelSm(source_addr="ACME", destination_addr="8491"))
            assert cancel.command_status == S.ESME_RCANCELFAIL
            assert (await link.request(EnquireLink())).command_status == 0  # still bound


async def test_receipts_waiting_for_a_partner_are_sent_when_the_outbox_reads_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with partner_daemon(tmp_path) as (daemon, port):
        message_id = await _submit_with_receipt(daemon, port)
        assert daemon.store is not None
        for _ in range(500):  # until the carrier's receipt came
            if await daemon.store.pending_receipts("acme"):
                break
            await trio.sleep(0.02)
        monkeypatch.setattr(inbound, "pending_receipts", FailingRead(1, inbound.pending_receipts))
        got = await _receive(port, S.ESME_ROK, 2.5)  # the first read fails, 1 s later again
        assert [parse_receipt(d.short_message).message_id for d in got] == [message_id]


async def test_a_receipt_whose_lookup_fails_is_held_and_applied_later(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """However long the journal fails: tries that failed on it do not count towards
    giving the receipt up as unmatched (which marked it processed, never applied)."""
    monkeypatch.setattr(carrier_inbound, "HELD_RECEIPT_DELAY", 0.1)
    failures = carrier_inbound.HELD_RECEIPT_TRIES + 2
    async with partner_daemon(tmp_path) as (daemon, port):
        pipeline = daemon.pipeline
        assert pipeline is not None
        assert daemon.store is not None
        real = pipeline.match_receipt
        failed: list[str] = []

        async def match_receipt(carrier: str, key: str, *args: Any) -> bool:
            if len(failed) < failures:
                failed.append(key)
                raise StoreReadFailed("disk I/O error")
            return await real(carrier, key, *args)

        monkeypatch.setattr(pipeline, "match_receipt", match_receipt)
        message_id = int(await _submit_with_receipt(daemon, port))
        for _ in range(400):
            stored = await daemon.store.get_message(message_id)
            if stored is not None and stored.state.value == "delivered":
                break
            await trio.sleep(0.02)
        assert len(failed) == failures
        assert stored is not None
        assert stored.state.value == "delivered"


async def test_the_receipt_timeout_sweep_survives_a_failed_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(mt, "STALE_SWEEP_INTERVAL", 0.05)
    calls: list[int] = []

    def stale_submitted(*args: Any, **kw: Any) -> Any:
        calls.append(1)
        raise sqlite3.OperationalError("database is locked")

    monkeypatch.setattr(message_reads, "stale_submitted", stale_submitted)
    async with partner_daemon(tmp_path) as (daemon, port):
        await wait_for(lambda: len(calls) >= 3)  # swept, failed, and swept again
        message_id = await _submit_with_receipt(daemon, port)  # the daemon still serves
        assert message_id


async def test_an_admin_command_the_journal_refuses_is_answered_and_the_daemon_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An operator's `smppgw moderation list` while the journal cannot be read gets the
    error, as does a command that fails for any other reason (a bug); the admin socket
    and the daemon serve on (the error ended the admin server, and the daemon with it)."""
    async with partner_daemon(tmp_path) as (daemon, port):
        monkeypatch.setattr(
            message_reads, "held_messages", FailingRead(1, message_reads.held_messages)
        )
        request = {"cmd": "moderation.list"}
        path = tmp_path / "admin.sock"
        failed = await trio.to_thread.run_sync(admin_request, path, request)
        assert failed["ok"] is False
        assert "disk I/O error" in failed["error"]
        assert (await trio.to_thread.run_sync(admin_request, path, request))["ok"] is True
        assert daemon.store is not None

        async def bug(limit: int = 100) -> list[object]:
            raise RuntimeError("a bug")

        monkeypatch.setattr(daemon.store, "held_messages", bug)
        buggy = await trio.to_thread.run_sync(admin_request, path, request)
        assert buggy["ok"] is False
        assert "a bug" in buggy["error"]
        async with esme(port) as link:  # the daemon still serves partners
            assert (await link.request(EnquireLink())).command_status == 0


async def test_a_reload_that_cannot_read_the_partner_accounts_changes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SIGHUP while the journal cannot be read: refused whole (the reload read the
    accounts half-way through applying the new config, and the error ended the daemon)."""
    async with partner_daemon(tmp_path) as (daemon, port):
        before = daemon.config
        reads = FailingRead(1, admin_queries.partner_accounts)
        monkeypatch.setattr(partner_accounts, "partner_accounts", reads)
        assert await daemon.reload() is False
        assert daemon.config is before
        assert await daemon.reload() is True  # the journal reads again
        async with esme(port) as link:
            assert (await link.request(EnquireLink())).command_status == 0


async def test_a_stop_whose_last_flush_the_journal_refuses_still_stops_cleanly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Said as one error line (what happens to those messages), not a traceback."""
    logged = _Log()
    monkeypatch.setattr(daemon_module, "log", logged)
    async with partner_daemon(tmp_path) as (daemon, _port):
        assert daemon.pipeline is not None

        async def flush() -> None:
            raise StoreUnavailable("disk full")

        monkeypatch.setattr(daemon.pipeline, "flush", flush)
    said = [level for level, event, _ in logged.calls if event.startswith("carrier outcomes not")]
    assert said == ["error"]
    assert any(event == "smppgw stopped" for _, event, _ in logged.calls)
