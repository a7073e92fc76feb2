"""The writer's connection: lock file, open, integrity check, migration, probe, close.

Everything here runs in the writer thread (under the writer's ``CapacityLimiter(1)``),
never in the trio thread. It is split from ``writer.py`` so that file reads as the
batching algorithm only.

Open sequence, and why:

1. ``flock`` ``<path>.lock`` (exclusive, non-blocking): two daemons on one journal would
   both hand out message ids; the second one is refused with a clear error. The kernel
   drops the lock when a process dies, so a ``kill -9`` never leaves it stale.
2. connect, ``journal_mode=WAL`` (readers do not block the writer, one append per
   commit), ``synchronous`` per the durability level, ``foreign_keys=ON``,
   ``temp_store=MEMORY`` (below).
3. ``PRAGMA quick_check``: a corrupt file is refused at start, not discovered mid-traffic.
4. migrate in one transaction (``schema.py``), then the store's ``prepare`` hook.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
from typing import TYPE_CHECKING

from smppgw.store.errors import StoreCorrupt, StoreUnavailable
from smppgw.store.schema import migrate

if TYPE_CHECKING:
    from collections.abc import Callable

    from smppgw.store.config import StoreConfig

__all__ = ["WriterConnection", "describe", "is_environmental"]

# Primary SQLite result codes that describe the environment, not the statement: a batch
# that meets one of them fails as a whole and the store turns unavailable.
_ENVIRONMENTAL = {
    5: "SQLITE_BUSY",
    6: "SQLITE_LOCKED",
    7: "SQLITE_NOMEM",
    8: "SQLITE_READONLY",
    10: "SQLITE_IOERR",
    11: "SQLITE_CORRUPT",
    13: "SQLITE_FULL",
    14: "SQLITE_CANTOPEN",
    15: "SQLITE_PROTOCOL",
    26: "SQLITE_NOTADB",
}

_PROBE_BYTES = 16_384  # several pages: the probe must allocate, or a full disk looks fine


def is_environmental(exc: BaseException) -> bool:
    """Whether ``exc`` is a failure of the disk/file/lock rather than of one statement."""
    if not isinstance(exc, sqlite3.Error):
        return False
    code = getattr(exc, "sqlite_errorcode", None)
    if code is None:
        return isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc)
    return (int(code) & 0xFF) in _ENVIRONMENTAL


#: The writer's own ``wal_autocheckpoint`` while the background checkpointer runs
#: (``store/checkpointer.py``), in pages of 4 KiB: a safety net it should never reach.
SAFETY_NET_PAGES = 4_000
#: ``journal_size_limit``: bytes the WAL file is trimmed to when it starts over.
WAL_SIZE_LIMIT = 64 * 1024 * 1024


def describe(exc: BaseException) -> str:
    name = getattr(exc, "sqlite_errorname", None)
    return f"{name}: {exc}" if name else f"{type(exc).__name__}: {exc}"


class WriterConnection:
    """Owns the write connection and the lock file (writer thread only)."""

    def __init__(
        self,
        path: str,
        config: StoreConfig,
        prepare: Callable[[sqlite3.Connection], None] | None,
        clock: Callable[[], float],
    ) -> None:
        self._path = path
        self._config = config
        self._prepare = prepare
        self._clock = clock
        self.conn: sqlite3.Connection | None = None
        self._lock_fd: int | None = None

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self._path,
            isolation_level=None,  # we issue BEGIN/COMMIT ourselves
            check_same_thread=False,  # trio's worker threads vary; the limiter serialises
            timeout=self._config.busy_timeout,
        )
        try:
            mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise StoreUnavailable(f"{self._path}: cannot switch to WAL (got {mode!r})")
            conn.execute(f"PRAGMA synchronous={self._config.durability.synchronous}")
            conn.execute("PRAGMA foreign_keys=ON")
            # A statement inside a transaction with savepoints (every batch of the hot
            # path) keeps the pages it changes in a statement journal, spilled past
            # 64 KiB to a temporary file: one was created, written and unlinked in
            # /var/tmp about 30 times a second under load, on the event loop's thread
            # (file-system metadata work that can wait behind a checkpoint's fsync),
            # and it put message bodies on disk outside the journal. In memory it is
            # bounded by what one statement of this connection changes: batches of
            # at most MAX_ROWS rows, deletions in bounded walks (retention).
            # Measured under load (strace -c of the gateway): a quarter fewer system
            # calls (30,516 -> 23,201 for about 14,000 messages); the CPU a message
            # moved within this machine's noise.
            conn.execute("PRAGMA temp_store=MEMORY")
            if self._config.checkpoint_interval > 0:
                # The checkpointer copies the WAL back; SQLite's own stays as a net.
                conn.execute(f"PRAGMA wal_autocheckpoint={SAFETY_NET_PAGES}")
                conn.execute(f"PRAGMA journal_size_limit={WAL_SIZE_LIMIT}")
            if self._config.on_connect is not None:
                self._config.on_connect(conn)
        except BaseException:
            conn.close()
            raise
        return conn

    def open(self) -> None:
        self._lock_fd = os.open(self._path + ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._lock_fd)
            self._lock_fd = None
            raise StoreUnavailable(f"{self._path} is in use by another smppgw") from None
        try:
            conn = self._connect()
            try:
                if self._config.quick_check:
                    rows = conn.execute("PRAGMA quick_check").fetchall()
                    if [tuple(r) for r in rows] != [("ok",)]:
                        detail = "; ".join(str(r[0]) for r in rows[:5])
                        raise StoreCorrupt(self._path, detail)
                migrate(conn, self._path)
                if self._prepare is not None:
                    self._prepare(conn)
            except BaseException:
                conn.close()
                raise
        except sqlite3.DatabaseError as exc:
            self.close()
            code = int(getattr(exc, "sqlite_errorcode", 0) or 0) & 0xFF
            if code in (11, 26):  # SQLITE_CORRUPT, SQLITE_NOTADB
                raise StoreCorrupt(self._path, str(exc)) from exc
            raise StoreUnavailable(f"{self._path}: {describe(exc)}") from exc
        except BaseException:
            self.close()
            raise
        self.conn = conn

    def close(self) -> None:
        if self.conn is not None:
            with contextlib.suppress(sqlite3.Error):
                self.conn.close()
            self.conn = None
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def probe(self) -> None:
        """Reopen the connection and commit a write that must allocate pages."""
        if self.conn is not None:
            with contextlib.suppress(sqlite3.Error):
                self.conn.close()
            self.conn = None
        conn = self._connect()
        try:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute(
                "INSERT OR REPLACE INTO store_meta (key, value) VALUES ('probe', ?)",
                ("x" * _PROBE_BYTES,),
            )
            conn.execute(
                "INSERT OR REPLACE INTO store_meta (key, value) VALUES ('probe', ?)",
                (repr(self._clock()),),
            )
            conn.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                conn.close()
            raise
        self.conn = conn
