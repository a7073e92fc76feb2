"""Benchmark: MT messages a second from the journal to an SMSC through the carrier side.

Three separate processes, as in production: the simulated SMSC (``smppgw sim``), the
gateway (``smppgw run``), and this script, which measures. For each bind count (1 and
4, window 64 per bind):

1. a fresh journal is filled with N accepted messages (no receipts requested);
2. ``smppgw run`` starts on it, recovers them and sends them to the simulator;
3. the rate is read off the gateway's own metrics (``smppgw_mt_submitted_parts_total``)
   between the first and the last acknowledged message.

The baseline, in the same run: the same simulator fed directly by the load generator
(``smppgw loadgen``) with as many sessions as binds, window 64. The ratio says how close
the gateway's carrier side comes to what the simulator can take from a bare client.

Usage: ``python scripts/bench_carrier.py [--count 20000] [--binds 1 4]``.
Prints a table and one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import trio

from smppgw.store import Durability, NewMessage, StoreConfig, open_store

SMPPGW = [sys.executable, "-m", "smppgw.cli"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_port(port: int, within: float = 20.0) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


async def fill_journal(path: Path, count: int) -> None:
    async with open_store(path, config=StoreConfig(durability=Durability.PROCESS)) as store:
        batch = 1000
        for start in range(0, count, batch):
            await store.journal_accept(
                [
                    NewMessage(
                        partner="bench",
                        source_addr="BENCH",
                        destination_addr=f"8491{i:07d}",
                        body=b"benchmark message from the journal to the simulator",
                    )
                    for i in range(start, min(count, start + batch))
                ]
            )


def write_config(workdir: Path, sim_port: int, metrics_port: int, binds: int) -> Path:
    path = workdir / "smppgw.yaml"
    path.write_text(
        f"""
store: {{path: '{workdir / "gw.sqlite"}', durability: process}}
metrics: {{listen: '127.0.0.1:{metrics_port}'}}
logging: {{level: warning, format: json}}
server: {{enabled: false}}
carriers:
  - name: sim
    host: 127.0.0.1
    port: {sim_port}
    system_id: smppgw
    password: smppgw
    window: 64
    binds: {binds}
default_route: [sim]
"""
    )
    return path


_SUBMITTED = re.compile(rb"^smppgw_mt_submitted_parts_total (\S+)$", re.M)


def submitted(metrics_port: int) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=2) as r:
            found = _SUBMITTED.search(r.read())
    except OSError:
        return -1
    return int(float(found.group(1))) if found else -1


def run_gateway(sim_port: int, binds: int, count: int) -> float:
    with tempfile.TemporaryDirectory(prefix="smppgw-bench-") as tmp:
        workdir = Path(tmp)
        trio.run(fill_journal, workdir / "gw.sqlite", count)
        metrics_port = free_port()
        config = write_config(workdir, sim_port, metrics_port, binds)
        proc = subprocess.Popen([*SMPPGW, "run", "--config", str(config)], cwd=workdir)
        try:
            first_t = first_n = None
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline:
                n = submitted(metrics_port)
                now = time.monotonic()
                if n > 0 and first_t is None:
                    first_t, first_n = now, n
                if n >= count:
                    assert first_t is not None
                    assert first_n is not None
                    return (n - first_n) / max(now - first_t, 1e-9)
                time.sleep(0.02)
            raise RuntimeError("the gateway did not send everything in time")
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)


def run_loadgen(sim_port: int, sessions: int, count: int) -> float:
    out = subprocess.run(
        [
            *SMPPGW,
            "loadgen",
            "--port",
            str(sim_port),
            "--count",
            str(count),
            "--window",
            "64",
            "--sessions",
            str(sessions),
            "--json",
            "--log-level",
            "warning",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    )
    summary = json.loads(out.stdout.strip().splitlines()[-1])
    return float(summary["throughput"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=20_000)
    parser.add_argument("--binds", type=int, nargs="+", default=[1, 4])
    args = parser.parse_args()
    sim_port = free_port()
    sim = subprocess.Popen(
        [*SMPPGW, "sim", "--listen", f"127.0.0.1:{sim_port}", "--log-level", "warning"],
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    rows = []
    try:
        wait_port(sim_port)
        for binds in args.binds:
            baseline = run_loadgen(sim_port, binds, args.count)
            gateway = run_gateway(sim_port, binds, args.count)
            rows.append(
                {
                    "binds": binds,
                    "window": 64,
                    "count": args.count,
                    "loadgen_direct_msg_s": round(baseline),
                    "journal_to_sim_msg_s": round(gateway),
                    "ratio": round(gateway / baseline, 3),
                }
            )
    finally:
        sim.send_signal(signal.SIGTERM)
        sim.wait(timeout=30)
    print(
        f"{'binds':>5} {'window':>6} {'direct loadgen/s':>17} {'journal->sim/s':>15} {'ratio':>6}"
    )
    for r in rows:
        print(
            f"{r['binds']:>5} {r['window']:>6} {r['loadgen_direct_msg_s']:>17,} "
            f"{r['journal_to_sim_msg_s']:>15,} {r['ratio']:>6.2f}"
        )
    print(json.dumps({"bench": "carrier", "results": rows}))


if __name__ == "__main__":
    main()
