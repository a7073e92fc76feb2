"""``smppgw report ...``: operators' reports from the journal file, read-only."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import argparse

__all__ = ["add_commands"]


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``smppgw report``."""
    parser = commands.add_parser("report", help="reports from the journal (read-only)")
    parser.set_defaults(handler=_not_yet)


def _not_yet(args: argparse.Namespace) -> int:
    print("smppgw report: not available yet", file=sys.stderr)
    return 2
