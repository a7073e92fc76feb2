"""The Prometheus collector: fakes with fixed ``statistics()``, exact exposition lines."""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Generic, TypeVar

import pytest
from prometheus_client import CollectorRegistry, Counter, generate_latest

import smppgw.app.metrics as metrics_module
from smppgw import __version__
from smppgw.app.metrics import (
    DEFAULT_LATENCY_BUCKETS,
    GatewayMetrics,
    LatencyHistogram,
    StatisticsSource,
)
from smppgw.gateway.mt import MtStatistics
from smppgw.gateway.outbound import CarrierQueue, OutboundMessage, QueueStatistics
from smppgw.gateway.throttle import TokenBucket, TokenBucketStatistics
from smppgw.net.carrier import CarrierStatistics
from smppgw.net.partner_server import ServerStatistics
from smppgw.store.health import StoreStatistics

if TYPE_CHECKING:
    from collections.abc import Mapping

T = TypeVar("T")

CARRIER = CarrierStatistics(
    name="acme",
    binds_configured=2,
    binds_up=1,
    connects=3,
    bind_failures=1,
    reconnects=2,
    throttled=4,
    submits=120,
    submit_errors=7,
    timeouts=5,
    possible_duplicates=6,
    deliveries=80,
    deliveries_refused=8,
    duplicates_inbound=9,
    window_used=10,
    window_size=20,
    latency_sum=12.5,
    latency_count=120,
    empty_ids=12,
)
BUCKET = TokenBucketStatistics(
    configured_rate=50.0, current_rate=25.0, tokens=3.0, refusals=11, penalties=2
)
MT = MtStatistics(
    queued=4,
    delayed=3,
    in_flight_receipts=30,
    submitted_parts=110,
    failed=12,
    retried=13,
    possible_duplicates=14,
    receipts_matched=90,
    receipts_unmatched=15,
    receipts_held=16,
    unroutable=17,
    flush_errors=18,
    expired_unsent=19,
    opted_out=20,
)
STORE = StoreStatistics(
    queue_depth=5,
    queue_capacity=1000,
    last_batch_items=6,
    last_batch_rows=9,
    avg_batch_items=2.5,
    avg_batch_rows=3.0,
    commit_latency_last=0.004,
    commit_latency_avg=0.002,
    commit_latency_max=0.25,
    commits=400,
    items=1000,
    rows=1200,
    item_errors=19,
    batch_errors=20,
    inline_commits=21,
    refusing=False,
    reason=None,
)


@dataclass
class Fixed(Generic[T]):
    """Anything whose ``statistics()`` returns a value the test sets."""

    value: T

    def statistics(self) -> T:
        return self.value


@dataclass
class FakeCarrier:
    name: str
    stats: CarrierStatistics
    bucket_stats: TokenBucketStatistics = BUCKET
    bucket: StatisticsSource[TokenBucketStatistics] = field(init=False)

    def __post_init__(self) -> None:
        self.bucket = Fixed(self.bucket_stats)

    def statistics(self) -> CarrierStatistics:
        return self.stats


@dataclass
class FakePipeline:
    stats: MtStatistics
    queues: Mapping[str, StatisticsSource[QueueStatistics]]

    def statistics(self) -> MtStatistics:
        return self.stats


def scrape(registry: CollectorRegistry) -> list[str]:
    return generate_latest(registry).decode().splitlines()


def block(lines: list[str], name: str) -> list[str]:
    """The HELP/TYPE lines and samples of one family, as exposed."""
    start = lines.index(next(line for line in lines if line.startswith(f"# HELP {name} ")))
    end = start + 1
    while end < len(lines) and not lines[end].startswith("# HELP "):
        end += 1
    return lines[start:end]


def samples(lines: list[str]) -> list[str]:
    return [line for line in lines if not line.startswith("#")]


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


def test_nothing_registered_exposes_up_and_build_info(registry: CollectorRegistry) -> None:
    GatewayMetrics(registry, version="1.2.3")
    assert scrape(registry) == [
        "# HELP smppgw_up 1 while the daemon answers scrapes.",
        "# TYPE smppgw_up gauge",
        "smppgw_up 1.0",
        "# HELP smppgw_build_info The running version, in the label.",
        "# TYPE smppgw_build_info gauge",
        'smppgw_build_info{version="1.2.3"} 1.0',
    ]


def test_build_info_defaults_to_the_package_version(registry: CollectorRegistry) -> None:
    GatewayMetrics(registry)
    assert f'smppgw_build_info{{version="{__version__}"}} 1.0' in scrape(registry)


def test_carrier_metrics_exact(registry: CollectorRegistry) -> None:
    metrics = GatewayMetrics(registry)
    metrics.add_carrier(FakeCarrier("acme", CARRIER))
    lines = scrape(registry)
    assert block(lines, "smppgw_carrier_binds_up") == [
        "# HELP smppgw_carrier_binds_up Binds currently bound.",
        "# TYPE smppgw_carrier_binds_up gauge",
        'smppgw_carrier_binds_up{carrier="acme"} 1.0',
    ]
    assert block(lines, "smppgw_carrier_submits_total") == [
        "# HELP smppgw_carrier_submits_total submit_sm answered by the SMSC (any status).",
        "# TYPE smppgw_carrier_submits_total counter",
        'smppgw_carrier_submits_total{carrier="acme"} 120.0',
    ]
    got = {
        line
        for line in samples(lines)
        if line.startswith("smppgw_carrier_") and "latency" not in line
    }
    assert got == {
        'smppgw_carrier_binds_configured{carrier="acme"} 2.0',
        'smppgw_carrier_binds_up{carrier="acme"} 1.0',
        'smppgw_carrier_connects_total{carrier="acme"} 3.0',
        'smppgw_carrier_bind_failures_total{carrier="acme"} 1.0',
        'smppgw_carrier_reconnects_total{carrier="acme"} 2.0',
        'smppgw_carrier_submits_total{carrier="acme"} 120.0',
        'smppgw_carrier_submit_errors_total{carrier="acme"} 7.0',
        'smppgw_carrier_throttled_total{carrier="acme"} 4.0',
        'smppgw_carrier_timeouts_total{carrier="acme"} 5.0',
        'smppgw_carrier_possible_duplicates_total{carrier="acme"} 6.0',
        'smppgw_carrier_empty_ids_total{carrier="acme"} 12.0',
        'smppgw_carrier_deliveries_total{carrier="acme"} 80.0',
        'smppgw_carrier_deliveries_refused_total{carrier="acme"} 8.0',
        'smppgw_carrier_inbound_duplicates_total{carrier="acme"} 9.0',
        'smppgw_carrier_window_used{carrier="acme"} 10.0',
        'smppgw_carrier_window_size{carrier="acme"} 20.0',
        'smppgw_carrier_tps_limit{carrier="acme"} 50.0',
        'smppgw_carrier_tps_current{carrier="acme"} 25.0',
        'smppgw_carrier_tps_waits_total{carrier="acme"} 11.0',
    }


def test_carriers_are_sorted_by_name_within_a_family(registry: CollectorRegistry) -> None:
    metrics = GatewayMetrics(registry)
    metrics.add_carrier(FakeCarrier("zeta", replace(CARRIER, name="zeta", binds_up=2)))
    metrics.add_carrier(FakeCarrier("acme", CARRIER))
    assert samples(block(scrape(registry), "smppgw_carrier_binds_up")) == [
        'smppgw_carrier_binds_up{carrier="acme"} 1.0',
        'smppgw_carrier_binds_up{carrier="zeta"} 2.0',
    ]


def test_latency_histogram_exact(registry: CollectorRegistry) -> None:
    metrics = GatewayMetrics(registry, latency_buckets=(0.01, 0.1, 1.0))
    metrics.add_carrier(FakeCarrier("acme", CARRIER))
    # A value equal to a bound belongs to that bound's bucket (``le``).
    for seconds in (0.005, 0.01, 0.05, 0.5, 2.0):
        metrics.observe_submit_latency("acme", seconds)
    assert block(scrape(registry), "smppgw_carrier_submit_latency_seconds") == [
        "# HELP smppgw_carrier_submit_latency_seconds Time from submit_sm to its submit_sm_resp.",
        "# TYPE smppgw_carrier_submit_latency_seconds histogram",
        'smppgw_carrier_submit_latency_seconds_bucket{carrier="acme",le="0.01"} 2.0',
        'smppgw_carrier_submit_latency_seconds_bucket{carrier="acme",le="0.1"} 3.0',
        'smppgw_carrier_submit_latency_seconds_bucket{carrier="acme",le="1.0"} 4.0',
        'smppgw_carrier_submit_latency_seconds_bucket{carrier="acme",le="+Inf"} 5.0',
        'smppgw_carrier_submit_latency_seconds_count{carrier="acme"} 5.0',
        'smppgw_carrier_submit_latency_seconds_sum{carrier="acme"} 2.565',
    ]


def test_latency_observed_before_the_carrier_is_added_is_kept(
    registry: CollectorRegistry,
) -> None:
    metrics = GatewayMetrics(registry)
    metrics.observe_submit_latency("acme", 0.02)
    assert "smppgw_carrier_submit_latency_seconds" not in generate_latest(registry).decode()
    metrics.add_carrier(FakeCarrier("acme", CARRIER))
    assert 'smppgw_carrier_submit_latency_seconds_count{carrier="acme"} 1.0' in scrape(registry)


def test_remove_carrier_drops_its_series_and_histogram(registry: CollectorRegistry) -> None:
    metrics = GatewayMetrics(registry)
    metrics.add_carrier(FakeCarrier("acme", CARRIER))
    metrics.add_carrier(FakeCarrier("beta", replace(CARRIER, name="beta")))
    metrics.observe_submit_latency("acme", 0.02)
    metrics.remove_carrier("acme")
    metrics.remove_carrier("unknown")  # no-op
    text = generate_latest(registry).decode()
    assert 'carrier="acme"' not in text
    assert 'smppgw_carrier_binds_up{carrier="beta"} 1.0' in text
    # Reload re-adds it: counters come from the new client, the histogram starts at 0.
    metrics.add_carrier(FakeCarrier("acme", replace(CARRIER, submits=0)))
    lines = scrape(registry)
    assert 'smppgw_carrier_submits_total{carrier="acme"} 0.0' in lines
    assert 'smppgw_carrier_submit_latency_seconds_count{carrier="acme"} 0.0' in lines


def test_no_carriers_no_carrier_families(registry: CollectorRegistry) -> None:
    metrics = GatewayMetrics(registry)
    metrics.add_carrier(FakeCarrier("acme", CARRIER))
    metrics.remove_carrier("acme")
    assert "smppgw_carrier" not in generate_latest(registry).decode()


def test_statistics_are_read_at_scrape_time(registry: CollectorRegistry) -> None:
    metrics = GatewayMetrics(registry)
    carrier = FakeCarrier("acme", CARRIER)
    metrics.add_carrier(carrier)
    assert 'smppgw_carrier_binds_up{carrier="acme"} 1.0' in scrape(registry)
    carrier.stats = replace(CARRIER, binds_up=0)
    assert 'smppgw_carrier_binds_up{carrier="acme"} 0.0' in scrape(registry)


def test_pipeline_metrics_exact(registry: CollectorRegistry) -> None:
    metrics = GatewayMetrics(registry)
    metrics.add_pipeline(
        FakePipeline(
            MT,
            {
                "beta": Fixed(QueueStatistics("beta", (0, 2), 5, 3)),
                "acme": Fixed(QueueStatistics("acme", (7, 1), 40, 32)),
            },
        )
    )
    lines = scrape(registry)
    assert block(lines, "smppgw_queue_depth") == [
        "# HELP smppgw_queue_depth Messages waiting in the carrier's queue, by lane.",
        "# TYPE smppgw_queue_depth gauge",
        'smppgw_queue_depth{carrier="acme",lane="bulk"} 7.0',
        'smppgw_queue_depth{carrier="acme",lane="transactional"} 1.0',
        'smppgw_queue_depth{carrier="beta",lane="bulk"} 0.0',
        'smppgw_queue_depth{carrier="beta",lane="transactional"} 2.0',
    ]
    assert samples(block(lines, "smppgw_queue_put_total")) == [
        'smppgw_queue_put_total{carrier="acme"} 40.0',
        'smppgw_queue_put_total{carrier="beta"} 5.0',
    ]
    assert samples(block(lines, "smppgw_queue_taken_total")) == [
        'smppgw_queue_taken_total{carrier="acme"} 32.0',
        'smppgw_queue_taken_total{carrier="beta"} 3.0',
    ]
    assert block(lines, "smppgw_mt_retried_total") == [
        "# HELP smppgw_mt_retried_total Messages scheduled to be sent again.",
        "# TYPE smppgw_mt_retried_total counter",
        "smppgw_mt_retried_total 13.0",
    ]
    assert [line for line in samples(lines) if line.startswith("smppgw_mt_")] == [
        "smppgw_mt_queued 4.0",
        "smppgw_mt_delayed 3.0",
        "smppgw_mt_awaiting_receipts 30.0",
        "smppgw_mt_submitted_parts_total 110.0",
        "smppgw_mt_failed_total 12.0",
        "smppgw_mt_retried_total 13.0",
        "smppgw_mt_expired_unsent_total 19.0",
        "smppgw_mt_opted_out_total 20.0",
        "smppgw_mt_possible_duplicates_total 14.0",
        "smppgw_mt_receipts_matched_total 90.0",
        "smppgw_mt_receipts_unmatched_total 15.0",
        "smppgw_mt_receipts_held_total 16.0",
        "smppgw_mt_unroutable_total 17.0",
        "smppgw_mt_flush_errors_total 18.0",
    ]


def _message(id: int, priority: int) -> OutboundMessage:
    return OutboundMessage(
        id=id,
        partner="p",
        source_addr="INFO",
        source_ton=5,
        source_npi=0,
        destination_addr="31600000000",
        dest_ton=1,
        dest_npi=1,
        data_coding=0,
        esm_class=0,
        registered_delivery=1,
        priority=priority,
        parts=(b"hi",),
    )


def test_queue_depth_lanes_from_a_real_queue(registry: CollectorRegistry) -> None:
    queue = CarrierQueue("acme")
    for i, priority in enumerate((0, 0, 0, 1, 3)):
        queue.put(_message(i, priority))
    assert queue.get_nowait() is not None  # the transactional lane goes first
    metrics = GatewayMetrics(registry)
    metrics.add_pipeline(FakePipeline(MT, {"acme": queue}))
    lines = scrape(registry)
    assert samples(block(lines, "smppgw_queue_depth")) == [
        'smppgw_queue_depth{carrier="acme",lane="bulk"} 3.0',
        'smppgw_queue_depth{carrier="acme",lane="transactional"} 1.0',
    ]
    assert 'smppgw_queue_taken_total{carrier="acme"} 1.0' in lines


def test_tps_from_a_real_token_bucket(registry: CollectorRegistry) -> None:
    carrier = FakeCarrier("acme", CARRIER)
    real = TokenBucket(10, now=0.0)
    real.penalise(0.0)
    carrier.bucket = real
    metrics = GatewayMetrics(registry)
    metrics.add_carrier(carrier)
    lines = scrape(registry)
    assert 'smppgw_carrier_tps_limit{carrier="acme"} 10.0' in lines
    assert 'smppgw_carrier_tps_current{carrier="acme"} 5.0' in lines


def test_store_metrics_exact(registry: CollectorRegistry) -> None:
    metrics = GatewayMetrics(registry)
    metrics.add_store(Fixed(STORE))
    lines = scrape(registry)
    assert [line for line in samples(lines) if line.startswith("smppgw_store_")] == [
        "smppgw_store_available 1.0",
        "smppgw_store_queue_depth 5.0",
        "smppgw_store_queue_capacity 1000.0",
        "smppgw_store_commits_total 400.0",
        "smppgw_store_inline_commits_total 21.0",
        "smppgw_store_items_total 1000.0",
        "smppgw_store_rows_total 1200.0",
        "smppgw_store_item_errors_total 19.0",
        "smppgw_store_batch_errors_total 20.0",
        "smppgw_store_last_batch_items 6.0",
        "smppgw_store_commit_seconds_last 0.004",
        "smppgw_store_commit_seconds_max 0.25",
        "smppgw_store_commit_seconds_count 400.0",
        "smppgw_store_commit_seconds_sum 0.8",
    ]
    assert block(lines, "smppgw_store_commit_seconds") == [
        "# HELP smppgw_store_commit_seconds Time from handing a batch to the writer thread"
        " to its commit returning.",
        "# TYPE smppgw_store_commit_seconds summary",
        "smppgw_store_commit_seconds_count 400.0",
        "smppgw_store_commit_seconds_sum 0.8",
    ]


def test_store_refusing_is_unavailable(registry: CollectorRegistry) -> None:
    metrics = GatewayMetrics(registry)
    metrics.add_store(Fixed(replace(STORE, refusing=True, reason="disk full")))
    lines = scrape(registry)
    assert "smppgw_store_available 0.0" in lines
    assert "disk full" not in "\n".join(lines)  # free text never becomes a label


SERVER = ServerStatistics(
    sessions=3,
    bound=2,
    binds_refused=4,
    submits=100,
    accepted=90,
    refused_by_status={0x58: 7, 0x0A: 3},
    receipts_sent=80,
    receipts_acked=79,
    receipts_refused=6,
)


def test_partner_server_metrics(registry: CollectorRegistry) -> None:
    metrics = GatewayMetrics(registry)
    metrics.add_server(Fixed(SERVER))
    lines = scrape(registry)
    assert "smppgw_partner_sessions_bound 2.0" in lines
    assert "smppgw_partner_accepted_total 90.0" in lines
    assert 'smppgw_partner_refused_total{status="ESME_RTHROTTLED"} 7.0' in lines
    assert 'smppgw_partner_refused_total{status="ESME_RINVSRCADR"} 3.0' in lines
    assert "smppgw_partner_receipts_refused_total 6.0" in lines


def test_every_metric_is_in_the_docstring_table(registry: CollectorRegistry) -> None:
    metrics = GatewayMetrics(registry)
    metrics.add_carrier(FakeCarrier("acme", CARRIER))
    metrics.add_pipeline(FakePipeline(MT, {"acme": Fixed(QueueStatistics("acme", (0, 0), 0, 0))}))
    metrics.add_store(Fixed(STORE))
    metrics.add_server(Fixed(SERVER))
    exposed = {
        line.split()[2]: line.split()[3] for line in scrape(registry) if line.startswith("# TYPE ")
    }
    doc = metrics_module.__doc__ or ""
    table = {
        "smppgw_" + m.group(1): m.group(2)
        for m in re.finditer(r"^\| (\w+) +\| (\w+) +\|", doc, re.MULTILINE)
        if m.group(1) != "name"
    }
    assert exposed == table
    # describe() announces the same families (the registry uses it to refuse duplicates).
    described = {
        family.name + ("_total" if family.type == "counter" else "")
        for family in metrics.describe()
    }
    assert described == set(table)


def test_labels_are_only_low_cardinality_ones(registry: CollectorRegistry) -> None:
    metrics = GatewayMetrics(registry)
    metrics.add_carrier(FakeCarrier("acme", CARRIER))
    metrics.add_pipeline(FakePipeline(MT, {"acme": Fixed(QueueStatistics("acme", (0, 0), 0, 0))}))
    metrics.add_store(Fixed(STORE))
    names = set()
    for line in samples(scrape(registry)):
        names |= set(re.findall(r'(\w+)="', line))
    assert names == {"carrier", "lane", "le", "version"}


def test_registering_twice_or_clashing_names_is_refused() -> None:
    registry = CollectorRegistry()
    GatewayMetrics(registry)
    with pytest.raises(ValueError, match="Duplicated timeseries"):
        GatewayMetrics(registry)
    other = CollectorRegistry()
    Counter("smppgw_carrier_submits", "clash", registry=other)
    with pytest.raises(ValueError, match="smppgw_carrier_submits_total"):
        GatewayMetrics(other)


def test_a_failing_statistics_fails_the_scrape(registry: CollectorRegistry) -> None:
    class Broken:
        def statistics(self) -> StoreStatistics:
            raise RuntimeError("bug")

    metrics = GatewayMetrics(registry)
    metrics.add_store(Broken())
    with pytest.raises(RuntimeError, match="bug"):
        generate_latest(registry)


def test_latency_histogram_buckets() -> None:
    histogram = LatencyHistogram((1.0, 2.0))
    assert histogram.cumulative_buckets() == [("1.0", 0), ("2.0", 0), ("+Inf", 0)]
    for value in (0.0, 1.0, 1.5, 2.0, 2.5, 1e9):
        histogram.observe(value)
    assert histogram.cumulative_buckets() == [("1.0", 2), ("2.0", 4), ("+Inf", 6)]
    assert histogram.count == 6
    assert histogram.sum == pytest.approx(1e9 + 7.0)


def test_default_buckets_render_like_prometheus_client() -> None:
    les = [le for le, _ in LatencyHistogram().cumulative_buckets()]
    assert les == [*(repr(b) for b in DEFAULT_LATENCY_BUCKETS), "+Inf"]
    assert les[:3] == ["0.005", "0.01", "0.025"]
    assert les[-2:] == ["30.0", "+Inf"]


@pytest.mark.parametrize(
    "bounds", [(), (1.0, 1.0), (2.0, 1.0), (1.0, float("inf")), (float("nan"),)]
)
def test_latency_histogram_refuses_bad_bounds(bounds: tuple[float, ...]) -> None:
    with pytest.raises(ValueError, match="bounds"):
        LatencyHistogram(bounds)
    with pytest.raises(ValueError, match="bounds"):
        GatewayMetrics(CollectorRegistry(), latency_buckets=bounds)
