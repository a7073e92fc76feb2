"""``smppgw event``, ``smppgw scenarios`` and ``smppgw molog``: the scenarios from a shell.

- ``smppgw event topup 84912345678 --set amount=50000 --key bill-2026-11-001`` feeds an
  event to the running daemon (admin socket); the same key twice is handled once. For
  batches, drop a ``*.jsonl`` file in ``scenarios.events_dir`` instead.
- ``smppgw scenarios`` lists what the running daemon has loaded (keywords, short codes).
- ``smppgw molog search --msisdn 84912345678`` / ``--member-id HN123456`` and
  ``smppgw molog export --since 2026-11-01 --until 2026-12-01 --out nov.csv`` read the
  journal file directly, read-only: safe while the daemon runs, and available when it
  does not.
"""

from __future__ import annotations

import contextlib
import csv
import json
import sys
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from smppgw.app.cli_config import DEFAULT_CONFIG, UsageError
from smppgw.app.cli_config import cli_config as _config

if TYPE_CHECKING:
    import argparse

    from smppgw.app.config import Config

__all__ = ["add_commands"]


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    event = commands.add_parser(
        "event",
        help="feed an event (topup, low_balance...) to the running daemon's scenarios",
    )
    event.add_argument("kind", help="topup, low_balance, ... (what the scenarios handle)")
    event.add_argument("msisdn", help="the subscriber's number")
    event.add_argument("--set", action="append", default=[], metavar="NAME=VALUE")
    event.add_argument("--key", default=None, help="deduplication key (the same key: once)")
    _common(event)
    event.set_defaults(handler=_event)

    listing = commands.add_parser("scenarios", help="the scenarios the running daemon loaded")
    _common(listing)
    listing.set_defaults(handler=_scenarios)

    molog = commands.add_parser("molog", help="search or export the MO/MT log of the scenarios")
    actions = molog.add_subparsers(title="actions", metavar="ACTION", required=True)
    search = actions.add_parser("search", help="the newest MO/MT of a number or a member")
    search.add_argument("--msisdn", default=None)
    search.add_argument("--member-id", default=None)
    search.add_argument("--limit", type=int, default=50)
    _common(search)
    search.set_defaults(handler=_search)
    export = actions.add_parser("export", help="every MO/MT of a period as CSV")
    export.add_argument("--since", default=None, help="YYYY-MM-DD (local midnight)")
    export.add_argument("--until", default=None, help="YYYY-MM-DD, exclusive")
    export.add_argument("--out", default="-", help="the CSV file (default: stdout)")
    _common(export)
    export.set_defaults(handler=_export)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", "-c", default=DEFAULT_CONFIG, help="the YAML config file")
    parser.add_argument("--json", action="store_true", help="print JSON")


_Usage = UsageError


def _admin(config: Config, request: dict[str, Any]) -> dict[str, Any]:
    from smppgw.app.admin import admin_request

    if config.admin_socket is None:
        raise _Usage("admin_socket is off in the config: the daemon cannot be reached")
    try:
        return admin_request(Path(config.admin_socket), request)
    except OSError as exc:
        raise _Usage(f"cannot reach the daemon at {config.admin_socket}: {exc}") from None


def _guard(fn: Any) -> Any:
    def run(args: argparse.Namespace) -> int:
        try:
            result: int = fn(args)
        except _Usage as exc:
            print(exc, file=sys.stderr)
            return 2
        return result

    return run


def _value(text: str) -> object:
    try:
        return json.loads(text)
    except ValueError:
        return text


@_guard
def _event(args: argparse.Namespace) -> int:
    data: dict[str, object] = {}
    for item in args.set:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise _Usage(f"--set wants NAME=VALUE, got {item!r}")
        data[name] = _value(value)
    request = {
        "cmd": "scenario.event",
        "kind": args.kind,
        "msisdn": args.msisdn,
        "data": data,
        "key": args.key,
    }
    answer = _admin(_config(args.config), request)
    if args.json or not answer.get("ok"):
        print(json.dumps(answer, indent=2))
        return 0 if answer.get("ok") else 1
    results = answer.get("results", [])
    if not results:
        print(f"no scenario handles {args.kind!r} events")
    for item in results:
        print(f"{item['scenario']}: {item['outcome']}")
    return 0


@_guard
def _scenarios(args: argparse.Namespace) -> int:
    answer = _admin(_config(args.config), {"cmd": "scenario.list"})
    if args.json or not answer.get("ok"):
        print(json.dumps(answer, indent=2))
        return 0 if answer.get("ok") else 1
    for s in answer["scenarios"]:
        keywords = ", ".join(f"{k}->{c}" for k, c in sorted(s["keywords"].items()))
        state = "" if s["enabled"] else " (disabled)"
        print(f"{s['name']}{state}: {s['handler']} on {', '.join(s['short_codes'])}: {keywords}")
    return 0


def _readonly(config: Config) -> Any:
    from smppgw.store.message_log import open_readonly

    path = Path(config.store.path)
    if not path.exists():
        raise _Usage(f"no journal at {path}")
    return contextlib.closing(open_readonly(path))


def _day(text: str | None, offset_text: str) -> float | None:
    if text is None:
        return None
    from smppgw.app.scenario_models import parse_utc_offset

    try:
        day = datetime.strptime(text, "%Y-%m-%d")
    except ValueError:
        raise _Usage(f"{text!r} is not a YYYY-MM-DD date") from None
    from datetime import timezone

    return day.replace(tzinfo=timezone(parse_utc_offset(offset_text))).timestamp()


@_guard
def _search(args: argparse.Namespace) -> int:
    from smppgw.store.message_log import search_log

    if not args.msisdn and not args.member_id:
        raise _Usage("give --msisdn or --member-id")
    config = _config(args.config)
    with _readonly(config) as conn:
        rows = search_log(conn, msisdn=args.msisdn, member_id=args.member_id, limit=args.limit)
    if args.json:
        print(json.dumps([r.as_dict() for r in rows], indent=2, ensure_ascii=False))
        return 0
    for r in reversed(rows):
        when = datetime.fromtimestamp(r.created_at).strftime("%Y-%m-%d %H:%M:%S")
        state = f" [{r.state}]" if r.state else ""
        print(
            f"{when} {r.direction.upper():<2} {r.msisdn} {r.scenario or '-'}/{r.outcome or '-'}"
            f"{state}: {r.body}"
        )
    return 0


EXPORT_COLUMNS = (
    "id",
    "created_at",
    "direction",
    "msisdn",
    "short_code",
    "body",
    "scenario",
    "outcome",
    "member_id",
    "correlation",
    "message_id",
    "state",
)


@_guard
def _export(args: argparse.Namespace) -> int:
    from smppgw.store.message_log import iter_log

    config = _config(args.config)
    since = _day(args.since, config.scenarios.utc_offset)
    until = _day(args.until, config.scenarios.utc_offset)
    out = sys.stdout if args.out == "-" else open(args.out, "w", newline="", encoding="utf-8")  # noqa: SIM115
    count = 0
    try:
        writer = csv.writer(out)
        writer.writerow(EXPORT_COLUMNS)
        with _readonly(config) as conn:
            for row in iter_log(conn, since=since, until=until):
                values = row.as_dict()
                values["created_at"] = datetime.fromtimestamp(row.created_at).isoformat()
                writer.writerow([values[c] for c in EXPORT_COLUMNS])
                count += 1
    finally:
        if out is not sys.stdout:
            out.close()
    if args.out != "-":
        print(f"{count} rows written to {args.out}", file=sys.stderr)
    return 0
