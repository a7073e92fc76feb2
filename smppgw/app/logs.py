"""Structured logs: one JSON object per line on stdout, numbers masked, secrets dropped.

The daemon runs under systemd, which collects stdout; operators search and ship those
lines, so each line is one JSON object with fixed keys first::

    {"timestamp": "2026-05-01T08:00:00.123456Z", "level": "info",
     "logger": "smppgw.net.carrier", "event": "bound", "carrier": "viettel", "bind": 0}

Context bound with ``structlog.contextvars.bind_contextvars`` (per session task: trio
gives each task its own context) appears on every line logged inside it, including
lines from libraries that use the stdlib ``logging`` module: both go through one
handler and the same processors, so nothing reaches stdout unmasked.

Two processors protect what the logs must not hold:

- :func:`redact_secrets`: any key named like a password, secret, token or API key, at
  any depth, and any :class:`~pydantic.SecretStr` value, becomes ``"[redacted]"``.
  Always on: there is no setting under which a password should reach a log.
- :func:`mask_numbers` (``logging.mask_numbers``): subscriber numbers are personal
  data. Values of number keys (``source_addr``, ``destination_addr``, ``msisdn``,
  ``source``...) and any run of 8 or more digits in the ``event`` text and in free-text
  keys (:data:`TEXT_KEYS`: error and refusal texts, the rendered traceback, and the
  ``correlation``/``key``/``ref`` of an event step, which are built from the operator's
  event key and so may quote a number) keep their first and last three digits:
  ``84912345678`` becomes ``849*****678``. Short codes (``8055``) and brandnames are not
  numbers of people and stay readable; so does an MO step's own ``mo-<inbound id>``
  correlation. Put ids in id keys (``message_id``, ``inbound_id``), not in the event
  text, or a long decimal id will be masked too.

Level filtering happens before any processor runs (``make_filtering_bound_logger``),
so a ``log.debug`` per PDU costs a method call when the level is ``info``.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING, Final, TextIO

import structlog
from pydantic import SecretStr

if TYPE_CHECKING:
    from structlog.typing import EventDict, Processor, WrappedLogger

    from smppgw.app.config_models import LoggingSettings

__all__ = [
    "NUMBER_KEYS",
    "TEXT_KEYS",
    "configure_logging",
    "mask_number_text",
    "mask_numbers",
    "redact_secrets",
]

#: Keys whose values are subscriber numbers.
NUMBER_KEYS: Final = frozenset(
    {
        "source_addr",
        "destination_addr",
        "dest_addr",
        "destinations",
        "msisdn",
        "phone",
        "recipient",
        "sender",
        # carrier_inbound logs an alert_notification's source_addr as ``source``.
        "source",
        "destination",
    }
)
#: Keys whose values are free text that may quote a number (an error from the charging
#: system, a traceback, an event key chosen by the operator's systems): 8+ digit runs
#: in them are masked like those of the ``event`` text.
TEXT_KEYS: Final = frozenset(
    {
        "correlation",
        "key",
        "ref",
        "detail",
        "reason",
        "error",
        "problems",
        "text",
        "exception",
    }
)
REDACTED: Final = "[redacted]"

_SECRET_KEY = re.compile(r"pass(word|wd|phrase)?$|secret|token|api_?key|authori[sz]ation", re.I)
# 8+ digits, optionally after '+', not inside a longer run of digits.
_NUMBER = re.compile(r"(?<![0-9])(\+?[0-9]{3})([0-9]{2,})([0-9]{3})(?![0-9])", re.ASCII)
# The correlation of an MO step is our journal id, never a number of a person.
_OWN_CORRELATION = re.compile(r"mo-[0-9]+", re.ASCII)
_FIRST_KEYS: Final = ("timestamp", "level", "logger", "event")
_MAX_DEPTH: Final = 6
# Marks the handler we install, so a second configure_logging replaces only it.
_HANDLER_MARK: Final = "_smppgw_handler"


def mask_number_text(text: str) -> str:
    """``"to 84912345678"`` -> ``"to 849*****678"``: mask every run of 8+ digits."""
    return _NUMBER.sub(lambda m: f"{m[1]}{'*' * len(m[2])}{m[3]}", text)


def _mask_value(value: object) -> object:
    if isinstance(value, str):
        return mask_number_text(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return mask_number_text(str(value))
    if isinstance(value, bytes | bytearray):
        # Raw PDU text (an unreadable receipt): JSON would write its repr, number and all.
        return mask_number_text(repr(bytes(value)))
    if isinstance(value, list | tuple | set | frozenset):
        return [_mask_value(item) for item in value]
    return value


def mask_numbers(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    """structlog processor: mask subscriber numbers (see the module docstring)."""
    for key in NUMBER_KEYS.intersection(event_dict):
        event_dict[key] = _mask_value(event_dict[key])
    for key in TEXT_KEYS.intersection(event_dict):
        value = event_dict[key]
        if key == "correlation" and isinstance(value, str) and _OWN_CORRELATION.fullmatch(value):
            continue
        event_dict[key] = _mask_value(value)
    event = event_dict.get("event")
    if isinstance(event, str):
        event_dict["event"] = mask_number_text(event)
    return event_dict


def _redact(value: object, depth: int) -> object:
    if isinstance(value, SecretStr):
        return REDACTED
    if depth >= _MAX_DEPTH:
        return value
    if isinstance(value, Mapping):
        return {
            k: REDACTED if isinstance(k, str) and _SECRET_KEY.search(k) else _redact(v, depth + 1)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [_redact(item, depth + 1) for item in value]
    return value


def redact_secrets(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    """structlog processor: replace secret-named keys and SecretStr values, at any depth."""
    for key, value in event_dict.items():
        if _SECRET_KEY.search(key):
            event_dict[key] = REDACTED
        elif isinstance(value, SecretStr | Mapping | list | tuple):
            event_dict[key] = _redact(value, 1)
    return event_dict


def _order_keys(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    """Fixed keys first, then the rest sorted: lines read alike when tailed by eye.

    Sorted because context variables come out of ``merge_contextvars`` in no stable
    order, and the same event should always print the same way.
    """
    ordered: EventDict = {k: event_dict.pop(k) for k in _FIRST_KEYS if k in event_dict}
    ordered.update(sorted(event_dict.items()))
    return ordered


def _drop_formatted_message(
    _logger: WrappedLogger, _method: str, event_dict: EventDict
) -> EventDict:
    """Drop ``message``, the unmasked copy of ``event`` another stdlib handler may have set.

    ``ExtraAdder`` copies every non-standard attribute of a stdlib record, and
    ``logging.Formatter.format`` stores the formatted text on the record as
    ``message``: with a second handler (pytest's, a syslog one) it would come along.
    """
    event_dict.pop("message", None)
    return event_dict


def configure_logging(settings: LoggingSettings, *, stream: TextIO | None = None) -> None:
    """Send structlog and stdlib ``logging`` through one handler writing to ``stream``.

    Args:
        settings: level, format and masking.
        stream: where lines go; stdout by default (tests pass a ``StringIO``).

    Calling it again replaces the previous set-up (for tests and a config reload);
    loggers already used keep their level until the process restarts, the price of
    ``cache_logger_on_first_use`` on the hot path.
    """
    out = sys.stdout if stream is None else stream
    level = logging.getLevelNamesMapping()[settings.level.upper()]
    timestamper = structlog.processors.TimeStamper(fmt="iso", utc=True)
    before: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        timestamper,
    ]
    protect: list[Processor] = [redact_secrets]
    if settings.mask_numbers:
        # The traceback is rendered first so that the exception's text (which may quote
        # a number) is masked with the rest; unmasked it would go out as it is.
        protect += [structlog.processors.format_exc_info, mask_numbers]
    renderer: list[Processor]
    if settings.format == "json":
        renderer = [
            structlog.processors.format_exc_info,
            _order_keys,
            structlog.processors.JSONRenderer(),
        ]
    else:
        renderer = [structlog.dev.ConsoleRenderer(colors=out.isatty())]

    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*before, structlog.stdlib.ExtraAdder(), _drop_formatted_message],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            *protect,
            *renderer,
        ],
    )
    handler = logging.StreamHandler(out)
    handler.setFormatter(formatter)
    setattr(handler, _HANDLER_MARK, True)
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, _HANDLER_MARK, False)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)

    structlog.configure(
        processors=[*before, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.make_filtering_bound_logger(level),
        cache_logger_on_first_use=True,
    )
