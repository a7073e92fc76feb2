"""The ``smppgw`` command line."""

from __future__ import annotations

import argparse
import sys

from smppgw import __version__
from smppgw.app.admin_cli import add_commands as add_admin_commands
from smppgw.app.bench_cli import add_commands as add_bench_commands
from smppgw.app.message_cli import add_commands as add_message_commands
from smppgw.app.ops_cli import add_commands as add_ops_commands
from smppgw.app.retention_cli import add_commands as add_retention_commands
from smppgw.app.scenario_cli import add_commands as add_scenario_commands
from smppgw.imports.cli import add_commands as add_import_commands
from smppgw.reports.cli import add_commands as add_report_commands
from smppgw.sim.cli import add_commands as add_sim_commands

#: The embedded default, relative to the working directory (a checkout's root).
DEFAULT_CONFIG = "config/smppgw.yaml"


def _add_check_config(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "check-config",
        help="validate a config file and summarise it",
        description="Validate a config file. Exit 0 if usable, 2 with every problem if not.",
    )
    parser.add_argument("--config", "-c", default=DEFAULT_CONFIG, help="the YAML config file")
    parser.set_defaults(handler=_check_config)


def _check_config(args: argparse.Namespace) -> int:
    # Imported here so that ``--version`` and ``--help`` do not pay for pydantic.
    from smppgw.app.config import ConfigError, load_config
    from smppgw.app.scenario_load import load_scenarios

    try:
        config = load_config(args.config)
        scenarios = load_scenarios(config.scenarios.directory) if config.scenarios.enabled else None
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    print(f"ok: {args.config}")
    print(config.summary())
    if scenarios is not None:
        names = ", ".join(sorted(scenarios.scenarios)) or "none"
        print(f"scenarios in {config.scenarios.directory}: {names}")
    return 0


def _add_hash_password(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "hash-password",
        help="hash a partner's SMPP password for partners[].password_hash",
        description=(
            "Print the scrypt hash of a partner's password, for partners[].password_hash."
            " The password is read from a prompt (typed twice) or, when stdin is not a"
            " terminal, from its first line; never from the command line, where other"
            " users and the shell history would see it."
        ),
    )
    parser.set_defaults(handler=_hash_password)


#: SMPP 3.4 5.2.2: the bind password is a C-octet string of 9 octets with the NUL.
_MAX_SMPP_PASSWORD = 8


def _hash_password(args: argparse.Namespace) -> int:
    import getpass

    from smppgw.gateway.auth import hash_password

    if sys.stdin.isatty():
        password = getpass.getpass("Partner password: ")
        if getpass.getpass("Again: ") != password:
            print("error: the passwords differ", file=sys.stderr)
            return 2
    else:
        password = sys.stdin.readline().removesuffix("\n").removesuffix("\r")
    if not password:
        print("error: the password is empty", file=sys.stderr)
        return 2
    if len(password.encode("utf-8")) > _MAX_SMPP_PASSWORD:
        print(
            f"error: the password is longer than {_MAX_SMPP_PASSWORD} octets:"
            " an SMPP 3.4 bind cannot carry it",
            file=sys.stderr,
        )
        return 2
    print(hash_password(password))
    return 0


def _add_run(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "run",
        help="run the gateway daemon",
        description=(
            "Run the gateway daemon in the foreground (systemd runs it so). Without"
            f" --config it uses {DEFAULT_CONFIG} when present, else the built-in default:"
            " SQLite under var/ and the built-in SMSC simulator as the carrier."
        ),
    )
    parser.add_argument("--config", "-c", default=None, help="the YAML config file")
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from pathlib import Path

    import trio

    from smppgw.app.config import ConfigError, default_config, load_config
    from smppgw.app.daemon import run_daemon
    from smppgw.app.scenario_load import load_scenarios

    candidate = Path(args.config) if args.config else Path(DEFAULT_CONFIG)
    path: Path | None = candidate if args.config or candidate.exists() else None
    try:
        config = load_config(path) if path is not None else default_config()
        if config.scenarios.enabled:
            load_scenarios(config.scenarios.directory)  # refused here, before anything starts
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    trio.run(run_daemon, config, path)
    return 0


def _add_moderation(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "moderation",
        help="list, approve or reject messages held for moderation (daemon running)",
        description="Talk to the running daemon through its admin socket.",
    )
    parser.add_argument("action", choices=("list", "approve", "reject"))
    parser.add_argument("ids", nargs="*", type=int, help="message ids (approve, reject)")
    parser.add_argument("--reason", default=None, help="why (reject)")
    parser.add_argument("--limit", type=int, default=100, help="list: at most this many")
    parser.add_argument("--config", "-c", default=DEFAULT_CONFIG, help="the YAML config file")
    parser.add_argument(
        "--socket", default=None, help="the admin socket (default: the config's admin_socket)"
    )
    parser.add_argument("--json", action="store_true", help="print the answer as JSON")
    parser.set_defaults(handler=_moderation)


def _moderation(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from smppgw.app.admin import admin_request
    from smppgw.app.cli_config import UsageError, cli_config

    request: dict[str, object] = {"cmd": f"moderation.{args.action}"}
    if args.action == "list":
        request["limit"] = args.limit
    else:
        if not args.ids:
            print("give the ids of the messages", file=sys.stderr)
            return 2
        request["ids"] = args.ids
        if args.reason:
            request["reason"] = args.reason
    socket = args.socket
    if socket is None:
        try:
            socket = cli_config(args.config).admin_socket
        except UsageError as exc:
            print(exc, file=sys.stderr)
            return 2
        if socket is None:
            print("admin_socket is off in the config: give --socket", file=sys.stderr)
            return 2
    try:
        answer = admin_request(Path(socket), request)
    except OSError as exc:
        print(f"cannot reach the daemon at {socket}: {exc}", file=sys.stderr)
        return 2
    if args.json or not answer.get("ok"):
        print(json.dumps(answer, indent=2, ensure_ascii=False))
        return 0 if answer.get("ok") else 1
    if args.action == "list":
        print(held_table(answer["messages"]))
    else:
        key = {"approve": "approved", "reject": "rejected"}[args.action]
        print(f"{key}: {', '.join(map(str, answer.get(key, []))) or 'none (not held)'}")
        if answer.get("opted_out"):
            ids = ", ".join(map(str, answer["opted_out"]))
            print(f"rejected instead, the number opted out of marketing meanwhile: {ids}")
    return 0


def held_table(messages: list[dict[str, object]]) -> str:
    """Held messages as a moderator reads them: who sent what to whom, the text itself
    (one line: a line break shows as a space)."""
    if not messages:
        return "no messages held"
    lines = [f"{'id':>8}  {'partner':<15} {'source':<12} {'destination':<16} text"]
    for m in messages:
        text = " ".join(str(m.get("text", "")).split())
        lines.append(
            f"{m['id']!s:>8}  {m['partner']!s:<15} {m['source']!s:<12} "
            f"{m['destination']!s:<16} {text}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``smppgw`` console script."""
    parser = argparse.ArgumentParser(prog="smppgw", description=__doc__)
    parser.add_argument("--version", action="version", version=f"smppgw {__version__}")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")
    _add_check_config(commands)
    _add_hash_password(commands)
    add_sim_commands(commands)
    add_import_commands(commands)
    _add_run(commands)
    _add_moderation(commands)
    add_scenario_commands(commands)
    add_ops_commands(commands)
    add_report_commands(commands)
    add_admin_commands(commands)
    add_message_commands(commands)
    add_bench_commands(commands)
    add_retention_commands(commands)
    args = parser.parse_args(argv)
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 0
    result: int = handler(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
