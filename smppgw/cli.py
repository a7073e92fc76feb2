"""The ``smppgw`` command line."""

from __future__ import annotations

import argparse
import sys

from smppgw import __version__

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

    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    print(f"ok: {args.config}")
    print(config.summary())
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``smppgw`` console script."""
    parser = argparse.ArgumentParser(prog="smppgw", description=__doc__)
    parser.add_argument("--version", action="version", version=f"smppgw {__version__}")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")
    _add_check_config(commands)
    args = parser.parse_args(argv)
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 0
    result: int = handler(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
