"""Store settings and the two durability levels.

Durability levels
=================
The journal always runs in WAL mode; the level only chooses ``PRAGMA synchronous``:

``process`` (WAL + ``synchronous=NORMAL``)
    A commit is in the operating system's page cache when the writer wakes its waiters.
    It survives ``kill -9``, an OOM kill or a crash of the daemon (the crash test in
    ``tests/test_store_crash.py`` holds this), but not a power cut or a kernel panic:
    the WAL is only fsynced at checkpoints.

``power`` (WAL + ``synchronous=FULL``)
    The WAL is fsynced at every commit, before any waiter is woken. A message that was
    acknowledged survives a power cut, provided the disk honours flushes.

Group commit makes the fsync a per-*batch* cost, not a per-message one, so ``power``
costs throughput mostly when few callers are waiting (one fsync for a small batch).
Measured with ``scripts/bench_store.py`` on the 2-core development VM while other test
suites ran (load average ~4), in msg/s through ``await store.journal_accept``:

============================  =========  =======
mode                          process    power
============================  =========  =======
one commit per message        3,700      270
group, 256 tasks x 1 msg      44,000     31,000
group, 16 tasks x 1 msg       26,000     5,000
group, 32 tasks x 50 msgs     78,000     71,000
============================  =========  =======

The default is ``power``: the gateway's promise is that an acknowledged message is never
lost, and when sessions journal every ``submit_sm`` of one read in one call, group commit
keeps ``power`` within 10-20% of ``process`` (40% with one message per call, still above
25,000 msg/s; the price is real only with few concurrent callers). Hosts whose disks are
slow to flush (network block devices) and that accept losing the most recent
acknowledged commits on power loss can choose ``process`` knowingly.

Linger: a 2 ms linger made every closed-loop mode slower (callers wait for their
acknowledgement, so waiting longer does not bring more of them into the batch), which is
why ``linger`` defaults to 0: the batch is "whatever queued during the previous commit".
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import sqlite3
    from collections.abc import Callable

__all__ = ["Durability", "StoreConfig"]


class Durability(enum.StrEnum):
    """How far a commit has gone when the writer acknowledges it (see module docstring)."""

    PROCESS = "process"
    POWER = "power"

    @property
    def synchronous(self) -> str:
        """The ``PRAGMA synchronous`` value that implements this level."""
        return "NORMAL" if self is Durability.PROCESS else "FULL"


@dataclass(frozen=True, slots=True, kw_only=True)
class StoreConfig:
    """Tuning of the store; the defaults suit a gateway doing a few thousand msg/s.

    Attributes:
        durability: see the module docstring.
        queue_size: work items the writer's channel buffers before callers wait
            (or get :class:`~smppgw.store.errors.StoreBusy` with ``nowait=True``).
        max_batch_items: most work items committed in one transaction.
        max_batch_rows: soft cap on rows per transaction: an item that carries many
            records (a session journals all ``submit_sm`` of one read at once) counts
            as that many; the batch closes once this is reached.
        linger: seconds the writer waits after the first item of an idle period, so
            items that arrive a moment later share its commit. 0 (the default) means
            "take whatever queued while the previous commit ran": under load that
            already makes large batches, and a lonely message is not delayed.
        busy_timeout: seconds SQLite waits for a lock held by another process before
            the commit fails and the store turns unavailable.
        readers: number of read-only connections (WAL lets them read while the writer
            commits).
        quick_check: run ``PRAGMA quick_check`` at open (cost grows with file size).
        probe_initial / probe_max: back-off bounds, in seconds, between probe writes
            while the store is unavailable.
        checkpoint_interval: seconds between the background checkpoints that copy
            the WAL back into the database file (``store/checkpointer.py``), off the
            commits' path; 0 leaves them to SQLite, inside the commit that crosses
            1,000 pages of WAL.
        inline_rows: at the ``process`` level, a quick write of at most this many rows
            is committed by the event loop itself while the writer thread has nothing
            to do (at once when the loop is otherwise idle, else with the quick writes
            of the same loop round when that round ends), instead of being handed to
            the thread and back (``store/writer.py``, "Inline commits"); 0 turns that
            off. 512: a partner's whole window of admissions, read in one go.
        on_connect: called with every new *writer* connection after the pragmas are
            set; tests use it to cap ``max_page_count`` and so simulate a full disk.
    """

    durability: Durability = Durability.POWER
    queue_size: int = 10_000
    max_batch_items: int = 2_000
    max_batch_rows: int = 20_000
    linger: float = 0.0
    busy_timeout: float = 2.0
    readers: int = 2
    quick_check: bool = True
    probe_initial: float = 0.05
    probe_max: float = 5.0
    checkpoint_interval: float = 0.1
    inline_rows: int = 512
    on_connect: Callable[[sqlite3.Connection], None] | None = None
