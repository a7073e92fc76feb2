"""The writer's inbox: work items handed from the event loop to the writer thread.

Why not a trio channel: the writer thread used to return to the event loop after every
commit and wait there for its next batch. Under load the loop is busy (decoding,
admission, carrier traffic), so that hand-back cost about as long as the commit itself:
measured with receipts at 3,000 msg/s, commits of 2.2 ms of thread time took 4.5 ms
from the loop's side and the writer was busy 95 % of the time. With this inbox the thread
stays in its own loop and takes its next batch itself, once the event loop has heard of
the last commit (``TrioToken.run_sync_soon``) and woken its waiters.

The inbox is a bounded deque under a ``threading.Condition``: :meth:`put` (event loop)
never blocks (a full inbox says so and the caller waits for room or answers
``ESME_RMSGQFUL``); :meth:`take` (writer thread) blocks until there is work or the inbox
is stopped.

The inbox also says who has the connection: a batch the thread took is *running* until
the thread calls :meth:`finished`, and the event loop may :meth:`claim` the connection
for a quick commit of its own only when nothing is running and nothing is queued (the
writer's inline commits, ``store/writer.py``), so an inline commit never overtakes an
item queued before it, and the thread takes nothing while the loop holds it.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Generic, Protocol, TypeVar

__all__ = ["Inbox"]


class _Sized(Protocol):
    rows: int


ItemT = TypeVar("ItemT", bound=_Sized)


class Inbox(Generic[ItemT]):
    """A bounded, thread-safe queue of work items with batch-taking.

    Args:
        capacity: items it holds at most (those a commit is running are not counted).
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._items: deque[ItemT] = deque()
        self._cond = threading.Condition(threading.Lock())
        self._stopped = False
        self._running = False  # a batch is being committed (by the thread or the loop)

    def __len__(self) -> int:
        return len(self._items)

    def put(self, item: ItemT) -> bool:
        """Queue ``item``; False (and nothing queued) when full or stopped."""
        with self._cond:
            if self._stopped or len(self._items) >= self.capacity:
                return False
            self._items.append(item)
            if len(self._items) == 1:
                self._cond.notify()
            return True

    def take(self, max_items: int, max_rows: int, linger: float) -> tuple[list[ItemT], bool]:
        """Wait for work, then take a batch: the first item, and then whatever is queued
        up to ``max_items`` items or ``max_rows`` rows. ``linger`` seconds after the first
        item lets a few more arrive. Returns ``(batch, was_full)``; an empty batch means
        the inbox was stopped (what is still queued is left for :meth:`drain`). The batch
        is running until :meth:`finished`."""
        with self._cond:
            while (not self._items or self._running) and not self._stopped:
                self._cond.wait()
            if self._stopped:
                return [], False
        if linger > 0:
            time.sleep(linger)
        with self._cond:
            was_full = len(self._items) >= self.capacity
            first = self._items.popleft()
            batch = [first]
            rows = first.rows
            while self._items and len(batch) < max_items and rows < max_rows:
                item = self._items.popleft()
                batch.append(item)
                rows += item.rows
            self._running = True
            return batch, was_full

    def finished(self) -> None:
        """The batch :meth:`take` returned (writer thread), or the :meth:`claim`
        (event loop), is over: what was queued meanwhile may be taken."""
        with self._cond:
            self._running = False
            if self._items:
                self._cond.notify()

    def claim(self) -> bool:
        """(Event loop.) Take the connection for a commit of its own: True only when no
        batch is running, nothing is queued and the inbox is not stopped. The thread
        takes nothing until :meth:`finished`."""
        with self._cond:
            if self._running or self._items or self._stopped:
                return False
            self._running = True
            return True

    def stop(self) -> None:
        """Refuse new items and wake a waiting :meth:`take` (it returns an empty batch)."""
        with self._cond:
            self._stopped = True
            self._cond.notify_all()

    def restart(self) -> None:
        """Accept items again after :meth:`stop`."""
        with self._cond:
            self._stopped = False

    def drain(self) -> list[ItemT]:
        """Remove and return everything queued."""
        with self._cond:
            items = list(self._items)
            self._items.clear()
            return items
