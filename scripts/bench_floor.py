"""Benchmark: what one message costs a server that does nothing, on this machine.

Why: the gateway's CPU a message falls from 500-900 us at 1,000 msg/s to 70-170 at
full load (``bench_ab.py`` at fixed rates, ``bench_partner.py``). Most of that gap is
not the gateway's own work but the price of waking up for each message: a process that
sleeps in ``epoll`` between messages pays the kernel's wake-up, the virtual machine's,
and its event loop's round, once per wake. This script measures that floor with two
echo servers that do nothing else, each in its own process, fed by a ping-pong client
in this one at fixed rates (one 60-octet "PDU" a message, TCP_NODELAY, loopback):

- ``blocking``: plain ``recv``/``sendall`` in a loop (the least a Python server pays);
- ``trio``: ``trio.serve_tcp`` echoing with ``async for data in stream`` (the least a
  trio server pays; the gateway wakes three to five times a message with receipts).

Usage: ``python scripts/bench_floor.py [--rates 1000 3000] [--seconds 4]``. Prints a
table and one JSON line: per server and rate, its CPU (user + system) a message.
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import time
from typing import Any

from bench_carrier import free_port
from bench_common import cpu_seconds

SERVERS = {
    "blocking": """
import socket, sys
listener = socket.create_server(("127.0.0.1", int(sys.argv[1])))
conn, _ = listener.accept()
while data := conn.recv(100):
    conn.sendall(data)
""",
    "trio": """
import sys, trio
async def echo(stream):
    async for data in stream:
        await stream.send_all(data)
trio.run(trio.serve_tcp, echo, int(sys.argv[1]))
""",
}
MESSAGE = b"x" * 60


def _connect(port: int, within: float = 20.0) -> socket.socket:
    """The first connection the server takes is ours (the blocking one takes one only)."""
    deadline = time.monotonic() + within
    while True:
        try:
            return socket.create_connection(("127.0.0.1", port))
        except ConnectionRefusedError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def measure(server: str, rate: float, seconds: float) -> dict[str, Any]:
    """Ping-pong ``rate`` messages a second for ``seconds``; the server's CPU a message."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-c", SERVERS[server], str(port)])
    try:
        with _connect(port) as conn:
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            before = cpu_seconds(proc.pid) or 0.0
            count = int(rate * seconds)
            start = time.monotonic()
            for n in range(count):
                pause = start + n / rate - time.monotonic()
                if pause > 0:
                    time.sleep(pause)
                conn.sendall(MESSAGE)
                conn.recv(100)
            elapsed = time.monotonic() - start
            used = (cpu_seconds(proc.pid) or 0.0) - before
    finally:
        proc.kill()
        proc.wait()
    return {
        "server": server,
        "rate": rate,
        "achieved": round(count / elapsed),
        "cpu_us_per_message": round(used / count * 1e6, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rates", type=float, nargs="+", default=[1000.0, 3000.0])
    parser.add_argument("--seconds", type=float, default=4.0)
    args = parser.parse_args()
    rows = [measure(s, r, args.seconds) for r in args.rates for s in SERVERS]
    print(f"{'server':<10} {'rate':>7} {'achieved':>9} {'CPU us/msg':>11}")
    for row in rows:
        print(
            f"{row['server']:<10} {row['rate']:>7.0f} {row['achieved']:>9}"
            f" {row['cpu_us_per_message']:>11}"
        )
    print(json.dumps({"floor": rows}))


if __name__ == "__main__":
    main()
