"""Round-end commits: the quick writes of one event-loop round, committed together by
the loop when the round ends, while the writer thread has nothing to do.

Part of the group-commit writer (``store/writer.py``, "Inline commits"): a quick write
that finds the thread idle but other tasks waiting to run is not committed at once (it
would hold them up, and the writes of those tasks would each make a commit of their own)
nor handed to the thread (waking it, and being woken back, costs about as much as the
commit: a futex, a wake-up of the loop through its socket, a scheduling round and the
GIL going back and forth). It waits in an open *round batch*, which every quick write
of the same round joins, and which the loop commits just before it would wait for I/O:
a trio instrument's ``before_io_wait`` (:class:`RoundEnd`). The inbox stays claimed
meanwhile, so the thread takes nothing, and what is queued for it goes after.

Measured (``scripts/bench_partner.py --window 1``): four partners that each wait for
every answer, whose admissions the thread used to take in batches of one or two, went
from 1,996 to 2,700 msg/s (with receipts 1,280 to 1,646); ``scripts/bench_ab.py`` at
1,500 msg/s: CPU 0.87x a message, p50 1.18 -> 0.67 ms. At window 64 too, since the quick
writes may be as large as a partner's window (``StoreConfig.inline_rows``; the figures
are in ``store/writer.py``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

import structlog
import trio

if TYPE_CHECKING:
    from collections.abc import Callable


log = structlog.get_logger(__name__)


class _Sized(Protocol):
    rows: int


class RoundBatch:
    """The quick items of the round so far (the writer's inbox is claimed for them)."""

    __slots__ = ("items", "rows")

    def __init__(self) -> None:
        self.items: list[_Sized] = []
        self.rows = 0

    def add(self, item: _Sized) -> None:
        self.items.append(item)
        self.rows += item.rows


class RoundEnd(trio.abc.Instrument):
    """Calls ``commit()`` when the loop is about to wait for I/O, if ``due()``. A round
    opens only while another task is runnable, so the loop is not about to sleep then
    (``timeout`` 0); if it ever were, it is woken at once, since the commit has just
    made the waiters runnable."""

    def __init__(
        self,
        due: Callable[[], bool],
        commit: Callable[[], None],
        token: trio.lowlevel.TrioToken,
    ) -> None:
        self._due = due
        self._commit = commit
        self._token = token

    def before_io_wait(self, timeout: float) -> None:
        if self._due():
            try:
                self._commit()
            except Exception:  # pragma: no cover - defensive: trio would drop us
                log.exception("round-end commit raised")
            if timeout > 0:
                self._token.run_sync_soon(_nothing)


def _nothing() -> None:
    """What the wake-up runs: the waiters are already rescheduled."""
