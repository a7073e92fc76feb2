"""``smppgw bench``: the one-command benchmark report, ``scripts/bench.py``, run from the
command line operators already know.

The report lives in ``scripts/`` beside the single benchmarks it reuses (they import each
other as top-level modules and are not part of the installed package), so this command
only finds the script in the checkout and runs it as a child process with the same
Python; every option after ``bench`` is passed on unchanged (``smppgw bench --help``
shows the script's own help).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import argparse

__all__ = ["BENCH_SCRIPT", "add_commands"]

#: ``scripts/bench.py`` of the checkout this package runs from.
BENCH_SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "bench.py"


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``bench``."""
    parser = commands.add_parser(
        "bench",
        help="run the benchmark report (scripts/bench.py; a checkout only)",
        description="Run scripts/bench.py; every option is passed on to it.",
        add_help=False,  # --help goes to the script, which knows the options
        prefix_chars="+",  # so that every "-x" is left to the script too
    )
    parser.add_argument("options", nargs="*")
    parser.set_defaults(handler=_bench)


def _bench(args: argparse.Namespace) -> int:
    if not BENCH_SCRIPT.is_file():
        print(
            f"smppgw bench: {BENCH_SCRIPT} not found: the benchmark report runs from a"
            " checkout of smppgw (the scripts are not installed with the package)",
            file=sys.stderr,
        )
        return 2
    return subprocess.run(
        [sys.executable, str(BENCH_SCRIPT), *args.options], check=False
    ).returncode
