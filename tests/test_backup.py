"""`smppgw backup` copies the journal consistently while it is being written."""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING

import trio
from helpers.store_helpers import msg

from smppgw.cli import main
from smppgw.store import Durability, StoreConfig, open_store
from smppgw.store.backup import backup_journal

if TYPE_CHECKING:
    from pathlib import Path

    import pytest


async def test_backup_while_writing_is_a_consistent_prefix(tmp_path: Path) -> None:
    source = tmp_path / "gw.sqlite"
    config = StoreConfig(durability=Durability.PROCESS)
    async with open_store(source, config=config) as store:
        for batch in range(20):
            await store.journal_accept([msg(batch * 100 + n) for n in range(100)])

        async def keep_writing() -> None:
            for batch in range(20, 60):
                await store.journal_accept([msg(batch * 100 + n) for n in range(100)])

        async with trio.open_nursery() as nursery:
            nursery.start_soon(keep_writing)
            result = await trio.to_thread.run_sync(
                lambda: backup_journal(source, tmp_path / "copy.sqlite", pages_per_step=8)
            )
    with sqlite3.connect(result.path) as copy:
        ids = [r[0] for r in copy.execute("SELECT id FROM mt_message ORDER BY id")]
        assert copy.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    # a snapshot of whole commits: ids 1..n with no gap, whole batches of 100
    assert ids == list(range(1, len(ids) + 1))
    assert len(ids) % 100 == 0
    assert len(ids) >= 2000
    assert result.schema_version >= 4
    assert not (tmp_path / "copy.sqlite.partial").exists()


def test_cli_backup_refuses_to_overwrite(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async def make() -> None:
        async with open_store(tmp_path / "gw.sqlite") as store:
            await store.journal_accept([msg(1)])

    trio.run(make)
    config = tmp_path / "c.yaml"
    config.write_text(
        "carriers: [{name: a, host: 127.0.0.1, port: 1, system_id: a, password: a}]\n"
        f"store: {{path: '{tmp_path / 'gw.sqlite'}'}}\n"
    )
    dest = tmp_path / "b.sqlite"
    assert main(["backup", str(dest), "-c", str(config)]) == 0
    assert "backup written" in capsys.readouterr().out
    assert main(["backup", str(dest), "-c", str(config)]) == 2
    assert "never overwritten" in capsys.readouterr().err
