"""What the operators' read commands share: the config and usage errors, a read-only
connection to the journal, and tables (or ``--json``) with times in the operator's zone.

Used by ``smppgw order|partner|member|codes|gifts|events`` (``admin_cli``) and
``smppgw messages`` (``message_cli``). Exit code 2: the command could not run (its
reason on stderr).
"""

from __future__ import annotations

import contextlib
import json
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from smppgw.app.cli_config import UsageError, cli_config

if TYPE_CHECKING:
    import argparse
    import sqlite3
    from collections.abc import Callable, Iterator, Sequence

    from smppgw.app.config import Config

__all__ = ["TIME_KEYS", "cell", "guarded", "local_tz", "readonly", "show_rows", "table_lines"]

#: Columns shown as times (in the scenarios' UTC offset); the JSON keeps seconds.
TIME_KEYS = frozenset(
    {
        "expires_at",
        "created_at",
        "valid_from",
        "valid_to",
        "used_at",
        "assigned_at",
        "processed_at",
        "updated_at",
        "submitted_at",
        "queued_at",
    }
)


def guarded(
    fn: Callable[[argparse.Namespace, Config], int],
) -> Callable[[argparse.Namespace], int]:
    """A handler given the loaded config; a :class:`UsageError` exits 2 with its reason."""

    def run(args: argparse.Namespace) -> int:
        try:
            return fn(args, cli_config(args.config))
        except UsageError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2

    return run


@contextlib.contextmanager
def readonly(config: Config) -> Iterator[sqlite3.Connection]:
    """A read-only connection to the journal (WAL: it never blocks the daemon)."""
    import sqlite3

    from smppgw.store.message_log import open_readonly

    path = Path(config.store.path)
    if not path.exists():
        raise UsageError(f"no store at {path}")
    conn = open_readonly(path)
    try:
        yield conn
    except sqlite3.OperationalError as exc:
        raise UsageError(f"{path}: {exc} (start the daemon once to upgrade the file)") from None
    finally:
        conn.close()


def local_tz(config: Config) -> timezone:
    """The operator's zone: the scenarios' ``utc_offset``."""
    from smppgw.app.scenario_models import parse_utc_offset

    return timezone(parse_utc_offset(config.scenarios.utc_offset))


def cell(key: str, value: object, config: Config) -> str:
    """One value as a table shows it."""
    if value is None or value == "":
        return "-"
    if key in TIME_KEYS and isinstance(value, int | float):
        return datetime.fromtimestamp(value, local_tz(config)).strftime("%Y-%m-%d %H:%M")
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return ",".join(map(str, value)) or "-"
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def show_rows(
    args: argparse.Namespace, rows: Sequence[dict[str, Any]], columns: str, config: Config
) -> int:
    """Print ``rows`` as JSON (every key) or as a table of ``columns`` (space-separated
    keys; ``key:header`` renames a column)."""
    if args.json:
        print(json.dumps(list(rows), indent=2, ensure_ascii=False))
        return 0
    spec = [
        (c.partition(":")[0], c.partition(":")[2] or c.partition(":")[0]) for c in columns.split()
    ]
    cells = [[cell(k, r.get(k), config) for k, _ in spec] for r in rows]
    for line in table_lines([h for _, h in spec], cells):
        print(line)
    if not rows:
        print("(none)")
    return 0


def table_lines(header: Sequence[str], cells: Sequence[Sequence[str]]) -> list[str]:
    """A header and rows of text as left-aligned columns two spaces apart."""
    widths = [max([len(h)] + [len(row[i]) for row in cells]) for i, h in enumerate(header)]
    return [
        "  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip()
        for line in [list(header), *cells]
    ]
