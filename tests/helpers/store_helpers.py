"""Small builders shared by the store tests."""

from __future__ import annotations

import sqlite3
import threading
from typing import TYPE_CHECKING

import trio

from smppgw.store import NewMessage

if TYPE_CHECKING:
    from pathlib import Path


def msg(n: int = 0, *, partner: str = "acme", body: bytes = b"hello", **kw: object) -> NewMessage:
    """A plausible MT message; ``n`` varies the destination."""
    return NewMessage(
        partner=partner,
        source_addr="ACME",
        destination_addr=f"8490{n:07d}",
        body=body,
        **kw,  # type: ignore[arg-type]
    )


class FakeClock:
    """An injectable wall clock that only moves when told."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Gate:
    """Blocks the writer thread inside an item until released: lets a test pile items up."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()

    def __call__(self, conn: sqlite3.Connection) -> str:
        self.entered.set()
        self.release.wait(10)
        return "gate"

    async def wait_entered(self) -> None:
        await trio.to_thread.run_sync(self.entered.wait, 10)


def journal_ids(path: Path) -> set[int]:
    """The ids of every message in the journal file, read by a connection of its own
    (what another process would see: what is committed)."""
    with sqlite3.connect(path) as conn:
        return {row[0] for row in conn.execute("SELECT id FROM mt_message")}


async def busy(rounds: int) -> None:
    """A task with work in every loop round for a while (a partner session, say)."""
    for _ in range(rounds):
        await trio.lowlevel.checkpoint()
