"""The partner load generator against the simulated SMSC on loopback."""

from __future__ import annotations

import json
import socket

import pytest
import trio
from test_sim_smsc import running

from smppgw.cli import main
from smppgw.sim import LoadSummary, SimConfig, run_load
from smppgw.sim.load_report import percentile as _percentile
from smppgw.sim.loadgen import LoadError


async def test_four_tx_rx_sessions_with_receipts() -> None:
    async with running(SimConfig(receipt_delay=0.0, id_format="decimal")) as sim:
        assert sim.port is not None
        summary = await run_load(
            "127.0.0.1",
            sim.port,
            system_id="smppgw",
            password="smppgw",
            sessions=4,
            bind="tx+rx",
            window=16,
            count=400,
            registered_delivery=True,
            wait_receipts_timeout=5,
            destinations=["84900000001", "84900000002"],
        )
        assert summary.accepted == 400
        assert 0 < summary.cpu_seconds < 60  # its own CPU, measured from the first send
        assert summary.receipts_matched == summary.receipts_expected == 400
        assert summary.receipt_states == {"DELIVRD": 400}
        assert summary.duplicate_ids == 0
        assert sim.statistics().binds_ok == 8
        assert {s.destinations[0] for s in sim.submits} == {"84900000001", "84900000002"}
        # every session took part (the counter is shared, so not necessarily evenly)
        assert len({s.session for s in sim.submits}) == 4


async def test_rate_limit_paces_the_load() -> None:
    async with running() as sim:
        assert sim.port is not None
        summary = await run_load(
            "127.0.0.1", sim.port, system_id="smppgw", password="smppgw", count=21, rate=100
        )
        assert summary.accepted == 21
        assert 0.19 <= summary.submit_duration < 0.5
        assert summary.throughput < 110


async def test_receipt_timeout_when_none_come() -> None:
    async with running(SimConfig(receipt_delay=30.0)) as sim:
        assert sim.port is not None
        with trio.fail_after(3):
            summary = await run_load(
                "127.0.0.1",
                sim.port,
                system_id="smppgw",
                password="smppgw",
                count=5,
                registered_delivery=True,
                wait_receipts_timeout=0.2,
            )
        assert summary.receipts_expected == 5
        assert summary.receipts_matched == 0


async def test_connection_refused_is_a_load_error() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once closed
    with pytest.raises(LoadError, match="cannot connect"):
        await run_load("127.0.0.1", port, system_id="a", password="b", count=1)


def test_summary_json_table_and_percentiles() -> None:
    assert _percentile([], 0.5) == 0.0
    ordered = [i / 1000 for i in range(1, 101)]  # 1..100 ms
    assert _percentile(ordered, 0.50) == pytest.approx(50)
    assert _percentile(ordered, 0.99) == pytest.approx(99)
    summary = LoadSummary(
        sessions=1,
        window=64,
        sent=10,
        accepted=9,
        refused={"ESME_RTHROTTLED": 1},
        retried=0,
        failed=0,
        duplicate_ids=0,
        receipts_expected=0,
        receipts_received=0,
        receipts_matched=0,
        receipt_states={},
        mo_received=0,
        submit_duration=0.5,
        duration=0.5,
        throughput=18.0,
        latency_p50_ms=1.0,
        latency_p95_ms=2.0,
        latency_p99_ms=3.0,
        latency_max_ms=4.0,
    )
    assert json.loads(summary.to_json())["refused"] == {"ESME_RTHROTTLED": 1}
    table = summary.to_table()
    assert "refused            ESME_RTHROTTLED=1" in table
    assert "throughput         18.000" in table


async def test_loadgen_cli_prints_json(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The CLI configures logging for the process: keep the test session's set-up.
    monkeypatch.setattr("smppgw.sim.cli._configure_logging", lambda level: None)
    async with running() as sim:
        argv = ["loadgen", "--port", str(sim.port), "--count", "50", "--receipts", "--json"]
        assert await trio.to_thread.run_sync(main, argv) == 0
        # The simulator runs in this process: its log lines may follow the summary.
        lines = capsys.readouterr().out.strip().splitlines()
        [summary] = [json.loads(line) for line in lines if line.startswith('{"accepted"')]
        assert summary["accepted"] == 50
        assert summary["receipts_matched"] == 50
        bad = ["loadgen", "--port", str(sim.port), "--password", "nope", "--count", "1"]
        assert await trio.to_thread.run_sync(main, bad) == 1
        assert "ESME_RINVPASWD" in capsys.readouterr().err
