"""From a validated scenario file to a ready handler, and the keyword table of them all.

``handler:`` is a built-in name (:data:`BUILTIN`) or ``package.module:Class`` for an
operator's own handler (a subclass of :class:`~smppgw.scenarios.handler.Handler`
importable by the daemon's Python). Everything that can be checked before the first MO
is checked here, so that a typo is refused at load or reload, not met by a subscriber:
the handler exists, its settings validate, every mapped command is one it knows, every
reply names an outcome it can return, and no keyword is claimed twice on a short code.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from smppgw.scenarios.handler import Handler

if TYPE_CHECKING:
    from smppgw.scenarios.config import ScenarioFile

__all__ = [
    "BUILTIN",
    "KeywordTable",
    "LoadedScenario",
    "ScenarioProblem",
    "SettingsInvalid",
    "build_scenario",
    "resolve_handler",
]

#: Built-in handler names and where they live.
BUILTIN: dict[str, str] = {
    "registration": "smppgw.scenarios.builtin.registration:Registration",
    "points": "smppgw.scenarios.builtin.points:Points",
    "redemption": "smppgw.scenarios.builtin.redemption:Redemption",
    "airtime": "smppgw.scenarios.builtin.airtime:AirtimeAdvance",
    "optout": "smppgw.scenarios.builtin.optout:OptOutHandler",
    "echo": "smppgw.scenarios.builtin.echo:Echo",
}


class ScenarioProblem(ValueError):
    """A scenario that cannot be loaded; ``key`` is the dotted key in its file."""

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(f"{key}: {reason}" if key else reason)
        self.key = key
        self.reason = reason


class SettingsInvalid(ScenarioProblem):
    """The ``settings:`` do not validate against the handler's model; ``error`` has the
    locations (the loader maps them to lines)."""

    def __init__(self, error: ValidationError) -> None:
        super().__init__("settings", str(error))
        self.error = error


@dataclass(frozen=True)
class LoadedScenario:
    """A scenario ready to run: its file, its handler, its merged reply templates."""

    file: ScenarioFile
    handler: Handler
    replies: dict[str, str]
    source: str = ""

    @property
    def name(self) -> str:
        return self.file.name

    def template(self, outcome: str) -> str | None:
        return self.replies.get(outcome)


def resolve_handler(spec: str) -> type[Handler]:
    """The handler class named by ``spec`` (a built-in name or ``module:Class``).

    Raises:
        ScenarioProblem: it cannot be found or is not a Handler.
    """
    target = BUILTIN.get(spec, spec)
    module_name, sep, class_name = target.partition(":")
    if not sep or not module_name or not class_name:
        known = ", ".join(sorted(BUILTIN))
        raise ScenarioProblem(
            "handler", f"{spec!r} is neither a built-in ({known}) nor 'module:Class'"
        )
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ScenarioProblem("handler", f"cannot import {module_name!r}: {exc}") from None
    cls = getattr(module, class_name, None)
    if not (isinstance(cls, type) and issubclass(cls, Handler)):
        raise ScenarioProblem("handler", f"{target!r} is not a Handler subclass")
    return cls


def build_scenario(file: ScenarioFile, source: str = "") -> LoadedScenario:
    """Check ``file`` against its handler and make the handler.

    Raises:
        ScenarioProblem: with the dotted key of what is wrong.
    """
    cls = resolve_handler(file.handler)
    try:
        settings: Any = cls.Settings.model_validate(file.settings)
    except ValidationError as exc:
        raise SettingsInvalid(exc) from None
    for command in file.commands:
        if command not in cls.commands:
            known = ", ".join(sorted(cls.commands)) or "none"
            raise ScenarioProblem(
                f"commands.{command}", f"the {file.handler} handler has no such command ({known})"
            )
    for outcome in file.replies:
        if outcome not in cls.default_replies and outcome not in ("error",):
            known = ", ".join(sorted(cls.default_replies))
            raise ScenarioProblem(f"replies.{outcome}", f"not an outcome of the handler ({known})")
    replies = {"error": DEFAULT_ERROR_REPLY, **cls.default_replies, **file.replies}
    return LoadedScenario(file, cls(file, settings), replies, source)


DEFAULT_ERROR_REPLY = "Sorry, we could not process your message now. Please try again later."


class KeywordTable:
    """Which scenario and command an MO reaches: (short code, keyword) -> scenario."""

    def __init__(self, scenarios: list[LoadedScenario]) -> None:
        self.scenarios = {s.name: s for s in scenarios}
        self._table: dict[tuple[str, str], tuple[LoadedScenario, str]] = {}
        self.short_codes: set[str] = set()
        for scenario in scenarios:
            if not scenario.file.enabled:
                continue
            for code in scenario.file.short_codes:
                self.short_codes.add(code)
                for keyword, command in scenario.file.keyword_map().items():
                    other = self._table.get((code, keyword))
                    if other is not None and other[0] is not scenario:
                        raise ScenarioProblem(
                            "commands",
                            f"keyword {keyword} on {code} is claimed by both"
                            f" {other[0].name} ({other[0].source}) and {scenario.name}",
                        )
                    self._table[(code, keyword)] = (scenario, command)

    def match(self, short_code: str, keyword: str) -> tuple[LoadedScenario, str] | None:
        return self._table.get((short_code, keyword))

    def service_keywords(self, short_code: str) -> list[str]:
        """The first keyword of every command on ``short_code``, scenario by scenario
        (what HELP lists), each once."""
        out: list[str] = []
        for scenario in self.on_short_code(short_code):
            for spec in scenario.file.commands.values():
                if spec.keywords and spec.keywords[0] not in out:
                    out.append(spec.keywords[0])
        return out

    def on_short_code(self, short_code: str) -> list[LoadedScenario]:
        return [
            s
            for s in self.scenarios.values()
            if s.file.enabled and short_code in s.file.short_codes
        ]
