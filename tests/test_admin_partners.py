"""Partner accounts: ``merge_partners`` (config overridden by the store) and the
``smppgw partner`` commands, through a daemon's admin socket and without a daemon."""

from __future__ import annotations

import io
import json
from typing import TYPE_CHECKING, Any, cast

import pytest
import structlog
import trio
from hypothesis import given, settings
from hypothesis import strategies as st

from smppgw.app.admin import AdminCommands, admin_request, serve_admin
from smppgw.app.admin_records import register_record_commands
from smppgw.app.partner_accounts import (
    InvalidPartnerAccount,
    Refusal,
    load_partners,
    merge_partners,
)
from smppgw.app.partner_models import PartnerSettings
from smppgw.cli import main
from smppgw.gateway.auth import hash_password, verify_password
from smppgw.store import open_store
from smppgw.store.admin_queries import PartnerAccount, partner_accounts, save_partner_account

if TYPE_CHECKING:
    import sqlite3
    from pathlib import Path

    from smppgw.gateway.mt import MtPipeline

HASH_A = hash_password("a", salt=b"a" * 16)
HASH_B = hash_password("b", salt=b"b" * 16)


def _partner(system_id: str, **extra: Any) -> PartnerSettings:
    return PartnerSettings.model_validate(
        {"system_id": system_id, "password_hash": HASH_A, **extra}
    )


# ---------------------------------------------------------------------- merge_partners

_IDS = ("acme", "beta", "gamma", "delta", "eps")
_BAD_SETTINGS: tuple[dict[str, Any], ...] = ({"max_binds": 0}, {"bogus": 1}, {"tps": -1})


@st.composite
def _cases(draw: st.DrawFn) -> tuple[list[PartnerSettings], list[PartnerAccount]]:
    config_ids = draw(st.lists(st.sampled_from(_IDS), unique=True, max_size=3))
    config = [_partner(i, enabled=draw(st.booleans())) for i in config_ids]
    accounts = []
    for system_id in draw(st.lists(st.sampled_from(_IDS), unique=True)):
        new = system_id not in config_ids
        settings = None
        if new and draw(st.booleans()):
            settings = draw(st.sampled_from([{}, {"sources": ["SHOP"]}, *_BAD_SETTINGS]))
        accounts.append(
            PartnerAccount(
                system_id,
                password_hash=draw(st.sampled_from([None, HASH_B, "not-a-hash"])),
                enabled=draw(st.sampled_from([None, True, False])),
                settings=settings,
            )
        )
    return config, accounts


def _valid(account: PartnerAccount, new: bool) -> bool:
    if account.password_hash == "not-a-hash":
        return False
    if new:
        return account.password_hash is not None and account.settings not in _BAD_SETTINGS
    return True


@settings(max_examples=300, deadline=None)
@given(_cases())
def test_merge_partners_store_wins_and_bad_accounts_are_refused(
    case: tuple[list[PartnerSettings], list[PartnerAccount]],
) -> None:
    config, accounts = case
    config_ids = {p.system_id for p in config}
    refused: list[Refusal] = []
    merged = {p.system_id: p for p in merge_partners(config, accounts, refused=refused)}
    expected_refused = set()
    for account in accounts:
        new = account.system_id not in config_ids
        if new and account.settings is None:
            assert account.system_id not in merged  # an override of nothing
            continue
        if not _valid(account, new):
            expected_refused.add(account.system_id)
            if new:
                assert account.system_id not in merged
            else:  # the config's partner stays, untouched
                assert merged[account.system_id] in config
            continue
        got = merged[account.system_id]
        if account.password_hash is not None:
            assert got.password_hash == account.password_hash
        if account.enabled is False:
            assert got.enabled is False  # a disabled one stays disabled
        elif account.enabled is True:
            assert got.enabled is True
        elif not new:
            assert got.enabled == next(p for p in config if p.system_id == got.system_id).enabled
        if new and account.settings:
            assert got.sources == ("SHOP",)
    assert {r.system_id for r in refused} == expected_refused
    assert all(r.reason for r in refused)
    for partner in config:  # config partners are never lost
        assert partner.system_id in merged
    if expected_refused:
        with pytest.raises(InvalidPartnerAccount) as info:
            merge_partners(config, accounts)
        assert info.value.refusal.system_id in expected_refused
    else:
        assert tuple(merged.values()) == merge_partners(config, accounts)


def test_merge_reasons_and_rules_across_partners() -> None:
    config = [_partner("acme", short_codes=["8055"])]
    bad = PartnerAccount("shop", HASH_B, None, {"max_binds": 0})
    with pytest.raises(InvalidPartnerAccount, match=r"partner 'shop': max_binds: .*1"):
        merge_partners(config, [bad])
    taken = PartnerAccount("shop", HASH_B, None, {"short_codes": ["8055"]})
    orphan = PartnerAccount("sub", HASH_B, None, {"parent": "nobody"})
    refused: list[Refusal] = []
    merged = merge_partners(config, [taken, orphan], refused=refused)
    assert [p.system_id for p in merged] == ["acme"]
    assert refused == [
        Refusal("shop", "short code 8055 is owned by 'acme'"),
        Refusal("sub", "no partner with system_id 'nobody'"),
    ]
    nohash = PartnerAccount("shop", None, None, {})
    with pytest.raises(InvalidPartnerAccount, match="no password_hash"):
        merge_partners(config, [nohash])
    # A sub-partner added from the CLI whose parent is in the config is fine.
    child = PartnerAccount("child", HASH_B, False, {"parent": "acme"})
    assert merge_partners(config, [child])[1] == _partner(
        "child", password_hash=HASH_B, parent="acme", enabled=False
    )


async def test_load_partners_is_lenient(tmp_path: Path) -> None:
    async with open_store(tmp_path / "s.sqlite") as store:
        assert await load_partners(store, [_partner("acme")]) == (_partner("acme"),)
        accounts = [
            PartnerAccount("acme", None, False),
            PartnerAccount("shop", HASH_B, None, {"tps": -1}),
        ]

        def write(conn: sqlite3.Connection) -> None:
            for account in accounts:
                save_partner_account(conn, account, 1.0)

        await store.run_in_transaction(write)
        partners = await load_partners(store, [_partner("acme")])
    assert partners == (_partner("acme", enabled=False),)


# ---------------------------------------------------------------------- the commands


def _config(tmp_path: Path) -> Path:
    path = tmp_path / "smppgw.yaml"
    path.write_text(
        f"""\
store: {{path: {tmp_path / "var" / "s.sqlite"}, durability: process}}
admin_socket: {tmp_path / "admin.sock"}
carriers:
  - {{name: vt, host: smsc.example, port: 2775, system_id: acme, password: pw}}
partners:
  - {{system_id: acme, password_hash: "{HASH_A}", sources: [ACME], short_codes: ["8055"]}}
""",
        encoding="utf-8",
    )
    return path


def _cli(argv: list[str], stdin: str = "") -> int:
    """``smppgw ...`` with ``stdin`` (a password) and nothing else of the test's."""
    import sys

    saved = sys.stdin
    sys.stdin = io.StringIO(stdin)
    try:
        return main(argv)
    finally:
        sys.stdin = saved


def _partner_session(cfg: str, capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    """The same operator session on either path; returns the final ``partner list``."""
    assert _cli(["partner", "add", "shop", "--source", "SHOP", "-c", cfg], "shoppw\n") == 0
    assert capsys.readouterr().out.strip() == "partner shop added"
    argv = ["partner", "add", "shop", "--set", "tps=5", "-c", cfg]
    assert _cli(argv, "x\n") == 1
    assert "exists already" in capsys.readouterr().err
    argv = ["partner", "add", "bad", "--short-code", "8055", "-c", cfg]
    assert _cli(argv, "x\n") == 1
    assert "short code 8055 is owned by 'acme'" in capsys.readouterr().err
    assert _cli(["partner", "add", "long", "-c", cfg], "123456789\n") == 2
    assert "longer than 8 octets" in capsys.readouterr().err
    assert _cli(["partner", "password", "acme", "--json", "-c", cfg], "newpw\n") == 0
    assert json.loads(capsys.readouterr().out) == {"ok": True, "system_id": "acme"}
    assert _cli(["partner", "password", "nobody", "-c", cfg], "newpw\n") == 1
    assert "no partner 'nobody'" in capsys.readouterr().err
    assert _cli(["partner", "disable", "shop", "-c", cfg]) == 0
    assert capsys.readouterr().out.strip() == "partner shop disabled"
    assert _cli(["partner", "disable", "acme", "-c", cfg]) == 0
    assert _cli(["partner", "enable", "acme", "-c", cfg]) == 0
    capsys.readouterr()
    assert _cli(["partner", "list", "-c", cfg]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split() == [
        "system_id", "enabled", "origin", "billing", "sources", "short_codes", "refused"
    ]  # fmt: skip
    assert table[1].split() == ["acme", "yes", "config+store", "prepaid", "ACME", "8055", "-"]
    assert table[2].split() == ["shop", "no", "store", "prepaid", "SHOP", "-", "-"]
    assert _cli(["partner", "list", "--json", "-c", cfg]) == 0
    rows: list[dict[str, Any]] = json.loads(capsys.readouterr().out)
    return {r["system_id"]: r for r in rows}


def _check_store(accounts: list[PartnerAccount]) -> None:
    by_id = {a.system_id: a for a in accounts}
    assert set(by_id) == {"acme", "shop"}
    assert by_id["acme"].enabled is True
    assert by_id["acme"].password_hash is not None
    assert verify_password("newpw", by_id["acme"].password_hash)
    assert by_id["shop"].settings == {"sources": ["SHOP"]}
    assert by_id["shop"].enabled is False
    assert by_id["shop"].password_hash is not None
    assert verify_password("shoppw", by_id["shop"].password_hash)


def test_partner_commands_without_a_daemon(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = str(_config(tmp_path))
    assert _cli(["partner", "list", "--json", "-c", cfg]) == 0  # no store yet: the config's
    assert [r["origin"] for r in json.loads(capsys.readouterr().out)] == ["config"]
    rows = _partner_session(cfg, capsys)
    assert rows["shop"]["enabled"] is False
    assert rows["acme"]["origin"] == "config+store"

    async def read() -> list[PartnerAccount]:
        async with open_store(tmp_path / "var" / "s.sqlite") as store:
            return await store.read(partner_accounts)

    _check_store(trio.run(read))


async def test_partner_commands_through_the_daemon(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from smppgw.app.config import load_config

    cfg = _config(tmp_path)
    config = load_config(cfg)
    store_path = tmp_path / "var" / "s.sqlite"
    store_path.parent.mkdir()
    applied: list[tuple[PartnerSettings, ...]] = []

    async def apply(partners: tuple[PartnerSettings, ...]) -> None:
        applied.append(partners)

    async with open_store(store_path) as store, trio.open_nursery() as nursery:
        commands = AdminCommands(store, cast("MtPipeline", None))
        register_record_commands(
            commands,
            store,
            config_partners=lambda: config.partners,
            on_partners_changed=apply,
            log=structlog.wrap_logger(structlog.ReturnLogger()),  # stdout is the CLI's here
        )
        await nursery.start(serve_admin, tmp_path / "admin.sock", commands)
        capsys.readouterr()
        rows = await trio.to_thread.run_sync(_partner_session, str(cfg), capsys)
        assert rows["shop"]["enabled"] is False
        _check_store(await store.read(partner_accounts))

        sock = tmp_path / "admin.sock"
        bad = {"cmd": "partner.add", "system_id": "x", "password_hash": "plain"}
        answer = await trio.to_thread.run_sync(admin_request, sock, bad)
        assert answer["ok"] is False
        nursery.cancel_scope.cancel()
    # The daemon was handed the merged partners after each change that committed.
    assert len(applied) == 5
    last = {p.system_id: p for p in applied[-1]}
    assert last["shop"].enabled is False
    assert last["acme"].enabled is True
    assert verify_password("newpw", last["acme"].password_hash)
    assert [p.enabled for p in applied[2] if p.system_id == "shop"] == [False]
