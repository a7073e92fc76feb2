"""Retention batches are sized by time (``app/retention_service.py``): traffic's writer
items queue behind a batch, so a batch aims at ``BATCH_SECONDS`` of the writer and the
task then pauses at least as long."""

from __future__ import annotations

from typing import Any

import trio
import trio.testing
from hypothesis import given
from hypothesis import strategies as st

from smppgw.app.retention_service import (
    BATCH_SECONDS,
    MIN_BATCH_ROWS,
    PruneReport,
    _loop,
    next_batch_rows,
)
from smppgw.store.retention import Batch


@given(
    rows=st.integers(MIN_BATCH_ROWS, 100_000),
    took=st.floats(0, 10, allow_nan=False),
    max_rows=st.integers(MIN_BATCH_ROWS, 100_000),
)
def test_the_next_batch_follows_the_last_ones_time_within_bounds(
    rows: int, took: float, max_rows: int
) -> None:
    rows = min(rows, max_rows)
    after = next_batch_rows(rows, took, max_rows)
    assert MIN_BATCH_ROWS <= after <= max_rows
    if MIN_BATCH_ROWS < after < max_rows:
        assert rows // 2 <= after <= rows * 2  # one step at most doubles or halves
    if took > BATCH_SECONDS * 1.01:
        assert after <= rows  # too slow: never more
    if 0 < took < BATCH_SECONDS * 0.99:
        assert after >= rows  # quick: never fewer


async def test_batches_settle_at_the_target_time_and_pause_as_long(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A table of 20,000 rows at 20 us a row: batches grow from the floor to about
    ``BATCH_SECONDS`` worth (250 rows), every row goes, and the writer's share stays
    at most a half."""
    per_row = 20e-6
    total = 20_000
    sizes: list[int] = []
    busy = 0.0

    def prune(conn: object, *, cursor: int, limit: int) -> Batch:
        taken = min(limit, total - cursor)
        return Batch(deleted=taken, cursor=cursor + taken, more=cursor + taken < total)

    async def run(fn: Any) -> Batch:
        nonlocal busy
        limit = fn.keywords["limit"]
        sizes.append(limit)
        await trio.sleep(limit * per_row)  # the writer's time for it
        busy += limit * per_row
        result: Batch = fn(None)  # the connection the writer would pass
        return result

    report = PruneReport()
    started = trio.current_time()
    await _loop(report, "mt_message", run, prune, 5000)
    elapsed = trio.current_time() - started
    assert report.counts == {"mt_message": total}
    assert sizes[0] == MIN_BATCH_ROWS
    settled = round(BATCH_SECONDS / per_row)
    assert all(settled // 2 <= n <= settled * 2 for n in sizes[3:])
    assert busy <= elapsed / 2 + 1e-9
