"""An online backup of the journal: a consistent copy while the daemon keeps writing.

SQLite's backup API copies the database page by page from a read-only connection. In
WAL mode a reader sees one snapshot for as long as its read transaction lasts, so the
copy is the journal as of one commit, never a torn mix; the daemon's writer goes on
meanwhile (it is never blocked: readers and the writer do not lock each other out in
WAL). Copying the file with ``cp`` instead can catch the database and its ``-wal`` file
at different moments: do not.

The copy is written to ``<dest>.partial`` and renamed into place once complete and
checked (``PRAGMA integrity_check``), so a crash or a full disk never leaves a file
named like a backup that is not one.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["BackupResult", "backup_journal"]


@dataclass(frozen=True, slots=True)
class BackupResult:
    path: Path
    pages: int
    bytes: int
    schema_version: int


def backup_journal(
    source: str | os.PathLike[str],
    dest: str | os.PathLike[str],
    *,
    pages_per_step: int = 4096,
    progress: Callable[[int, int], None] | None = None,
) -> BackupResult:
    """Copy the journal at ``source`` to ``dest`` (see the module docstring).

    Raises:
        FileNotFoundError: no journal at ``source``.
        FileExistsError: ``dest`` exists (a backup is never overwritten).
        sqlite3.DatabaseError: the copy failed its integrity check.
    """
    src = Path(source)
    target = Path(dest)
    if not src.exists():
        raise FileNotFoundError(f"no journal at {src}")
    if target.exists():
        raise FileExistsError(f"{target} exists; a backup is never overwritten")
    partial = target.with_name(target.name + ".partial")
    partial.unlink(missing_ok=True)
    reader = sqlite3.connect(f"file:{src}?mode=ro", uri=True, timeout=30.0)
    try:
        copy = sqlite3.connect(partial)
        try:

            def step(status: int, remaining: int, total: int) -> None:
                if progress is not None:
                    progress(total - remaining, total)

            reader.backup(copy, pages=pages_per_step, progress=step)
            copy.execute("PRAGMA journal_mode=DELETE")  # a standalone file, no -wal
            check = copy.execute("PRAGMA integrity_check").fetchone()[0]
            if check != "ok":
                raise sqlite3.DatabaseError(f"backup failed its integrity check: {check}")
            version = int(copy.execute("PRAGMA user_version").fetchone()[0])
            pages = int(copy.execute("PRAGMA page_count").fetchone()[0])
        finally:
            copy.close()
    except BaseException:
        with contextlib.suppress(OSError):
            partial.unlink()
        raise
    finally:
        reader.close()
    with open(partial, "rb") as f:
        os.fsync(f.fileno())
    partial.rename(target)
    return BackupResult(target, pages, target.stat().st_size, version)
