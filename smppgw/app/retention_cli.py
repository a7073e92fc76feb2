"""``smppgw prune [--dry-run] [--config FILE] [--json]``: journal retention by hand.

The daemon prunes on its own schedule (``retention.run_every_minutes``); this command
is for a run now. Where it runs, and why:

- ``--dry-run`` reads the file read-only (works while the daemon runs: WAL readers do
  not disturb the writer) and counts what a run would remove;
- otherwise, when a daemon answers on the admin socket, the run goes through it
  (``retention.run``): the daemon's store is the file's only writer;
- a daemon without that command: the user is told it prunes on its schedule;
- no daemon: the store is opened here and pruned directly.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import argparse

    from smppgw.app.config import Config
    from smppgw.app.retention_models import RetentionSettings

__all__ = ["add_commands", "settings_of"]

DEFAULT_CONFIG = "config/smppgw.yaml"


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "prune",
        help="remove journal rows older than the retention (the daemon also does it)",
        description=(
            "Prune the journal now as the 'retention:' config section says: final"
            " messages, processed inbound, the scenario log, processed events."
        ),
    )
    parser.add_argument("--config", "-c", default=DEFAULT_CONFIG, help="the YAML config file")
    parser.add_argument("--dry-run", action="store_true", help="count, remove nothing")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.set_defaults(handler=_prune)


def settings_of(config: Config) -> RetentionSettings:
    """The config's ``retention`` section (the defaults while Config has none)."""
    from smppgw.app.retention_models import RetentionSettings

    section = getattr(config, "retention", None)
    return section if isinstance(section, RetentionSettings) else RetentionSettings()


def _prune(args: argparse.Namespace) -> int:
    from smppgw.app.config import ConfigError, default_config, load_config

    try:
        if Path(args.config).exists():
            config = load_config(args.config)
        elif args.config == DEFAULT_CONFIG:
            config = default_config()
        else:
            print(f"error: no config file {args.config}", file=sys.stderr)
            return 2
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    settings = settings_of(config)
    store_path = Path(config.store.path)
    if not store_path.exists():
        print(f"error: no store at {store_path}", file=sys.stderr)
        return 2
    try:
        if args.dry_run:
            answer = _dry_run(store_path, settings)
        else:
            answer = _through_daemon(config) or _here(config, settings)
    except OSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return _show(args, answer)


def _dry_run(path: Path, settings: RetentionSettings) -> dict[str, Any]:
    import trio

    from smppgw.app.retention_service import prune_once
    from smppgw.store.message_log import open_readonly

    conn = open_readonly(path)
    try:

        async def run(fn: Any) -> Any:
            return fn(conn)

        async def main() -> dict[str, Any]:
            report = await prune_once(run, settings, time.time(), dry_run=True)
            return {"ok": True, "dry_run": True, "report": report.to_json()}

        return trio.run(main)
    finally:
        conn.close()


def _through_daemon(config: Config) -> dict[str, Any] | None:
    """The daemon's answer, or None when no daemon answers on the socket."""
    from smppgw.app.admin import admin_request

    sock = config.admin_socket
    if sock is None or not Path(sock).exists():
        return None
    try:
        answer = admin_request(Path(sock), {"cmd": "retention.run"}, timeout=600.0)
    except (ConnectionRefusedError, FileNotFoundError):
        return None  # a stale socket file: no daemon behind it
    if not answer.get("ok") and "unknown command" in str(answer.get("error")):
        return {
            "ok": False,
            "error": "the daemon is running and prunes on its own schedule"
            " (retention.run_every_minutes); it has no retention.run command to run now",
        }
    return answer


def _here(config: Config, settings: RetentionSettings) -> dict[str, Any]:
    import trio

    from smppgw.app.retention_service import prune_store
    from smppgw.store import StoreError, open_store

    async def main() -> dict[str, Any]:
        async with open_store(config.store.path, config=config.store.to_store_config()) as store:
            report = await prune_store(store, settings)
        return {"ok": True, "report": report.to_json()}

    try:
        return trio.run(main)
    except StoreError as exc:
        return {"ok": False, "error": str(exc)}


def _show(args: argparse.Namespace, answer: dict[str, Any]) -> int:
    if args.json:
        print(json.dumps(answer, indent=2))
        return 0 if answer.get("ok") else 1
    if not answer.get("ok"):
        print(f"refused: {answer.get('error')}", file=sys.stderr)
        return 1
    report = answer["report"]
    verb = "would remove" if answer.get("dry_run") else "removed"
    print(f"{verb} (rows per table):")
    for table, n in sorted(report["counts"].items()):
        print(f"  {table:<14} {n:>10,}")
    for note in report["notes"]:
        print(f"note: {note}")
    print(f"{report['batches']} batches in {report['seconds']:.1f} s")
    return 0
