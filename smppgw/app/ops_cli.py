"""``smppgw backup``: a consistent copy of the journal while the daemon runs.

See ``smppgw.store.backup`` for why this and not ``cp``. Restore: stop the daemon, put
the copy in place of ``store.path`` (and remove any ``-wal``/``-shm`` files beside it),
start the daemon.
"""

from __future__ import annotations

import sys
import time
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import argparse

__all__ = ["add_commands"]

DEFAULT_CONFIG = "config/smppgw.yaml"


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "backup",
        help="copy the journal consistently, also while the daemon runs",
        description="Write a consistent copy of the journal (SQLite online backup).",
    )
    parser.add_argument(
        "dest",
        nargs="?",
        default=None,
        help="the copy's file (default: beside the journal, named with the time)",
    )
    parser.add_argument("--config", "-c", default=DEFAULT_CONFIG, help="the YAML config file")
    parser.set_defaults(handler=_backup)


def _backup(args: argparse.Namespace) -> int:
    from smppgw.app.config import ConfigError, default_config, load_config
    from smppgw.store.backup import backup_journal

    try:
        config = load_config(args.config) if Path(args.config).exists() else default_config()
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    source = Path(config.store.path)
    stamp = datetime.now().strftime("%Y%m%dT%H%M%S")
    dest = Path(args.dest) if args.dest else source.with_name(f"{source.stem}-{stamp}.sqlite")
    last = [0.0]

    def progress(done: int, total: int) -> None:
        now = time.monotonic()
        if sys.stderr.isatty() and now - last[0] > 0.5:
            last[0] = now
            print(f"\r{done}/{total} pages", end="", file=sys.stderr)

    try:
        result = backup_journal(source, dest, progress=progress)
    except (FileNotFoundError, FileExistsError) as exc:
        print(exc, file=sys.stderr)
        return 2
    except Exception as exc:  # sqlite3 errors, a full disk: say so, exit non-zero
        print(f"backup failed: {exc}", file=sys.stderr)
        return 1
    print(
        f"backup written: {result.path} ({result.bytes:,} bytes, {result.pages} pages,"
        f" schema v{result.schema_version})"
    )
    return 0
