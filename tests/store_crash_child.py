"""Crash-test child: write through the store at full speed until killed.

Usage: ``python tests/store_crash_child.py <db> <ack-log> [tasks]``

Several trio tasks (or one: then most commits are the event loop's own, inline) journal
MT messages (batches of 1..20) and inbound PDUs through a
:class:`~smppgw.store.Store` at the ``process`` durability level. After each awaited
write returns (that is: after the gateway would have acknowledged it) the task appends
what was acknowledged to the ack log with one ``os.write`` (no user-space buffering, so a
SIGKILL cannot lose a line that the store had acknowledged, it can only cut the last
one short). The parent kills this process at a random moment and checks every logged
line against the file.
"""

from __future__ import annotations

import os
import random
import sys

import trio

from smppgw.store import (
    Durability,
    InboundKind,
    NewInbound,
    NewMessage,
    StoreConfig,
    open_store,
)


async def main(db: str, log_path: str, tasks: int) -> None:
    fd = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    config = StoreConfig(durability=Durability.PROCESS)
    salt = f"{os.getpid()}-{random.getrandbits(32)}"
    async with open_store(db, config=config) as store:

        async def mt_writer(seed: int) -> None:
            rng = random.Random(seed)
            while True:
                batch = [
                    NewMessage(
                        partner=f"p{seed}",
                        source_addr="ACME",
                        destination_addr=f"849{rng.randrange(10**8):08d}",
                        body=rng.randbytes(rng.randrange(1, 160)),
                    )
                    for _ in range(rng.randint(1, 20))
                ]
                ids = await store.journal_accept(batch)
                # With the ids, how many commits so far were the loop's own (inline).
                inline = store.statistics().inline_commits
                os.write(fd, ("".join(f"m {i}\n" for i in ids) + f"s {inline}\n").encode())

        async def inbound_writer(seed: int) -> None:
            n = 0
            while True:
                n += 1
                key = f"{salt}-{seed}-{n}"
                item = NewInbound(
                    smsc="vt",
                    dedup_key=key,
                    kind=InboundKind.MO,
                    source_addr="84901234567",
                    destination_addr="8055",
                    body=b"TD 123456",
                )
                [result] = await store.journal_inbound([item])
                os.write(fd, f"i {key} {result.inbound_id}\n".encode())

        async with trio.open_nursery() as nursery:
            for seed in range(tasks):
                nursery.start_soon(mt_writer, seed)
            nursery.start_soon(inbound_writer, 0)


if __name__ == "__main__":
    trio.run(main, sys.argv[1], sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else 8)
