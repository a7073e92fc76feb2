"""One import, start to finish: read and validate the file, then write it in one transaction.

Semantics, and why:

* The whole file is validated before anything is written. If any row is bad, nothing
  is imported and every bad row is reported (the first :data:`ERROR_CAP` of them, and
  the total): half a card batch in the inventory is worse than none, because the
  operator cannot tell which half. ``partial=True`` imports the good rows anyway and
  reports the bad ones.
* The write is ONE ``run_in_transaction`` item: refusals found against the store (a code
  already in the inventory) raise inside it, which rolls back everything it wrote.
  The price is that the writer's batch holds this item for the whole write (longer the
  bigger the file): MT journaling waits that long. Operators import off-peak.
* Reading and validating run in a worker thread, a chunk of rows at a time, so the
  daemon's event loop keeps serving between chunks and a progress callback sees the
  count grow.
"""

from __future__ import annotations

import enum
import json
import random
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import trio

from smppgw.imports.records import ERROR_CAP, ValidationOptions, Validator, make_validator
from smppgw.imports.tabular import TabularError, read_rows
from smppgw.store import inventory
from smppgw.store.inventory import RowError, WriteResult

if TYPE_CHECKING:
    import sqlite3
    from collections.abc import Callable, Iterator

    from smppgw.imports.tabular import Row
    from smppgw.scenarios.member_id import MemberIdFormat
    from smppgw.store import Store

__all__ = ["CHUNK_ROWS", "ImportFailed", "ImportKind", "ImportReport", "run_import"]

#: Rows read and validated per worker-thread call.
CHUNK_ROWS = 5000
#: Errors shown by ``str(report)``; ``to_json`` carries up to :data:`ERROR_CAP`.
SHOWN_ERRORS = 20


class ImportKind(enum.StrEnum):
    MEMBERS = "members"
    SPEND = "spend"
    CODES = "codes"
    GIFTS = "gifts"
    PROFILES = "profiles"


class ImportFailed(ValueError):
    """The import could not run at all (unreadable file, unknown kind, bad option)."""


@dataclass(slots=True)
class ImportReport:
    """What an import did.

    Attributes:
        rows_read: data rows in the file (blank rows not counted).
        imported / updated / skipped: rows inserted, rows that changed an existing
            entry, rows left out because they were already there (``skip_existing``).
        errors: the refused rows (at most :data:`ERROR_CAP`); ``error_count`` is the total.
        committed: whether anything was written (False when refused as a whole).
    """

    kind: str
    file: str
    partial: bool = False
    rows_read: int = 0
    imported: int = 0
    updated: int = 0
    skipped: int = 0
    errors: list[RowError] = field(default_factory=list)
    error_count: int = 0
    committed: bool = False

    @property
    def ok(self) -> bool:
        """True when every row was accepted."""
        return self.error_count == 0

    def __str__(self) -> str:
        name = Path(self.file).name
        if self.committed:
            head = (
                f"{self.kind} from {name}: {self.rows_read} rows read, {self.imported} imported,"
                f" {self.updated} updated, {self.skipped} skipped"
            )
            if self.error_count:
                head += f", {self.error_count} refused"
        elif self.error_count:
            head = (
                f"{self.kind} from {name}: NOTHING imported: {self.error_count} problem(s)"
                f" in {self.rows_read} rows (fix them, or use --partial to import the rest)"
            )
        else:
            head = f"{self.kind} from {name}: no data rows"
        lines = [head]
        lines.extend(f"  {e}" for e in self.errors[:SHOWN_ERRORS])
        if self.error_count > SHOWN_ERRORS:
            lines.append(f"  ... and {self.error_count - SHOWN_ERRORS} more")
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "file": self.file,
            "partial": self.partial,
            "committed": self.committed,
            "rows_read": self.rows_read,
            "imported": self.imported,
            "updated": self.updated,
            "skipped": self.skipped,
            "error_count": self.error_count,
            "errors": [
                {"line": e.line, "column": e.column, "reason": e.reason} for e in self.errors
            ],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ImportReport:
        """The report an admin socket answer carries (for the CLI's human output)."""
        return cls(
            kind=str(data["kind"]),
            file=str(data["file"]),
            partial=bool(data.get("partial")),
            rows_read=int(data["rows_read"]),
            imported=int(data["imported"]),
            updated=int(data["updated"]),
            skipped=int(data["skipped"]),
            errors=[
                RowError(int(e["line"]), e.get("column"), str(e["reason"])) for e in data["errors"]
            ],
            error_count=int(data["error_count"]),
            committed=bool(data["committed"]),
        )


class _Refused(Exception):
    """Raised inside the transaction to roll it back, carrying the store's refusals."""

    def __init__(self, result: WriteResult) -> None:
        super().__init__("refused")
        self.result = result


def _feed(rows: Iterator[Row], validator: Validator[Any], limit: int) -> bool:
    """Validate up to ``limit`` rows (worker thread); False once the file is exhausted."""
    for _ in range(limit):
        row = next(rows, None)
        if row is None:
            return False
        validator.add(row)
    return True


async def run_import(
    store: Store,
    kind: str,
    path: str | Path,
    *,
    partial: bool = False,
    campaign: str | None = None,
    member_ids: MemberIdFormat | None = None,
    progress: Callable[[int], None] | None = None,
    skip_existing: bool = False,
    sheet: str | None = None,
    options: ValidationOptions | None = None,
    rng: random.Random | None = None,
    clock: Callable[[], float] = time.time,
) -> ImportReport:
    """Import one file (see the module docstring).

    Args:
        kind: members, spend, codes, gifts or profiles.
        campaign: the codes' campaign where the file has none.
        member_ids: the pattern for new members without an ID; None uses
            ``MemberIdFormat()`` (eight random digits).
        progress: called on the trio side with the rows read so far, after each chunk.
        skip_existing: codes and gifts already stored are skipped instead of refused.
        rng: for member IDs; the default is ``random.SystemRandom`` (not guessable).

    Raises:
        ImportFailed: the file cannot be read, or the kind is unknown.
        StoreError: the store could not commit (nothing was written).
    """
    try:
        kind = ImportKind(kind)
    except ValueError:
        raise ImportFailed(f"unknown import kind {kind!r} (use {', '.join(ImportKind)})") from None
    opts = options or ValidationOptions()
    if campaign is not None:
        opts = ValidationOptions(
            country_code=opts.country_code,
            min_digits=opts.min_digits,
            max_digits=opts.max_digits,
            campaign=campaign,
            tz=opts.tz,
        )
    validator = make_validator(kind, opts)
    report = ImportReport(kind=str(kind), file=str(path), partial=partial)

    try:
        rows = read_rows(path, sheet=sheet)
    except TabularError as exc:
        raise ImportFailed(str(exc)) from None
    try:
        more = True
        while more:
            more = await trio.to_thread.run_sync(_feed, rows, validator, CHUNK_ROWS)
            if progress is not None:
                progress(validator.rows_read)
    except TabularError as exc:
        raise ImportFailed(str(exc)) from None
    finally:
        # Closes the file (and the workbook) even when the import is cancelled.
        await trio.to_thread.run_sync(rows.close)

    report.rows_read = validator.rows_read
    report.errors = list(validator.errors)
    report.error_count = validator.error_count
    records = validator.records
    if (report.error_count and not partial) or not records:
        return report

    write = _writer(kind, skip_existing, member_ids, rng)
    now = round(clock() * 1000)

    def transaction(conn: sqlite3.Connection) -> WriteResult:
        result = write(conn, records, now)
        if result.errors and not partial:
            raise _Refused(result)
        return result

    try:
        result = await store.run_in_transaction(transaction, rows=len(records))
    except _Refused as refused:
        _add_errors(report, refused.result.errors)
        return report
    report.committed = True
    report.imported = result.inserted
    report.updated = result.updated
    report.skipped = result.skipped
    _add_errors(report, result.errors)
    return report


def _add_errors(report: ImportReport, errors: list[RowError]) -> None:
    report.error_count += len(errors)
    merged = sorted([*report.errors, *errors], key=lambda e: e.line)
    report.errors = merged[:ERROR_CAP]


def _writer(
    kind: ImportKind,
    skip_existing: bool,
    member_ids: MemberIdFormat | None,
    rng: random.Random | None,
) -> Callable[[sqlite3.Connection, Any, int], WriteResult]:
    if kind is ImportKind.MEMBERS:
        from smppgw.scenarios.member_id import MemberIdFormat

        fmt = member_ids or MemberIdFormat()
        source = rng or random.SystemRandom()
        return partial(inventory.upsert_members, new_member_id=partial(fmt.new, source))
    if kind is ImportKind.SPEND:
        return inventory.apply_spend
    if kind is ImportKind.CODES:
        return partial(inventory.insert_codes, skip_existing=skip_existing)
    if kind is ImportKind.GIFTS:
        return partial(inventory.insert_gifts, skip_existing=skip_existing)
    return inventory.upsert_profiles


async def inventory_stats(store: Store) -> dict[str, Any]:
    """The inventory's counts as a JSON-able dict (CLI and admin socket)."""
    stats = await store.read(inventory.inventory_stats)
    return {
        "members": stats.members,
        "profiles": stats.profiles,
        "campaigns": [
            {"campaign": c.campaign, "total": c.total, "used": c.used, "free": c.free}
            for c in stats.campaigns
        ],
        "gifts": [
            {"gift_type": g.gift_type, "total": g.total, "free": g.free} for g in stats.gifts
        ],
    }


def format_stats(stats: dict[str, Any]) -> str:
    """Human text of :func:`inventory_stats`."""
    lines = [f"members: {stats['members']}    subscriber profiles: {stats['profiles']}", ""]
    lines.append(f"{'campaign':<24} {'total':>10} {'used':>10} {'free':>10}")
    for c in stats["campaigns"]:
        lines.append(f"{c['campaign']:<24} {c['total']:>10} {c['used']:>10} {c['free']:>10}")
    if not stats["campaigns"]:
        lines.append("(no codes)")
    lines.append("")
    lines.append(f"{'gift type':<24} {'total':>10} {'free':>10}")
    for g in stats["gifts"]:
        lines.append(f"{g['gift_type']:<24} {g['total']:>10} {g['free']:>10}")
    if not stats["gifts"]:
        lines.append("(no gifts)")
    return "\n".join(lines)


def report_json(report: ImportReport) -> str:
    return json.dumps(report.to_json(), ensure_ascii=False, indent=2)
