"""Per-partner metrics: exact exposition lines from a fixed snapshot, then the daemon's
own registry scraped after real partner traffic."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING

import trio
from carrier_fixtures import wait_for
from partner_fixtures import esme, partner_daemon, smpplib_partner
from prometheus_client import CollectorRegistry, generate_latest

from smppgw.app.metrics import GatewayMetrics
from smppgw.net.partner_stats import (
    RECEIPT_LATENCY_BUCKETS,
    PartnerStatistics,
    ServerCounters,
    ServerStatistics,
)
from smppgw.protocol.pdus import CancelSm, SubmitSm
from smppgw.protocol.status import CommandStatus as S
from smppgw.store import NewOrder, OrderKind
from smppgw.store.opt_out import add_opt_outs

if TYPE_CHECKING:
    from pathlib import Path

    from smppgw.app.daemon import Daemon


@dataclass
class _Fixed:
    value: ServerStatistics

    def statistics(self) -> ServerStatistics:
        return self.value


def _scrape(registry: CollectorRegistry) -> list[str]:
    return generate_latest(registry).decode().splitlines()


def test_per_partner_families_from_a_snapshot() -> None:
    latency = [0] * (len(RECEIPT_LATENCY_BUCKETS) + 1)
    latency[1] = 2  # two receipts within 5 s
    latency[-1] = 1  # one after a day
    stats = ServerStatistics(
        sessions=2,
        bound=2,
        binds_refused=0,
        submits=20,
        accepted=12,
        refused_by_status={S.ESME_RTHROTTLED: 5},
        receipts_sent=3,
        receipts_acked=3,
        partners={
            "acme": PartnerStatistics(
                binds=2,
                accepted=10,
                held=2,
                refused=8,
                throttled=5,
                content_rejected=3,
                content_held=1,
                commands={("cancel_sm", "ok"): 4, ("cancel_sm", "failed"): 1},
                receipt_latency=tuple(latency),
                receipt_latency_sum=90000.5,
            ),
            "beta": PartnerStatistics(),
        },
        quota_remaining={("acme", 7): 990},
    )
    registry = CollectorRegistry()
    GatewayMetrics(registry).add_server(_Fixed(stats))
    lines = _scrape(registry)
    for expected in (
        'smppgw_partner_binds{partner="acme"} 2.0',
        'smppgw_partner_binds{partner="beta"} 0.0',
        'smppgw_partner_submit_outcomes_total{outcome="accepted",partner="acme"} 10.0',
        'smppgw_partner_submit_outcomes_total{outcome="held",partner="acme"} 2.0',
        'smppgw_partner_submit_outcomes_total{outcome="refused",partner="acme"} 8.0',
        'smppgw_partner_throttled_total{partner="acme"} 5.0',
        'smppgw_partner_content_filtered_total{action="rejected",partner="acme"} 3.0',
        'smppgw_partner_content_filtered_total{action="held",partner="acme"} 1.0',
        'smppgw_partner_commands_total{command="cancel_sm",partner="acme",result="ok"} 4.0',
        'smppgw_partner_commands_total{command="cancel_sm",partner="acme",result="failed"} 1.0',
        'smppgw_partner_quota_remaining{order="7",partner="acme"} 990.0',
        'smppgw_partner_receipt_latency_seconds_bucket{le="1.0",partner="acme"} 0.0',
        'smppgw_partner_receipt_latency_seconds_bucket{le="5.0",partner="acme"} 2.0',
        'smppgw_partner_receipt_latency_seconds_bucket{le="86400.0",partner="acme"} 2.0',
        'smppgw_partner_receipt_latency_seconds_bucket{le="+Inf",partner="acme"} 3.0',
        'smppgw_partner_receipt_latency_seconds_count{partner="acme"} 3.0',
        'smppgw_partner_receipt_latency_seconds_sum{partner="acme"} 90000.5',
    ):
        assert expected in lines, expected
    # Labels stay low-cardinality: never a number or a message id.
    assert not any("849" in line for line in lines)


def test_counters_track_receipt_latency_once_and_forget_the_oldest() -> None:
    counters = ServerCounters()
    counters.receipt_expected(1, 100.0)
    counters.receipt_sent("acme", 1, 103.0)
    counters.receipt_sent("acme", 1, 200.0)  # a resend is not observed twice
    counters.receipt_sent("acme", 2, 200.0)  # never tracked (accepted before a restart)
    acme = counters.snapshot(sessions=0, binds={}, receipts_sent=0, receipts_acked=0).partners
    assert acme["acme"].receipt_latency[1] == 1  # 3 s: the 5 s bucket
    assert sum(acme["acme"].receipt_latency) == 1
    assert acme["acme"].receipt_latency_sum == 3.0


async def _order(daemon: Daemon, partner: str, parts: int) -> int:
    assert daemon.store is not None
    return await daemon.store.create_order(
        NewOrder(partner=partner, kind=OrderKind.PREPAID, limit=parts)
    )


def _lines(daemon: Daemon) -> list[str]:
    return _scrape(daemon.registry)


async def test_daemon_exposes_binds_outcomes_quota_and_receipt_latency(tmp_path: Path) -> None:
    async with partner_daemon(tmp_path) as (daemon, port):
        order = await _order(daemon, "acme", 10)
        run = await trio.to_thread.run_sync(partial(smpplib_partner, port, count=3, receipts=3))
        assert [r.status for r in run.responses] == [0, 0, 0]
        assert daemon.server is not None
        assert daemon.store is not None
        await daemon.store.run_in_transaction(
            partial(
                add_opt_outs,
                entries=[("84911111111", ""), ("84922222222", ""), ("84911111111", "acme")],
                source="cli",
                now=0.0,
            )
        )
        await daemon.server.refresh_quota()
        lines = _lines(daemon)
        assert (
            'smppgw_partner_submit_outcomes_total{outcome="accepted",partner="acme"} 3.0' in lines
        )
        assert 'smppgw_opt_out_numbers{scope="all"} 2.0' in lines
        assert 'smppgw_opt_out_numbers{scope="acme"} 1.0' in lines
        assert f'smppgw_partner_quota_remaining{{order="{order}",partner="acme"}} 7.0' in lines
        assert 'smppgw_partner_receipt_latency_seconds_count{partner="acme"} 3.0' in lines
        # Unbound again once the server has seen the session end.
        await wait_for(lambda: 'smppgw_partner_binds{partner="acme"} 0.0' in _lines(daemon))
        async with esme(port) as link:
            await wait_for(lambda: 'smppgw_partner_binds{partner="acme"} 1.0' in _lines(daemon))
            cancel = await link.request(CancelSm(message_id=run.responses[0].message_id.decode()))
            assert cancel.command_status == S.ESME_RCANCELFAIL  # delivered already
        assert (
            'smppgw_partner_commands_total{command="cancel_sm",partner="acme",result="failed"} 1.0'
            in _lines(daemon)
        )


async def test_daemon_counts_throttled_and_content_filtered_per_partner(tmp_path: Path) -> None:
    async with partner_daemon(tmp_path, tps=1) as (daemon, port):
        await _order(daemon, "acme", 10)
        await _order(daemon, "beta", 10)
        async with esme(port) as link:
            statuses = [
                (
                    await link.request(
                        SubmitSm(source_addr="ACME", dest_addr_ton=1, destination_addr="8491")
                    )
                ).command_status
                for _ in range(4)
            ]
        throttled = statuses.count(S.ESME_RTHROTTLED)
        assert throttled >= 1
        assert set(statuses) == {0, S.ESME_RTHROTTLED}
        async with esme(port, "beta") as link:
            casino = SubmitSm(
                source_addr="BETA",
                dest_addr_ton=1,
                destination_addr="8491",
                short_message=b"casino",
            )
            assert (await link.request(casino)).command_status == S.ESME_RX_P_APPN
        lines = _lines(daemon)
        assert f'smppgw_partner_throttled_total{{partner="acme"}} {throttled:.1f}' in lines
        refused = 'smppgw_partner_submit_outcomes_total{outcome="refused",partner="acme"}'
        assert f"{refused} {throttled:.1f}" in lines
        assert 'smppgw_partner_throttled_total{partner="beta"} 0.0' in lines
        assert (
            'smppgw_partner_content_filtered_total{action="rejected",partner="beta"} 1.0' in lines
        )
        assert 'smppgw_partner_refused_total{status="ESME_RX_P_APPN"} 1.0' in lines
