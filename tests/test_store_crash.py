"""Crash test: ``kill -9`` a process writing through the store; nothing acknowledged is lost.

The child (``store_crash_child.py``) logs every id *after* the store acknowledged it. We
SIGKILL it at a random moment (sometimes before it even finished opening or migrating the
file), reopen the file, and check that it passes ``quick_check`` and holds every logged id.
Rounds reuse the same file, so each start also recovers the previous crash's WAL.
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import trio

from smppgw.store import open_store

CHILD = Path(__file__).with_name("store_crash_child.py")
ROOT = Path(__file__).resolve().parent.parent


def _acknowledged(log: Path) -> tuple[set[int], set[tuple[str, int]]]:
    messages: set[int] = set()
    inbound: set[tuple[str, int]] = set()
    data = log.read_bytes() if log.exists() else b""
    for line in data.decode().split("\n")[:-1]:  # a cut last line was never complete
        kind, *rest = line.split()
        if kind == "m":
            messages.add(int(rest[0]))
        elif kind == "i":
            inbound.add((rest[0], int(rest[1])))
    return messages, inbound


def _check(db: Path, log: Path) -> int:
    messages, inbound = _acknowledged(log)
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("PRAGMA quick_check").fetchall() == [("ok",)]
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version == 0:  # killed before the first migration committed: an empty file
            assert conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()[0] == 0
            stored, stored_inbound = set(), set()
        else:
            stored = {r[0] for r in conn.execute("SELECT id FROM mt_message")}
            stored_inbound = set(conn.execute("SELECT dedup_key, id FROM inbound").fetchall())
    finally:
        conn.close()
    lost = messages - stored
    assert not lost, f"{len(lost)} acknowledged messages lost, e.g. {sorted(lost)[:5]}"
    lost_in = inbound - stored_inbound
    assert not lost_in, f"{len(lost_in)} acknowledged inbound lost, e.g. {sorted(lost_in)[:5]}"
    return len(messages)


def _inline_commits(log: Path) -> int:
    """The most inline commits a child reported (its ``s`` lines)."""
    counts = [int(line[2:]) for line in log.read_text().splitlines() if line.startswith("s ")]
    return max(counts, default=0)


def _crash_rounds(tmp_path: Path, rounds: int, tasks: int = 8) -> None:
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    db, log = tmp_path / "crash.db", tmp_path / "acked.log"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    acked = 0
    for n in range(rounds):
        before = log.stat().st_size if log.exists() else 0
        child = subprocess.Popen(
            [sys.executable, str(CHILD), str(db), str(log), str(tasks)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            if rng.random() < 0.2:
                time.sleep(rng.uniform(0.0, 0.4))  # maybe mid-open or mid-migration
            else:
                deadline = time.monotonic() + 20
                while (log.stat().st_size if log.exists() else 0) <= before:
                    assert child.poll() is None, child.stderr.read() if child.stderr else ""
                    assert time.monotonic() < deadline, "child wrote nothing"
                    time.sleep(0.01)
                time.sleep(rng.uniform(0.0, 0.3))
        finally:
            child.send_signal(signal.SIGKILL)
            _, err = child.communicate()
        assert child.returncode == -signal.SIGKILL, (seed, n, err.decode())
        acked = _check(db, log)
    assert acked > 0, f"seed {seed}: nothing was acknowledged in {rounds} rounds"
    if tasks == 1:
        assert _inline_commits(log) > 0, "the lone writer's commits were never inline"

    async def reopen() -> None:  # the store itself opens what the crashes left
        async with open_store(db) as store:
            recovery = await store.recover()
            assert len(recovery.messages) >= acked

    trio.run(reopen)


def test_kill_9_loses_nothing_acknowledged(tmp_path: Path) -> None:
    _crash_rounds(tmp_path, rounds=5)


def test_kill_9_loses_nothing_acknowledged_by_an_inline_commit(tmp_path: Path) -> None:
    """One writer task: the loop is idle between its writes, so they are committed
    inline (``store/writer.py``): acknowledged after the same COMMIT, just as durable."""
    _crash_rounds(tmp_path, rounds=5, tasks=1)


@pytest.mark.slow
def test_kill_9_loses_nothing_acknowledged_long(tmp_path: Path) -> None:
    _crash_rounds(tmp_path, rounds=60)
