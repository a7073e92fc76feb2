"""The monthly statement: due at the configured day and time, sent once per month."""

from __future__ import annotations

import shutil
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import trio
from carrier_fixtures import wait_for

from smppgw.app import scenario_service
from smppgw.app.scenario_models import ScenarioSettings, StatementSettings
from smppgw.app.scenario_service import ScenarioService, statement_due
from smppgw.protocol.text import decode_text
from smppgw.store import NewMessage, Store, StoreUnavailable, open_store

if TYPE_CHECKING:
    import sqlite3

REPO_SCENARIOS = Path(__file__).resolve().parent.parent / "scenarios"
VN = timezone(timedelta(hours=7))


@pytest.mark.parametrize(
    ("local", "day", "at", "due"),
    [
        (datetime(2026, 11, 30, 19, 59, tzinfo=VN), "last", "20:00", None),
        (datetime(2026, 11, 30, 20, 0, tzinfo=VN), "last", "20:00", "2026-11"),
        (datetime(2026, 2, 28, 23, 0, tzinfo=VN), "last", "20:00", "2026-02"),
        (datetime(2026, 11, 29, 23, 0, tzinfo=VN), "last", "20:00", None),
        (datetime(2026, 11, 1, 8, 0, tzinfo=VN), 1, "08:00", "2026-11"),
        (datetime(2026, 11, 20, 8, 0, tzinfo=VN), 1, "08:00", "2026-11"),
    ],
)
def test_statement_due(local: datetime, day: str | int, at: str, due: str | None) -> None:
    assert statement_due(local, day, at) == due


async def _points_service(
    tmp_path: Path, store: Store, now: float, sent: list[tuple[int, NewMessage]]
) -> ScenarioService:
    """The points scenario over ``store``, with one member whose points moved in
    November 2026 and one whose did not; what it sends goes to ``sent``."""
    folder = tmp_path / "scenarios"
    folder.mkdir()
    shutil.copy(REPO_SCENARIOS / "points.yaml", folder)
    settings = ScenarioSettings(directory=folder, statement=StatementSettings())

    def seed(c: sqlite3.Connection) -> None:
        t = int(now * 1000)
        old = int(datetime(2026, 10, 5, tzinfo=VN).timestamp() * 1000)
        c.executemany(
            "INSERT INTO member (member_id, msisdn, points, created_at, updated_at)"
            " VALUES (?,?,?,?,?)",
            [("HN000001", "84900000001", 30, t, t), ("HN000002", "84900000002", 5, old, old)],
        )
        c.executemany(
            "INSERT INTO points_ledger (member_id, delta, balance_after, reason, created_at)"
            " VALUES (?,?,?,?,?)",
            [("HN000001", 30, 30, "code", t - 1000), ("HN000002", 5, 5, "code", old)],
        )

    await store.run_in_transaction(seed)
    return ScenarioService(
        settings,
        store,
        lambda ids, ms: sent.extend(zip(ids, ms, strict=True)),
        clock=lambda: now,
    )


async def test_statement_goes_to_active_members_once(tmp_path: Path) -> None:
    now = datetime(2026, 11, 30, 20, 30, tzinfo=VN).timestamp()
    sent: list[tuple[int, NewMessage]] = []
    async with open_store(tmp_path / "s.db", clock=lambda: now) as store:
        service = await _points_service(tmp_path, store, now, sent)
        scenario = next(iter(service.engine.table.scenarios.values()))
        assert await service.send_statement(scenario, "2026-11") == "statement"
        assert await service.send_statement(scenario, "2026-11") == "duplicate"
        assert len(sent) == 1  # only the member whose points moved in November
        message = sent[0][1]
        assert message.destination_addr == "84900000001"
        assert message.source_addr == "ACME"
        text = decode_text(message.body, message.data_coding)
        assert text == "Tong diem tich luy cua hoi vien HN000001 den het thang 11/2026: 30 diem."


async def test_http_charging_is_served_only_when_a_scenario_charges_over_http(
    tmp_path: Path,
) -> None:
    import trio
    import yaml

    folder = tmp_path / "scenarios"
    folder.mkdir()
    shutil.copy(REPO_SCENARIOS / "points.yaml", folder)
    async with open_store(tmp_path / "s.db") as store:
        settings = ScenarioSettings(directory=folder, events_dir=None)
        plain = ScenarioService(settings, store, lambda ids, ms: None)
        async with trio.open_nursery() as nursery:
            await nursery.start(plain.run)
            assert not plain._charging_started  # nothing polls the outbox for nothing
            airtime = yaml.safe_load((REPO_SCENARIOS / "airtime.yaml").read_text())
            airtime["settings"]["charging"] = {"http": {"url": "http://127.0.0.1:9/charge"}}
            (folder / "airtime.yaml").write_text(yaml.safe_dump(airtime))
            assert plain.reload(settings)
            assert plain._charging_started  # a reload that brings HTTP charging starts it
            nursery.cancel_scope.cancel()


async def test_the_monthly_task_sends_the_statement_once_the_journal_writes_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A statement whose step the journal refuses (a full disk) is sent at a later poll;
    the refusal used to end the task, and the daemon with it."""
    monkeypatch.setattr(scenario_service, "STATEMENT_POLL", 0.01)
    now = datetime(2026, 11, 30, 20, 30, tzinfo=VN).timestamp()
    sent: list[tuple[int, NewMessage]] = []
    async with open_store(tmp_path / "s.db", clock=lambda: now) as store:
        service = await _points_service(tmp_path, store, now, sent)
        real = store.commit_step
        tries: list[int] = []

        async def commit_step(*args: Any, **kw: Any) -> Any:
            tries.append(1)
            if len(tries) <= 2:
                raise StoreUnavailable("disk full")
            return await real(*args, **kw)

        monkeypatch.setattr(store, "commit_step", commit_step)
        async with trio.open_nursery() as nursery:
            await nursery.start(service.run)
            await wait_for(lambda: len(tries) >= 4, within=5)  # refused, refused, sent, dup
            nursery.cancel_scope.cancel()
    assert [m.destination_addr for _, m in sent] == ["84900000001"]  # once, not per poll
