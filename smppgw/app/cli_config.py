"""The config file a command-line tool works on, and how it says it cannot.

Every operator command (``smppgw report``, ``order``, ``molog``...) reads the same
config to find the journal and the admin socket: the file given with ``--config``, or
the embedded default when the default path is absent (a checkout or a fresh install).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from smppgw.app.config import Config

__all__ = ["DEFAULT_CONFIG", "UsageError", "cli_config"]

#: The embedded default, relative to the working directory (a checkout's root).
DEFAULT_CONFIG = "config/smppgw.yaml"


class UsageError(Exception):
    """A command that cannot run as asked: its message goes to stderr, the exit code
    is 2."""


def cli_config(path: str) -> Config:
    """The config at ``path``; the built-in default when ``path`` is the default one and
    absent.

    Raises:
        UsageError: the file is missing (given explicitly) or invalid (every problem).
    """
    from smppgw.app.config import ConfigError, default_config, load_config

    if not Path(path).exists():
        if path == DEFAULT_CONFIG:
            return default_config()
        raise UsageError(f"no config file {path}")
    try:
        return load_config(path)
    except ConfigError as exc:
        raise UsageError(str(exc)) from None
