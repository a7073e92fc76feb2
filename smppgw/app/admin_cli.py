"""``smppgw order|partner|member|optout|codes|gifts|events``: the operator's records
from a shell.

Safe while the daemon runs: a command that writes goes through the daemon's admin
socket (``admin_socket`` in the config) when a daemon answers there, and the daemon
writes in its own transaction (``admin_records``); with no daemon the command opens the
store itself and runs the very same command code. Lists read the journal file on a
read-only connection (WAL: they never block the daemon's writer). Human tables by
default, ``--json`` for scripts. Exit codes: 0 done, 1 refused (the reason printed),
2 could not run (usage, config, no store, daemon unreachable).
"""

from __future__ import annotations

import json
import sys
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from smppgw.app.cli_config import DEFAULT_CONFIG, UsageError
from smppgw.app.cli_tables import guarded as _guard
from smppgw.app.cli_tables import local_tz as _tz
from smppgw.app.cli_tables import readonly as _readonly
from smppgw.app.cli_tables import show_rows as _show

if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable

    from smppgw.app.admin import AdminCommand
    from smppgw.app.config import Config

__all__ = ["add_commands"]

#: SMPP 3.4 5.2.2: the bind password is a C-octet string of 9 octets with the NUL
#: (the same rule as ``smppgw hash-password``).
_MAX_SMPP_PASSWORD = 8


_Usage = UsageError


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``order``, ``partner``, ``member``, ``optout``, ``codes``, ``gifts`` and
    ``events``."""

    def group(name: str, help_text: str) -> argparse._SubParsersAction[argparse.ArgumentParser]:
        parser = commands.add_parser(name, help=help_text, description=__doc__)
        return parser.add_subparsers(title="actions", metavar="ACTION", required=True)

    def action(
        actions: argparse._SubParsersAction[argparse.ArgumentParser],
        name: str,
        handler: Callable[[argparse.Namespace, Config], int],
        help_text: str,
    ) -> argparse.ArgumentParser:
        parser = actions.add_parser(name, help=help_text)
        parser.add_argument("--config", "-c", default=DEFAULT_CONFIG, help="the YAML config file")
        parser.add_argument("--json", action="store_true", help="print JSON")
        parser.set_defaults(handler=_guard(handler))
        return parser

    orders = group("order", "partners' orders: add, list what is left, cancel")
    p = action(orders, "add", _order_add, "add an order of COUNT SMS parts")
    p.add_argument("partner")
    p.add_argument("--count", type=int, required=True, help="SMS parts the order covers")
    p.add_argument("--kind", choices=("prepaid", "postpaid"), default="prepaid")
    p.add_argument("--unit-cost", type=int, default=1, help="postpaid: price of a part")
    p.add_argument("--price", type=int, default=None, help="the order's price (minor units)")
    p.add_argument("--expires", default=None, help="last valid day, YYYY-MM-DD")
    p = action(orders, "list", _order_list, "orders with what is left")
    p.add_argument("partner", nargs="?")
    p.add_argument("--all", action="store_true", help="also expired and used-up orders")
    p = action(orders, "cancel", _order_cancel, "end an order now")
    p.add_argument("id", type=int)

    partners = group("partner", "partner accounts: add, password, disable, enable, list")
    p = action(partners, "add", _partner_add, "add a partner (password from prompt or stdin)")
    p.add_argument("system_id")
    p.add_argument("--source", action="append", default=[], help="a source it may send from")
    p.add_argument("--short-code", action="append", default=[], help="a short code it owns")
    p.add_argument("--network", action="append", default=[], help="a CIDR it may bind from")
    p.add_argument("--set", action="append", default=[], metavar="NAME=JSON", help="any field")
    for name, handler, what in (
        ("password", _partner_password, "set a new password (prompt or stdin)"),
        ("disable", _partner_switch, "refuse its binds and submits"),
        ("enable", _partner_switch, "let it bind again"),
    ):
        p = action(partners, name, handler, what)
        p.add_argument("system_id")
        p.set_defaults(verb=name)
    action(partners, "list", _partner_list, "the partners in force and where each comes from")

    members = group("member", "loyalty members: search, edit, delete")
    p = action(members, "search", _member_search, "members by number, ID or a field")
    p.add_argument("--msisdn", default=None)
    p.add_argument("--member-id", default=None)
    p.add_argument("--field", default=None, metavar="NAME=VALUE")
    p.add_argument("--limit", type=int, default=100)
    p = action(members, "edit", _member_edit, "change name, province, msisdn or a field")
    p.add_argument("member_id")
    p.add_argument("--set", action="append", required=True, metavar="NAME=VALUE")
    p = action(members, "delete", _member_delete, "delete a member and its points history")
    p.add_argument("member_id")
    p.add_argument("--yes", action="store_true", help="do not ask")

    optouts = group("optout", "the opt-out list: numbers that refused marketing messages")
    for verb, what in (("add", "put numbers on the list"), ("remove", "take numbers off it")):
        p = action(optouts, verb, _optout_change, what)
        p.add_argument("msisdn", nargs="*", help="numbers (national form is fine)")
        p.add_argument("--file", default=None, help=".csv or .xlsx with an msisdn column")
        p.add_argument("--partner", default=None, help="that partner's marketing only")
        if verb == "remove":
            p.add_argument("--everywhere", action="store_true", help="every partner's rows")
        p.set_defaults(verb=verb)
    p = action(optouts, "list", _optout_list, "numbers on the list, newest first")
    p.add_argument("--msisdn", default=None)
    p.add_argument("--partner", default=None, help="rows of that partner ('all': every one's)")
    p.add_argument("--limit", type=int, default=100)

    for name, handler, what in (
        ("codes", _codes_list, "scratch-card codes of a campaign"),
        ("gifts", _gifts_list, "gifts of the inventory (PINs not shown)"),
        ("events", _events_list, "business events, newest first"),
    ):
        p = action(group(name, what), "list", handler, what)
        p.add_argument("--limit", type=int, default=100)
        if name == "codes":
            p.add_argument("--campaign", required=True)
            used = p.add_mutually_exclusive_group()
            used.add_argument("--used", action="store_true")
            used.add_argument("--free", action="store_true")
        elif name == "gifts":
            p.add_argument("--type", default=None, dest="gift_type")
            p.add_argument("--free", action="store_true", help="only those not given yet")
        else:
            p.add_argument("--kind", default=None)
            p.add_argument("--msisdn", default=None)


# ---------------------------------------------------------------------- plumbing


def _daemon(config: Config) -> Path | None:
    """The admin socket when a daemon with these commands answers there, else None."""
    from smppgw.app.admin import admin_request

    if config.admin_socket is None or not Path(config.admin_socket).exists():
        return None
    sock = Path(config.admin_socket)
    try:
        answer = admin_request(sock, {"cmd": "admin.records"}, timeout=5.0)
    except OSError:
        return None  # a stale socket file: no daemon behind it
    if not answer.get("ok"):
        raise _Usage(f"the daemon at {sock} runs a version without these commands: restart it")
    return sock


def _write(config: Config, request: dict[str, Any]) -> dict[str, Any]:
    """Run an admin command through the daemon, or here on the store when none runs."""
    from smppgw.app.admin import admin_request

    sock = _daemon(config)
    if sock is not None:
        try:
            return admin_request(sock, request)
        except OSError as exc:
            raise _Usage(f"lost the daemon at {sock}: {exc}") from None
    return _run_here(config, request)


def _run_here(config: Config, request: dict[str, Any]) -> dict[str, Any]:
    import structlog
    import trio

    from smppgw.app.admin_records import register_record_commands
    from smppgw.store import StoreError, open_store

    local: dict[str, AdminCommand] = {}

    class _Local:
        def register(self, name: str, command: AdminCommand) -> None:
            local[name] = command

    async def main() -> dict[str, Any]:
        path = Path(config.store.path)
        path.parent.mkdir(parents=True, exist_ok=True)
        async with open_store(path, config=config.store.to_store_config()) as store:
            register_record_commands(
                _Local(),
                store,
                config_partners=lambda: config.partners,
                log=structlog.wrap_logger(structlog.ReturnLogger()),  # stdout is the answer's
            )
            try:
                return await local[str(request["cmd"])](request)
            except ValueError as exc:
                return {"ok": False, "error": str(exc)}

    try:
        return trio.run(main)
    except (StoreError, OSError) as exc:
        raise _Usage(str(exc)) from None


def _answer(args: argparse.Namespace, answer: dict[str, Any], done: Callable[[], str]) -> int:
    if args.json:
        print(json.dumps(answer, indent=2, ensure_ascii=False))
    elif answer.get("ok"):
        print(done())
    else:
        print(f"refused: {answer.get('error')}", file=sys.stderr)
    return 0 if answer.get("ok") else 1


def _msisdn(text: str, config: Config | None = None) -> str:
    from smppgw.imports.records import ValidationOptions, parse_msisdn

    options = ValidationOptions()
    if config is not None:
        options = ValidationOptions(country_code=config.server.country_code)
    try:
        return parse_msisdn(text, options)
    except ValueError as exc:
        raise _Usage(f"msisdn: {exc}") from None


def _pair(item: str, what: str) -> tuple[str, str]:
    name, sep, value = item.partition("=")
    if not sep or not name:
        raise _Usage(f"{what} wants NAME=VALUE, got {item!r}")
    return name, value


# ---------------------------------------------------------------------- orders


def _order_add(args: argparse.Namespace, config: Config) -> int:
    expires = None
    if args.expires is not None:
        try:
            day = datetime.strptime(args.expires, "%Y-%m-%d").replace(tzinfo=_tz(config))
        except ValueError:
            raise _Usage(f"--expires {args.expires!r} is not a YYYY-MM-DD date") from None
        expires = (day + timedelta(days=1)).timestamp()  # valid through that whole day
    request = {
        "cmd": "order.add",
        "partner": args.partner,
        "count": args.count,
        "kind": args.kind,
        "unit_cost": args.unit_cost,
        "price_minor": args.price,
        "expires_at": expires,
    }
    answer = _write(config, request)
    return _answer(args, answer, lambda: f"order {answer['id']} added for {args.partner}")


def _order_list(args: argparse.Namespace, config: Config) -> int:
    import time

    from smppgw.store.admin_queries import list_orders

    with _readonly(config) as conn:
        rows = list_orders(conn, partner=args.partner, include_ended=args.all, now=time.time())
    columns = "id partner kind limit spent reserved remaining price_minor:price"
    columns += " expires_at:ends state"
    return _show(args, [r.as_dict() for r in rows], columns, config)


def _order_cancel(args: argparse.Namespace, config: Config) -> int:
    answer = _write(config, {"cmd": "order.cancel", "id": args.id})
    return _answer(
        args,
        answer,
        lambda: (
            f"order {args.id} " + ("cancelled" if answer.get("cancelled") else "had already ended")
        ),
    )


# ---------------------------------------------------------------------- partners


def _password_hash() -> str:
    """Read a password (prompt typed twice, or stdin's first line) and hash it here, so
    only the hash travels to the daemon; never from argv (ps, shell history)."""
    import getpass

    from smppgw.gateway.auth import hash_password

    if sys.stdin.isatty():
        password = getpass.getpass("Partner password: ")
        if getpass.getpass("Again: ") != password:
            raise _Usage("the passwords differ")
    else:
        password = sys.stdin.readline().removesuffix("\n").removesuffix("\r")
    if not password:
        raise _Usage("the password is empty")
    if len(password.encode("utf-8")) > _MAX_SMPP_PASSWORD:
        raise _Usage(f"the password is longer than {_MAX_SMPP_PASSWORD} octets (SMPP 3.4)")
    return hash_password(password)


def _partner_add(args: argparse.Namespace, config: Config) -> int:
    settings: dict[str, Any] = {}
    for item in args.set:
        name, value = _pair(item, "--set")
        try:
            settings[name] = json.loads(value)
        except ValueError:
            settings[name] = value
    for key, values in (
        ("sources", args.source),
        ("short_codes", args.short_code),
        ("allowed_networks", args.network),
    ):
        if values:
            settings[key] = values
    request = {
        "cmd": "partner.add",
        "system_id": args.system_id,
        "password_hash": _password_hash(),
        "settings": settings,
    }
    answer = _write(config, request)
    return _answer(args, answer, lambda: f"partner {args.system_id} added")


def _partner_password(args: argparse.Namespace, config: Config) -> int:
    request = {"cmd": "partner.password", "system_id": args.system_id}
    request["password_hash"] = _password_hash()
    answer = _write(config, request)
    return _answer(args, answer, lambda: f"partner {args.system_id}: password changed")


def _partner_switch(args: argparse.Namespace, config: Config) -> int:
    verb = str(args.verb)
    answer = _write(config, {"cmd": f"partner.{verb}", "system_id": args.system_id})
    return _answer(args, answer, lambda: f"partner {args.system_id} {verb}d")


def _partner_list(args: argparse.Namespace, config: Config) -> int:
    from smppgw.app.admin import admin_request
    from smppgw.app.admin_records import partner_rows
    from smppgw.store.admin_queries import partner_accounts

    sock = _daemon(config)
    if sock is not None:
        answer = admin_request(sock, {"cmd": "partner.list"})
        if not answer.get("ok"):
            raise _Usage(str(answer.get("error")))
        rows: list[dict[str, Any]] = answer["partners"]
    elif Path(config.store.path).exists():
        with _readonly(config) as conn:
            rows = partner_rows(config.partners, partner_accounts(conn))
    else:
        rows = partner_rows(config.partners, [])
    return _show(args, rows, "system_id enabled origin billing sources short_codes refused", config)


# ---------------------------------------------------------------------- members


def _member_search(args: argparse.Namespace, config: Config) -> int:
    from smppgw.store.members import search_members

    if not (args.msisdn or args.member_id or args.field):
        raise _Usage("give --msisdn, --member-id or --field NAME=VALUE")
    field = _pair(args.field, "--field") if args.field else None
    msisdn = _msisdn(args.msisdn) if args.msisdn else None
    with _readonly(config) as conn:
        found = search_members(
            conn, msisdn=msisdn, member_id=args.member_id, field=field, limit=args.limit
        )
    rows = [{k: getattr(m, k) for k in m.__slots__} for m in found]
    columns = "member_id msisdn name province points created_at:since fields"
    return _show(args, rows, columns, config)


def _member_edit(args: argparse.Namespace, config: Config) -> int:
    changes: dict[str, Any] = {}
    for item in args.set:
        name, value = _pair(item, "--set")
        changes[name] = _msisdn(value) if name == "msisdn" else value
    answer = _write(config, {"cmd": "member.edit", "member_id": args.member_id, "set": changes})

    def done() -> str:
        m = answer["member"]
        fields = json.dumps(m["fields"], ensure_ascii=False)
        return f"member {m['member_id']}: {m['msisdn']} {m['name']} {m['province']} {fields}"

    return _answer(args, answer, done)


def _member_delete(args: argparse.Namespace, config: Config) -> int:
    if not args.yes:
        if not sys.stdin.isatty():
            raise _Usage("give --yes to delete without a terminal to ask on")
        reply = input(f"Delete member {args.member_id} and its points history? [y/N] ")
        if reply.strip().lower() not in ("y", "yes"):
            print("nothing deleted")
            return 1
    answer = _write(config, {"cmd": "member.delete", "member_id": args.member_id})
    return _answer(args, answer, lambda: f"member {args.member_id} deleted")


# ---------------------------------------------------------------------- opt-out list


def _optout_change(args: argparse.Namespace, config: Config) -> int:
    from smppgw.app.admin_records import MAX_OPT_OUT_NUMBERS

    numbers = [_msisdn(n, config) for n in args.msisdn]
    if args.file is not None:
        numbers += _numbers_in(Path(args.file), config)
    if not numbers:
        raise _Usage("give numbers, or --file")
    everywhere = bool(getattr(args, "everywhere", False))
    if everywhere and args.partner is not None:
        raise _Usage("--partner and --everywhere: one or the other")
    numbers = list(dict.fromkeys(numbers))
    source = f"file:{Path(args.file).name}" if args.file else "cli"
    changed = 0
    for start in range(0, len(numbers), MAX_OPT_OUT_NUMBERS):
        request = {
            "cmd": f"optout.{args.verb}",
            "msisdns": numbers[start : start + MAX_OPT_OUT_NUMBERS],
            "scope": args.partner or "",
            "source": source,
            "everywhere": everywhere,
        }
        answer = _write(config, request)
        if not answer.get("ok"):
            if changed:  # the requests before this one were committed
                answer["error"] = f"{answer.get('error')} ({changed} row(s) changed before)"
            return _answer(args, answer, str)
        changed += int(answer["changed"])
    whose = f"{args.partner}'s marketing" if args.partner else "every partner's marketing"
    if everywhere:
        whose = "every scope"
    if args.verb == "add":
        text = f"{changed} of {len(numbers)} number(s) added to the opt-out list ({whose})"
        if changed < len(numbers):
            text += f"; {len(numbers) - changed} were on it already"
    else:
        text = f"{changed} row(s) of {len(numbers)} number(s) off the opt-out list ({whose})"
    summary = {"ok": True, "numbers": len(numbers), "changed": changed}
    return _answer(args, summary, lambda: text)


def _numbers_in(path: Path, config: Config) -> list[str]:
    """The ``msisdn`` column of an operator's file (every bad line named at once)."""
    from smppgw.imports.records import ValidationOptions, parse_msisdn
    from smppgw.imports.tabular import TabularError, read_rows

    options = ValidationOptions(country_code=config.server.country_code)
    numbers: list[str] = []
    problems: list[str] = []
    try:
        for row in read_rows(path):
            if "msisdn" not in row.values:
                raise _Usage(f"{path.name}: no msisdn column")
            try:
                numbers.append(parse_msisdn(row.values["msisdn"], options))
            except ValueError as exc:
                problems.append(f"{path.name}:{row.line}: msisdn: {exc}")
    except (TabularError, OSError) as exc:
        raise _Usage(str(exc)) from None
    if problems:
        shown = "\n".join(problems[:20])
        more = f"\n... and {len(problems) - 20} more" if len(problems) > 20 else ""
        raise _Usage(f"nothing changed: {len(problems)} bad line(s)\n{shown}{more}")
    return numbers


def _optout_list(args: argparse.Namespace, config: Config) -> int:
    from smppgw.store.opt_out import ALL_PARTNERS, list_opt_outs

    scope = ALL_PARTNERS if args.partner == "all" else args.partner
    msisdn = _msisdn(args.msisdn, config) if args.msisdn else None
    with _readonly(config) as conn:
        rows = list_opt_outs(conn, msisdn=msisdn, scope=scope, limit=args.limit)
    columns = "msisdn scope:partner source created_at:since"
    return _show(args, [r.as_dict() for r in rows], columns, config)


# ---------------------------------------------------------------------- read-only lists


def _codes_list(args: argparse.Namespace, config: Config) -> int:
    from smppgw.store.admin_queries import list_codes

    used = True if args.used else False if args.free else None
    with _readonly(config) as conn:
        rows = list_codes(conn, campaign=args.campaign, used=used, limit=args.limit)
    columns = "code points valid_from valid_to used_by used_at query_count:queries"
    return _show(args, [r.as_dict() for r in rows], columns, config)


def _gifts_list(args: argparse.Namespace, config: Config) -> int:
    from smppgw.store.admin_queries import list_gifts

    with _readonly(config) as conn:
        rows = list_gifts(conn, gift_type=args.gift_type, free_only=args.free, limit=args.limit)
    columns = "id gift_type:type cost_points:cost serial assigned_to:given_to assigned_at:given_at"
    return _show(args, [r.as_dict() for r in rows], columns, config)


def _events_list(args: argparse.Namespace, config: Config) -> int:
    from smppgw.store.admin_queries import list_events

    subject = _msisdn(args.msisdn) if args.msisdn else None
    with _readonly(config) as conn:
        rows = list_events(conn, kind=args.kind, subject=subject, limit=args.limit)
    columns = "id created_at:time kind subject event_key:key processed_at:processed payload"
    return _show(args, [r.as_dict() for r in rows], columns, config)
