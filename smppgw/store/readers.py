"""Read-only connections, used from trio through worker threads.

WAL lets readers run while the writer commits, so reads never queue behind a batch.
Each connection is lent to one worker thread at a time: a connection is taken from the
pool before the thread hop and returned after it, and a semaphore of the pool's
size makes callers wait for a free one rather than share.

A read sees everything committed before it started: a caller that awaited a write and
then reads will see its write.
"""

from __future__ import annotations

import contextlib
import sqlite3
from typing import TYPE_CHECKING, TypeVar

import trio

from smppgw.store.errors import StoreReadFailed

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["ReaderPool"]

T = TypeVar("T")


class ReaderPool:
    def __init__(self, path: str, size: int, busy_timeout: float) -> None:
        if size < 1:
            raise ValueError("the store needs at least one reader connection")
        self._path = path
        self._size = size
        self._busy_timeout = busy_timeout
        self._free: list[sqlite3.Connection] = []
        self._slots = trio.Semaphore(size)

    def _open_all(self) -> None:
        for _ in range(self._size):
            conn = sqlite3.connect(
                self._path,
                isolation_level=None,
                check_same_thread=False,
                timeout=self._busy_timeout,
            )
            conn.execute("PRAGMA query_only=ON")
            self._free.append(conn)

    def _close_all(self) -> None:
        while self._free:
            with contextlib.suppress(sqlite3.Error):
                self._free.pop().close()

    async def open(self) -> None:
        await trio.to_thread.run_sync(self._open_all)

    async def close(self) -> None:
        # Waits for every lent connection to come back (the limiter is full then).
        for _ in range(self._size):
            await self._slots.acquire()
        try:
            await trio.to_thread.run_sync(self._close_all)
        finally:
            for _ in range(self._size):
                self._slots.release()

    async def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn(conn)`` on a free reader connection in a worker thread.

        Raises:
            StoreReadFailed: SQLite failed the read (the callers, on paths a partner or
                a carrier drives, answer or retry; a bare ``sqlite3.Error`` ended them).
        """
        async with self._slots:
            if not self._free:
                raise RuntimeError("store readers are closed")
            conn = self._free.pop()
            try:
                return await trio.to_thread.run_sync(fn, conn)
            except sqlite3.Error as exc:
                raise StoreReadFailed(f"{self._path}: {exc}") from exc
            finally:
                self._free.append(conn)
