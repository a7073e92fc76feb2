"""The building blocks every configuration section uses: the strict base model, host:port
endpoints, the enums of the config's vocabulary, secrets from the environment or files,
and the error type of rules that span sections.

Split from ``config_models.py`` (which holds the sections and ``Config`` itself) so
that the section modules (``partner_models``, ``scenario_models``, ``alert_models``...)
can share them without the import order games a cycle would need.
"""

from __future__ import annotations

import enum
import os
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated

from pydantic import BaseModel, ConfigDict, PlainSerializer, PlainValidator, ValidationInfo

if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path

__all__ = [
    "MAX_ADDRESS_RANGE",
    "MAX_PASSWORD",
    "MAX_SERVICE_TYPE",
    "MAX_SYSTEM_ID",
    "MAX_SYSTEM_TYPE",
    "NPI_VALUES",
    "BindMode",
    "CrossFieldError",
    "DefaultAlphabet",
    "Endpoint",
    "EndpointField",
    "LogFormat",
    "LogLevel",
    "dotted_key",
]

#: SMPP 3.4 5.2.1/5.2.2/5.2.3: C-octet strings of 16, 9 and 13 octets with the NUL.
MAX_SYSTEM_ID = 15
MAX_PASSWORD = 8
MAX_SYSTEM_TYPE = 12
#: SMPP 3.4 5.2.7 and 5.2.11: a bind's address_range (41 with the NUL), service_type (6).
MAX_ADDRESS_RANGE = 40
MAX_SERVICE_TYPE = 5
#: SMPP 3.4 5.2.6: NPI values the spec defines.
NPI_VALUES = frozenset({0, 1, 3, 4, 6, 8, 9, 10, 14, 18})

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,31}", re.ASCII)
_DIGITS = re.compile(r"[0-9]{1,15}", re.ASCII)


class CrossFieldError(ValueError):
    """Problems that span fields, each with its own location below :class:`Config`.

    Raised from a model validator, where pydantic can only report the model itself;
    the loader finds this exception in the error's context and reports every problem
    at its own key instead.
    """

    def __init__(self, problems: list[tuple[tuple[str | int, ...], str]]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"{dotted_key(loc)}: {msg}" for loc, msg in problems))


def dotted_key(loc: tuple[str | int, ...]) -> str:
    """``("carriers", 1, "tls")`` -> ``carriers[1].tls``: how problems name a key."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


class _Model(BaseModel):
    # hide_input_in_errors: a ValidationError printed or logged must not show a password.
    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)


# -- small value types ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A ``host:port`` to listen on or connect to; IPv6 hosts are written ``[::1]:9464``."""

    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def _parse_endpoint(value: object) -> Endpoint:
    if isinstance(value, Endpoint):
        return value
    if not isinstance(value, str):
        raise ValueError("must be a 'host:port' string")
    host, sep, port_text = value.strip().rpartition(":")
    if not sep or not host:
        raise ValueError(f"{value!r} is not 'host:port'")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise ValueError("write an IPv6 address in brackets: '[::1]:9464'")
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise ValueError(f"port {port_text!r} is not a number in 1..65535")
    return Endpoint(host, int(port_text))


EndpointField = Annotated[
    Endpoint, PlainValidator(_parse_endpoint), PlainSerializer(str, return_type=str)
]


class BindMode(enum.StrEnum):
    """Which bind PDU a carrier session sends."""

    TRANSMITTER = "transmitter"
    RECEIVER = "receiver"
    TRANSCEIVER = "transceiver"

    @property
    def can_send(self) -> bool:
        """Whether MT can go out on such a bind (a receiver bind only gets deliver_sm)."""
        return self is not BindMode.RECEIVER


class DefaultAlphabet(enum.StrEnum):
    """What the SMSC takes ``data_coding`` 0 to mean: GSM 03.38 (the norm) or Latin-1."""

    GSM7 = "gsm7"
    LATIN1 = "latin1"


class LogFormat(enum.StrEnum):
    JSON = "json"
    CONSOLE = "console"


class LogLevel(enum.StrEnum):
    DEBUG = "debug"
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"
    CRITICAL = "critical"


def _env(info: ValidationInfo) -> Mapping[str, str]:
    context = info.context
    if isinstance(context, dict) and "env" in context:
        env: Mapping[str, str] = context["env"]
        return env
    return os.environ


def _read_secret_file(path: Path) -> str:
    # One trailing newline is an editor's, not the password's.
    return path.read_text(encoding="utf-8").removesuffix("\n").removesuffix("\r")


def _check_password(secret: str) -> None:
    if not secret:
        raise ValueError("the password is empty")
    if len(secret) > MAX_PASSWORD:
        raise ValueError(f"the password is longer than {MAX_PASSWORD} characters (SMPP 3.4)")


# -- sections ---------------------------------------------------------------------------
