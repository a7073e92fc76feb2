"""``smppgw report KIND --since YYYY-MM-DD --until YYYY-MM-DD``: operators' reports.

Kinds: ``partners``, ``orders``, ``carriers``, ``short-codes``, ``recipients``, ``log``
(see the README's "Reports"). The journal file is opened read-only
(``message_log.open_readonly``), so a report is safe while the daemon runs and available
when it does not. Days are local days in ``scenarios.utc_offset`` of the config, like
``smppgw molog export``: ``--until`` is exclusive, so a month is
``--since 2026-11-01 --until 2026-12-01``.

Output: a table on stdout; ``--json`` prints JSON instead; ``--csv FILE`` or
``--xlsx FILE`` writes the file (and says so on stderr). Exit codes: 0 done, 2 the
report could not run (bad dates, no journal, a bad config).
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from smppgw.app.cli_config import DEFAULT_CONFIG, UsageError
from smppgw.app.cli_config import cli_config as _config

if TYPE_CHECKING:
    import argparse
    from datetime import timedelta


__all__ = ["add_commands"]

_KINDS = ("partners", "orders", "carriers", "short-codes", "recipients", "log")


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``smppgw report``."""
    parser = commands.add_parser(
        "report",
        help="sent, delivered, failed and charged per partner, order, carrier... (read-only)",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
    )
    parser.add_argument("kind", choices=_KINDS, help="which report")
    parser.add_argument("--since", required=True, help="YYYY-MM-DD, first local day")
    parser.add_argument("--until", required=True, help="YYYY-MM-DD, the day after the last")
    parser.add_argument("--partner", default=None, help="only this partner (system_id)")
    parser.add_argument(
        "--min-failures",
        type=int,
        default=3,
        help="recipients: failed or expired messages, none delivered, to list a number",
    )
    files = parser.add_mutually_exclusive_group()
    files.add_argument("--csv", default=None, metavar="FILE", help="write CSV here")
    files.add_argument("--xlsx", default=None, metavar="FILE", help="write Excel here")
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.add_argument("--config", "-c", default=DEFAULT_CONFIG, help="the YAML config file")
    parser.set_defaults(handler=_report)


_Usage = UsageError


def _day(text: str, offset: timedelta) -> int:
    """Local midnight of ``YYYY-MM-DD`` in epoch milliseconds."""
    try:
        day = datetime.strptime(text, "%Y-%m-%d")
    except ValueError:
        raise _Usage(f"{text!r} is not a YYYY-MM-DD date") from None
    return round(day.replace(tzinfo=timezone(offset)).timestamp() * 1000)


def _report(args: argparse.Namespace) -> int:
    try:
        return _run(args)
    except _Usage as exc:
        print(f"smppgw report: {exc}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace) -> int:
    from smppgw.app.scenario_models import parse_utc_offset
    from smppgw.reports.build import Period, build
    from smppgw.reports.writers import table_json, write_csv, write_text, write_xlsx
    from smppgw.store.message_log import open_readonly

    config = _config(args.config)
    offset = parse_utc_offset(config.scenarios.utc_offset)
    since, until = _day(args.since, offset), _day(args.until, offset)
    if until <= since:
        raise _Usage("--until must be after --since (it is exclusive)")
    if args.min_failures < 1:
        raise _Usage("--min-failures must be at least 1")
    if args.partner is not None and args.kind == "log":
        raise _Usage("the log has no partner: leave out --partner")
    codes: tuple[str, ...] | None = None
    if args.partner is not None:
        # MO belong to a partner through the short codes it owns in the config.
        owned = [p.short_codes for p in config.partners if p.system_id == args.partner]
        codes = owned[0] if owned else ()
    period = Period(since, until, offset, args.partner, codes, args.min_failures)
    path = Path(config.store.path)
    if not path.exists():
        raise _Usage(f"no journal at {path}")
    try:
        with contextlib.closing(open_readonly(path)) as conn:
            tables = build(args.kind, conn, period)
            if args.csv is not None:
                written = write_csv(tables, Path(args.csv))
                print(f"written: {', '.join(map(str, written))}", file=sys.stderr)
                tables = build(args.kind, conn, period) if args.json else []
            elif args.xlsx is not None:
                write_xlsx(tables, Path(args.xlsx))
                print(f"written: {args.xlsx}", file=sys.stderr)
                tables = build(args.kind, conn, period) if args.json else []
            if args.json:
                report = {
                    "report": args.kind,
                    "since": args.since,
                    "until": args.until,
                    "utc_offset": config.scenarios.utc_offset,
                    "partner": args.partner,
                    "tables": [table_json(t) for t in tables],
                }
                print(json.dumps(report, indent=2, ensure_ascii=False))
            elif args.csv is None and args.xlsx is None:
                write_text(tables, sys.stdout)
    except sqlite3.Error as exc:
        raise _Usage(f"cannot read the journal {path}: {exc}") from None
    return 0
