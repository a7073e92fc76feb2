"""One-command benchmark report: every gateway figure beside its same-run baseline.

Why one command: the single benchmarks (``bench_partner.py``, ``bench_scenarios.py``, ...)
each answer one question, run at different times on a noisy shared machine, and print
no picture of a run over time. This script runs them all in one go, each case against
fresh processes (the simulator ``smppgw sim``, the gateway ``smppgw run``, the load
generator ``smppgw loadgen`` -- separate processes, as in production), and writes:

- a table on stdout;
- ``bench-report.json``: every figure, the per-second timelines, the machine (cores,
  Python, git commit) and the parameters;
- ``bench-report.png``: throughput and p99 latency per second of the main runs (needs
  matplotlib, the ``bench`` extra; without it the PNG is skipped and said so).

Sections:

``mt``
    partner -> gateway -> simulator, without and with receipts, at 1 and 4 partner
    sessions: the rate, every receipt back, and p50/p99 ``submit_sm_resp`` latency at
    half that rate. Baseline: the same load straight to the simulator.
``priority``
    transactional traffic while a marketing batch runs. Two partners
    (``traffic_class: transactional`` and ``marketing``); the carrier is limited to
    ``--carrier-tps`` as real carriers are, so the batch queues in the gateway and the
    transactional lane has to overtake it. A paced transactional load (``--tx-rate``,
    receipts asked) runs alone, then while the batch is being delivered. Figures: its
    p50/p99 submit latency and the receipt round trip (submit sent -> receipt back:
    through the gateway to the simulator and back, the simulator answering at once),
    the end-to-end time. Baseline: the same two loads straight to the simulator, the
    batch paced at the carrier's rate.
``mo``
    MO scenario throughput (``bench_scenarios.py``: the points scenario, MO in, reply
    out). Baseline: plain MO acknowledgement with scenarios off.

Usage: ``python scripts/bench.py [--count 20000] [--sessions 1 4] [--out-dir .]``;
``--help`` lists the sizes. Tiny counts make a smoke run (``tests/test_bench_report.py``).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import bench_partner
import bench_scenarios
import trio
from bench_common import (
    StatsSampler,
    free_port,
    gateway,
    machine_info,
    rate_fields,
    run_load,
    run_load_delivered,
    sim_stats,
    simulator,
    start_load,
    wait_sessions,
)

from smppgw.gateway.auth import hash_password

if TYPE_CHECKING:
    from collections.abc import Sequence

SECTIONS = ("mt", "priority", "mo")
CARRIER_BINDS = 4  # bench_partner.write_config's carrier binds, and ours
TX_PASSWORD = "txpw"
MKT_PASSWORD = "mktpw"


# -- MT: partner -> gateway -> simulator ---------------------------------------------------


def mt_case(args: argparse.Namespace, sessions: int, receipts: bool) -> dict[str, Any]:
    """One MT case on a fresh simulator and gateway, the direct baseline first."""
    with tempfile.TemporaryDirectory(prefix="smppgw-bench-") as tmp:
        workdir = Path(tmp)
        server_port = free_port()
        with simulator(("smppgw:smppgw", "direct:direct")) as sim:
            trio.run(bench_partner.add_order, workdir / "gw.sqlite")
            config = bench_partner.write_config(workdir, sim.smpp, server_port)
            with gateway(config, workdir, server_port):
                wait_sessions(sim.control, CARRIER_BINDS)
                common: dict[str, Any] = {"sessions": sessions, "receipts": receipts}
                direct, direct_rate = run_load_delivered(
                    sim.smpp,
                    workdir / "direct.jsonl",
                    sim.control,
                    system_id="direct",
                    password="direct",
                    count=args.count,
                    **common,
                )
                full, rate = run_load_delivered(
                    server_port,
                    workdir / "full.jsonl",
                    sim.control,
                    system_id="bench",
                    password=bench_partner.PASSWORD,
                    count=args.count,
                    **common,
                )
                half = run_load(
                    server_port,
                    workdir / "half.jsonl",
                    system_id="bench",
                    password=bench_partner.PASSWORD,
                    count=max(200, args.count // 4),
                    rate=rate / 2,
                    **common,
                )
    d, g = direct.summary, full.summary
    return {
        "name": f"{sessions}s-{'receipts' if receipts else 'no-receipts'}",
        "sessions": sessions,
        "receipts": receipts,
        "count": args.count,
        **rate_fields(direct_rate, rate, g),
        "direct_p99_ms": round(d["latency_p99_ms"], 2),
        "gateway_p99_ms_full_load": round(g["latency_p99_ms"], 2),
        "p50_ms_at_half_load": round(half.summary["latency_p50_ms"], 2),
        "p99_ms_at_half_load": round(half.summary["latency_p99_ms"], 2),
        "receipt_round_trip_p99_ms_at_half_load": half.total.get("round_trip_p99_ms")
        if receipts
        else None,
        "timeline": {"direct": direct.seconds, "gateway": full.seconds},
    }


def run_mt(args: argparse.Namespace) -> list[dict[str, Any]]:
    return [mt_case(args, s, r) for r in (False, True) for s in args.sessions]


# -- transactional latency while a marketing batch runs ----------------------------------


def priority_config(
    workdir: Path, sim_port: int, server_port: int, tps: float, marketing_backlog: int = 0
) -> Path:
    """Two unmetered partners (no order to set up), one per traffic class."""
    path = workdir / "smppgw.yaml"
    path.write_text(
        f"""
store: {{path: '{workdir / "gw.sqlite"}', durability: process}}
metrics: {{enabled: false}}
logging: {{level: warning, format: json}}
carriers:
  - {{name: sim, host: 127.0.0.1, port: {sim_port}, system_id: smppgw, password: smppgw,
      window: 64, binds: {CARRIER_BINDS}, tps: {tps}}}
default_route: [sim]
server: {{listen: '127.0.0.1:{server_port}', window: 256, max_pending_messages: 1000000,
  marketing_backlog: {marketing_backlog}}}
partners:
  - {{system_id: tx, password_hash: '{hash_password(TX_PASSWORD)}',
      traffic_class: transactional, billing: unmetered}}
  - {{system_id: mkt, password_hash: '{hash_password(MKT_PASSWORD)}',
      traffic_class: marketing, billing: unmetered}}
"""
    )
    return path


def _wait_submits(control_port: int, at_least: int, within: float) -> float:
    """Wait until the simulator has taken ``at_least`` submits; the wall time then."""
    deadline = time.monotonic() + within
    while sim_stats(control_port)["submits"] < at_least:
        if time.monotonic() > deadline:
            raise RuntimeError(f"the simulator never reached {at_least} submits")
        time.sleep(0.02)
    return time.time()


def priority_case(
    args: argparse.Namespace, via_gateway: bool, batch: bool, capped: bool = False
) -> dict[str, Any]:
    """The paced transactional load, alone or during the batch, on fresh processes.
    ``capped``: the gateway holds marketing back beyond 2 s of the carrier's rate
    (``server.marketing_backlog``), and the batch's partner retries what is throttled."""
    backlog = int(2 * args.carrier_tps) if capped and args.carrier_tps else 0
    with tempfile.TemporaryDirectory(prefix="smppgw-bench-") as tmp:
        workdir = Path(tmp)
        server_port = free_port()
        accounts = ("smppgw:smppgw", f"tx:{TX_PASSWORD}", f"mkt:{MKT_PASSWORD}")
        with simulator(accounts, receipt_delay_ms=0) as sim:
            config = priority_config(workdir, sim.smpp, server_port, args.carrier_tps, backlog)
            with gateway(config, workdir, server_port) if via_gateway else _nothing():
                if via_gateway:
                    wait_sessions(sim.control, CARRIER_BINDS)
                port = server_port if via_gateway else sim.smpp
                with StatsSampler(sim.control) as sampler:
                    started = time.time()
                    mkt = None
                    if batch:
                        mkt = start_load(
                            port,
                            workdir / "mkt.jsonl",
                            system_id="mkt",
                            password=MKT_PASSWORD,
                            sessions=4,
                            count=args.batch,
                            # Straight to the simulator the batch goes at the carrier's
                            # pace: the same traffic as the SMSC sees it via the gateway.
                            rate=None if via_gateway else (args.carrier_tps or None),
                            retry_throttled=capped,
                        )
                        # The transactional load starts once the batch is reaching the
                        # SMSC, so it runs during the batch, not before it.
                        _wait_submits(sim.control, min(args.batch, 200), within=60)
                    tx = run_load(
                        port,
                        workdir / "tx.jsonl",
                        system_id="tx",
                        password=TX_PASSWORD,
                        sessions=1,
                        count=args.tx_count,
                        rate=args.tx_rate,
                        receipts=True,
                    )
                    tx_done = time.time()
                    submits_at_tx_end = sim_stats(sim.control)["submits"]
                    if mkt is not None:
                        mkt.result()
                    total = args.tx_count + (args.batch if batch else 0)
                    all_delivered = _wait_submits(sim.control, total, within=900)
    s, t = tx.summary, tx.total
    # How much of the transactional run had the batch still on its way to the SMSC (from
    # its first send, wall clock, to its last receipt): a process start on a busy machine
    # can take seconds, so "started during the batch" is measured, not assumed.
    tx_start, tx_end = t["t"], t["t"] + s["duration"]
    during = (min(tx_end, all_delivered) - tx_start) / max(tx_end - tx_start, 1e-9)
    return {
        "name": f"{'gateway' if via_gateway else 'direct'}-{'batch' if batch else 'alone'}"
        + ("-capped" if capped else ""),
        "via_gateway": via_gateway,
        "batch": args.batch if batch else 0,
        "tx_count": args.tx_count,
        "tx_rate": args.tx_rate,
        "tx_accepted": s["accepted"],
        "tx_receipts_matched": s["receipts_matched"],
        "tx_submit_p50_ms": round(s["latency_p50_ms"], 2),
        "tx_submit_p99_ms": round(s["latency_p99_ms"], 2),
        "tx_end_to_end_p50_ms": t["round_trip_p50_ms"],
        "tx_end_to_end_p99_ms": t["round_trip_p99_ms"],
        "tx_end_to_end_max_ms": t["round_trip_max_ms"],
        # Proof the batch overlapped: what of it had not reached the SMSC when the
        # transactional load ended.
        "batch_left_at_tx_end": max(0, total - submits_at_tx_end) if batch else 0,
        "tx_during_batch": round(min(1.0, max(0.0, during)), 3) if batch else 0.0,
        "batch_msg_s": round(mkt.summary["throughput"]) if mkt is not None else None,
        "delivered_all_after_s": round(all_delivered - started, 3),
        "timeline": {
            "t0": started,
            "tx": tx.seconds,
            "batch": mkt.seconds if mkt is not None else [],
            "sim_submits": sampler.rates(),
        },
        "tx_done_after_s": round(tx_done - started, 3),
    }


class _nothing:
    """A do-nothing context for the direct cases (no gateway to start)."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def run_priority(args: argparse.Namespace) -> dict[str, Any]:
    cases = {
        c["name"]: c
        for c in (
            priority_case(args, via_gateway=g, batch=b)
            for g in (True, False)
            for b in (False, True)
        )
    }
    if args.carrier_tps:
        capped = priority_case(args, via_gateway=True, batch=True, capped=True)
        cases[capped["name"]] = capped

    def ratio(a: float, b: float) -> float:
        return round(a / b, 3) if b > 0 else float("inf")

    gw_a, gw_b = cases["gateway-alone"], cases["gateway-batch"]
    d_a, d_b = cases["direct-alone"], cases["direct-batch"]
    return {
        "carrier_tps": args.carrier_tps,
        "cases": list(cases.values()),
        "ratios": {
            # How much the batch slows the transactional traffic (1.0: not at all).
            "gateway_batch_over_alone_submit_p99": ratio(
                gw_b["tx_submit_p99_ms"], gw_a["tx_submit_p99_ms"]
            ),
            "gateway_batch_over_alone_end_to_end_p99": ratio(
                gw_b["tx_end_to_end_p99_ms"], gw_a["tx_end_to_end_p99_ms"]
            ),
            "direct_batch_over_alone_end_to_end_p99": ratio(
                d_b["tx_end_to_end_p99_ms"], d_a["tx_end_to_end_p99_ms"]
            ),
            # What the gateway adds over the bare simulator, during the batch.
            "gateway_over_direct_end_to_end_p99_during_batch": ratio(
                gw_b["tx_end_to_end_p99_ms"], d_b["tx_end_to_end_p99_ms"]
            ),
            **(
                {
                    # The same batch with server.marketing_backlog at 2 s of carrier rate.
                    "gateway_capped_batch_over_alone_end_to_end_p99": ratio(
                        cases["gateway-batch-capped"]["tx_end_to_end_p99_ms"],
                        gw_a["tx_end_to_end_p99_ms"],
                    )
                }
                if "gateway-batch-capped" in cases
                else {}
            ),
        },
    }


# -- MO scenarios -------------------------------------------------------------------------


def run_mo(args: argparse.Namespace) -> dict[str, Any]:
    ack = bench_scenarios.run_once(args.mo_count, scenarios=False)
    points = bench_scenarios.run_once(args.mo_count, scenarios=True)
    return {
        "ack": ack,
        "points": points,
        "ratio": round(points["per_second"] / ack["per_second"], 3),
    }


# -- output -------------------------------------------------------------------------------


def print_tables(report: dict[str, Any]) -> None:
    m = report["machine"]
    print(
        f"smppgw benchmark report  {m['git_commit'][:10]}{' (dirty)' if m['git_dirty'] else ''}"
        f"  {m['cores']} cores  Python {m['python']}"
    )
    if "mt" in report:
        print("\nMT partner -> gateway -> simulator (baseline: loadgen -> simulator)")
        print(
            f"{'sessions':>8} {'receipts':>8} {'direct/s':>9} {'gateway/s':>9} {'ratio':>6} "
            f"{'p50 ms':>7} {'p99 ms':>7}  (latency at half the gateway's rate)"
        )
        for r in report["mt"]:
            print(
                f"{r['sessions']:>8} {r['receipts']!s:>8} {r['direct_msg_s']:>9,} "
                f"{r['gateway_msg_s']:>9,} {r['ratio']:>6.2f} {r['p50_ms_at_half_load']:>7} "
                f"{r['p99_ms_at_half_load']:>7}"
            )
    if "priority" in report:
        p = report["priority"]
        print(
            f"\nTransactional during a marketing batch (carrier tps {p['carrier_tps']:g}; "
            "end to end = submit -> receipt back)"
        )
        print(
            f"{'case':<20} {'batch':>7} {'submit p50':>10} {'p99':>7} "
            f"{'e2e p50':>8} {'e2e p99':>8} {'during batch':>12}"
        )
        for c in p["cases"]:
            print(
                f"{c['name']:<20} {c['batch']:>7} {c['tx_submit_p50_ms']:>10} "
                f"{c['tx_submit_p99_ms']:>7} {c['tx_end_to_end_p50_ms']:>8} "
                f"{c['tx_end_to_end_p99_ms']:>8} {c['tx_during_batch']:>12.0%}"
            )
            if c["batch"] and c["tx_during_batch"] < 0.8:
                print(f"  ({c['name']}: the batch ended early; a larger --batch overlaps more)")
        for name, value in p["ratios"].items():
            print(f"  {name}: {value}")
    if "mo" in report:
        mo = report["mo"]
        print("\nMO scenarios (baseline: plain MO acknowledgement, scenarios off)")
        print(f"{'run':<8} {'MO':>7} {'seconds':>8} {'MO/s':>8}")
        for row in (mo["ack"], mo["points"]):
            print(
                f"{row['run']:<8} {row['count']:>7} {row['seconds']:>8.2f} {row['per_second']:>8,}"
            )
        print(f"  points/ack ratio: {mo['ratio']:.2f}")


def write_chart(report: dict[str, Any], path: Path) -> str | None:
    """Draw the PNG; None if written, else why not (matplotlib is an optional extra)."""
    try:
        import matplotlib  # type: ignore[import-not-found, unused-ignore]

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt  # type: ignore[import-not-found, unused-ignore]
    except ImportError:
        return "matplotlib is not installed (pip install 'smppgw[bench]')"
    fig, axes = plt.subplots(2, 2, figsize=(14, 9), squeeze=False)
    (mt_rate, pr_rate), (mt_p99, pr_p99) = axes
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, case in enumerate(report.get("mt", [])):
        color = colors[i % len(colors)]
        for who, style in (("gateway", "-"), ("direct", ":")):
            seconds = case["timeline"][who]
            xs = [s["start_s"] for s in seconds]
            label = f"{who} {case['name']}"
            mt_rate.plot(
                xs,
                [s["accepted_per_s"] for s in seconds],
                style,
                marker=".",
                color=color,
                label=label,
            )
            answered = [s for s in seconds if s["responses"]]
            mt_p99.plot(
                [s["start_s"] for s in answered],
                [s["latency_p99_ms"] for s in answered],
                style,
                marker=".",
                color=color,
            )
    mt_rate.set(title="MT: messages accepted per second", xlabel="s", ylabel="msg/s")
    mt_p99.set(title="MT: submit_sm_resp p99 per interval (full load)", xlabel="s", ylabel="ms")
    mt_p99.set_yscale("log")
    mt_rate.legend(fontsize=7)
    for i, case in enumerate(report.get("priority", {}).get("cases", [])):
        color = colors[i % len(colors)]
        tl = case["timeline"]
        t0 = tl["t0"]
        sim = tl["sim_submits"]
        pr_rate.plot(
            [s["t"] - t0 for s in sim],
            [s["submits_per_s"] for s in sim],
            marker=".",
            color=color,
            label=f"{case['name']}: all submits at the SMSC",
        )
        tx = [s for s in tl["tx"] if s["responses"]]
        pr_p99.plot(
            [s["t"] - t0 for s in tx],
            [s["latency_p99_ms"] for s in tx],
            "-o",
            markersize=3,
            color=color,
            label=case["name"],
        )
    pr_rate.set(title="Priority: submits/s reaching the simulator", xlabel="s", ylabel="msg/s")
    pr_p99.set(title="Priority: transactional submit p99 per interval", xlabel="s", ylabel="ms")
    pr_rate.legend(fontsize=7)
    pr_p99.legend(fontsize=7)
    m = report["machine"]
    fig.suptitle(f"smppgw bench {m['git_commit'][:10]}, {m['cores']} cores, Python {m['python']}")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return None


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=20_000, help="MT messages a case")
    parser.add_argument("--sessions", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--batch", type=int, default=20_000, help="marketing batch size")
    parser.add_argument("--carrier-tps", type=float, default=2000.0, help="priority section")
    parser.add_argument("--tx-count", type=int, default=200, help="transactional messages")
    parser.add_argument("--tx-rate", type=float, default=50.0, help="transactional msg/s")
    parser.add_argument("--mo-count", type=int, default=5000)
    parser.add_argument("--sections", nargs="+", choices=SECTIONS, default=list(SECTIONS))
    parser.add_argument("--out-dir", type=Path, default=Path("."))
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    began = time.monotonic()
    report: dict[str, Any] = {
        "bench": "report",
        "machine": machine_info(),
        "params": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
    }
    runners = {"mt": run_mt, "priority": run_priority, "mo": run_mo}
    report["section_seconds"] = {}
    for section in SECTIONS:
        if section in args.sections:
            t0 = time.monotonic()
            report[section] = runners[section](args)
            report["section_seconds"][section] = round(time.monotonic() - t0, 1)
    report["seconds"] = round(time.monotonic() - began, 1)
    json_path = args.out_dir / "bench-report.json"
    png_path = args.out_dir / "bench-report.png"
    skipped = write_chart(report, png_path)
    report["png"] = None if skipped else str(png_path)
    report["png_skipped"] = skipped
    json_path.write_text(json.dumps(report, indent=1) + "\n")
    print_tables(report)
    print(f"\nwrote {json_path}" + (f" and {png_path}" if not skipped else ""))
    if skipped:
        print(f"PNG skipped: {skipped}")
    print(f"took {report['seconds']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
