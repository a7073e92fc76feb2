"""Partner accounts changed from the CLI while the daemon runs: applied at once.

`smppgw partner disable` ends the partner's live binds and refuses its next bind;
`smppgw partner add` lets a new partner bind without a restart; both survive a restart.
"""

from __future__ import annotations

import io
import sys
from typing import TYPE_CHECKING

import pytest
import trio
from carrier_fixtures import wait_for
from partner_fixtures import PASSWORD, esme, partner_daemon, smpplib_partner

from smppgw.cli import main

if TYPE_CHECKING:
    from pathlib import Path


def _cli(argv: list[str], stdin: str = "") -> int:
    old = sys.stdin
    sys.stdin = io.StringIO(stdin)
    try:
        return main(argv)
    finally:
        sys.stdin = old


async def test_disable_unbinds_live_sessions_and_add_takes_effect(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = str(tmp_path / "smppgw.yaml")
    async with partner_daemon(tmp_path) as (daemon, port):
        async with esme(port, "beta") as link:
            argv = ["partner", "disable", "beta", "-c", config]
            assert await trio.to_thread.run_sync(_cli, argv) == 0
            await wait_for(lambda: link.closed, within=5)
        refused = await trio.to_thread.run_sync(lambda: smpplib_partner(port, system_id="beta"))
        assert refused.bind_status != 0

        argv = ["partner", "add", "gamma", "--source", "GAMMA", "-c", config]
        if await trio.to_thread.run_sync(_cli, argv, PASSWORD + "\n") != 0:
            pytest.fail("partner add refused")
        assert any(p.system_id == "gamma" for p in daemon.partners)
        bound = await trio.to_thread.run_sync(
            lambda: smpplib_partner(port, system_id="gamma", count=0)
        )
        assert bound.bind_status == 0
    # after a restart: still disabled, still added (the accounts live in the journal)
    async with partner_daemon(tmp_path) as (daemon, port):
        ids = {p.system_id: p.enabled for p in daemon.partners}
        assert ids["beta"] is False
        assert ids["gamma"] is True
