"""The monthly statement: due at the configured day and time, sent once per month."""

from __future__ import annotations

import shutil
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from smppgw.app.scenario_models import ScenarioSettings, StatementSettings
from smppgw.app.scenario_service import ScenarioService, statement_due
from smppgw.protocol.text import decode_text
from smppgw.store import NewMessage, open_store

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


async def test_statement_goes_to_active_members_once(tmp_path: Path) -> None:
    folder = tmp_path / "scenarios"
    folder.mkdir()
    shutil.copy(REPO_SCENARIOS / "points.yaml", folder)
    now = datetime(2026, 11, 30, 20, 30, tzinfo=VN).timestamp()
    sent: list[tuple[int, NewMessage]] = []
    settings = ScenarioSettings(directory=folder, statement=StatementSettings())
    async with open_store(tmp_path / "s.db", clock=lambda: now) as store:

        def seed(conn: object) -> None:
            c = conn  # type: ignore[assignment]
            t = int(now * 1000)
            old = int(datetime(2026, 10, 5, tzinfo=VN).timestamp() * 1000)
            c.executemany(  # type: ignore[attr-defined]
                "INSERT INTO member (member_id, msisdn, points, created_at, updated_at)"
                " VALUES (?,?,?,?,?)",
                [("HN000001", "84900000001", 30, t, t), ("HN000002", "84900000002", 5, old, old)],
            )
            c.executemany(  # type: ignore[attr-defined]
                "INSERT INTO points_ledger (member_id, delta, balance_after, reason, created_at)"
                " VALUES (?,?,?,?,?)",
                [("HN000001", 30, 30, "code", t - 1000), ("HN000002", 5, 5, "code", old)],
            )

        await store.run_in_transaction(seed)
        service = ScenarioService(
            settings,
            store,
            lambda ids, ms: sent.extend(zip(ids, ms, strict=True)),
            clock=lambda: now,
        )
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
