"""The scenarios' work when the journal refuses a write for a while (a full disk, an
I/O error): an MO, an MO in parts, an event file and a monthly statement are handled
once it writes again, and the daemon serves on. Each of these errors used to leave its
task and end the daemon (all partner and carrier traffic with it).

The journal is made to refuse by replacing the store's ``commit_step`` (the one write
every scenario step makes) with one that raises ``StoreUnavailable`` the first times.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import trio
from carrier_fixtures import wait_for
from test_scenario_daemon import SUBSCRIBER, TOPUP_SCENARIO, _replies_to, _scenarios, _start

from smppgw.store import StoreUnavailable

if TYPE_CHECKING:
    from pathlib import Path

    import pytest

    from smppgw.app.daemon import Daemon


def _refuse_steps(daemon: Daemon, monkeypatch: pytest.MonkeyPatch, times: int) -> list[int]:
    """The journal refuses the next ``times`` scenario steps; the list counts the tries."""
    assert daemon.store is not None
    real = daemon.store.commit_step
    tries: list[int] = []

    async def commit_step(*args: Any, **kw: Any) -> Any:
        tries.append(1)
        if len(tries) <= times:
            raise StoreUnavailable("disk full")
        return await real(*args, **kw)

    monkeypatch.setattr(daemon.store, "commit_step", commit_step)
    return tries


async def test_an_mo_whose_step_the_journal_refuses_is_handled_when_it_writes_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _scenarios(tmp_path, "registration")
    async with trio.open_nursery() as nursery:
        daemon, sim = await _start(tmp_path, nursery)
        tries = _refuse_steps(daemon, monkeypatch, 2)
        sim.inject_mo(SUBSCRIBER, "8055", "DK Nguyen Van An HN")
        await wait_for(lambda: len(_replies_to(sim)) == 1, within=15)
        assert _replies_to(sim)[0].startswith("Chuc mung Nguyen Van An!")
        assert len(tries) == 3  # refused twice, then written
        # A long MO (parts put together first) goes the same way.
        tries = _refuse_steps(daemon, monkeypatch, 1)
        sim.inject_mo("84900000002", "8055", "DK " + "Nguyen Van Binh " * 12 + "HN")
        await wait_for(lambda: bool(_replies_to(sim, "84900000002")), within=15)
        assert _replies_to(sim, "84900000002")[0].startswith("Chuc mung Nguyen Van Binh")
        assert len(tries) == 2
        daemon.request_stop()


async def test_an_event_file_the_journal_refuses_is_read_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _scenarios(tmp_path, extra=TOPUP_SCENARIO)
    events = tmp_path / "events"
    events.mkdir()
    async with trio.open_nursery() as nursery:
        daemon, sim = await _start(tmp_path, nursery)
        tries = _refuse_steps(daemon, monkeypatch, 1)
        lines = [{"kind": "topup", "msisdn": f"8490000000{n}", "amount": 10} for n in (1, 2)]
        (events / "batch.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + "\n")
        await wait_for(lambda: any((events / "done").glob("*")), within=15)
        for n in (1, 2):  # the replies go out after the file is done: waited for
            await wait_for(lambda n=n: bool(_replies_to(sim, f"8490000000{n}")), within=10)
            assert _replies_to(sim, f"8490000000{n}") == ["Thank you for your top-up of 10."]
        assert len(tries) == 3  # the first line refused, then both written
        daemon.request_stop()
