"""Benchmark: partner -> gateway -> simulator, the gateway's whole MT path.

Three kinds of separate processes, as in production: the simulated SMSC
(``smppgw sim``), the gateway (``smppgw run``, process-crash durability, 4 carrier binds,
window 64), and the load generator acting as a partner (``smppgw loadgen``). For 1 and 4
partner sessions, without and with delivery receipts, it measures:

- the gateway's throughput from partner to simulator: messages a second from the load
  generator's start until the simulator has accepted every one (read from its control
  endpoint) and, with receipts, until every receipt is back at the partner. Each is
  durable before its ``submit_sm_resp``. Beside it, the rate at which the partner got
  its ``submit_sm_resp`` ("accepted/s"): higher when the gateway journals faster than
  it forwards, or than it brings receipts back (those wait in its queues meanwhile);
- the 99th-percentile ``submit_sm_resp`` latency at half the gateway's throughput, and
  beside it the same load generator's straight to the simulator at that rate (the
  floor this machine and the two other processes set);
- the baseline: the same load generator fed straight to the simulator, same run;
- the gateway's CPU time a message and the cores it used at full rate (from ``/proc``):
  what says whether it is bound by its one core (the GIL) or by something else; beside
  it the simulator's and the load generator's CPU a message and the cores all three
  used: they share the machine's two cores, so the tools' own cost caps the gateway.

Usage: ``python scripts/bench_partner.py [--count 20000] [--sessions 1 4] [--window 64]``
(``--window``: the partner's messages in flight a session; 1 is a partner that waits
for each ``submit_sm_resp``, where the gateway's latency is the whole rate).
Prints a table and one JSON line.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import trio
from bench_carrier import free_port
from bench_common import (
    SimPorts,
    cpu_seconds,
    gateway,
    rate_fields,
    run_load_delivered,
    simulator,
    wait_sessions,
)

from smppgw.gateway.auth import hash_password
from smppgw.store import Durability, NewOrder, OrderKind, StoreConfig, open_store

SMPPGW = [sys.executable, "-m", "smppgw.cli"]
PASSWORD = "bench"


async def add_order(path: Path) -> None:
    async with open_store(path, config=StoreConfig(durability=Durability.PROCESS)) as store:
        await store.create_order(
            NewOrder(partner="bench", kind=OrderKind.PREPAID, limit=1_000_000_000)
        )


def write_config(
    workdir: Path, sim_port: int, server_port: int, *, window: int = 64, binds: int = 4
) -> Path:
    path = workdir / "smppgw.yaml"
    path.write_text(
        f"""
store: {{path: '{workdir / "gw.sqlite"}', durability: process}}
metrics: {{enabled: false}}
logging: {{level: warning, format: json}}
carriers:
  - {{name: sim, host: 127.0.0.1, port: {sim_port}, system_id: smppgw, password: smppgw,
      window: {window}, binds: {binds}}}
default_route: [sim]
server: {{listen: '127.0.0.1:{server_port}', window: 256, max_pending_messages: 1000000}}
partners:
  - system_id: bench
    password_hash: '{hash_password(PASSWORD)}'
"""
    )
    return path


def measure(
    count: int,
    sessions: int,
    receipts: bool,
    window: int,
    sim: SimPorts,
    server_port: int,
    gw_pid: int,
    workdir: Path,
) -> dict[str, Any]:
    """One row: the baseline, the gateway at full load, then at half its throughput."""
    options: dict[str, Any] = {
        "sessions": sessions,
        "count": count,
        "receipts": receipts,
        "window": window,
    }
    timeline = workdir / "timeline.jsonl"
    gateway_login = {"system_id": "bench", "password": PASSWORD}
    _, direct_rate = run_load_delivered(
        sim.smpp, timeline, sim.control, system_id="direct", password="direct", **options
    )
    cpu_before, sim_before = cpu_seconds(gw_pid), cpu_seconds(sim.pid)
    full, rate = run_load_delivered(server_port, timeline, sim.control, **gateway_login, **options)
    cpu_after, sim_after = cpu_seconds(gw_pid), cpu_seconds(sim.pid)
    # The gateway's CPU a message (receipts included) and its cores in use; beside it
    # the simulator's and the load generator's, which share the machine's two cores.
    gw_cpu = None if cpu_before is None or cpu_after is None else cpu_after - cpu_before
    sim_cpu = None if sim_before is None or sim_after is None else sim_after - sim_before
    budget = _cpu_budget(count, rate, gw_cpu, sim_cpu, full.summary.get("cpu_seconds"))
    options["count"] = max(1000, count // 4)
    # Measured to the end, so that this row has drained before the next.
    half, _ = run_load_delivered(
        server_port, timeline, sim.control, rate=rate / 2, **gateway_login, **options
    )
    # The same load straight to the simulator: the latency floor of the load generator
    # and the simulator themselves on this machine at that rate.
    direct_half, _ = run_load_delivered(
        sim.smpp,
        timeline,
        sim.control,
        rate=rate / 2,
        system_id="direct",
        password="direct",
        **options,
    )
    return {
        "sessions": sessions,
        "window": window,
        "receipts": receipts,
        "count": count,
        **rate_fields(direct_rate, rate, full.summary),
        "p99_ms_at_half_load": round(half.summary["latency_p99_ms"], 2),
        "p50_ms_at_half_load": round(half.summary["latency_p50_ms"], 2),
        "direct_p99_ms_at_half_load": round(direct_half.summary["latency_p99_ms"], 2),
        "gateway_cpu_us_per_msg": None if gw_cpu is None else round(gw_cpu / count * 1e6),
        "gateway_cores": None if gw_cpu is None else round(gw_cpu * rate / count, 2),
        **budget,
    }


def _cpu_budget(
    count: int, rate: float, gateway: float | None, sim: float | None, load: float | None
) -> dict[str, Any]:
    """The simulator's and the load generator's CPU a message at full rate, and the
    cores the three processes used together: the load generator and the simulator run
    on the same two cores as the gateway, so what they use caps the gateway's rate."""
    if gateway is None or sim is None or load is None:
        return {"sim_cpu_us_per_msg": None, "loadgen_cpu_us_per_msg": None, "all_cores": None}
    return {
        "sim_cpu_us_per_msg": round(sim / count * 1e6),
        "loadgen_cpu_us_per_msg": round(load / count * 1e6),
        "all_cores": round((gateway + sim + load) * rate / count, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=20_000)
    parser.add_argument("--sessions", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--window", type=int, default=64, help="the partner's window")
    parser.add_argument("--carrier-window", type=int, default=64)
    parser.add_argument("--carrier-binds", type=int, default=4)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="smppgw-bench-") as tmp:
        workdir = Path(tmp)
        server_port = free_port()
        trio.run(add_order, workdir / "gw.sqlite")
        # Two accounts: the simulator sends a receipt to any session bound with the
        # submitter's system_id, so the baseline must not share the gateway's.
        with simulator(("smppgw:smppgw", "direct:direct")) as sim:
            window, binds = args.carrier_window, args.carrier_binds
            config = write_config(workdir, sim.smpp, server_port, window=window, binds=binds)
            with gateway(config, workdir, server_port) as gw:
                wait_sessions(sim.control, binds)  # the carrier binds are up
                for receipts in (False, True):
                    for sessions in args.sessions:
                        row = measure(
                            args.count,
                            sessions,
                            receipts,
                            args.window,
                            sim,
                            server_port,
                            gw.pid,
                            workdir,
                        )
                        rows.append(row)
    print(
        f"{'sessions':>8} {'window':>6} {'receipts':>8} {'direct/s':>9} {'gateway/s':>9} "
        f"{'accepted/s':>10} {'ratio':>6} {'p50 ms':>7} {'p99 ms':>7} {'direct p99':>10}"
        f" {'us/msg':>7} {'cores':>6} {'sim us':>6} {'load us':>7} {'all cores':>9}"
        "  (latency at half the gateway's rate, and the simulator's fed directly at that"
        " rate; CPU a message at full rate: the gateway's, the simulator's, the load"
        " generator's, and the cores the three used)"
    )
    for r in rows:
        print(
            f"{r['sessions']:>8} {r['window']:>6} {r['receipts']!s:>8} {r['direct_msg_s']:>9,} "
            f"{r['gateway_msg_s']:>9,} {r['gateway_accepted_msg_s']:>10,} "
            f"{r['ratio']:>6.2f} {r['p50_ms_at_half_load']:>7} "
            f"{r['p99_ms_at_half_load']:>7} {r['direct_p99_ms_at_half_load']:>10}"
            f" {r['gateway_cpu_us_per_msg']!s:>7}"
            f" {r['gateway_cores']!s:>6}"
            f" {r['sim_cpu_us_per_msg']!s:>6} {r['loadgen_cpu_us_per_msg']!s:>7}"
            f" {r['all_cores']!s:>9}"
        )
    print(json.dumps({"bench": "partner", "durability": "process", "results": rows}))


if __name__ == "__main__":
    main()
