"""``smppgw messages list|show``: an operator finds a partner's message and traces it
(journal row, parts at carriers, receipts owed), read-only, tables and ``--json``."""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

import trio
from helpers.store_helpers import msg

from smppgw.cli import main
from smppgw.gateway.auth import hash_password
from smppgw.store import FinalOutcome, MessageState, NewReceipt, Submitted, open_store

if TYPE_CHECKING:
    from pathlib import Path

    import pytest

HASH = hash_password("a", salt=b"a" * 16)


def _config(tmp_path: Path) -> str:
    path = tmp_path / "smppgw.yaml"
    path.write_text(
        f"""\
store: {{path: {tmp_path / "s.sqlite"}, durability: process}}
carriers:
  - {{name: vt, host: smsc.example, port: 2775, system_id: acme, password: pw}}
partners:
  - {{system_id: acme, password_hash: "{HASH}"}}
  - {{system_id: beta, password_hash: "{HASH}"}}
scenarios: {{utc_offset: "+07:00"}}
""",
        encoding="utf-8",
    )
    return str(path)


async def _seed(path: Path) -> list[int]:
    """An old message (two days ago), a delivered one in two parts whose receipt the
    partner has not acknowledged, one still queued, and one of another partner."""
    now = time.time()
    clock = [now - 2 * 86_400]
    async with open_store(path, clock=lambda: clock[0]) as store:
        [old] = await store.journal_accept([msg(1)])
        clock[0] = now - 60
        [parts, queued] = await store.journal_accept(
            [
                msg(2, body=b"ab", parts=(b"\x05a", b"\x05b"), user_ref=42),
                msg(2),
            ]
        )
        [other] = await store.journal_accept([msg(2, partner="beta")])
        await store.mark_submitted(
            [Submitted(parts, "vt", "C1", part_no=0), Submitted(parts, "vt", "C2", part_no=1)]
        )
        await store.mark_final([FinalOutcome(parts, MessageState.DELIVERED, 0)])
        await store.enqueue_receipts(
            [NewReceipt(partner="acme", message_id=parts, stat="DELIVRD", err=0, body=b"x")]
        )
    return [old, parts, queued, other]


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def _json(capsys: pytest.CaptureFixture[str], *argv: str) -> Any:
    code, out, _ = _run(capsys, *argv, "--json")
    assert code == 0
    return json.loads(out)


def test_find_by_number_partner_state_and_period(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = _config(tmp_path)
    old, parts, queued, other = trio.run(_seed, tmp_path / "s.sqlite")
    found = _json(capsys, "messages", "list", "-c", cfg)
    assert [m["id"] for m in found] == [other, queued, parts]  # a day back, newest first
    to = "+84900000002"  # as a partner may write it
    assert [m["id"] for m in _json(capsys, "messages", "list", "-c", cfg, "--to", to)] == [
        other,
        queued,
        parts,
    ]
    mine = _json(capsys, "messages", "list", "-c", cfg, "--partner", "acme", "--state", "accepted")
    assert [m["id"] for m in mine] == [queued]
    week = _json(capsys, "messages", "list", "-c", cfg, "--since", "2000-01-01", "--limit", "10")
    assert [m["id"] for m in week][-1] == old
    assert len(_json(capsys, "messages", "list", "-c", cfg, "--since", "2000-01-01T00:00")) == 4
    tz = timezone(timedelta(hours=7))
    yesterday = (datetime.now(tz) - timedelta(days=1)).strftime("%Y-%m-%d")
    before = ("--since", "2000-01-01", "--until", yesterday)  # to yesterday's start
    assert [m["id"] for m in _json(capsys, "messages", "list", "-c", cfg, *before)] == [old]
    code, out, _ = _run(capsys, "messages", "list", "-c", cfg, "--partner", "acme")
    lines = out.splitlines()
    assert lines[0].split()[:6] == ["id", "accepted", "partner", "from", "to", "state"]
    assert [line.split()[0] for line in lines[1:]] == [str(queued), str(parts)]
    code, _, err = _run(capsys, "messages", "list", "-c", cfg, "--since", "yesterday")
    assert code == 2
    assert "'yesterday' is not YYYY-MM-DD" in err


def test_trace_one_message(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = _config(tmp_path)
    _, parts, queued, _ = trio.run(_seed, tmp_path / "s.sqlite")
    trace = _json(capsys, "messages", "show", str(parts), "-c", cfg)
    assert (trace["state"], trace["part_count"], trace["user_ref"]) == ("delivered", 2, 42)
    assert [(p["part_no"], p["carrier_id"]) for p in trace["parts"]] == [(0, "C1"), (1, "C2")]
    assert [r["stat"] for r in trace["receipts_owed"]] == ["DELIVRD"]
    waiting = _json(capsys, "messages", "show", str(queued), "-c", cfg)
    assert (waiting["state"], waiting["parts"], waiting["receipts_owed"]) == ("accepted", [], [])
    code, out, _ = _run(capsys, "messages", "show", str(parts), "-c", cfg)
    assert code == 0
    assert "parts at carriers:" in out
    assert "receipts owed to the partner" in out
    assert any(line.split()[:3] == ["1", "vt", "C2"] for line in out.splitlines())
    code, _, err = _run(capsys, "messages", "show", "999", "-c", cfg)
    assert code == 1
    assert "not in the journal" in err
    # By a carrier's id of one of its parts (what the carrier's support desk quotes).
    by_carrier = _json(capsys, "messages", "show", "--carrier-id", " C2 ", "-c", cfg)
    assert by_carrier["id"] == parts
    assert (
        _json(capsys, "messages", "show", "--carrier-id", "C1", "--carrier", "vt", "-c", cfg)["id"]
        == parts
    )
    code, _, err = _run(capsys, "messages", "show", "--carrier-id", "C9", "-c", cfg)
    assert (code, "carrier id C9: not in the journal" in err) == (1, True)
    code, _, err = _run(
        capsys, "messages", "show", "--carrier-id", "C1", "--carrier", "x", "-c", cfg
    )
    assert (code, "no carrier 'x'" in err) == (2, True)
    code, _, err = _run(capsys, "messages", "show", "-c", cfg)
    assert (code, "one of them" in err) == (2, True)
