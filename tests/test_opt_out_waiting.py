"""A number that opts out while its marketing message waits (for its schedule, for a
moderator) does not get it: checked again when the message is due, not only at
admission."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import trio
from carrier_fixtures import wait_for
from partner_fixtures import esme, mo_to_receiver, partner_daemon
from test_partner_commands import _accepted, _scheduling, _sent_to, _state

from smppgw.app.admin import admin_request
from smppgw.gateway.opt_out import OPTED_OUT_ERROR
from smppgw.store.opt_out import ALL_PARTNERS, add_opt_outs

if TYPE_CHECKING:
    from pathlib import Path

    from smppgw.app.daemon import Daemon


async def _opt_out(daemon: Daemon, number: str, scope: str = ALL_PARTNERS) -> None:
    assert daemon.store is not None

    def write(conn: Any) -> int:
        return add_opt_outs(conn, [(number, scope)], "test", 0.0)

    assert await daemon.store.run_in_transaction(write) == 1


async def test_a_scheduled_campaign_skips_a_number_that_opted_out_meanwhile(
    tmp_path: Path,
) -> None:
    async with partner_daemon(tmp_path) as (daemon, port), esme(port) as link:
        sim, pipeline = await _scheduling(daemon)
        soon = "000000000001000R"  # relative: one second
        refused = await _accepted(
            link, b"sale", destination="84911111111", schedule_delivery_time=soon
        )
        sent = await _accepted(
            link, b"sale", destination="84922222222", schedule_delivery_time=soon
        )
        other = await _accepted(
            link, b"sale", destination="84933333333", schedule_delivery_time=soon
        )
        await _opt_out(daemon, "84911111111")
        await _opt_out(daemon, "84933333333", scope="beta")  # another partner's only
        await wait_for(lambda: bool(_sent_to(sim, "84922222222")), within=5)
        await wait_for(lambda: bool(_sent_to(sim, "84933333333")), within=5)
        await pipeline.flush()
        assert await _state(daemon, refused) == ("rejected", OPTED_OUT_ERROR, b"sale")
        assert not _sent_to(sim, "84911111111")
        assert pipeline.statistics().opted_out == 1
        for message_id in (sent, other):
            assert (await _state(daemon, message_id))[0] != "rejected"
        # Nothing charged for it: of the order's 10 parts, two are spent or reserved.
        assert daemon.store is not None
        orders = await daemon.store.orders("acme")
        assert [o.reserved + o.spent for o in orders] == [2]


async def test_a_moderator_approval_after_the_number_opted_out_rejects_it(
    tmp_path: Path,
) -> None:
    async with partner_daemon(tmp_path) as (daemon, port), esme(port, "mod") as link:
        held = await _accepted(link, b"promo", destination="84944444444", source="ANY")
        kept = await _accepted(link, b"promo", destination="84955555555", source="ANY")
        await _opt_out(daemon, "84944444444")
        sock = tmp_path / "admin.sock"
        request = {"cmd": "moderation.approve", "ids": [int(held), int(kept)]}
        answer = await trio.to_thread.run_sync(admin_request, sock, request)
        assert answer == {"ok": True, "approved": [int(held), int(kept)], "opted_out": [int(held)]}
        assert await _state(daemon, held) == ("rejected", OPTED_OUT_ERROR, b"promo")
        sim = daemon.simulator
        await wait_for(lambda: bool(_sent_to(sim, "84955555555")), within=5)  # type: ignore[arg-type]
        assert not _sent_to(sim, "84944444444")  # type: ignore[arg-type]


async def test_tc_on_a_partner_s_short_code_is_the_list_s_and_the_rest_the_partner_s(
    tmp_path: Path,
) -> None:
    """The opt-out scenario may list a short code a partner owns: its keywords are the
    list's, every other MO still goes to the partner."""
    folder = tmp_path / "scenarios"
    folder.mkdir()
    (folder / "optout.yaml").write_text(
        "name: optout\nshort_codes: ['8055']\nhandler: optout\n"
        "commands: {stop: {keywords: [TC]}, start: {keywords: [NHANQC]}}\n"
    )
    async with partner_daemon(tmp_path) as (daemon, port):
        sim, run = await mo_to_receiver(
            daemon, port, ("84912345678", "8055", "TC"), ("84912345678", "8055", "HELLO")
        )
        assert [mo.short_message for mo in run.receipts] == [b"HELLO"]
        assert daemon.store is not None
        rows = await daemon.store.read(
            lambda conn: conn.execute("SELECT msisdn, scope, source FROM opt_out").fetchall()
        )
        assert rows == [("84912345678", "", "mo:8055")]
        await wait_for(lambda: bool(_sent_to(sim, "84912345678")), within=5)  # the reply
