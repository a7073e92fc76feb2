"""Every admission refusal in the README's table, end to end: the PyPI smpplib client as
the partner, the daemon's status seen in its ``submit_sm_resp``.

One daemon serves all the cases (they are independent submits on one bind), except the
throttle and the full queue, which need their own settings.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

import pytest
import smpplib.client
import smpplib.consts
import smpplib.smpp
import trio
from partner_fixtures import PASSWORD, partner_daemon

from smppgw.net import partner_server
from smppgw.protocol.status import CommandStatus as S
from smppgw.store import NewOrder, OrderKind
from smppgw.store.opt_out import ALL_PARTNERS, add_opt_outs

if TYPE_CHECKING:
    from pathlib import Path

    from smppgw.app.daemon import Daemon

GOOD: dict[str, Any] = {
    "source_addr_ton": smpplib.consts.SMPP_TON_ALNUM,
    "source_addr_npi": 0,
    "source_addr": "ACME",
    "dest_addr_ton": smpplib.consts.SMPP_TON_INTL,
    "dest_addr_npi": smpplib.consts.SMPP_NPI_ISDN,
    "destination_addr": "84912345678",
    "short_message": b"hello",
}

#: (case, partner, fields changed from GOOD, expected command_status)
CASES: list[tuple[str, str, dict[str, Any], int]] = [
    ("accepted", "acme", {}, S.ESME_ROK),
    ("source TON", "acme", {"source_addr_ton": 9}, S.ESME_RINVSRCTON),
    ("source NPI", "acme", {"source_addr_npi": 7}, S.ESME_RINVSRCNPI),
    ("destination TON", "acme", {"dest_addr_ton": 9}, S.ESME_RINVDSTTON),
    ("destination NPI", "acme", {"dest_addr_npi": 7}, S.ESME_RINVDSTNPI),
    ("destination not a number", "acme", {"destination_addr": "84ABC"}, S.ESME_RINVDSTADR),
    ("data_coding", "acme", {"data_coding": 0x05}, S.ESME_RSUBMITFAIL),
    ("schedule malformed", "acme", {"schedule_delivery_time": "garbage"}, S.ESME_RINVSCHED),
    ("validity passed", "acme", {"validity_period": "000101000000000+"}, S.ESME_RINVEXPIRY),
    ("esm_class mode", "acme", {"esm_class": 0x02}, S.ESME_RINVESMCLASS),
    ("priority_flag", "acme", {"priority_flag": 4}, S.ESME_RINVPRTFLG),
    ("registered_delivery", "acme", {"registered_delivery": 0x03}, S.ESME_RINVREGDLVFLG),
    ("replace_if_present", "acme", {"replace_if_present_flag": 1}, S.ESME_RINVREPFLAG),
    ("source not registered", "acme", {"source_addr": "OTHER"}, S.ESME_RINVSRCADR),
    (
        "content blocked",
        "beta",
        {"source_addr": "BETA", "short_message": b"casino!"},
        S.ESME_RX_P_APPN,
    ),
    ("no order", "beta", {"source_addr": "BETA"}, S.ESME_RX_R_APPN),
]


async def _order_for_acme(daemon: Daemon) -> None:
    assert daemon.store is not None
    await daemon.store.create_order(NewOrder(partner="acme", kind=OrderKind.PREPAID, limit=1000))


def _submit_statuses(
    port: int, system_id: str, submits: list[dict[str, Any]], *, one_by_one: bool = False
) -> list[int]:
    """Bind with smpplib, submit each (``one_by_one``: each after the previous answer),
    return the statuses in order (blocking)."""
    statuses: dict[int, int] = {}
    client = smpplib.client.Client("127.0.0.1", port, timeout=5, allow_unknown_opt_params=True)

    def record(pdu: Any) -> None:
        statuses[pdu.sequence] = pdu.status

    client.set_message_sent_handler(record)
    client.set_error_pdu_handler(record)
    client.connect()
    try:
        client.bind_transmitter(system_id=system_id, password=PASSWORD)
        sequences = []
        for fields in submits:
            pdu = smpplib.smpp.make_pdu("submit_sm", client=client, **fields)
            client.send_pdu(pdu)
            sequences.append(pdu.sequence)
            while one_by_one and len(statuses) < len(sequences):
                client.read_once()
        while len(statuses) < len(sequences):
            client.read_once()
        client.unbind()
    finally:
        client.disconnect()
    return [statuses[s] for s in sequences]


async def test_each_refusal_has_its_status_end_to_end(tmp_path: Path) -> None:
    async with partner_daemon(tmp_path) as (daemon, port):
        await _order_for_acme(daemon)
        for partner in ("acme", "beta"):
            cases = [c for c in CASES if c[1] == partner]
            submits = [{**GOOD, **fields} for _, _, fields, _ in cases]
            got = await trio.to_thread.run_sync(
                functools.partial(_submit_statuses, port, partner, submits)
            )
            expected = [status for *_, status in cases]
            named = [(c[0], hex(g), hex(e)) for c, g, e in zip(cases, got, expected, strict=True)]
            assert got == expected, named


async def test_throttle_answers_throttled(tmp_path: Path) -> None:
    async with partner_daemon(tmp_path, tps=2) as (daemon, port):
        await _order_for_acme(daemon)
        got = await trio.to_thread.run_sync(
            functools.partial(_submit_statuses, port, "acme", [GOOD] * 10)
        )
        assert got.count(S.ESME_ROK) >= 2
        assert S.ESME_RTHROTTLED in got
        assert set(got) <= {S.ESME_ROK, S.ESME_RTHROTTLED}


async def test_a_full_marketing_backlog_holds_marketing_back_not_otps(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The carrier is down: marketing messages pile up in its queue; past the backlog,
    # marketing submits wait for room, then are throttled; a transactional partner's
    # still go in at once.
    monkeypatch.setattr(partner_server, "MARKETING_HOLD", 0.3)
    async with partner_daemon(tmp_path, carrier_down=True, marketing_backlog=3) as (
        daemon,
        port,
    ):
        await _order_for_acme(daemon)
        got = await trio.to_thread.run_sync(
            functools.partial(_submit_statuses, port, "acme", [GOOD] * 5, one_by_one=True)
        )
        assert got == [S.ESME_ROK] * 3 + [S.ESME_RTHROTTLED] * 2
        otp = {**GOOD, "source_addr": "OTP"}
        started = trio.current_time()
        got = await trio.to_thread.run_sync(
            functools.partial(_submit_statuses, port, "otp", [otp] * 3, one_by_one=True)
        )
        assert got == [S.ESME_ROK] * 3
        assert trio.current_time() - started < 0.3 * 3  # none of them waited


async def test_a_marketing_submit_waits_for_room_in_the_backlog(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Room comes back (the queued messages are cancelled here, as a carrier would take
    # them): the waiting submit is accepted, not refused.
    monkeypatch.setattr(partner_server, "MARKETING_HOLD", 3.0)
    async with partner_daemon(tmp_path, carrier_down=True, marketing_backlog=2) as (
        daemon,
        port,
    ):
        await _order_for_acme(daemon)
        assert (
            await trio.to_thread.run_sync(
                functools.partial(_submit_statuses, port, "acme", [GOOD] * 2, one_by_one=True)
            )
            == [S.ESME_ROK] * 2
        )

        async def drain_later() -> None:
            await trio.sleep(0.5)
            assert daemon.pipeline is not None
            for queue in daemon.pipeline.queues.values():
                while queue.get_nowait() is not None:
                    pass

        async with trio.open_nursery() as nursery:
            nursery.start_soon(drain_later)
            got = await trio.to_thread.run_sync(
                functools.partial(_submit_statuses, port, "acme", [GOOD], one_by_one=True)
            )
        assert got == [S.ESME_ROK]


@pytest.mark.parametrize("pending", [3])
async def test_full_backlog_answers_queue_full(tmp_path: Path, pending: int) -> None:
    # The carrier is down: accepted messages wait in its queue; past the limit, MSGQFUL.
    # (The limit is checked per read of the session: one at a time here.)
    async with partner_daemon(tmp_path, carrier_down=True, max_pending=pending) as (
        daemon,
        port,
    ):
        await _order_for_acme(daemon)
        got = await trio.to_thread.run_sync(
            functools.partial(_submit_statuses, port, "acme", [GOOD] * 6, one_by_one=True)
        )
        assert got == [S.ESME_ROK] * pending + [S.ESME_RMSGQFUL] * (6 - pending)


async def test_marketing_to_an_opted_out_number_is_refused_otps_still_go(
    tmp_path: Path,
) -> None:
    """The opt-out list, end to end: acme is a marketing partner (the default), otp a
    transactional one. The number is refused however acme writes it, the OTP goes, and a
    number opted out of beta's marketing alone still gets acme's."""
    async with partner_daemon(tmp_path) as (daemon, port):
        await _order_for_acme(daemon)
        store = daemon.store
        assert store is not None
        assert daemon.server is not None

        def listed(conn: Any) -> int:
            rows = [("84912345678", ALL_PARTNERS), ("84900000009", "beta")]
            return add_opt_outs(conn, rows, "test", 0.0)

        assert await store.run_in_transaction(listed) == 2
        national = {
            "destination_addr": "0912345678",
            "dest_addr_ton": smpplib.consts.SMPP_TON_NATNL,
        }
        acme = [GOOD, {**GOOD, **national}, {**GOOD, "destination_addr": "84900000009"}]
        got = await trio.to_thread.run_sync(functools.partial(_submit_statuses, port, "acme", acme))
        assert got == [S.ESME_RX_P_APPN, S.ESME_RX_P_APPN, S.ESME_ROK]
        otp = [{**GOOD, "source_addr": "OTP"}]
        got = await trio.to_thread.run_sync(functools.partial(_submit_statuses, port, "otp", otp))
        assert got == [S.ESME_ROK]
        assert daemon.server.statistics().partners["acme"].opted_out == 2

        def journaled(conn: Any) -> list[tuple[str, str]]:
            sql = "SELECT partner, destination_addr FROM mt_message ORDER BY id"
            return [tuple(r) for r in conn.execute(sql)]

        assert await store.run_in_transaction(journaled) == [
            ("acme", "84900000009"),
            ("otp", "84912345678"),
        ]
