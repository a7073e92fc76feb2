"""Process plumbing shared by ``scripts/bench.py``: the simulator, the gateway and the
load generator as separate processes, their per-second timelines, the machine's facts.

Kept apart from the report so each piece reads on its own, and kept next to the older
``bench_*.py`` scripts (imported as top-level modules, as they import each other) rather
than in the package: none of this runs in production.
"""

from __future__ import annotations

import json
import os
import platform
import signal
import subprocess
import sys
import threading
import time
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench_carrier import free_port, wait_port
from bench_scenarios import control

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

SMPPGW = [sys.executable, "-m", "smppgw.cli"]
#: ``smppgw loadgen`` with ``--timeline``: the option lives in the loadgen module's own
#: entry point (``-c`` rather than ``-m`` avoids runpy's double-import warning, since
#: ``smppgw.sim`` imports the module first).
LOADGEN = [
    sys.executable,
    "-c",
    "import sys; from smppgw.sim.loadgen import command_line; sys.exit(command_line())",
]
REPO = Path(__file__).resolve().parent.parent
_ENV = {**os.environ, "PYTHONUNBUFFERED": "1"}

__all__ = [
    "LOADGEN",
    "SMPPGW",
    "Load",
    "StatsSampler",
    "cpu_seconds",
    "free_port",
    "gateway",
    "machine_info",
    "simulator",
    "start_load",
    "stop",
    "wait_port",
    "wait_sessions",
]


def stop(proc: subprocess.Popen[Any] | None, timeout: float = 30.0) -> None:
    """SIGTERM, then SIGKILL if it will not go: a benchmark must never leave a daemon
    behind on a machine others share."""
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=timeout)


@dataclass(frozen=True, slots=True)
class SimPorts:
    smpp: int
    control: int
    #: The simulator's process id, for its CPU time (``cpu_seconds``).
    pid: int = 0


@contextmanager
def simulator(
    accounts: Sequence[str] = ("smppgw:smppgw",), receipt_delay_ms: float = 10.0
) -> Iterator[SimPorts]:
    """A fresh ``smppgw sim`` with its control endpoint, stopped on exit.

    Each account is ``system_id:password``; the simulator sends a receipt to any session
    bound with the submitter's system_id, so a direct baseline must bind with an account
    of its own, never the gateway's.
    """
    ports = SimPorts(free_port(), free_port())
    argv = [
        *SMPPGW,
        "sim",
        "--listen",
        f"127.0.0.1:{ports.smpp}",
        "--control",
        f"127.0.0.1:{ports.control}",
        "--receipt-delay-ms",
        str(receipt_delay_ms),
        "--log-level",
        "warning",
    ]
    for account in accounts:
        argv += ["--account", account]
    proc = subprocess.Popen(argv, env=_ENV)
    try:
        wait_port(ports.smpp)
        wait_port(ports.control)
        yield SimPorts(ports.smpp, ports.control, proc.pid)
    finally:
        stop(proc)


def sim_stats(control_port: int) -> dict[str, Any]:
    stats: dict[str, Any] = control(control_port, "GET", "/stats")
    return stats


def sim_accepted(control_port: int) -> int:
    """Submits the simulator has accepted so far (all accounts)."""
    return int(sim_stats(control_port)["accepted"])


def delivered_rate(
    control_port: int, before: int, count: int, duration: float, returned_at: float
) -> float:
    """Messages a second from a load generator's start until the simulator accepted all
    ``count`` of them (the counter stood at ``before``); with receipts the load
    generator's own ``duration`` runs until every receipt is back, and counts if longer.
    Its start is ``returned_at`` (``time.monotonic()`` when it returned) less its
    duration. Why: a gateway's partner side can accept messages faster than its carrier
    side forwards them; the rate that counts is the one that reaches the SMSC."""
    started = returned_at - duration
    deadline = time.monotonic() + 300
    while sim_accepted(control_port) - before < count:
        if time.monotonic() > deadline:
            raise RuntimeError("the simulator did not get every message within 300 s")
        time.sleep(0.01)
    return count / max(duration, time.monotonic() - started)


def rate_fields(direct_rate: float, rate: float, full: dict[str, Any]) -> dict[str, Any]:
    """The figures every partner benchmark row has: the baseline's and the gateway's
    delivered rates (``delivered_rate``), the rate of answers, and what was counted."""
    return {
        "direct_msg_s": round(direct_rate),
        "gateway_msg_s": round(rate),
        "gateway_accepted_msg_s": round(full["throughput"]),
        "ratio": round(rate / direct_rate, 3),
        "gateway_accepted": full["accepted"],
        "gateway_receipts_matched": full["receipts_matched"],
    }


def wait_sessions(control_port: int, sessions: int, within: float = 30.0) -> None:
    """Wait until the simulator holds ``sessions`` sessions: the gateway's carrier binds
    are up, so the first measured message does not wait for a bind."""
    deadline = time.monotonic() + within
    while sim_stats(control_port)["sessions"] < sessions:
        if time.monotonic() > deadline:
            raise RuntimeError(f"the simulator never saw {sessions} sessions")
        time.sleep(0.05)


@contextmanager
def gateway(
    config: Path, workdir: Path, server_port: int | None, env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen[Any]]:
    """A fresh ``smppgw run`` on ``config``, stopped on exit (SIGTERM: a clean drain).
    ``env``: added to its environment (``bench_ab.py`` runs another tree's gateway)."""
    argv = [*SMPPGW, "run", "--config", str(config)]
    proc = subprocess.Popen(argv, cwd=workdir, env={**_ENV, **(env or {})})
    try:
        if server_port is not None:
            wait_port(server_port, within=60)
        yield proc
    finally:
        stop(proc, timeout=60)


@dataclass(slots=True)
class Load:
    """A load generator process; :meth:`result` waits and reads what it wrote."""

    proc: subprocess.Popen[str]
    timeline_path: Path
    summary: dict[str, Any] = field(default_factory=dict)
    seconds: list[dict[str, Any]] = field(default_factory=list)
    total: dict[str, Any] = field(default_factory=dict)

    def running(self) -> bool:
        return self.proc.poll() is None

    def result(self, timeout: float = 900.0) -> Load:
        out, err = self.proc.communicate(timeout=timeout)
        if self.proc.returncode:
            raise RuntimeError(f"loadgen failed ({self.proc.returncode}): {err.strip()}")
        self.summary = json.loads(out.strip().splitlines()[-1])
        for line in self.timeline_path.read_text().splitlines():
            row = json.loads(line)
            if row["kind"] == "total":
                self.total = row
            else:
                self.seconds.append(row)
        return self


def start_load(
    port: int,
    timeline: Path,
    *,
    system_id: str,
    password: str,
    sessions: int,
    count: int,
    receipts: bool = False,
    rate: float | None = None,
    window: int = 64,
    receipt_timeout: float = 120.0,
    interval: float = 0.25,
    retry_throttled: bool = False,
) -> Load:
    """Start ``smppgw loadgen`` (with ``--timeline``) without waiting for it, so a
    second load can run beside it. ``interval``: the timeline's resolution, finer than a
    second so that a run of a few seconds still draws a curve."""
    argv = [
        *LOADGEN,
        "--port",
        str(port),
        "--system-id",
        system_id,
        "--password",
        password,
        "--count",
        str(count),
        "--window",
        str(window),
        "--sessions",
        str(sessions),
        "--json",
        "--log-level",
        "warning",
        "--receipt-timeout",
        str(receipt_timeout),
        "--timeline",
        str(timeline),
        "--timeline-interval",
        str(interval),
    ]
    if receipts:
        argv.append("--receipts")
    if rate:
        argv += ["--rate", f"{rate:.3f}"]
    if retry_throttled:
        argv.append("--retry-throttled")
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return Load(proc, timeline)


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a running process (Linux ``/proc``; None elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_load(port: int, timeline: Path, **options: Any) -> Load:
    """:func:`start_load` and wait for it."""
    return start_load(port, timeline, **options).result()


def run_load_delivered(
    port: int, timeline: Path, control_port: int, **options: Any
) -> tuple[Load, float]:
    """:func:`run_load`, and the rate at which its ``count`` messages reached the
    simulator behind ``control_port`` (:func:`delivered_rate`)."""
    before = sim_accepted(control_port)
    load = run_load(port, timeline, **options)
    duration = load.summary["duration"]
    return load, delivered_rate(control_port, before, options["count"], duration, time.monotonic())


class StatsSampler:
    """Reads the simulator's ``/stats`` every ``interval`` seconds in a thread: what
    actually reached the SMSC, second by second (a gateway's partner side can have
    accepted a whole batch long before its carrier side has sent it)."""

    def __init__(self, control_port: int, interval: float = 0.5) -> None:
        self.control_port = control_port
        self.interval = interval
        self.samples: list[tuple[float, int]] = []  # (wall clock, submits so far)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> StatsSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.is_set():
            with suppress(OSError):
                self.samples.append((time.time(), int(sim_stats(self.control_port)["submits"])))
            self._stop.wait(self.interval)

    def rates(self) -> list[dict[str, float]]:
        """Submits a second between consecutive samples, at each sample's wall time."""
        return [
            {"t": round(t1, 3), "submits_per_s": round((n1 - n0) / max(t1 - t0, 1e-9), 1)}
            for (t0, n0), (t1, n1) in zip(self.samples, self.samples[1:], strict=False)
        ]


def machine_info() -> dict[str, Any]:
    """What a reader needs to compare two reports: the machine and the code measured."""

    def git(*args: str) -> str:
        try:
            out = subprocess.run(
                ["git", *args], cwd=REPO, capture_output=True, text=True, timeout=10
            )
        except OSError:
            return ""
        return out.stdout.strip()

    load = os.getloadavg() if hasattr(os, "getloadavg") else (0.0, 0.0, 0.0)
    return {
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "git_commit": git("rev-parse", "HEAD"),
        "git_dirty": bool(git("status", "--porcelain", "--untracked-files=no")),
        "load_average_at_start": [round(x, 2) for x in load],
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
