"""``smppgw optout``: the operator's side of the opt-out list, with and without a daemon."""

from __future__ import annotations

import functools
import json
import re
from typing import TYPE_CHECKING

import trio
from partner_fixtures import partner_daemon
from test_partner_refusals_e2e import GOOD, _order_for_acme, _submit_statuses

from smppgw.cli import main
from smppgw.protocol.status import CommandStatus as S

if TYPE_CHECKING:
    from pathlib import Path

    import pytest

_LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \[")


def _out(capsys: pytest.CaptureFixture[str]) -> str:
    """What the command printed, without the log lines of a daemon in this process."""
    lines = capsys.readouterr().out.splitlines()
    return "\n".join(line for line in lines if not _LOG_LINE.match(line))


def _session(cfg: str, folder: Path, capsys: pytest.CaptureFixture[str]) -> list[dict[str, str]]:
    """The same operator session on either path; returns the final list (JSON rows)."""
    assert main(["optout", "add", "0912345678", "-c", cfg]) == 0
    out = _out(capsys)
    assert out.strip() == "1 of 1 number(s) added to the opt-out list (every partner's marketing)"
    assert (
        main(["optout", "add", "84912345678", "84900000002", "--partner", "acme", "-c", cfg]) == 0
    )
    assert "2 of 2" in _out(capsys)
    assert main(["optout", "add", "84900000002", "--partner", "nobody", "-c", cfg]) == 1
    assert "no partner 'nobody'" in capsys.readouterr().err
    numbers = folder / "dnc.csv"
    numbers.write_text("MSISDN;note\n0900000003;x\n+84 900 000 004;y\n", encoding="utf-8")
    assert main(["optout", "add", "--file", str(numbers), "-c", cfg]) == 0
    assert "2 of 2" in _out(capsys)
    bad = folder / "bad.csv"
    bad.write_text("msisdn\n0900000005\nnot a number\n", encoding="utf-8")
    assert main(["optout", "add", "--file", str(bad), "-c", cfg]) == 2
    err = capsys.readouterr().err
    assert "nothing changed: 1 bad line(s)" in err
    assert "bad.csv:3: msisdn:" in err
    assert main(["optout", "remove", "84900000002", "--everywhere", "-c", cfg]) == 0
    assert "1 row(s) of 1 number(s)" in _out(capsys)
    assert main(["optout", "remove", "1", "--partner", "acme", "--everywhere", "-c", cfg]) == 2
    capsys.readouterr()
    assert main(["optout", "list", "--json", "-c", cfg]) == 0
    rows: list[dict[str, str]] = json.loads(_out(capsys))
    assert main(["optout", "list", "--msisdn", "0912345678", "--partner", "all", "-c", cfg]) == 0
    table = _out(capsys).splitlines()
    assert table[0].split() == ["msisdn", "partner", "source", "since"]
    assert [line.split()[:3] for line in table[1:]] == [["84912345678", "all", "cli"]]
    return rows


def _keys(rows: list[dict[str, str]]) -> set[tuple[str, str, str]]:
    return {(r["msisdn"], r["scope"], r["source"]) for r in rows}


EXPECTED = {
    ("84912345678", "all", "cli"),
    ("84912345678", "acme", "cli"),
    ("84900000003", "all", "file:dnc.csv"),
    ("84900000004", "all", "file:dnc.csv"),
}


def test_optout_commands_without_a_daemon(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from partner_fixtures import write_partner_config

    cfg = write_partner_config(tmp_path, sim_port=1, server_port=2)
    assert _keys(_session(str(cfg), tmp_path, capsys)) == EXPECTED


async def test_optout_through_the_daemon_applies_to_the_next_submit(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async with partner_daemon(tmp_path) as (daemon, port):
        await _order_for_acme(daemon)
        cfg = str(tmp_path / "smppgw.yaml")
        capsys.readouterr()
        rows = await trio.to_thread.run_sync(_session, cfg, tmp_path, capsys)
        assert _keys(rows) == EXPECTED
        submit = functools.partial(_submit_statuses, port, "acme", [GOOD])
        assert await trio.to_thread.run_sync(submit) == [S.ESME_RX_P_APPN]
        argv = ["optout", "remove", "84912345678", "--everywhere", "-c", cfg]
        assert await trio.to_thread.run_sync(main, argv) == 0
        assert await trio.to_thread.run_sync(submit) == [S.ESME_ROK]
