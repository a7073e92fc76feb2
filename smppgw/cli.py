"""The ``smppgw`` command line."""

from __future__ import annotations

import argparse
import sys

from smppgw import __version__


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``smppgw`` console script."""
    parser = argparse.ArgumentParser(prog="smppgw", description=__doc__)
    parser.add_argument("--version", action="version", version=f"smppgw {__version__}")
    parser.parse_args(argv)
    parser.print_help()
    return 0


if __name__ == "__main__":
    sys.exit(main())
