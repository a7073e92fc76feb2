"""Benchmark: the embedded default (``smppgw run`` from a checkout), its simulator in the
daemon's process and in a child process (``simulator.process``).

What an operator trying the gateway meets first: ``config/smppgw.yaml`` as it is (the
``demo`` partner, unmetered; the built-in simulator as the carrier), only its ports and
journal moved to a scratch directory. For each placement of the simulator, 1 and 4
partner sessions, without and with receipts:

- the rate from partner to simulator (counted until the simulator has every message and,
  with receipts, the partner every receipt; ``bench_common.delivered_rate``) and the
  rate of ``submit_sm_resp`` beside it;
- the 99th-percentile ``submit_sm_resp`` latency at that full load;
- the baseline: the same load generator straight to a standalone ``smppgw sim``, same
  run.

Usage: ``python scripts/bench_embedded.py [--count 20000] [--sessions 1 4]``. Prints a
table and one JSON line.
"""

from __future__ import annotations

import argparse
import json
import re
import tempfile
from pathlib import Path
from typing import Any

from bench_common import (
    free_port,
    gateway,
    run_load_delivered,
    simulator,
    wait_sessions,
)

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG = ROOT / "config" / "smppgw.yaml"
PLACEMENTS = {"in-process": False, "child": True}


def embedded_config(workdir: Path, server: int, sim: int, control: int, process: bool) -> Path:
    """``config/smppgw.yaml`` with its ports, journal and scenario paths moved, metrics
    off, logs at warning, and ``simulator.process`` set."""
    text = DEFAULT_CONFIG.read_text()
    for old, new in (
        ("127.0.0.1:2775", f"127.0.0.1:{server}"),
        ("127.0.0.1:2776", f"127.0.0.1:{sim}"),
        ("port: 2776", f"port: {sim}"),
        ("127.0.0.1:2777", f"127.0.0.1:{control}"),
        ("path: var/smppgw.sqlite", f"path: {workdir / 'gw.sqlite'}"),
        ("directory: scenarios", f"directory: {ROOT / 'scenarios'}"),
        ("events_dir: var/events", f"events_dir: {workdir / 'events'}"),
        ("level: info", "level: warning"),
    ):
        if old not in text:
            raise SystemExit(f"{DEFAULT_CONFIG} no longer has {old!r}: update this script")
        text = text.replace(old, new)
    text = re.sub(r"(?m)^  process: true\b", f"  process: {str(process).lower()}", text)
    text = re.sub(r"(?m)^  listen: 127\.0\.0\.1:9464\b", "  enabled: false", text)
    path = workdir / "smppgw.yaml"
    path.write_text(text)
    return path


def baseline(count: int, sessions: int, receipts: bool, workdir: Path) -> float:
    with simulator(("direct:direct",), receipt_delay_ms=50) as sim:
        _, rate = run_load_delivered(
            sim.smpp,
            workdir / "direct.jsonl",
            sim.control,
            system_id="direct",
            password="direct",
            sessions=sessions,
            count=count,
            receipts=receipts,
        )
        return rate


def embedded(
    count: int, cases: list[tuple[int, bool]], process: bool, workdir: Path
) -> list[dict[str, Any]]:
    server, sim, control = free_port(), free_port(), free_port()
    config = embedded_config(workdir, server, sim, control, process)
    rows = []
    with gateway(config, workdir, server):
        wait_sessions(control, 1)  # the gateway's carrier bind is up
        for sessions, receipts in cases:
            load, rate = run_load_delivered(
                server,
                workdir / "gw.jsonl",
                control,
                system_id="demo",
                password="demo",
                sessions=sessions,
                count=count,
                receipts=receipts,
            )
            rows.append(
                {
                    "sessions": sessions,
                    "receipts": receipts,
                    "msg_s": round(rate),
                    "accepted_msg_s": round(load.summary["throughput"]),
                    "p99_ms": round(load.summary["latency_p99_ms"], 2),
                    "receipts_matched": load.summary["receipts_matched"],
                }
            )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=20_000)
    parser.add_argument("--sessions", type=int, nargs="+", default=[1, 4])
    args = parser.parse_args()
    cases = [(s, r) for r in (False, True) for s in args.sessions]
    with tempfile.TemporaryDirectory(prefix="smppgw-bench-") as tmp:
        workdir = Path(tmp)
        direct = {case: baseline(args.count, *case, workdir) for case in cases}
        results: dict[str, list[dict[str, Any]]] = {}
        for name, process in PLACEMENTS.items():
            place = workdir / name
            place.mkdir()
            results[name] = embedded(args.count, cases, process, place)
    rows = []
    for i, (sessions, receipts) in enumerate(cases):
        row: dict[str, Any] = {
            "sessions": sessions,
            "receipts": receipts,
            "direct_msg_s": round(direct[(sessions, receipts)]),
        }
        for name in PLACEMENTS:
            got = results[name][i]
            row[name] = {k: got[k] for k in ("msg_s", "accepted_msg_s", "p99_ms")}
            row[f"{name}_ratio"] = round(got["msg_s"] / direct[(sessions, receipts)], 3)
        rows.append(row)
    print(
        f"{'sessions':>8} {'receipts':>8} {'direct/s':>9} "
        f"{'in-proc/s':>9} {'p99 ms':>7} {'child/s':>9} {'p99 ms':>7} {'child/in-proc':>13}"
    )
    for r in rows:
        inproc, child = r["in-process"], r["child"]
        print(
            f"{r['sessions']:>8} {r['receipts']!s:>8} {r['direct_msg_s']:>9,} "
            f"{inproc['msg_s']:>9,} {inproc['p99_ms']:>7} {child['msg_s']:>9,} "
            f"{child['p99_ms']:>7} {child['msg_s'] / inproc['msg_s']:>13.2f}"
        )
    print(json.dumps({"bench": "embedded", "count": args.count, "results": rows}))


if __name__ == "__main__":
    main()
