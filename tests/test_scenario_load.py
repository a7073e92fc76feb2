"""Scenario files are refused with file, line, key and reason; clashes name both files."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from smppgw.app.config import ConfigError
from smppgw.app.scenario_load import load_scenarios
from smppgw.cli import main

if TYPE_CHECKING:
    from pathlib import Path

GOOD = """
name: {name}
short_codes: ["8055"]
handler: registration
commands:
  register: {{keywords: [{keyword}]}}
"""


def _write(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(exist_ok=True)
    path = folder / name
    path.write_text(text)
    return path


def _problems(folder: Path) -> str:
    with pytest.raises(ConfigError) as caught:
        load_scenarios(folder)
    return str(caught.value)


def test_the_shipped_scenarios_load() -> None:
    from pathlib import Path

    table = load_scenarios(Path(__file__).resolve().parent.parent / "scenarios")
    assert "registration" in table.scenarios
    assert table.match("8055", "DK") is not None


def test_a_missing_directory_is_no_scenarios(tmp_path: Path) -> None:
    assert load_scenarios(tmp_path / "absent").scenarios == {}


def test_unknown_handler_is_refused_at_its_line(tmp_path: Path) -> None:
    path = _write(tmp_path, "x.yaml", "name: x\nshort_codes: ['8055']\nhandler: nope\n")
    text = _problems(tmp_path)
    assert f"{path}:3: handler:" in text
    assert "neither a built-in" in text


def test_bad_settings_are_placed_under_settings(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "x.yaml",
        "name: x\nshort_codes: ['8055']\nhandler: registration\nsettings:\n"
        "  member_id:\n    pattern: '{digits:2}'\n",
    )
    text = _problems(tmp_path)
    assert f"{path}:5: settings.member_id:" in text
    assert "fewer than 4 random" in text


def test_unknown_command_and_reply_outcome_are_refused(tmp_path: Path) -> None:
    _write(
        tmp_path,
        "x.yaml",
        "name: x\nshort_codes: ['8055']\nhandler: registration\n"
        "commands:\n  regster: {keywords: [DK]}\n",
    )
    assert "commands.regster: the registration handler has no such command" in _problems(tmp_path)
    _write(
        tmp_path,
        "x.yaml",
        "name: x\nshort_codes: ['8055']\nhandler: registration\nreplies:\n  registred: hi\n",
    )
    assert "replies.registred: not an outcome" in _problems(tmp_path)


def test_a_keyword_claimed_twice_names_both_scenarios(tmp_path: Path) -> None:
    _write(tmp_path, "a.yaml", GOOD.format(name="a", keyword="DK"))
    _write(tmp_path, "b.yaml", GOOD.format(name="b", keyword="dk"))
    text = _problems(tmp_path)
    assert "keyword DK on 8055 is claimed by both a" in text
    assert "a.yaml" in text


def test_yaml_errors_and_unknown_keys_have_lines(tmp_path: Path) -> None:
    path = _write(tmp_path, "x.yaml", "name: x\nshort_codes: ['8055']\nhandler: echo\nreplys: {}\n")
    assert f"{path}:4: replys: unknown key (did you mean 'replies'?)" in _problems(tmp_path)


def test_check_config_reports_scenario_problems(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _write(tmp_path / "scen", "x.yaml", "name: x\nshort_codes: ['8055']\nhandler: nope\n")
    config = tmp_path / "c.yaml"
    config.write_text(
        "carriers: [{name: a, host: 127.0.0.1, port: 1, system_id: a, password: a}]\n"
        f"scenarios: {{directory: '{tmp_path / 'scen'}'}}\n"
    )
    assert main(["check-config", "-c", str(config)]) == 2
    assert "x.yaml:3: handler:" in capsys.readouterr().err
