"""``smppgw messages list|show``: an operator finds a partner's message and traces it.

"My customer never got the OTP": ``list`` finds a period's messages by number, partner
or state; ``show`` traces one, by our id (the partner's ``submit_sm_resp``) or by a
carrier's id of one of its parts (what a carrier's support desk quotes, written as its
``submit_sm_resp`` or its receipts write it: each carrier's ``message_id_format`` reduces
it to the key the journal keeps). Read-only on the journal (``store/message_queries.py``),
safe beside the daemon; tables with times to the second, or ``--json``.
"""

from __future__ import annotations

import contextlib
import json
import sys
from datetime import datetime
from typing import TYPE_CHECKING, Any

from smppgw.app.cli_config import DEFAULT_CONFIG, UsageError
from smppgw.app.cli_tables import TIME_KEYS, cell, guarded, local_tz, readonly, show_rows

if TYPE_CHECKING:
    import argparse

    from smppgw.app.config import Config
    from smppgw.store.message_queries import MessageTrace

__all__ = ["add_commands"]


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``messages list`` and ``messages show``."""
    parser = commands.add_parser(
        "messages", help="MT messages: find them, trace one (read-only)", description=__doc__
    )
    actions = parser.add_subparsers(title="actions", metavar="ACTION", required=True)

    def action(name: str, handler: Any, help_text: str) -> argparse.ArgumentParser:
        p = actions.add_parser(name, help=help_text)
        p.add_argument("--config", "-c", default=DEFAULT_CONFIG, help="the YAML config file")
        p.add_argument("--json", action="store_true", help="print JSON")
        p.set_defaults(handler=guarded(handler))
        return p

    p = action("list", _messages_list, "a period's messages, newest first")
    p.add_argument("--to", default=None, help="destination number (as the partner sent it)")
    p.add_argument("--partner", default=None)
    p.add_argument("--state", default=None, choices=[s.value for s in _states()])
    p.add_argument("--since", default=None, help="YYYY-MM-DD[THH:MM] (default: 24 h ago)")
    p.add_argument("--until", default=None, help="YYYY-MM-DD[THH:MM] (default: now)")
    p.add_argument("--limit", type=int, default=100)
    p = action("show", _messages_show, "one message: parts, carrier ids, receipts")
    p.add_argument("id", type=int, nargs="?", help="our message id (submit_sm_resp's)")
    p.add_argument("--carrier-id", default=None, help="or the carrier's id of a part")
    p.add_argument("--carrier", default=None, help="whose id (default: any carrier)")


def _states() -> list[Any]:
    from smppgw.store.records import MessageState

    return list(MessageState)


def _moment(text: str | None, config: Config, default: float | None) -> float | None:
    if text is None:
        return default
    for layout in ("%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M", "%Y-%m-%d"):
        try:
            return datetime.strptime(text, layout).replace(tzinfo=local_tz(config)).timestamp()
        except ValueError:
            continue
    raise UsageError(f"{text!r} is not YYYY-MM-DD or YYYY-MM-DDTHH:MM")


def _to_the_second(row: dict[str, Any], config: Config) -> dict[str, Any]:
    """A message's times to the second, for a table (what happened when, to the second,
    is what a trace is for); the JSON keeps epoch seconds."""
    tz = local_tz(config)
    return {
        k: datetime.fromtimestamp(v, tz).strftime("%Y-%m-%d %H:%M:%S")
        if k in TIME_KEYS and isinstance(v, int | float)
        else v
        for k, v in row.items()
    }


def _messages_list(args: argparse.Namespace, config: Config) -> int:
    import time

    from smppgw.store.message_queries import find_messages

    since = _moment(args.since, config, time.time() - 86_400)
    assert since is not None
    to = None if args.to is None else args.to.strip().removeprefix("+")
    with readonly(config) as conn:
        found = find_messages(
            conn,
            since=since,
            until=_moment(args.until, config, None),
            destination=to,
            partner=args.partner,
            state=args.state,
            limit=args.limit,
        )
    columns = (
        "id created_at:accepted partner source_addr:from destination_addr:to state"
        " part_count:parts smsc:carrier carrier_id error"
    )
    rows = [m.as_dict() if args.json else _to_the_second(m.as_dict(), config) for m in found]
    return show_rows(args, rows, columns, config)


def _carrier_keys(args: argparse.Namespace, config: Config) -> list[tuple[str, str]]:
    """The id keys a carrier's id may be stored under: as its submit_sm_resp or as its
    receipts write it, by each carrier's ``message_id_format``."""
    from smppgw.protocol.message_id import MessageIdError, receipt_key, resp_key

    carriers = [c for c in config.carriers if args.carrier in (None, c.name)]
    if not carriers:
        raise UsageError(f"no carrier {args.carrier!r} in the config")
    keys: list[tuple[str, str]] = []
    for carrier in carriers:
        for key_of in (resp_key, receipt_key):
            with contextlib.suppress(MessageIdError):
                key = key_of(args.carrier_id, carrier.message_id_format)
                if (carrier.name, key) not in keys:
                    keys.append((carrier.name, key))
    return keys


def _messages_show(args: argparse.Namespace, config: Config) -> int:
    from smppgw.store.message_queries import by_carrier_id, message_trace

    if (args.id is None) == (args.carrier_id is None):
        raise UsageError("give our message id or --carrier-id, one of them")
    with readonly(config) as conn:
        if args.carrier_id is None:
            ids = [args.id]
        else:
            ids = by_carrier_id(conn, _carrier_keys(args, config))
        traces = [t for t in (message_trace(conn, i) for i in ids) if t is not None]
    if not traces:
        what = f"message {args.id}" if args.id is not None else f"carrier id {args.carrier_id}"
        print(f"{what}: not in the journal (never accepted, or pruned)", file=sys.stderr)
        return 1
    if len(traces) > 1:  # one carrier's id under several carriers' formats
        print(f"{len(traces)} messages have carrier id {args.carrier_id}:", file=sys.stderr)
    for trace in traces:
        _print_trace(args, trace, config)
    return 0


def _print_trace(args: argparse.Namespace, trace: MessageTrace, config: Config) -> None:
    whole = trace.as_dict()
    if args.json:
        print(json.dumps(whole, indent=2, ensure_ascii=False))
        return
    for key, value in _to_the_second(trace.message.as_dict(), config).items():
        print(f"{key:>16}  {cell(key, value, config)}")
    if whole["parts"]:
        print("\nparts at carriers:")
        parts = [_to_the_second(p, config) for p in whole["parts"]]
        show_rows(args, parts, "part_no smsc carrier_id submitted_at receipt_state", config)
    if whole["receipts_owed"]:
        print("\nreceipts owed to the partner (not acknowledged yet):")
        owed = [_to_the_second(r, config) for r in whole["receipts_owed"]]
        show_rows(args, owed, "stat queued_at", config)
