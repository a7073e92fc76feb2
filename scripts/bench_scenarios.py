"""Benchmark: MO scenarios end to end (MO in, reply out), beside plain MO acknowledgement.

Separate processes, as in production: the simulated SMSC (``smppgw sim``) delivers MO
over SMPP to the gateway (``smppgw run``, process-crash durability). Two runs, same
machine, same minute:

- **ack**: scenarios off. Each MO is journaled, acknowledged (``deliver_sm_resp``) and
  marked processed: the floor of the MO path.
- **points**: the shipped ``scenarios/points.yaml``; N registered members each text
  ``TD <code>`` with their own scratch-card code. Each MO is journaled, acknowledged,
  then one transaction credits the code and journals the reply; the reply goes out
  through the carrier bind. Done when the simulator has received all N replies.

Usage: ``python scripts/bench_scenarios.py [--count 5000]``. Prints a table and one
JSON line; the ratio is points/ack, the cost of the scenario over plain acknowledgement.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from bench_carrier import free_port, wait_port

SMPPGW = [sys.executable, "-m", "smppgw.cli"]
REPO = Path(__file__).resolve().parent.parent


def control(port: int, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, method=method)
    with urllib.request.urlopen(request, timeout=30) as answer:
        return json.loads(answer.read())


def write_config(workdir: Path, sim_port: int, scenarios: bool) -> Path:
    path = workdir / "smppgw.yaml"
    path.write_text(
        f"""
store: {{path: '{workdir / "gw.sqlite"}', durability: process}}
metrics: {{enabled: false}}
admin_socket: '{workdir / "admin.sock"}'
logging: {{level: warning, format: json}}
server: {{enabled: false}}
scenarios: {{enabled: {str(scenarios).lower()}, directory: '{workdir / "scenarios"}',
             events_dir: null, statement: {{enabled: false}}}}
carriers:
  - {{name: sim, host: 127.0.0.1, port: {sim_port}, system_id: smppgw, password: smppgw,
      window: 64}}
default_route: [sim]
"""
    )
    return path


def prepare_points(workdir: Path, config: Path, count: int) -> None:
    folder = workdir / "scenarios"
    folder.mkdir()
    shutil.copy(REPO / "scenarios" / "points.yaml", folder)
    members = workdir / "members.csv"
    codes = workdir / "codes.csv"
    with members.open("w") as m, codes.open("w") as c:
        m.write("msisdn,member_id,name\n")
        c.write("code,points\n")
        for i in range(count):
            m.write(f"8491{i:07d},M{i:07d},Member {i}\n")
            c.write(f"C{i:07d},10\n")
    for kind, path in (("members", members), ("codes", codes)):
        argv = [*SMPPGW, "import", kind, str(path), "-c", str(config)]
        if kind == "codes":
            argv += ["--campaign", "bench"]
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def run_once(count: int, scenarios: bool) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-scen-") as tmp:
        workdir = Path(tmp)
        sim_port, control_port = free_port(), free_port()
        config = write_config(workdir, sim_port, scenarios)
        if scenarios:
            prepare_points(workdir, config, count)
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        sim = subprocess.Popen(
            [
                *SMPPGW,
                "sim",
                "--listen",
                f"127.0.0.1:{sim_port}",
                "--control",
                f"127.0.0.1:{control_port}",
                "--log-level",
                "warning",
            ],
            env=env,
        )
        gateway = None
        try:
            wait_port(sim_port)
            wait_port(control_port)
            gateway = subprocess.Popen([*SMPPGW, "run", "--config", str(config)], cwd=workdir)
            deadline = time.monotonic() + 60
            while control(control_port, "GET", "/stats")["receivers"] < 1:
                if time.monotonic() > deadline:
                    raise RuntimeError("the gateway never bound as a receiver")
                time.sleep(0.05)
            batch = {"from": "8491{i:07d}", "to": "8055", "text": "TD C{i:07d}", "count": count}
            start = time.monotonic()
            control(control_port, "POST", "/mo", batch)
            deadline = start + 600
            while True:
                stats = control(control_port, "GET", "/stats")
                done = stats["mo_answered"] >= count and (
                    not scenarios or stats["submits"] >= count
                )
                if done:
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"not done in time: {stats}")
                time.sleep(0.02)
            elapsed = time.monotonic() - start
            replies = control(control_port, "GET", "/messages?last=1")["messages"]
        finally:
            for proc in (gateway, sim):
                if proc is not None:
                    proc.terminate()
                    try:
                        proc.wait(timeout=20)
                    except subprocess.TimeoutExpired:
                        proc.kill()
        return {
            "run": "points" if scenarios else "ack",
            "count": count,
            "seconds": round(elapsed, 3),
            "per_second": round(count / elapsed),
            "last_reply": replies[-1]["text"] if replies else None,
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=5000)
    args = parser.parse_args()
    ack = run_once(args.count, scenarios=False)
    points = run_once(args.count, scenarios=True)
    ratio = points["per_second"] / ack["per_second"]
    print(f"{'run':<8} {'MO':>7} {'seconds':>8} {'MO/s':>8}")
    for row in (ack, points):
        print(f"{row['run']:<8} {row['count']:>7} {row['seconds']:>8.2f} {row['per_second']:>8,}")
    print(f"points/ack ratio: {ratio:.2f}")
    print(f"last reply seen at the simulator: {points['last_reply']!r}")
    print(json.dumps({"ack": ack, "points": points, "ratio": round(ratio, 3)}))


if __name__ == "__main__":
    main()
