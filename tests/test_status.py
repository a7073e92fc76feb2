"""``smppgw status``: the running daemon's binds, queues, partners and receipts owed,
asked through its admin socket by the CLI, as an operator would."""

from __future__ import annotations

import sys
from functools import partial
from typing import TYPE_CHECKING, Any

import trio
from partner_fixtures import config_without_daemon, partner_daemon, smpplib_partner

from smppgw.app.admin import admin_request
from smppgw.app.status import format_status
from smppgw.cli import main
from smppgw.store import NewOrder, OrderKind

if TYPE_CHECKING:
    from pathlib import Path

    import pytest


async def test_status_shows_binds_partners_and_the_receipts_they_owe(tmp_path: Path) -> None:
    async with partner_daemon(tmp_path) as (daemon, port):
        assert daemon.store is not None
        await daemon.store.create_order(NewOrder(partner="acme", kind=OrderKind.PREPAID, limit=9))
        # A transmitter only: the receipts it asked for wait for a receiver bind.
        run = await trio.to_thread.run_sync(
            partial(smpplib_partner, port, count=2, bind="transmitter")
        )
        assert [r.status for r in run.responses] == [0, 0]
        config = str(daemon.config_path)

        async def status() -> dict[str, Any]:
            return await trio.to_thread.run_sync(
                admin_request, tmp_path / "admin.sock", {"cmd": "status"}
            )

        async def owed() -> int:
            acme = next(p for p in (await status())["partners"] if p["system_id"] == "acme")
            return int(acme["receipts_owed"])

        deadline = trio.current_time() + 10
        while await owed() < 2:
            assert trio.current_time() < deadline, "the receipts never reached the outbox"
            await trio.sleep(0.05)
        answer = await status()
        (carrier,) = answer["carriers"]
        assert (carrier["name"], carrier["binds_up"], carrier["submits"]) == ("sim", 1, 2)
        partners = {p["system_id"]: p for p in answer["partners"]}
        assert (partners["acme"]["accepted"], partners["acme"]["receipts_owed"]) == (2, 2)
        assert partners["beta"] == {
            "system_id": "beta",
            "binds": 0,
            "accepted": 0,
            "held": 0,
            "refused": 0,
            "throttled": 0,
            "opted_out": 0,
            "receipts_owed": 0,
        }
        assert answer["store"] == {"available": True, "path": str(tmp_path / "gw.sqlite")}
        # The table an operator reads, from the command itself (its own process: the
        # daemon in this one logs to the same stdout).
        done = await trio.run_process(
            [sys.executable, "-m", "smppgw.cli", "status", "-c", config], capture_stdout=True
        )
        table = done.stdout.decode().splitlines()
        assert table[0].startswith("smppgw ")
        assert next(line.split() for line in table if line.startswith("sim"))[:2] == ["sim", "1/1"]
        acme = next(line.split() for line in table if line.startswith("acme"))
        assert acme == ["acme", "0", "2", "0", "0", "0", "0", "2"]
        assert format_status(answer).splitlines()[2:] == table[2:]


def test_status_without_a_daemon_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = config_without_daemon(tmp_path)
    assert main(["status", "-c", config]) == 2
    assert "no daemon answers at" in capsys.readouterr().err
