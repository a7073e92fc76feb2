"""``smppgw order|member|codes|gifts|events``: the same operator session without a daemon
(the CLI opens the store) and with one (writes through its admin socket, lists read-only
beside its writer), human tables and ``--json``."""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, cast

import pytest
import structlog
import trio

from smppgw.app.admin import AdminCommands, admin_request, serve_admin
from smppgw.app.admin_records import register_record_commands
from smppgw.app.config import load_config
from smppgw.cli import main
from smppgw.gateway.auth import hash_password
from smppgw.store import open_store
from smppgw.store.members import insert_member

if TYPE_CHECKING:
    import sqlite3
    from pathlib import Path

    from smppgw.gateway.mt import MtPipeline
    from smppgw.store import Store

HASH = hash_password("a", salt=b"a" * 16)


def _config(tmp_path: Path) -> Path:
    path = tmp_path / "smppgw.yaml"
    path.write_text(
        f"""\
store: {{path: {tmp_path / "var" / "s.sqlite"}, durability: process}}
admin_socket: {tmp_path / "admin.sock"}
carriers:
  - {{name: vt, host: smsc.example, port: 2775, system_id: acme, password: pw}}
partners:
  - {{system_id: acme, password_hash: "{HASH}"}}
scenarios: {{utc_offset: "+07:00"}}
""",
        encoding="utf-8",
    )
    return path


async def _seed(store: Store) -> None:
    def write(conn: sqlite3.Connection) -> None:
        for member_id, msisdn, name, fields in (
            ("M1", "84912000001", "An", {"tier": "gold"}),
            ("M2", "84912000002", "Be", {}),
        ):
            insert_member(
                conn,
                member_id=member_id,
                msisdn=msisdn,
                name=name,
                province="HN",
                fields=fields,
                now=1.0,
            )
        conn.executemany(
            "INSERT INTO code_inventory (code, campaign, points, used_by, used_at)"
            " VALUES (?, 'tet', ?, ?, ?)",
            [("A1", 10, "M1", 5000), ("A2", 20, None, None), ("B1", 5, None, None)],
        )
        conn.executemany(
            "INSERT INTO gift_inventory (gift_type, cost_points, serial, pin, assigned_to,"
            " assigned_at) VALUES ('card', 100, ?, 'secret', ?, ?)",
            [("S1", "M1", 6000), ("S2", None, None)],
        )
        conn.execute(
            "INSERT INTO event (kind, subject, payload, created_at, event_key, processed_at)"
            " VALUES ('topup', '84912000001', '{\"amount\": 50000}', 7000, 'bill-1', 8000)"
        )
        conn.execute(
            "INSERT INTO event (kind, subject, created_at) VALUES ('low_balance', '849', 9000)"
        )

    await store.run_in_transaction(write)


def _out(capsys: pytest.CaptureFixture[str]) -> list[list[str]]:
    return [line.split() for line in capsys.readouterr().out.splitlines()]


def _w(text: str) -> list[str]:
    """A table line as its cells (the tests compare cells, not column widths)."""
    return text.split()


def _json(capsys: pytest.CaptureFixture[str]) -> Any:
    return json.loads(capsys.readouterr().out)


def _orders(cfg: str, capsys: pytest.CaptureFixture[str]) -> None:
    c = ["-c", cfg]
    argv = ["order", "add", "acme", "--count", "1000", "--price", "500000"]
    assert main([*argv, "--expires", "2099-01-31", *c]) == 0
    assert capsys.readouterr().out.strip() == "order 1 added for acme"
    argv = ["order", "add", "acme", "--count", "10", "--kind", "postpaid", "--unit-cost", "350"]
    assert main([*argv, "--json", *c]) == 0
    assert _json(capsys) == {"ok": True, "id": 2}
    assert main(["order", "add", "nobody", "--count", "5", *c]) == 1
    assert "no partner 'nobody'" in capsys.readouterr().err
    assert main(["order", "add", "acme", "--count", "5", "--unit-cost", "2", *c]) == 1
    assert "prepaid order counts parts" in capsys.readouterr().err
    assert main(["order", "add", "acme", "--count", "0", *c]) == 1
    assert main(["order", "add", "acme", "--count", "5", "--expires", "31/01", *c]) == 2
    capsys.readouterr()

    assert main(["order", "list", *c]) == 0
    rows = _out(capsys)
    assert rows[0] == _w("id partner kind limit spent reserved remaining price ends state")
    assert rows[1] == _w("1 acme prepaid 1000 0 0 1000 500000 2099-02-01 00:00 active")
    assert rows[2] == _w("2 acme postpaid 3500 0 0 3500 - - active")
    assert main(["order", "list", "acme", "--json", *c]) == 0
    listed = _json(capsys)
    assert [(o["id"], o["remaining"], o["unit_cost"]) for o in listed] == [
        (1, 1000, 1),
        (2, 3500, 350),
    ]
    ends = datetime(2099, 2, 1, tzinfo=timezone(timedelta(hours=7))).timestamp()
    assert listed[0]["expires_at"] == ends  # valid through 2099-01-31 at +07:00

    assert main(["order", "cancel", "2", *c]) == 0
    assert capsys.readouterr().out.strip() == "order 2 cancelled"
    assert main(["order", "cancel", "2", "--json", *c]) == 0
    assert _json(capsys) == {"ok": True, "id": 2, "cancelled": False}
    assert main(["order", "cancel", "99", *c]) == 1
    assert "no order 99" in capsys.readouterr().err
    assert main(["order", "list", "--json", *c]) == 0
    assert [o["id"] for o in _json(capsys)] == [1]
    assert main(["order", "list", "acme", "--all", "--json", *c]) == 0
    listed = _json(capsys)
    assert [(o["id"], o["state"]) for o in listed] == [(1, "active"), (2, "cancelled")]
    assert listed[1]["cancelled_at"] == listed[1]["expires_at"] is not None
    assert main(["order", "list", "other", *c]) == 0
    assert _out(capsys)[1] == ["(none)"]


def _members(cfg: str, capsys: pytest.CaptureFixture[str]) -> None:
    c = ["-c", cfg]
    assert main(["member", "search", "--msisdn", "0912 000 001", *c]) == 0
    rows = _out(capsys)
    assert rows[0] == _w("member_id msisdn name province points since fields")
    assert rows[1][:5] == ["M1", "84912000001", "An", "HN", "0"]
    assert main(["member", "search", "--field", "tier=gold", "--json", *c]) == 0
    assert [m["member_id"] for m in _json(capsys)] == ["M1"]
    assert main(["member", "search", "--field", "name=Be", "--json", *c]) == 0
    assert [m["member_id"] for m in _json(capsys)] == ["M2"]
    assert main(["member", "search", "--member-id", "M9", *c]) == 0
    assert _out(capsys)[1] == ["(none)"]
    assert main(["member", "search", *c]) == 2
    assert main(["member", "search", "--msisdn", "12ab", *c]) == 2
    capsys.readouterr()

    argv = ["member", "edit", "M1", "--set", "name=Binh", "--set", "tier=silver"]
    assert main([*argv, "--set", "province=", "--set", "city=Hue", *c]) == 0
    assert capsys.readouterr().out.strip() == (
        'member M1: 84912000001 Binh None {"city": "Hue", "tier": "silver"}'
    )
    argv = ["member", "edit", "M1", "--set", "tier=", "--set", "msisdn=0912000009"]
    assert main([*argv, "--json", *c]) == 0
    assert _json(capsys)["member"] == {
        "member_id": "M1",
        "msisdn": "84912000009",
        "name": "Binh",
        "province": None,
        "fields": {"city": "Hue"},
    }
    assert main(["member", "edit", "M1", "--set", "msisdn=0912000002", *c]) == 1
    assert "another member has 84912000002" in capsys.readouterr().err
    assert main(["member", "edit", "M7", "--set", "name=X", *c]) == 1
    assert "no member 'M7'" in capsys.readouterr().err
    assert main(["member", "edit", "M1", "--set", "oops", *c]) == 2
    assert main(["member", "delete", "M2", *c]) == 2  # stdin is no terminal: --yes needed
    assert "--yes" in capsys.readouterr().err
    assert main(["member", "delete", "M2", "--yes", *c]) == 0
    assert capsys.readouterr().out.strip() == "member M2 deleted"
    assert main(["member", "delete", "M2", "--yes", "--json", *c]) == 1
    assert _json(capsys) == {"ok": False, "error": "no member 'M2'"}


def _lists(cfg: str, capsys: pytest.CaptureFixture[str]) -> None:
    c = ["-c", cfg]
    assert main(["codes", "list", "--campaign", "tet", *c]) == 0
    rows = _out(capsys)
    assert rows[0] == _w("code points valid_from valid_to used_by used_at queries")
    assert rows[1] == ["A1", "10", "-", "-", "M1", "1970-01-01", "07:00", "0"]
    assert [r[0] for r in rows[2:]] == ["A2", "B1"]
    assert main(["codes", "list", "--campaign", "tet", "--free", "--limit", "1", "--json", *c]) == 0
    assert [r["code"] for r in _json(capsys)] == ["A2"]
    assert main(["codes", "list", "--campaign", "tet", "--used", "--json", *c]) == 0
    assert [(r["code"], r["used_at"]) for r in _json(capsys)] == [("A1", 5.0)]
    with pytest.raises(SystemExit) as info:
        main(["codes", "list", *c])  # --campaign is required
    assert info.value.code == 2
    capsys.readouterr()

    assert main(["gifts", "list", *c]) == 0
    rows = _out(capsys)
    assert rows[0] == _w("id type cost serial given_to given_at")
    assert [r[:5] for r in rows[1:]] == [
        ["1", "card", "100", "S1", "M1"],
        ["2", "card", "100", "S2", "-"],
    ]
    assert main(["gifts", "list", "--type", "card", "--free", "--json", *c]) == 0
    gifts = _json(capsys)
    assert [g["serial"] for g in gifts] == ["S2"]
    assert "pin" not in gifts[0]
    assert main(["gifts", "list", "--type", "other", *c]) == 0
    assert _out(capsys)[1] == ["(none)"]

    assert main(["events", "list", *c]) == 0
    rows = _out(capsys)
    assert rows[0] == _w("id time kind subject key processed payload")
    assert [r[3] for r in rows[1:]] == ["low_balance", "topup"]  # newest first
    assert main(["events", "list", "--kind", "topup", "--msisdn", "0912000001", "--json", *c]) == 0
    assert _json(capsys) == [
        {
            "id": 1,
            "kind": "topup",
            "subject": "84912000001",
            "payload": {"amount": 50000},
            "event_key": "bill-1",
            "created_at": 7.0,
            "processed_at": 8.0,
        }
    ]
    assert main(["events", "list", "--limit", "1", "--json", *c]) == 0
    assert [e["kind"] for e in _json(capsys)] == ["low_balance"]


def test_records_without_a_daemon(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = str(_config(tmp_path))
    assert main(["codes", "list", "--campaign", "tet", "-c", cfg]) == 2
    assert "no store at" in capsys.readouterr().err
    _orders(cfg, capsys)  # the first write creates the store

    async def seed() -> None:
        async with open_store(tmp_path / "var" / "s.sqlite") as store:
            await _seed(store)

    trio.run(seed)
    _members(cfg, capsys)
    _lists(cfg, capsys)


async def test_records_through_the_daemon(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = _config(tmp_path)
    config = load_config(cfg)
    store_path = tmp_path / "var" / "s.sqlite"
    store_path.parent.mkdir()
    sock = tmp_path / "admin.sock"
    async with open_store(store_path) as store, trio.open_nursery() as nursery:
        await _seed(store)
        commands = AdminCommands(store, cast("MtPipeline", None))
        register_record_commands(
            commands,
            store,
            config_partners=lambda: config.partners,
            log=structlog.wrap_logger(structlog.ReturnLogger()),
        )
        await nursery.start(serve_admin, sock, commands)
        capsys.readouterr()
        for session in (_orders, _members, _lists):
            await trio.to_thread.run_sync(session, str(cfg), capsys)
        # The daemon's own store has the changes (the CLI never opened it for writing).
        orders = await store.orders("acme")
        assert [(o.id, o.limit) for o in orders] == [(1, 1000), (2, 3500)]
        assert orders[1].expires_at is not None
        assert orders[1].expires_at <= time.time()

        async def ask(request: dict[str, Any]) -> dict[str, Any]:
            return await trio.to_thread.run_sync(admin_request, sock, request)

        assert (await ask({"cmd": "admin.records"}))["commands"][:2] == [
            "admin.records",
            "member.delete",
        ]
        for request, error in (
            ({"cmd": "order.add", "partner": "acme", "count": "5"}, "count: a whole number"),
            ({"cmd": "order.add", "partner": "acme", "count": 5, "kind": "x"}, "kind: prepaid"),
            ({"cmd": "order.cancel", "id": True}, "id: a whole number"),
            ({"cmd": "member.edit", "member_id": "M1", "set": {}}, "set: an object"),
            ({"cmd": "member.edit", "member_id": "M1", "set": {"msisdn": ""}}, "keeps a number"),
            ({"cmd": "member.delete"}, "member_id: a non-empty string"),
            ({"cmd": "partner.add", "system_id": "s", "password_hash": HASH, "settings": {
                "enabled": False}}, "go elsewhere"),
        ):  # fmt: skip
            answer = await ask(request)
            assert answer["ok"] is False
            assert error in answer["error"]
        nursery.cancel_scope.cancel()


def test_a_daemon_without_these_commands_is_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = str(_config(tmp_path))

    async def run() -> int:
        async with open_store(tmp_path / "s.sqlite") as store, trio.open_nursery() as nursery:
            commands = AdminCommands(store, cast("MtPipeline", None))  # an older daemon
            await nursery.start(serve_admin, tmp_path / "admin.sock", commands)
            argv = ["order", "cancel", "1", "-c", cfg]
            code = await trio.to_thread.run_sync(main, argv)
            nursery.cancel_scope.cancel()
        return code

    assert trio.run(run) == 2
    assert "runs a version without these commands" in capsys.readouterr().err
