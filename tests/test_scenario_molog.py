"""The MO/MT log: searched by number and member, exported as CSV from the file."""

from __future__ import annotations

import csv
from typing import TYPE_CHECKING

from scenario_fixtures import SUBSCRIBER, scenario, scenario_rig

from smppgw.cli import main

if TYPE_CHECKING:
    from pathlib import Path

    import pytest

REGISTRATION = scenario(
    name="club",
    handler="registration",
    commands={"register": {"keywords": ["DK"]}},
    settings={"member_id": {"pattern": "M{digits:6}"}},
)


async def test_search_and_export_read_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async with scenario_rig(tmp_path, REGISTRATION) as rig:
        await rig.mo("DK An HN")
        await rig.mo("HELLO", msisdn="84900000002")
        [(member_id,)] = await rig.query("SELECT member_id FROM member")
        config = tmp_path / "c.yaml"
        config.write_text(
            "carriers: [{name: a, host: 127.0.0.1, port: 1, system_id: a, password: a}]\n"
            f"store: {{path: '{tmp_path / 'scenarios.db'}'}}\n"
        )
        # while the store is open (as with a running daemon): read-only access works
        capsys.readouterr()  # the engine's log lines so far
        assert main(["molog", "search", "--member-id", member_id, "-c", str(config)]) == 0
        out = capsys.readouterr().out.splitlines()
        assert len(out) == 2
        assert f"MO {SUBSCRIBER} club/registered: DK An HN" in out[0]
        assert "MT" in out[1]
        assert member_id in out[1]

        csv_path = tmp_path / "log.csv"
        assert main(["molog", "export", "--out", str(csv_path), "-c", str(config)]) == 0
        with csv_path.open() as f:
            rows = list(csv.DictReader(f))
        assert [(r["direction"], r["msisdn"], r["outcome"]) for r in rows] == [
            ("mo", SUBSCRIBER, "registered"),
            ("mt", SUBSCRIBER, "registered"),
            ("mo", "84900000002", "help"),
            ("mt", "84900000002", "help"),
        ]
        assert rows[1]["state"] == "accepted"  # the reply's journal state
        assert rows[0]["correlation"] == rows[1]["correlation"]

        capsys.readouterr()
        assert main(["molog", "export", "--since", "2030-01-01", "-c", str(config)]) == 0
        assert capsys.readouterr().out.strip().splitlines()[1:] == []
        assert main(["molog", "search", "-c", str(config)]) == 2  # neither number nor ID
