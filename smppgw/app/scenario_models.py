"""``scenarios:`` in the main config: where the scenario files are and engine-wide rules.

The scenario files themselves (``scenarios/*.yaml``) are validated by
:mod:`smppgw.app.scenario_load`; this section only says where they live and how the
engine behaves for all of them::

    scenarios:
      directory: scenarios           # *.yaml here, loaded at start and on SIGHUP
      utc_offset: "+07:00"           # campaign days, per-day limits, statements
      help_reply: "Sai cu phap. Soan HELP gui {short_code}"
      help_keywords: [HELP, HD]      # answered with services_reply
      services_reply: "Dich vu tren {short_code}: {keywords}"
      events_dir: var/events         # *.jsonl dropped here are fed to the scenarios
      statement: {enabled: true, day: last, time: "20:00"}
"""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, field_validator

from smppgw.scenarios.engine import DEFAULT_HELP, DEFAULT_SERVICES, EngineSettings
from smppgw.scenarios.keywords import normalize

__all__ = ["ScenarioSettings", "StatementSettings", "parse_utc_offset"]

_OFFSET = re.compile(r"^([+-])(\d{2}):(\d{2})$")
_TIME = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")


def parse_utc_offset(text: str) -> timedelta:
    """``"+07:00"`` -> 7 hours; ValueError otherwise."""
    match = _OFFSET.match(text)
    if match is None or int(match.group(2)) > 14 or int(match.group(3)) > 59:
        raise ValueError('an offset like "+07:00" or "-05:30"')
    sign = -1 if match.group(1) == "-" else 1
    return sign * timedelta(hours=int(match.group(2)), minutes=int(match.group(3)))


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class StatementSettings(_Model):
    """The monthly points statement: on ``day`` of the month (``last`` or 1-28) at
    ``time`` local time, every member with points activity that month gets their
    balance under the brandname. Sent once per month and scenario, even across restarts."""

    enabled: bool = True
    day: Literal["last"] | int = "last"
    time: str = "20:00"

    @field_validator("day")
    @classmethod
    def _day(cls, value: object) -> object:
        if isinstance(value, int) and not 1 <= value <= 28:
            raise ValueError("a day from 1 to 28, or 'last'")
        return value

    @field_validator("time")
    @classmethod
    def _time(cls, value: str) -> str:
        if not _TIME.match(value):
            raise ValueError('a time like "20:00"')
        return value


class ScenarioSettings(_Model):
    enabled: bool = True
    directory: Path = Path("scenarios")
    utc_offset: str = "+07:00"
    help_reply: str = DEFAULT_HELP
    #: Keywords answered with ``services_reply`` (the list of a short code's keywords).
    help_keywords: tuple[str, ...] = ("HELP",)
    services_reply: str = DEFAULT_SERVICES
    strip_accents: bool = True
    events_dir: Path | None = Path("var/events")
    statement: StatementSettings = StatementSettings()

    @field_validator("utc_offset")
    @classmethod
    def _offset(cls, value: str) -> str:
        parse_utc_offset(value)
        return value

    def engine_settings(self) -> EngineSettings:
        return EngineSettings(
            help_reply=self.help_reply,
            help_keywords=tuple(normalize(k) for k in self.help_keywords),
            services_reply=self.services_reply,
            utc_offset=parse_utc_offset(self.utc_offset),
            strip_accents=self.strip_accents,
        )
