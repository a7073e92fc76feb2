"""``smppgw backup`` and ``smppgw status``: the running daemon, from a shell.

``backup``: a consistent copy of the journal while the daemon runs. See
``smppgw.store.backup`` for why this and not ``cp``. Restore: stop the daemon, put the
copy in place of ``store.path`` (and remove any ``-wal``/``-shm`` files beside it),
start the daemon.

``status``: binds, queues, partners and receipts owed, asked of the daemon through its
admin socket (``smppgw.app.status``). Exit 2 when no daemon answers there.
"""

from __future__ import annotations

import json
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from smppgw.app.cli_config import DEFAULT_CONFIG, UsageError, cli_config

if TYPE_CHECKING:
    import argparse

__all__ = ["add_commands"]


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
    status = commands.add_parser(
        "status",
        help="binds, queues, partners and receipts owed (daemon running)",
        description="Ask the running daemon what it is doing, through its admin socket.",
    )
    status.add_argument("--config", "-c", default=DEFAULT_CONFIG, help="the YAML config file")
    status.add_argument("--json", action="store_true", help="print JSON")
    status.set_defaults(handler=_status)


def _status(args: argparse.Namespace) -> int:
    from smppgw.app.admin import admin_request
    from smppgw.app.status import format_status

    try:
        config = cli_config(args.config)
        if config.admin_socket is None:
            raise UsageError("admin_socket is off in the config: the daemon cannot be reached")
        try:
            answer = admin_request(Path(config.admin_socket), {"cmd": "status"})
        except OSError as exc:
            raise UsageError(
                f"no daemon answers at {config.admin_socket} ({exc.strerror or exc})"
            ) from None
    except UsageError as exc:
        print(exc, file=sys.stderr)
        return 2
    if not answer.get("ok"):
        print(f"refused: {answer.get('error')}", file=sys.stderr)
        return 1
    print(json.dumps(answer, indent=2) if args.json else format_status(answer))
    return 0


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
