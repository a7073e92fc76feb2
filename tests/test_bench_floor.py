"""``scripts/bench_floor.py`` runs: both echo servers measured at the rates asked (the
figures are not judged; this machine is shared)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPTS = Path(__file__).resolve().parent.parent / "scripts"


def test_the_floor_benchmark_measures_both_servers() -> None:
    done = subprocess.run(
        [sys.executable, "bench_floor.py", "--rates", "200", "--seconds", "0.5"],
        cwd=SCRIPTS,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    rows = json.loads(done.stdout.splitlines()[-1])["floor"]
    assert [(r["server"], r["rate"]) for r in rows] == [("blocking", 200.0), ("trio", 200.0)]
    # CPU time comes in clock ticks (10 ms): 100 echoes of the blocking server may read 0.
    assert all(r["achieved"] > 100 and r["cpu_us_per_message"] >= 0 for r in rows)
