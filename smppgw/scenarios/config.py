"""A scenario file (``scenarios/*.yaml``) as a validated model.

One file is one scenario: which short codes and keywords reach it, which handler runs
it, who the replies come from, what they say, when the campaign runs, and the handler's
own settings. Example (the shipped demo set is in ``scenarios/``)::

    name: loyalty-points
    short_codes: ["8055"]
    handler: points                    # built-in name, or "package.module:Class"
    commands:
      credit: {keywords: [TD, TICHDIEM]}
      balance: {keywords: [DIEM]}
    sender: {reply: "8055", brandname: ACME}
    campaign: {starts: 2026-01-01, ends: 2026-12-31}
    replies:
      credited: "Ban duoc cong {points} diem. Tong diem: {balance}."
    settings:
      wrong_codes_per_day: 5

Keywords compare without case or diacritics (``TD``, ``td``, ``Tđ``). A keyword may be
claimed by one scenario per short code only; the loader refuses a clash, with both files.
"""

from __future__ import annotations

import re
import string
from datetime import date  # noqa: TC003 (pydantic needs it at run time)
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from smppgw.scenarios.keywords import normalize

__all__ = ["Campaign", "CommandKeywords", "ScenarioFile", "Sender", "template_fields"]

_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
_SHORT_CODE = re.compile(r"^[0-9A-Za-z]{2,15}$")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CommandKeywords(_Model):
    """The keywords (and aliases) that select one of the handler's commands."""

    keywords: tuple[str, ...] = Field(min_length=1)

    @field_validator("keywords")
    @classmethod
    def _plain(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        out = []
        for keyword in value:
            norm = normalize(keyword)
            if not norm or " " in norm:
                raise ValueError(f"a keyword is one word, not {keyword!r}")
            out.append(norm)
        return tuple(out)


class Sender(_Model):
    """Who the MTs come from: ``reply`` for the free reply to an MO (default: the short
    code the MO was sent to), ``brandname`` for every other MT (gift cards, statements,
    offers; default: ``reply``)."""

    reply: str | None = None
    brandname: str | None = Field(default=None, max_length=11)


class Campaign(_Model):
    """The days (in the operator's time zone, inclusive) the scenario credits/redeems."""

    starts: date | None = None
    ends: date | None = None

    @model_validator(mode="after")
    def _ordered(self) -> Campaign:
        if self.starts and self.ends and self.ends < self.starts:
            raise ValueError("campaign.ends is before campaign.starts")
        return self


def template_fields(template: str) -> set[str]:
    """The placeholder names of a reply template (``{points}`` -> ``points``).

    Raises:
        ValueError: the template is not a valid format string.
    """
    names = set()
    for _, name, _, _ in string.Formatter().parse(template):
        if name is not None:
            if not name.isidentifier():
                raise ValueError(f"placeholder {{{name}}} is not a plain name")
            names.add(name)
    return names


class ScenarioFile(_Model):
    """One scenario file; ``settings`` is checked by the handler's own model later."""

    name: str
    short_codes: tuple[str, ...] = Field(min_length=1)
    handler: str
    enabled: bool = True
    commands: dict[str, CommandKeywords] = Field(default_factory=dict)
    sender: Sender = Sender()
    campaign: Campaign | None = None
    replies: dict[str, str] = Field(default_factory=dict)
    settings: dict[str, Any] = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError("lower-case letters, digits, '-', '_' and '.', up to 64")
        return value

    @field_validator("short_codes")
    @classmethod
    def _codes(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for code in value:
            if not _SHORT_CODE.match(code):
                raise ValueError(f"{code!r} is not a short code (2-15 letters or digits)")
        return value

    @field_validator("replies")
    @classmethod
    def _templates(cls, value: dict[str, str]) -> dict[str, str]:
        for outcome, template in value.items():
            try:
                template_fields(template)
            except ValueError as exc:
                raise ValueError(f"replies.{outcome}: {exc}") from None
        return value

    def keyword_map(self) -> dict[str, str]:
        """Normalized keyword -> command name."""
        out: dict[str, str] = {}
        for command, spec in self.commands.items():
            for keyword in spec.keywords:
                out[keyword] = command
        return out
