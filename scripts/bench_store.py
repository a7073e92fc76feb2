"""Benchmark: MT messages durably journaled per second, group commit vs one commit each.

Every mode goes through the same trio-facing call, ``await store.journal_accept(...)``,
in the same run, at both durability levels:

* ``one-per-commit``: the writer configured with ``max_batch_items=1`` (16 tasks
  submitting): one transaction, one WAL append (and one fsync at ``power``) per message,
  the baseline a naive journal would give.
* ``group, 1 msg/call``: the default writer; many tasks (a partner session each, say)
  each awaiting one message at a time. Batches form from whatever queued during the
  previous commit.
* ``group, 16 tasks``: fewer concurrent callers, so smaller batches.
* ``..., 2ms``: the same with a 2 ms linger before each batch (``StoreConfig.linger``).
* ``group, N msgs/call``: tasks submit all messages of one "read" in one call, as the
  partner sessions do.

Usage: ``python scripts/bench_store.py [--seconds 2] [--dir /tmp]``. Prints a table and
one JSON line with the rates and the ratios against the baseline of the same level.
Numbers depend on the disk and on what else the machine runs: compare within a run.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import trio

from smppgw.store import Durability, NewMessage, StoreConfig, open_store


@dataclass(frozen=True)
class Mode:
    name: str
    tasks: int
    per_call: int
    batch_items: int
    linger: float = 0.0


MODES = (
    Mode("one-per-commit", tasks=16, per_call=1, batch_items=1),
    Mode("group, 1 msg/call", tasks=256, per_call=1, batch_items=2_000),
    Mode("group, 1 msg/call, 2ms", tasks=256, per_call=1, batch_items=2_000, linger=0.002),
    Mode("group, 16 tasks", tasks=16, per_call=1, batch_items=2_000),
    Mode("group, 16 tasks, 2ms", tasks=16, per_call=1, batch_items=2_000, linger=0.002),
    Mode("group, 50 msgs/call", tasks=32, per_call=50, batch_items=2_000),
)


def _messages(n: int) -> list[NewMessage]:
    return [
        NewMessage(
            partner="bench",
            source_addr="ACME",
            destination_addr=f"8490{i:07d}",
            body=b"Your verification code is 123456. Do not share it." + bytes([i % 256]),
            registered_delivery=1,
        )
        for i in range(n)
    ]


async def _run_mode(path: Path, level: Durability, mode: Mode, seconds: float) -> dict[str, float]:
    config = StoreConfig(
        durability=level,
        max_batch_items=mode.batch_items,
        linger=mode.linger,
        quick_check=False,
    )
    batch = _messages(mode.per_call)
    done = 0
    async with open_store(path, config=config) as store:
        await store.journal_accept(batch)  # warm up: file created, caches hot

        async def submitter(deadline: float) -> None:
            nonlocal done
            while trio.current_time() < deadline:
                await store.journal_accept(batch)
                done += len(batch)

        started = time.perf_counter()
        async with trio.open_nursery() as nursery:
            deadline = trio.current_time() + seconds
            for _ in range(mode.tasks):
                nursery.start_soon(submitter, deadline)
        elapsed = time.perf_counter() - started
        stats = store.statistics()
    return {
        "rate": done / elapsed,
        "avg_batch_rows": stats.avg_batch_rows,
        "commit_ms_avg": stats.commit_latency_avg * 1000,
    }


async def main(seconds: float, directory: str | None) -> None:
    results: dict[str, dict[str, dict[str, float]]] = {}
    with tempfile.TemporaryDirectory(dir=directory) as tmp:
        for level in (Durability.PROCESS, Durability.POWER):
            results[level.value] = {}
            for n, mode in enumerate(MODES):
                path = Path(tmp) / f"{level.value}-{n}.db"
                results[level.value][mode.name] = await _run_mode(path, level, mode, seconds)

    print(
        f"{'level':8} {'mode':24} {'msg/s':>10} {'x base':>7} {'rows/commit':>12} {'commit ms':>10}"
    )
    summary: dict[str, object] = {"seconds": seconds, "loadavg_1m": os.getloadavg()[0]}
    for level_name, modes in results.items():
        base = modes[MODES[0].name]["rate"]
        for name, r in modes.items():
            ratio = r["rate"] / base
            print(
                f"{level_name:8} {name:24} {r['rate']:10.0f} {ratio:7.1f}"
                f" {r['avg_batch_rows']:12.1f} {r['commit_ms_avg']:10.2f}"
            )
            summary[f"{level_name}/{name}/msg_per_s"] = round(r["rate"])
            summary[f"{level_name}/{name}/ratio"] = round(ratio, 1)
    print(json.dumps(summary))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="duration of each mode")
    parser.add_argument("--dir", default=None, help="directory for the database files")
    args = parser.parse_args()
    trio.run(main, args.seconds, args.dir)
