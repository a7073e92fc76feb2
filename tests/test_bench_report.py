"""The one-command benchmark report (``scripts/bench.py``) and the loadgen timeline it
charts.

The report is run for real, with tiny counts: it is a script of separate processes, and
what breaks it (a changed config key, a loadgen option, a summary field renamed) only
shows when every part runs. The figures are not judged -- this machine is shared and
noisy -- only that every section is there with positive rates and ratios.
"""

from __future__ import annotations

import importlib.util
import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

from test_sim_smsc import running

from smppgw.sim import SimConfig, run_load

REPO = Path(__file__).resolve().parent.parent


async def test_loadgen_timeline_lines(tmp_path: Path) -> None:
    """Every interval from the first send is a line (none skipped), counts add up to the
    summary, and the total line has the receipt round trip of every message."""
    path = tmp_path / "timeline.jsonl"
    async with running(SimConfig(receipt_delay=0.0)) as sim:
        assert sim.port is not None
        summary = await run_load(
            "127.0.0.1",
            sim.port,
            system_id="smppgw",
            password="smppgw",
            count=60,
            rate=200,
            registered_delivery=True,
            wait_receipts_timeout=5,
            timeline=path,
            timeline_interval=0.1,
        )
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    intervals, total = lines[:-1], lines[-1]
    assert total["kind"] == "total"
    assert {line["kind"] for line in intervals} == {"interval"}
    assert [round(line["start_s"], 3) for line in intervals] == [
        round(i * 0.1, 3) for i in range(len(intervals))
    ]
    assert len(intervals) >= 3  # 60 messages at 200/s: about 0.3 s
    assert sum(line["accepted"] for line in intervals) == summary.accepted == 60
    assert sum(line["receipts"] for line in intervals) == 60
    assert all(line["accepted_per_s"] == line["accepted"] / 0.1 for line in intervals)
    assert total["responses"] == 60
    assert total["round_trips"] == 60
    assert 0 < total["round_trip_p50_ms"] <= total["round_trip_p99_ms"]
    assert total["latency_p99_ms"] == round(summary.latency_p99_ms, 3)


def _positive(value: Any) -> bool:
    return isinstance(value, int | float) and value > 0 and math.isfinite(value)


def test_report_smoke(tmp_path: Path) -> None:
    """All three sections with tiny counts: table, JSON with every figure, and the PNG
    when matplotlib is there."""
    argv = [
        sys.executable,
        str(REPO / "scripts" / "bench.py"),
        "--count",
        "300",
        "--batch",
        "3000",
        "--carrier-tps",
        "1000",
        "--tx-count",
        "20",
        "--tx-rate",
        "40",
        "--mo-count",
        "100",
        "--out-dir",
        str(tmp_path),
    ]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=240, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "MT partner -> gateway -> simulator" in out.stdout
    report = json.loads((tmp_path / "bench-report.json").read_text())

    machine = report["machine"]
    assert machine["cores"] >= 1
    assert machine["python"] == ".".join(map(str, sys.version_info[:3]))
    assert len(machine["git_commit"]) == 40

    cases = {(r["sessions"], r["receipts"]) for r in report["mt"]}
    assert cases == {(1, False), (4, False), (1, True), (4, True)}
    for row in report["mt"]:
        for key in ("direct_msg_s", "gateway_msg_s", "ratio", "p99_ms_at_half_load"):
            assert _positive(row[key]), (key, row)
        assert row["gateway_accepted"] == 300
        assert row["gateway_receipts_matched"] == (300 if row["receipts"] else 0)
        assert row["timeline"]["gateway"]
        assert row["timeline"]["direct"]

    priority = report["priority"]
    names = {c["name"] for c in priority["cases"]}
    assert names == {
        "gateway-alone",
        "gateway-batch",
        "direct-alone",
        "direct-batch",
        "gateway-batch-capped",
    }
    for case in priority["cases"]:
        assert case["tx_accepted"] == case["tx_receipts_matched"] == 20, case["name"]
        for key in ("tx_submit_p99_ms", "tx_end_to_end_p50_ms", "tx_end_to_end_p99_ms"):
            assert _positive(case[key]), (key, case["name"])
        assert 0.0 <= case["tx_during_batch"] <= 1.0
    for name, value in priority["ratios"].items():
        assert _positive(value), name

    mo = report["mo"]
    assert _positive(mo["ack"]["per_second"])
    assert _positive(mo["points"]["per_second"])
    assert _positive(mo["ratio"])

    png = tmp_path / "bench-report.png"
    if importlib.util.find_spec("matplotlib") is not None:
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert report["png"] == str(png)
    else:
        assert report["png_skipped"]
        assert "PNG skipped" in out.stdout
