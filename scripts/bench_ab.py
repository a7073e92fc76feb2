"""Benchmark: the gateway's cost a message at a fixed load, this tree against a base
revision, in alternating rounds.

On this noisy 2-core machine a change worth 5 % of CPU is lost in a throughput run: the
direct baseline itself moves by 15 % from one run to the next. Here the load is fixed
(``--rate``), so what a change saves shows as CPU, and as a count that does not depend on
the machine at all: the trio task steps and I/O waits of the gateway's event loop a
message, counted by an instrument loaded into the gateway process only (through a
``sitecustomize`` on its ``PYTHONPATH``; the product carries no such hook).

Each round runs the base tree's gateway, then this tree's, each on a fresh store with
the same simulator and load generator (both from this tree): partner -> gateway ->
simulator, as ``bench_partner.py``. The base is checked out in a temporary git worktree.

Usage: ``python scripts/bench_ab.py [--base HEAD] [--rate 800] [--count 8000]
[--sessions 1] [--window 1] [--receipts] [--rounds 3]``. ``--base HEAD`` compares the
working tree's uncommitted change with the last commit. Prints a table and one JSON
line; the ratios are this tree's medians over the base's.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench_carrier import free_port
from bench_common import REPO, cpu_seconds, gateway, simulator, start_load, wait_sessions
from bench_partner import PASSWORD, write_config

#: Loaded by the gateway's interpreter at start (``sitecustomize``): counts the event
#: loop's task steps and I/O waits, written to ``$SMPPGW_BENCH_STEPS`` at exit.
SITECUSTOMIZE = """
import atexit, json, os, sys
if os.environ.get("SMPPGW_BENCH_STEPS") and "run" in sys.argv:
    import trio
    counts = {"steps": 0, "io_waits": 0}

    class _Counting(trio.abc.Instrument):
        def before_task_step(self, task):
            counts["steps"] += 1

        def before_io_wait(self, timeout):
            counts["io_waits"] += 1

    _run = trio.run

    def run(*args, **kwargs):
        kwargs["instruments"] = [*kwargs.get("instruments", ()), _Counting()]
        return _run(*args, **kwargs)

    trio.run = run

    def _write():
        with open(os.environ["SMPPGW_BENCH_STEPS"], "w") as f:
            json.dump(counts, f)

    atexit.register(_write)
"""

#: ``bench_partner.add_order`` run with the tree under test first on the path: its own
#: store code makes the file its gateway opens (a base of another schema refuses ours).
ADD_ORDER = (
    "import sys, trio; from pathlib import Path; from bench_partner import add_order;"
    " trio.run(add_order, Path(sys.argv[1]))"
)


def one_round(tree: Path, site: Path, args: argparse.Namespace) -> dict[str, Any]:
    """One gateway of ``tree`` under the fixed load: its CPU, steps and latency."""
    env = {"PYTHONPATH": os.pathsep.join([str(site), str(tree), str(REPO / "scripts")])}
    with tempfile.TemporaryDirectory(prefix="smppgw-ab-") as tmp:
        workdir = Path(tmp)
        steps_file = workdir / "steps.json"
        # In the work directory, as the gateway runs: ``-c`` puts the current directory
        # first on the path, and from the checkout that is this tree's ``smppgw`` (a
        # base of an older schema then refused the file this tree made).
        subprocess.run(
            [sys.executable, "-c", ADD_ORDER, str(workdir / "gw.sqlite")],
            env={**os.environ, **env},
            cwd=workdir,
            check=True,
        )
        imported = subprocess.run(
            [sys.executable, "-c", "import smppgw; print(smppgw.__file__)"],
            env={**os.environ, **env},
            cwd=workdir,
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
        if not Path(imported).is_relative_to(tree):
            raise RuntimeError(f"the round of {tree} would run {imported}")
        port = free_port()
        with simulator(("smppgw:smppgw",)) as sim:
            config = write_config(workdir, sim.smpp, port)
            gw_env = {**env, "SMPPGW_BENCH_STEPS": str(steps_file)}
            with gateway(config, workdir, port, env=gw_env) as gw:
                wait_sessions(sim.control, 4)
                load = start_load(
                    port,
                    workdir / "timeline.jsonl",
                    system_id="bench",
                    password=PASSWORD,
                    sessions=args.sessions,
                    count=args.count,
                    window=args.window,
                    receipts=args.receipts,
                    rate=args.rate,
                )
                cpu_before, started = cpu_seconds(gw.pid), time.monotonic()
                summary = load.result().summary
                cpu_after, ended = cpu_seconds(gw.pid), time.monotonic()
            # The gateway has exited (SIGTERM, a clean drain): its counts are written.
            counts = json.loads(steps_file.read_text())
    cpu = None if cpu_before is None or cpu_after is None else cpu_after - cpu_before
    return {
        "cores": None if cpu is None else round(cpu / (ended - started), 3),
        "cpu_us_per_msg": None if cpu is None else round(cpu / args.count * 1e6),
        "steps_per_msg": round(counts["steps"] / args.count, 2),
        "io_waits_per_msg": round(counts["io_waits"] / args.count, 2),
        "p50_ms": round(summary["latency_p50_ms"], 2),
        "p99_ms": round(summary["latency_p99_ms"], 2),
    }


def median_of(rows: list[dict[str, Any]], key: str) -> float | None:
    values = [r[key] for r in rows if r[key] is not None]
    return statistics.median(values) if values else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", default="HEAD", help="git revision to compare with")
    parser.add_argument("--rate", type=float, default=800.0, help="messages a second")
    parser.add_argument("--count", type=int, default=8000)
    parser.add_argument("--sessions", type=int, default=1)
    parser.add_argument("--window", type=int, default=1)
    parser.add_argument("--receipts", action="store_true")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    rows: dict[str, list[dict[str, Any]]] = {"base": [], "this": []}
    with tempfile.TemporaryDirectory(prefix="smppgw-ab-trees-") as tmp:
        site = Path(tmp) / "site"
        site.mkdir()
        (site / "sitecustomize.py").write_text(SITECUSTOMIZE)
        base = Path(tmp) / "base"
        git = ["git", "-C", str(REPO)]
        subprocess.run(
            [*git, "worktree", "add", "-q", "--detach", str(base), args.base], check=True
        )
        try:
            for _ in range(args.rounds):
                rows["base"].append(one_round(base, site, args))
                rows["this"].append(one_round(REPO, site, args))
        finally:
            subprocess.run([*git, "worktree", "remove", "--force", str(base)], check=False)
    keys = ["cores", "cpu_us_per_msg", "steps_per_msg", "io_waits_per_msg", "p50_ms", "p99_ms"]
    print(f"{'tree':>5} {'round':>5} " + " ".join(f"{k:>16}" for k in keys))
    for tree, tree_rows in rows.items():
        for n, row in enumerate(tree_rows, 1):
            print(f"{tree:>5} {n:>5} " + " ".join(f"{row[k]!s:>16}" for k in keys))
    medians = {tree: {k: median_of(r, k) for k in keys} for tree, r in rows.items()}
    ratios: dict[str, float | None] = {}
    for k in keys:
        b, t = medians["base"][k], medians["this"][k]
        ratios[k] = None if not b or t is None else round(t / b, 3)
    print(f"{'ratio':>11} " + " ".join(f"{ratios[k]!s:>16}" for k in keys) + "  (this / base)")
    options = dict(vars(args))
    print(
        json.dumps({"bench": "ab", **options, "rounds": rows, "medians": medians, "ratios": ratios})
    )


if __name__ == "__main__":
    main()
