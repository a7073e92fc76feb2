"""``smppgw_partner_submit_answer_seconds``: the gateway's own part of a partner's wait,
from reading an accepted submit_sm to sending its submit_sm_resp, one observation per
accepted message (refused ones are not in it)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import trio
from partner_fixtures import partner_daemon, smpplib_partner
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from smppgw.net.partner_stats import ANSWER_LATENCY_BUCKETS, ServerCounters
from smppgw.store import NewOrder, OrderKind

if TYPE_CHECKING:
    from pathlib import Path


def test_each_accepted_message_is_one_observation_in_its_bucket() -> None:
    counters = ServerCounters()
    counters.answered(0.0007, 3)  # one batch of three, answered together
    counters.answered(2.0, 1)  # past the last bound: +Inf
    stats = counters.snapshot(sessions=0, binds={}, receipts_sent=0, receipts_acked=0)
    assert len(stats.answer_latency) == len(ANSWER_LATENCY_BUCKETS) + 1
    assert stats.answer_latency[ANSWER_LATENCY_BUCKETS.index(0.001)] == 3
    assert stats.answer_latency[-1] == 1
    assert sum(stats.answer_latency) == 4
    assert math.isclose(stats.answer_latency_sum, 3 * 0.0007 + 2.0)


async def test_the_scrape_counts_every_accepted_submit_and_no_refused_one(tmp_path: Path) -> None:
    async with partner_daemon(tmp_path) as (daemon, port):
        assert daemon.store is not None
        await daemon.store.create_order(NewOrder(partner="acme", kind=OrderKind.PREPAID, limit=5))
        run = await trio.to_thread.run_sync(
            lambda: smpplib_partner(port, count=7, registered_delivery=0)
        )
        statuses = sorted(int(r.status) for r in run.responses)
        assert statuses.count(0) == 5  # the order pays for five; two are refused
        scrape = generate_latest(daemon.registry).decode()
    [family] = [
        f
        for f in text_string_to_metric_families(scrape)
        if f.name == "smppgw_partner_submit_answer_seconds"
    ]
    samples = {(s.name, s.labels.get("le")): s.value for s in family.samples}
    assert samples[("smppgw_partner_submit_answer_seconds_count", None)] == 5
    assert samples[("smppgw_partner_submit_answer_seconds_bucket", "+Inf")] == 5
    assert 0 < samples[("smppgw_partner_submit_answer_seconds_sum", None)] < 5 * 1.0
