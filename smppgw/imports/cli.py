"""``smppgw import KIND FILE`` and ``smppgw inventory``.

Where the work happens: the daemon owns the store's single writer while it runs, so
when its admin socket (``admin_socket`` in the config) answers, the request goes
through it and the daemon imports; otherwise the command opens the store itself and
imports in-process. Either way the output is the same report.

Exit codes: 0 every row imported; 1 rows were refused (with ``--partial`` the good ones
were imported anyway); 2 the command could not run (usage, config, unreadable file,
store in use).
"""

from __future__ import annotations

import json
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import argparse

    from smppgw.app.config import Config
    from smppgw.imports.run import ImportReport

__all__ = ["add_commands"]

DEFAULT_CONFIG = "config/smppgw.yaml"
_KINDS = ("members", "spend", "codes", "gifts", "profiles")
#: Seconds between progress lines on stderr.
_PROGRESS_EVERY = 1.0


class _Usage(Exception):
    """A problem to print with exit code 2."""


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``import`` and ``inventory`` on the ``smppgw`` command line."""
    parser = commands.add_parser(
        "import",
        help="import members, monthly spend, scratch-card codes, gifts or profiles",
        description=(
            "Import an operator's .csv or .xlsx file. The whole file is checked first:"
            " if any row is bad nothing is imported (unless --partial) and every bad"
            " row is listed with its line. Exit 0 all imported, 1 rows refused, 2 error."
        ),
    )
    parser.add_argument("kind", choices=_KINDS, help="what the file holds")
    parser.add_argument("file", help="the .csv or .xlsx file")
    parser.add_argument("--partial", action="store_true", help="import the good rows anyway")
    parser.add_argument("--campaign", default=None, help="campaign of codes the file lacks")
    parser.add_argument(
        "--skip-existing",
        action="store_true",
        help="codes and gifts already stored are skipped instead of refused",
    )
    parser.add_argument("--sheet", default=None, help="Excel sheet name (default: the first)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--config", "-c", default=DEFAULT_CONFIG, help="the YAML config file")
    parser.set_defaults(handler=_import)

    stats = commands.add_parser(
        "inventory",
        help="show codes per campaign, free gifts per type, members and profiles",
        description="Counts of the scenario inventory (through the daemon when it runs).",
    )
    stats.add_argument("--json", action="store_true", help="print the counts as JSON")
    stats.add_argument("--config", "-c", default=DEFAULT_CONFIG, help="the YAML config file")
    stats.set_defaults(handler=_inventory)


def _load(config_path: str) -> Config:
    from smppgw.app.config import ConfigError, load_config

    if not Path(config_path).exists():
        raise _Usage(f"no config file {config_path} (give --config)")
    try:
        return load_config(config_path)
    except ConfigError as exc:
        raise _Usage(str(exc)) from None


def _daemon_socket(config: Config) -> Path | None:
    """The admin socket when a daemon answers on it, else None (import in-process)."""
    from smppgw.app.admin import admin_request

    if config.admin_socket is None or not Path(config.admin_socket).exists():
        return None
    sock = Path(config.admin_socket)
    try:
        answer = admin_request(sock, {"cmd": "inventory.stats"}, timeout=5.0)
    except OSError:
        return None  # a stale socket file: no daemon behind it
    if not answer.get("ok") and "unknown command" in str(answer.get("error")):
        raise _Usage(
            f"the daemon at {sock} runs a version without imports; stop it to import"
            " directly, or upgrade it"
        )
    return sock


def _import(args: argparse.Namespace) -> int:
    from smppgw.imports.run import ImportReport

    try:
        config = _load(args.config)
        file = Path(args.file).resolve()
        if not file.is_file():
            raise _Usage(f"no file {args.file}")
        _check_suffix(file, args.sheet)
        sock = _daemon_socket(config)
        if sock is not None:
            data = _import_via_daemon(sock, args, file)
            report = ImportReport.from_json(data)
        else:
            report = _import_here(config, args, file)
    except _Usage as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(report.to_json(), ensure_ascii=False, indent=2))
    else:
        print(report)
    return 0 if report.ok else 1


def _check_suffix(file: Path, sheet: str | None) -> None:
    """Refuse a file type we cannot read before a store is opened (or created) for it."""
    from smppgw.imports.tabular import TabularError, read_rows

    try:
        read_rows(file, sheet=sheet).close()
    except TabularError as exc:
        raise _Usage(str(exc)) from None


class _Progress:
    """``rows read: N`` on stderr, at most once a second."""

    def __init__(self) -> None:
        self._last = time.monotonic()
        self._shown = -1

    def __call__(self, rows: int) -> None:
        now = time.monotonic()
        if now - self._last >= _PROGRESS_EVERY and rows != self._shown:
            self._last, self._shown = now, rows
            print(f"rows read: {rows}", file=sys.stderr, flush=True)


def _import_here(config: Config, args: argparse.Namespace, file: Path) -> ImportReport:
    import trio

    from smppgw.imports.run import ImportFailed, run_import
    from smppgw.store import StoreError, open_store

    store_path = Path(config.store.path)

    async def main() -> ImportReport:
        store_path.parent.mkdir(parents=True, exist_ok=True)
        async with open_store(store_path, config=config.store.to_store_config()) as store:
            return await run_import(
                store,
                args.kind,
                file,
                partial=args.partial,
                campaign=args.campaign,
                progress=_Progress(),
                skip_existing=args.skip_existing,
                sheet=args.sheet,
            )

    try:
        return trio.run(main)
    except (ImportFailed, StoreError, OSError) as exc:
        raise _Usage(str(exc)) from None


def _import_via_daemon(sock: Path, args: argparse.Namespace, file: Path) -> dict[str, Any]:
    """Send the import to the daemon; follow it with ``import.status`` until it is done.

    The request is sent from a thread and may come back without an answer when the
    import outlasts the server's per-request deadline; the job token we chose finds the
    outcome either way.
    """
    from smppgw.app.admin import admin_request

    token = uuid.uuid4().hex
    request = {
        "cmd": f"import.{args.kind}",
        "path": str(file),
        "partial": args.partial,
        "campaign": args.campaign,
        "skip_existing": args.skip_existing,
        "sheet": args.sheet,
        "job": token,
    }
    answer: dict[str, Any] = {}

    def send() -> None:
        try:
            answer.update(admin_request(sock, request, timeout=3600.0))
        except OSError as exc:
            answer["transport_error"] = str(exc)

    sender = threading.Thread(target=send, name="smppgw-import", daemon=True)
    sender.start()
    progress = _Progress()
    while True:
        sender.join(_PROGRESS_EVERY)
        if "report" in answer:
            report: dict[str, Any] = answer["report"]
            return report
        if answer.get("ok") is False:
            raise _Usage(str(answer.get("error")))
        try:
            status = admin_request(sock, {"cmd": "import.status", "job": token}, timeout=10.0)
        except OSError as exc:
            raise _Usage(f"lost the daemon at {sock}: {exc}") from None
        if status.get("ok"):
            if status.get("state") == "failed":
                raise _Usage(str(status.get("error")))
            if status.get("report"):
                done: dict[str, Any] = status["report"]
                return done
            progress(int(status.get("rows_read") or 0))
        elif not sender.is_alive():
            # The daemon never registered the job: the request itself failed.
            raise _Usage(str(answer.get("transport_error") or status.get("error")))


def _inventory(args: argparse.Namespace) -> int:
    from smppgw.imports.run import format_stats

    try:
        config = _load(args.config)
        sock = _daemon_socket(config)
        stats = _stats_via_daemon(sock) if sock is not None else _stats_here(config)
    except _Usage as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(stats, ensure_ascii=False, indent=2) if args.json else format_stats(stats))
    return 0


def _stats_via_daemon(sock: Path) -> dict[str, Any]:
    from smppgw.app.admin import admin_request

    try:
        answer = admin_request(sock, {"cmd": "inventory.stats"})
    except OSError as exc:
        raise _Usage(f"cannot reach the daemon at {sock}: {exc}") from None
    if not answer.get("ok"):
        raise _Usage(str(answer.get("error")))
    stats: dict[str, Any] = answer["stats"]
    return stats


def _stats_here(config: Config) -> dict[str, Any]:
    import trio

    from smppgw.imports.run import inventory_stats
    from smppgw.store import StoreError, open_store

    store_path = Path(config.store.path)
    if not store_path.exists():
        raise _Usage(f"no store at {store_path} (nothing imported yet?)")

    async def main() -> dict[str, Any]:
        async with open_store(store_path, config=config.store.to_store_config()) as store:
            return await inventory_stats(store)

    try:
        return trio.run(main)
    except StoreError as exc:
        raise _Usage(str(exc)) from None
