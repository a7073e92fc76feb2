"""The retention task: prune the journal on a schedule, batch by batch.

The SQL is ``smppgw.store.retention``; this module decides when, in what order, and
writes the optional archive. Order of a run, and why:

0. receipts (and MO) partners never took, past ``receipts_owed_days``: they keep their
   messages;
1. messages (with parts and carrier ids): they free the ledger rows they held;
2. the quota ledger: settled rows no message refers to are merged per order;
3. inbound, the scenarios' log, events.

Each batch is one writer item (``Store.run_in_transaction``) of at most ``batch_rows``
rows read, sized to take about ``BATCH_SECONDS`` of the writer: traffic's own writer
items queue behind a batch, so a long one is everyone's latency. Measured in the soak
test (400 msg/s with receipts, a run every 3 s): 5,000-row batches put the partners'
``submit_sm_resp`` p99 at 25-50 ms in the intervals with a run, 200-row ones at 9-15.
The next batch's rows follow the last one's time (at most doubled or halved at a
step, never under ``MIN_BATCH_ROWS``), and the task then sleeps at least as long as the
batch took, so retention never has more than half of the writer. A failure of the
store (unavailable, busy) ends the run with a log line; the next run starts over (every
batch is whole or nothing).

Archive: with ``archive_dir`` set, the messages a batch deletes are first appended as
CSV lines (``smppgw.store.retention.ARCHIVE_COLUMNS``, body in hex, times in epoch
milliseconds) to ``mt-YYYY-MM-DD.csv.gz`` (UTC day of the run) in that directory, from
inside the batch's transaction: a failed write deletes nothing. A crash between the
write and the commit repeats those lines in the next run's file (at least once).
"""

from __future__ import annotations

import csv
import gzip
import io
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import TYPE_CHECKING, Any

import structlog
import trio

from smppgw.store import retention
from smppgw.store.errors import StoreError

if TYPE_CHECKING:
    import sqlite3
    from collections.abc import Awaitable, Callable, Sequence
    from pathlib import Path

    from smppgw.app.admin import AdminCommands
    from smppgw.app.retention_models import RetentionSettings
    from smppgw.store import Store

__all__ = [
    "PruneReport",
    "archive_writer",
    "prune_once",
    "register_retention_commands",
    "run_retention",
]

log = structlog.get_logger("smppgw.retention")

#: Between two batches, at least: room for traffic's writer items.
_PAUSE = 0.02
#: What a batch aims to take, from hand-off to commit (see the module docstring).
BATCH_SECONDS = 0.005
#: The fewest rows a batch reads (the config's floor for ``batch_rows``).
MIN_BATCH_ROWS = 100


def next_batch_rows(rows: int, took: float, max_rows: int, target: float = BATCH_SECONDS) -> int:
    """The next batch's rows, after one of ``rows`` rows took ``took`` seconds: scaled
    towards ``target``, by a factor between 0.5 and 2, within
    ``[MIN_BATCH_ROWS, max_rows]``."""
    scale = min(2.0, max(0.5, target / took)) if took > 0 else 2.0
    return max(MIN_BATCH_ROWS, min(max_rows, int(rows * scale)))


@dataclass(slots=True)
class PruneReport:
    """Rows removed (or, in a dry run, that would be) per table, and notes."""

    counts: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    batches: int = 0
    seconds: float = 0.0

    def add(self, table: str, n: int) -> None:
        self.counts[table] = self.counts.get(table, 0) + n

    def to_json(self) -> dict[str, Any]:
        return {
            "counts": dict(self.counts),
            "notes": list(self.notes),
            "batches": self.batches,
            "seconds": round(self.seconds, 3),
        }


def archive_writer(directory: Path, now: float) -> Callable[[Sequence[tuple[Any, ...]]], None]:
    """An ``archive`` hook appending rows to the day's gzip CSV in ``directory``."""

    def write(rows: Sequence[tuple[Any, ...]]) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        day = datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%d")
        path = directory / f"mt-{day}.csv.gz"
        text = io.StringIO()
        out = csv.writer(text, lineterminator="\n")
        if not path.exists():
            out.writerow(retention.ARCHIVE_COLUMNS)
        for row in rows:
            out.writerow([v.hex() if isinstance(v, bytes) else v for v in row])
        # Append mode adds a gzip member: the file stays one valid .gz (zcat reads all).
        with gzip.open(path, "ab") as f:
            f.write(text.getvalue().encode("utf-8"))

    return write


async def _loop(
    report: PruneReport,
    name: str,
    run: Callable[[Callable[[sqlite3.Connection], retention.Batch]], Awaitable[retention.Batch]],
    fn: Callable[..., retention.Batch],
    max_rows: int,
) -> None:
    cursor = 0
    rows = MIN_BATCH_ROWS  # the first batch finds out what a row costs here
    while True:
        started = trio.current_time()
        batch = await run(partial(fn, cursor=cursor, limit=rows))
        took = trio.current_time() - started
        rows = next_batch_rows(rows, took, max_rows)
        report.batches += 1
        report.add(name, batch.deleted)
        for table, n in batch.detail:
            report.add(table, n)
        if batch.note:
            report.notes.append(f"{name}: {batch.note}")
        if not batch.more:
            return
        cursor = batch.cursor
        await trio.sleep(max(_PAUSE, took))


async def prune_once(
    run: Callable[[Callable[[sqlite3.Connection], retention.Batch]], Awaitable[retention.Batch]],
    settings: RetentionSettings,
    now: float,
    *,
    dry_run: bool = False,
) -> PruneReport:
    """One whole run; ``run`` executes a batch (``store.run_in_transaction`` to prune,
    a read-only connection for a dry run)."""
    started = time.monotonic()
    h = settings.horizons()
    report = PruneReport()
    limit = settings.batch_rows

    def cut(age: float) -> int:
        return round((now - age) * 1000)

    archive = None
    if settings.archive_dir is not None and not dry_run:
        archive = archive_writer(settings.archive_dir, now)
    common: dict[str, Any] = {"dry_run": dry_run}
    steps: list[tuple[str, Callable[..., retention.Batch]]] = []
    if h.receipts_owed is not None:
        # First: the messages these receipts kept can go in the same run.
        outbox = partial(retention.prune_outbox, before_ms=cut(h.receipts_owed), **common)
        steps.append(("receipt_outbox", outbox))
    steps += [
        (
            "mt_message",
            partial(retention.prune_messages, before_ms=cut(h.messages), archive=archive, **common),
        ),
        ("quota_ledger", partial(retention.compact_ledger, before_ms=cut(h.messages), **common)),
        ("inbound", partial(retention.prune_inbound, before_ms=cut(h.inbound), **common)),
        ("message_log", partial(retention.prune_log, before_ms=cut(h.log), **common)),
        (
            "event",
            partial(
                retention.prune_events,
                before_ms=cut(h.events),
                keyed_before_ms=None if h.keyed_events is None else cut(h.keyed_events),
                **common,
            ),
        ),
    ]
    for name, fn in steps:
        await _loop(report, name, run, fn, limit)
    report.seconds = time.monotonic() - started
    return report


def _writer_runner(
    store: Store, rows: int
) -> Callable[[Callable[[sqlite3.Connection], retention.Batch]], Awaitable[retention.Batch]]:
    async def run(fn: Callable[[sqlite3.Connection], retention.Batch]) -> retention.Batch:
        return await store.run_in_transaction(fn, rows=rows)

    return run


async def prune_store(
    store: Store,
    settings: RetentionSettings,
    *,
    dry_run: bool = False,
    clock: Callable[[], float] = time.time,
) -> PruneReport:
    """One run against an open store (a dry run reads on the store's readers)."""
    run = store.read if dry_run else _writer_runner(store, settings.batch_rows)
    return await prune_once(run, settings, clock(), dry_run=dry_run)


async def run_retention(
    store: Store,
    settings: RetentionSettings,
    *,
    clock: Callable[[], float] = time.time,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Prune every ``run_every_minutes`` until cancelled (first run at once).

    Started in the daemon's nursery after recovery; ``started`` at once, since nothing
    waits for it. Disabled: it only waits (so the daemon's tree is the same either way).
    """
    task_status.started()
    if not settings.enabled:
        await trio.sleep_forever()
    while True:
        try:
            report = await prune_store(store, settings, clock=clock)
        except StoreError as exc:
            log.warning("retention run failed; next run starts over", error=str(exc))
        else:
            removed = {k: v for k, v in report.counts.items() if v}
            if removed or report.notes:
                log.info("retention run", **report.to_json())
            for key, count in removed.items():
                if key.startswith("receipt_outbox:"):
                    log.warning(
                        "receipts the partner never took were dropped",
                        partner=key.partition(":")[2],
                        count=count,
                        after_days=settings.receipts_owed_days,
                    )
        await trio.sleep(settings.run_every_minutes * 60)


def register_retention_commands(
    commands: AdminCommands,
    store: Store,
    settings: RetentionSettings,
    *,
    clock: Callable[[], float] = time.time,
) -> None:
    """Add ``retention.run`` (``{"dry_run": false}``) to the admin socket: one run now,
    answered ``{"ok": true, "report": {...}}`` (``PruneReport.to_json``).

    The run is shielded from the socket's request deadline: a long run the client
    stops waiting for still ends whole (each batch is atomic anyway).
    """

    async def run(request: dict[str, Any]) -> dict[str, Any]:
        with trio.CancelScope(shield=True):
            try:
                report = await prune_store(
                    store, settings, dry_run=bool(request.get("dry_run")), clock=clock
                )
            except StoreError as exc:
                raise ValueError(f"retention run failed: {exc}") from None
        return {"ok": True, "report": report.to_json()}

    commands.register("retention.run", run)
