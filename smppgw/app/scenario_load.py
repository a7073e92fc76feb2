"""Load ``scenarios/*.yaml`` into a keyword table, or say exactly what is wrong where.

The same rules as the main config (``config_load``): every problem at once, each as
``file:line: key.path: reason``; a handler's ``settings:`` errors are placed under
``settings.`` in their file; clashes between files (one keyword claimed twice on one
short code, two scenarios with one name) name both files. A reload that finds any
problem keeps the running set (the daemon logs the problems).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from smppgw.app.config_load import (
    ConfigError,
    Problem,
    line_of,
    load_model_text,
    parse_yaml,
    validation_problems,
)
from smppgw.scenarios.config import ScenarioFile
from smppgw.scenarios.registry import (
    KeywordTable,
    LoadedScenario,
    ScenarioProblem,
    SettingsInvalid,
    build_scenario,
)

if TYPE_CHECKING:
    from pathlib import Path

__all__ = ["load_scenarios", "scenario_files"]


def scenario_files(directory: Path) -> list[Path]:
    """The ``*.yaml`` / ``*.yml`` files of ``directory``, sorted; none if it is absent."""
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())


def _load_one(path: Path) -> LoadedScenario:
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([Problem(source, None, "", f"cannot read: {exc}")]) from None
    file = load_model_text(ScenarioFile, text, source)
    try:
        return build_scenario(file, source)
    except SettingsInvalid as exc:
        root, _ = parse_yaml(text, source)
        problems = validation_problems(exc.error, root, source, prefix=("settings",))
        raise ConfigError(problems) from None
    except ScenarioProblem as exc:
        root, _ = parse_yaml(text, source)
        loc = tuple(exc.key.split(".")) if exc.key else ()
        raise ConfigError([Problem(source, line_of(root, loc), exc.key, exc.reason)]) from None


def load_scenarios(directory: Path) -> KeywordTable:
    """Every scenario file of ``directory`` as one table.

    Raises:
        ConfigError: listing every problem of every file.
    """
    problems: list[Problem] = []
    loaded: list[LoadedScenario] = []
    names: dict[str, str] = {}
    for path in scenario_files(directory):
        try:
            scenario = _load_one(path)
        except ConfigError as exc:
            problems += exc.problems
            continue
        first = names.get(scenario.name)
        if first is not None:
            reason = f"scenario name {scenario.name!r} is also used by {first}"
            problems.append(Problem(str(path), None, "name", reason))
            continue
        names[scenario.name] = str(path)
        loaded.append(scenario)
    if problems:
        raise ConfigError(problems)
    try:
        return KeywordTable(loaded)
    except ScenarioProblem as exc:
        raise ConfigError([Problem(str(directory), None, exc.key, exc.reason)]) from None
