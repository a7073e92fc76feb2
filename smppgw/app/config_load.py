"""Load ``smppgw.yaml`` into a :class:`~smppgw.app.config_models.Config`, or say exactly why not.

An operator editing a config on a production host wants every mistake at once, each
with the line to go to, not one error per restart. So:

- The YAML is composed to a node tree first (which keeps line numbers), then built
  into plain data from that same tree; a syntax error is ``file:line: yaml: ...``.
- Duplicate keys, which ``yaml.safe_load`` silently resolves to the last one, are
  errors: the first value was meant for something.
- Validation errors from pydantic are mapped back to lines by walking the node tree
  along the error's location (``carriers[1].tls.ca_file``), falling back to the
  nearest parent that exists (a missing key is reported on its section's line).
- Each problem is one line, ``<file>:<line>: <key.path>: <reason>``, sorted by line.
  Inputs are echoed to help, except for keys that look secret.
"""

from __future__ import annotations

import difflib
import os
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from smppgw.app.config_models import Config, CrossFieldError, dotted_key

if typing.TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

__all__ = [
    "ConfigError",
    "Problem",
    "line_of",
    "load_config",
    "load_config_text",
    "load_model_text",
    "parse_yaml",
    "validation_problems",
]

M = typing.TypeVar("M", bound=BaseModel)

_SECRET_WORDS = ("password", "secret", "token")
# pydantic error types whose message says what was wrong but not what was given.
_NO_ECHO = frozenset({"missing", "extra_forbidden", "value_error", "assertion_error"})


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a config file; ``line`` is 1-based, None when unknown."""

    source: str
    line: int | None
    key: str
    reason: str

    def __str__(self) -> str:
        where = self.source if self.line is None else f"{self.source}:{self.line}"
        return f"{where}: {self.key}: {self.reason}" if self.key else f"{where}: {self.reason}"


class ConfigError(Exception):
    """A config cannot be used; ``str()`` lists every problem, one per line."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = tuple(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


def load_config(path: str | os.PathLike[str], *, env: Mapping[str, str] | None = None) -> Config:
    """Read and validate the config file at ``path``.

    Args:
        path: the YAML file.
        env: where ``password_env`` names are looked up; ``os.environ`` by default.

    Raises:
        ConfigError: the file cannot be read, is not YAML, or does not validate.
    """
    source = os.fspath(path)
    try:
        text = Path(source).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([Problem(source, None, "", f"cannot read: {exc.strerror}")]) from None
    except UnicodeDecodeError as exc:
        reason = f"not UTF-8 text (byte {exc.start})"
        raise ConfigError([Problem(source, None, "", reason)]) from None
    return load_config_text(text, source, env=env)


def load_config_text(
    text: str, source_name: str = "<config>", *, env: Mapping[str, str] | None = None
) -> Config:
    """Validate config ``text``; ``source_name`` is the file name used in messages.

    Raises:
        ConfigError: listing every problem found.
    """
    context = {"env": os.environ if env is None else env}
    return load_model_text(Config, text, source_name, context=context)


def load_model_text(
    model: type[M],
    text: str,
    source_name: str,
    *,
    context: dict[str, Any] | None = None,
    problems: list[Problem] | None = None,
) -> M:
    """Parse YAML ``text`` and validate it as ``model`` (the main config, a scenario
    file...), every problem with its file, line and dotted key.

    Raises:
        ConfigError: listing every problem found (plus any ``problems`` passed in).
    """
    root, data = parse_yaml(text, source_name)
    found = _duplicate_keys(root, source_name) + list(problems or [])
    if not isinstance(data, dict):
        line = 1 if root is None else root.start_mark.line + 1
        found.append(Problem(source_name, line, "", "the top level must be a mapping"))
        raise ConfigError(found)
    result = None
    try:
        result = model.model_validate(data, context=context)
    except ValidationError as exc:
        found += validation_problems(exc, root, source_name, model)
    if found or result is None:
        found.sort(key=lambda p: (p.line or 0, p.key))
        raise ConfigError(found)
    return result


def parse_yaml(text: str, source_name: str) -> tuple[yaml.Node | None, Any]:
    """The YAML node tree (for line numbers) and the plain data of ``text``.

    Raises:
        ConfigError: the text is not YAML.
    """
    loader = yaml.SafeLoader(text)
    try:
        root = loader.get_single_node()
        data = {} if root is None else loader.construct_document(root)
    except yaml.MarkedYAMLError as exc:
        raise ConfigError([_yaml_problem(source_name, exc)]) from None
    except yaml.YAMLError as exc:
        raise ConfigError([Problem(source_name, None, "", f"yaml: {exc}")]) from None
    finally:
        loader.dispose()
    return root, data


def _yaml_problem(source: str, exc: yaml.MarkedYAMLError) -> Problem:
    mark = exc.problem_mark or exc.context_mark
    line = None if mark is None else mark.line + 1
    reason = " ".join(part for part in (exc.context, exc.problem) if part)
    return Problem(source, line, "", f"yaml: {reason or exc}")


def _duplicate_keys(node: yaml.Node | None, source: str) -> list[Problem]:
    problems: list[Problem] = []

    def walk(node: yaml.Node, path: tuple[str | int, ...]) -> None:
        if isinstance(node, yaml.MappingNode):
            first: dict[object, int] = {}
            for key, value in node.value:
                name = key.value if isinstance(key, yaml.ScalarNode) else None
                line = key.start_mark.line + 1
                if name is not None and name in first:
                    reason = f"duplicate key (first at line {first[name]})"
                    problems.append(Problem(source, line, dotted_key((*path, name)), reason))
                elif name is not None:
                    first[name] = line
                walk(value, (*path, name) if name is not None else path)
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                walk(item, (*path, i))

    if node is not None:
        walk(node, ())
    return problems


def validation_problems(
    exc: ValidationError,
    root: yaml.Node | None,
    source: str,
    model: type[BaseModel] = Config,
    prefix: tuple[str | int, ...] = (),
) -> list[Problem]:
    """Problems of a pydantic error; ``prefix`` places a nested model's errors in the
    file (a scenario's ``settings:`` validated by its handler)."""
    problems: list[Problem] = []
    for error in exc.errors():
        loc = prefix + tuple(error["loc"])
        cause = error.get("ctx", {}).get("error")
        if isinstance(cause, CrossFieldError):
            for sub_loc, reason in cause.problems:
                full = loc + sub_loc
                problems.append(Problem(source, line_of(root, full), dotted_key(full), reason))
            continue
        reason = _reason(error, loc, model)
        problems.append(Problem(source, line_of(root, loc), dotted_key(loc), reason))
    return problems


def _reason(error: Any, loc: tuple[str | int, ...], model: type[BaseModel]) -> str:
    kind = error["type"]
    if kind == "missing":
        return "required key is missing"
    if kind == "extra_forbidden":
        known = _fields_at(loc[:-1], model)
        close = difflib.get_close_matches(str(loc[-1]), known, n=1) if known else []
        return "unknown key" + (f" (did you mean {close[0]!r}?)" if close else "")
    if kind == "too_short":
        return f"needs at least {error['ctx']['min_length']} item(s)"
    message = str(error["msg"])
    for prefix in ("Value error, ", "Assertion failed, "):
        message = message.removeprefix(prefix)
    value = error.get("input")
    secret = any(word in str(part).lower() for part in loc for word in _SECRET_WORDS)
    if kind not in _NO_ECHO and not secret and _echoable(value):
        message += f" (got {value!r})"
    return message


def _echoable(value: object) -> bool:
    if isinstance(value, str):
        return len(value) <= 60
    return isinstance(value, int | float | bool) or value is None


def _fields_at(loc: tuple[str | int, ...], model: type[BaseModel]) -> list[str]:
    """The keys the model at ``loc`` accepts, for "did you mean" hints."""
    for part in loc:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(part)
        inner = _model_in(field.annotation) if field is not None else None
        if inner is None:
            return []
        model = inner
    return list(model.model_fields)


def _model_in(annotation: object) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    origin = typing.get_origin(annotation)
    if origin in (tuple, list, typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            found = _model_in(arg)
            if found is not None:
                return found
    return None


def line_of(root: yaml.Node | None, loc: tuple[str | int, ...]) -> int | None:
    """The 1-based line of ``loc`` in the tree, or of its nearest ancestor that exists."""
    if root is None:
        return 1
    node = root
    line = root.start_mark.line + 1
    for part in loc:
        if isinstance(node, yaml.MappingNode) and isinstance(part, str):
            for key, value in node.value:
                if isinstance(key, yaml.ScalarNode) and key.value == part:
                    node, line = value, key.start_mark.line + 1
                    break
            else:
                return line
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            if not 0 <= part < len(node.value):
                return line
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            return line
    return line
