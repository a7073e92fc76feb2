"""``smppgw import`` / ``smppgw inventory``: in-process, and through a daemon's admin socket."""

from __future__ import annotations

import json
from functools import partial
from typing import TYPE_CHECKING, Any, cast

import pytest
import trio

from smppgw.app import admin
from smppgw.app.admin import AdminCommands, admin_request, serve_admin
from smppgw.app.admin_imports import register_import_commands
from smppgw.cli import main
from smppgw.imports import run as import_run
from smppgw.store import open_store

if TYPE_CHECKING:
    from pathlib import Path

    from smppgw.gateway.mt import MtPipeline


def _config(tmp_path: Path) -> Path:
    path = tmp_path / "smppgw.yaml"
    path.write_text(
        f"""\
store:
  path: {tmp_path / "var" / "s.sqlite"}
  durability: process
admin_socket: {tmp_path / "admin.sock"}
carriers:
  - name: vt
    host: smsc.example
    port: 2775
    system_id: acme
    password: pw
""",
        encoding="utf-8",
    )
    return path


def _csv(path: Path, *lines: str) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_direct_import_and_inventory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = str(_config(tmp_path))
    codes = _csv(tmp_path / "codes.csv", "code;points", "a1;10", "a2;20")
    assert main(["import", "codes", str(codes), "--campaign", "tet", "--config", cfg]) == 0
    out = capsys.readouterr().out
    assert "2 rows read, 2 imported" in out

    bad = _csv(tmp_path / "bad.csv", "code,points", "b1,5", "a1,5", "b2,oops")
    assert main(["import", "codes", str(bad), "--campaign", "tet", "--json", "-c", cfg]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["committed"] is False
    assert [(e["line"], e["column"]) for e in report["errors"]] == [(4, "points")]

    assert main(["import", "codes", str(bad), "--campaign", "tet", "--partial", "-c", cfg]) == 1
    out = capsys.readouterr().out
    assert "1 imported" in out
    assert "line 3, code: A1 is already in the inventory" in out

    assert main(["inventory", "--json", "-c", cfg]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["campaigns"] == [{"campaign": "tet", "total": 3, "used": 0, "free": 3}]
    assert main(["inventory", "-c", cfg]) == 0
    assert "tet" in capsys.readouterr().out


def test_usage_errors_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = str(_config(tmp_path))
    assert main(["import", "members", str(tmp_path / "none.csv"), "-c", cfg]) == 2
    assert "no file" in capsys.readouterr().err
    odd = _csv(tmp_path / "m.ods", "msisdn")
    assert main(["import", "members", str(odd), "-c", cfg]) == 2
    assert "unknown file type" in capsys.readouterr().err
    assert main(["import", "members", str(odd), "-c", str(tmp_path / "nope.yaml")]) == 2
    assert "no config file" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main(["import", "vouchers", str(odd), "-c", cfg])
    assert exit_info.value.code == 2
    assert main(["inventory", "-c", cfg]) == 2  # no store yet
    assert "no store" in capsys.readouterr().err


async def _request(sock: Path, request: dict[str, Any]) -> dict[str, Any]:
    return await trio.to_thread.run_sync(admin_request, sock, request)


async def test_admin_socket_commands_and_cli_through_the_daemon(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = _config(tmp_path)
    sock = tmp_path / "admin.sock"
    store_path = tmp_path / "var" / "s.sqlite"
    store_path.parent.mkdir()
    members = _csv(tmp_path / "m.csv", "msisdn,member_id,name", "0912000001,M1,An", "0912x,M2,B")
    async with open_store(store_path) as store, trio.open_nursery() as nursery:
        commands = AdminCommands(store, cast("MtPipeline", None))
        register_import_commands(commands, store, None)
        await nursery.start(serve_admin, sock, commands)

        answer = await _request(sock, {"cmd": "import.members", "path": str(members)})
        assert answer["ok"] is True
        assert answer["report"]["committed"] is False
        assert answer["report"]["error_count"] == 1
        status = await _request(sock, {"cmd": "import.status", "job": answer["job"]})
        assert (status["state"], status["rows_read"]) == ("done", 2)

        answer = await _request(
            sock, {"cmd": "import.members", "path": str(members), "partial": True, "job": "j2"}
        )
        assert (answer["job"], answer["report"]["imported"]) == ("j2", 1)

        refused = await _request(sock, {"cmd": "import.members", "path": "m.csv"})
        assert refused == {"ok": False, "error": "path: give the file's absolute path"}
        missing = await _request(sock, {"cmd": "import.codes", "path": str(tmp_path / "x.csv")})
        assert missing["ok"] is False
        assert "x.csv" in missing["error"]
        unknown = await _request(sock, {"cmd": "import.status", "job": "nope"})
        assert unknown["ok"] is False

        stats = await _request(sock, {"cmd": "inventory.stats"})
        assert stats["stats"]["members"] == 1

        # The CLI finds the daemon through the config's admin_socket: the store is the
        # daemon's (its lock keeps a second writer out), so only the socket can work.
        # A tiny per-request deadline makes the answer outlast the server's patience:
        # the CLI then learns the outcome by polling the job.
        monkeypatch.setattr(admin, "_REQUEST_TIMEOUT", 0.01)
        monkeypatch.setattr(import_run, "CHUNK_ROWS", 50)
        codes = _csv(tmp_path / "codes.csv", "code,points", *(f"C{i},{i % 7}" for i in range(1500)))
        argv = ["import", "codes", str(codes), "--campaign", "tet", "--json", "-c", str(cfg)]
        assert await trio.to_thread.run_sync(main, argv) == 0
        argv = ["import", "codes", str(codes), "--campaign", "tet", "-c", str(cfg)]
        assert await trio.to_thread.run_sync(main, argv) == 1  # all already there
        monkeypatch.setattr(admin, "_REQUEST_TIMEOUT", 10.0)
        assert await trio.to_thread.run_sync(partial(main, ["inventory", "-c", str(cfg)])) == 0
        nursery.cancel_scope.cancel()
    async with open_store(store_path) as store:
        stats = await import_run.inventory_stats(store)
    assert stats["campaigns"] == [{"campaign": "tet", "total": 1500, "used": 0, "free": 1500}]
    assert stats["members"] == 1


async def test_one_import_at_a_time(tmp_path: Path) -> None:
    store_path = tmp_path / "s.sqlite"
    big = _csv(
        tmp_path / "g.csv", "gift_type,serial,cost_points", *(f"t,{i},1" for i in range(3000))
    )
    async with open_store(store_path) as store:
        commands = AdminCommands(store, cast("MtPipeline", None))
        register_import_commands(commands, store, None)
        results: list[dict[str, Any]] = []

        async def one(job: str) -> None:
            request = {"cmd": "import.gifts", "path": str(big), "job": job}
            results.append(await commands.run(request))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(one, "first")
            await trio.testing.wait_all_tasks_blocked()
            nursery.start_soon(one, "second")
    assert results[0] == {"ok": False, "error": "an import is already running (job first)"}
    assert results[1]["report"]["imported"] == 3000
