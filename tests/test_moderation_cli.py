"""``smppgw moderation``: a moderator reads the held texts (decoded, not hex) and acts,
through the daemon found from the config, as on a real host."""

from __future__ import annotations

import sys
from functools import partial
from typing import TYPE_CHECKING

import trio
from partner_fixtures import config_without_daemon, partner_daemon, smpplib_partner

from smppgw.cli import held_table, main

if TYPE_CHECKING:
    import subprocess
    from pathlib import Path

    import pytest


async def _cli(*argv: str) -> subprocess.CompletedProcess[bytes]:
    """The command in its own process (the daemon in this one logs to stdout)."""
    return await trio.run_process(
        [sys.executable, "-m", "smppgw.cli", "moderation", *argv],
        capture_stdout=True,
        capture_stderr=True,
        check=False,
    )


async def test_a_moderator_reads_the_texts_and_decides(tmp_path: Path) -> None:
    text = "Khuyến mãi 50%\nhôm nay"
    async with partner_daemon(tmp_path) as (daemon, port):
        mod = partial(smpplib_partner, port, system_id="mod", count=1, source="ANY")
        held = await trio.to_thread.run_sync(
            partial(mod, data_coding=8, short_message=text.encode("utf-16-be"))
        )
        udh_part = await trio.to_thread.run_sync(
            partial(mod, esm_class=0x40, short_message=b"\x05\x00\x03\x07\x02\x01first half")
        )
        first, second = (int(r.message_id) for r in (*held.responses, *udh_part.responses))
        config = str(daemon.config_path)
        listed = await _cli("list", "-c", config)
        assert listed.returncode == 0, listed.stderr
        rows = listed.stdout.decode().splitlines()
        assert rows[0].split() == ["id", "partner", "source", "destination", "text"]
        assert rows[1].split(maxsplit=4) == [
            str(first),
            "mod",
            "ANY",
            "84910000000",
            text.replace("\n", " "),
        ]
        assert rows[2].split(maxsplit=4)[4] == "first half"  # the UDH is not text
        approved = await _cli("approve", str(first), "-c", config)
        assert approved.stdout.decode().strip() == f"approved: {first}"
        rejected = await _cli("reject", str(second), "--reason", "spam", "-c", config)
        assert rejected.stdout.decode().strip() == f"rejected: {second}"
        empty = await _cli("list", "-c", config)
        assert empty.stdout.decode().strip() == "no messages held"


def test_without_a_daemon_the_command_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = config_without_daemon(tmp_path)
    assert main(["moderation", "list", "-c", config]) == 2
    assert "cannot reach the daemon at" in capsys.readouterr().err
    assert main(["moderation", "approve", "-c", config]) == 2  # no ids


def test_the_table_keeps_one_line_a_message() -> None:
    table = held_table(
        [{"id": 1, "partner": "p", "source": "S", "destination": "849", "text": "a\nb\tc"}]
    )
    assert table.splitlines()[1].split() == ["1", "p", "S", "849", "a", "b", "c"]
    assert held_table([]) == "no messages held"
