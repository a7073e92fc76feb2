"""Health numbers of the store, read by the metrics collector at scrape time.

The writer keeps plain counters on its hot path (``+=`` on ints and floats); turning them
into a :class:`StoreStatistics` snapshot is done only when someone asks (lesson 11).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["StoreStatistics", "WriterCounters"]


@dataclass(frozen=True, slots=True, kw_only=True)
class StoreStatistics:
    """A snapshot of the writer's state.

    Attributes:
        queue_depth / queue_capacity: work items waiting for the writer, and the bound.
        last_batch_items / last_batch_rows: size of the most recent commit.
        avg_batch_items / avg_batch_rows: averages over all commits since start.
        commit_latency_last / _avg / _max: seconds from handing a batch to the writer
            thread to its commit returning (including the thread hop and any fsync).
        commits / items / rows: totals committed since start.
        inline_commits: how many of those commits the event loop ran itself (quick
            writes while the writer thread was idle: alone when the loop was idle,
            else those of one loop round together; see ``store/writer.py``).
        item_errors: items whose own function raised (rolled back alone).
        batch_errors: commits that failed as a whole (every waiter got the error).
        refusing: True while the store is unavailable and answers every write with
            ``StoreUnavailable`` at once.
        reason: why it refuses (``None`` when it does not).
    """

    queue_depth: int
    queue_capacity: int
    last_batch_items: int
    last_batch_rows: int
    avg_batch_items: float
    avg_batch_rows: float
    commit_latency_last: float
    commit_latency_avg: float
    commit_latency_max: float
    commits: int
    items: int
    rows: int
    item_errors: int
    batch_errors: int
    inline_commits: int
    refusing: bool
    reason: str | None


@dataclass(slots=True)
class WriterCounters:
    """Mutable counters owned by the writer task (trio thread only)."""

    commits: int = 0
    items: int = 0
    rows: int = 0
    item_errors: int = 0
    batch_errors: int = 0
    inline_commits: int = 0
    last_batch_items: int = 0
    last_batch_rows: int = 0
    latency_last: float = 0.0
    latency_total: float = 0.0
    latency_max: float = 0.0

    def record_commit(self, items: int, rows: int, errors: int, latency: float) -> None:
        self.commits += 1
        self.items += items
        self.rows += rows
        self.item_errors += errors
        self.last_batch_items = items
        self.last_batch_rows = rows
        self.latency_last = latency
        self.latency_total += latency
        self.latency_max = max(self.latency_max, latency)

    def snapshot(
        self, *, queue_depth: int, queue_capacity: int, reason: str | None
    ) -> StoreStatistics:
        commits = self.commits or 1
        return StoreStatistics(
            queue_depth=queue_depth,
            queue_capacity=queue_capacity,
            last_batch_items=self.last_batch_items,
            last_batch_rows=self.last_batch_rows,
            avg_batch_items=self.items / commits,
            avg_batch_rows=self.rows / commits,
            commit_latency_last=self.latency_last,
            commit_latency_avg=self.latency_total / commits,
            commit_latency_max=self.latency_max,
            commits=self.commits,
            items=self.items,
            rows=self.rows,
            item_errors=self.item_errors,
            batch_errors=self.batch_errors,
            inline_commits=self.inline_commits,
            refusing=reason is not None,
            reason=reason,
        )
