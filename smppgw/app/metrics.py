"""Prometheus metrics, read from the components' ``statistics()`` at scrape time.

Theory of operation
-------------------
Components keep plain counters on their hot paths (``+=`` on ints) and expose a frozen
``statistics()`` snapshot (lesson 11, trio's ``MemoryChannelStatistics`` convention).
:class:`GatewayMetrics` is one custom collector: it holds references to the registered
components and, only when ``/metrics`` is scraped, reads their snapshots and turns them
into metric families. Nothing on the per-message path calls a metric object, takes a
lock or formats a label.

The one exception is submit latency, which a sum and a count cannot show as a
distribution: the carrier calls :meth:`GatewayMetrics.observe_submit_latency` (its
``on_submit_latency`` hook) once per ``submit_sm_resp``, which costs one dict lookup,
one ``bisect`` over a dozen floats and two additions (:class:`LatencyHistogram`).

Threading: everything here runs in the trio thread (the endpoint calls the encoder from
its task), the same thread that mutates the counters, so a snapshot is never torn and no
lock is needed. A ``statistics()`` that raises fails the scrape (the endpoint answers
``500`` and logs the traceback): a bug there is loud, not a silently missing series.

Reload: ``remove_carrier(name)`` forgets a carrier and its latency histogram; a carrier
restarted with new settings is removed and added again, and its counters start from 0,
which Prometheus' ``rate()`` treats as the counter reset it is.

Labels are low-cardinality only: ``carrier`` (configured names), ``lane``
(``bulk``/``transactional``), ``version``, ``status`` (command_status names), and for
partners ``partner`` (configured system_ids), ``outcome``, ``action``, ``command``,
``result`` and ``order`` (order ids: a partner has few); never message ids or numbers.

Receipts from carriers that match no message cannot be put down to a partner: they are
``mt_receipts_unmatched_total``, not a partner family.

Metrics
-------
Every name starts with ``smppgw_`` (left out below). Counters end in ``_total``; the
histogram and the summary add ``_bucket``/``_sum``/``_count``. Lanes: ``bulk`` (priority 0)
and ``transactional`` (priority >= 1).

| name                              | type      | labels        | meaning                          |
|-----------------------------------|-----------|---------------|----------------------------------|
| up                                | gauge     |               | 1 while scrapes are answered     |
| build_info                        | gauge     | version       | 1; the running version as label  |
| carrier_binds_configured          | gauge     | carrier       | binds the configuration asks for |
| carrier_binds_up                  | gauge     | carrier       | binds currently bound            |
| carrier_connects_total            | counter   | carrier       | TCP/TLS connections opened       |
| carrier_bind_failures_total       | counter   | carrier       | binds refused or timed out       |
| carrier_reconnects_total          | counter   | carrier       | bind loop restarts (backoff)     |
| carrier_submits_total             | counter   | carrier       | submit_sm answered (any status)  |
| carrier_submit_errors_total       | counter   | carrier       | answered with an error status    |
| carrier_throttled_total           | counter   | carrier       | of those, throttling (re-sent)   |
| carrier_timeouts_total            | counter   | carrier       | submit_sm not answered in time   |
| carrier_possible_duplicates_total | counter   | carrier       | re-sent after a lost answer      |
| carrier_empty_ids_total           | counter   | carrier       | accepted without a message id    |
| carrier_deliveries_total          | counter   | carrier       | deliver_sm journaled, answered   |
| carrier_deliveries_refused_total  | counter   | carrier       | deliver_sm refused (store down)  |
| carrier_inbound_duplicates_total  | counter   | carrier       | deliver_sm redelivered, skipped  |
| carrier_window_used               | gauge     | carrier       | submit_sm awaiting an answer     |
| carrier_window_size               | gauge     | carrier       | window slots of the live binds   |
| carrier_tps_limit                 | gauge     | carrier       | configured parts/s (0: no limit) |
| carrier_tps_current               | gauge     | carrier       | rate after throttling penalties  |
| carrier_tps_waits_total           | counter   | carrier       | sends that waited for a token    |
| carrier_submit_latency_seconds    | histogram | carrier       | submit_sm to submit_sm_resp      |
| queue_depth                       | gauge     | carrier, lane | messages waiting for the carrier |
| queue_put_total                   | counter   | carrier       | messages queued (not put-backs)  |
| queue_taken_total                 | counter   | carrier       | messages taken by the senders    |
| mt_queued                         | gauge     |               | messages in all carrier queues   |
| mt_delayed                        | gauge     |               | scheduled, or waiting for retry  |
| mt_awaiting_receipts              | gauge     |               | messages tracked for receipts    |
| mt_submitted_parts_total          | counter   |               | parts accepted by a carrier      |
| mt_failed_total                   | counter   |               | messages failed for good         |
| mt_retried_total                  | counter   |               | messages to be sent again later  |
| mt_expired_unsent_total           | counter   |               | validity passed before sending   |
| mt_opted_out_total                | counter   |               | opted out while it waited        |
| mt_possible_duplicates_total      | counter   |               | re-sent after a lost answer      |
| mt_receipts_matched_total         | counter   |               | receipts matched to a message    |
| mt_receipts_unmatched_total       | counter   |               | receipts matching no message     |
| mt_receipts_held_total            | counter   |               | receipts early, held for a retry |
| mt_unroutable_total               | counter   |               | messages with no route           |
| mt_flush_errors_total             | counter   |               | failed outcome writes (retried)  |
| store_available                   | gauge     |               | 1 journal writable, 0 refusing   |
| store_queue_depth                 | gauge     |               | items waiting for the writer     |
| store_queue_capacity              | gauge     |               | bound of that queue              |
| store_commits_total               | counter   |               | group commits                    |
| store_inline_commits_total        | counter   |               | of those, run by the idle loop   |
| store_items_total                 | counter   |               | work items committed             |
| store_rows_total                  | counter   |               | rows written                     |
| store_item_errors_total           | counter   |               | items rolled back alone          |
| store_batch_errors_total          | counter   |               | commits that failed whole        |
| store_last_batch_items            | gauge     |               | work items in the latest commit  |
| store_commit_seconds              | summary   |               | hand-off to commit returned      |
| store_commit_seconds_last         | gauge     |               | that, for the latest commit      |
| store_commit_seconds_max          | gauge     |               | the longest since start          |
| partner_sessions                  | gauge     |               | partner connections open         |
| partner_sessions_bound            | gauge     |               | of those, bound                  |
| partner_binds_refused_total       | counter   |               | partner binds refused            |
| partner_submits_total             | counter   |               | messages submitted by partners   |
| partner_accepted_total            | counter   |               | journaled and acknowledged (0)   |
| partner_refused_total             | counter   | status        | refused, by command_status name  |
| partner_receipts_sent_total       | counter   |               | receipts sent to partners        |
| partner_receipts_acked_total      | counter   |               | receipts answered with 0         |
| partner_receipts_refused_total    | counter   |               | receipts answered with an error  |
| partner_binds                     | gauge     | partner       | bound sessions of the partner    |
| partner_submit_outcomes_total     | counter   | partner, outcome | accepted / held / refused     |
| partner_throttled_total           | counter   | partner       | refused ESME_RTHROTTLED          |
| partner_opted_out_total           | counter   | partner       | refused: number opted out        |
| partner_content_filtered_total    | counter   | partner, action | content policy: rejected/held  |
| partner_commands_total            | counter   | partner, command, result | query/cancel/replace  |
| partner_quota_remaining           | gauge     | partner, order | an active order's remaining     |
| opt_out_numbers                   | gauge     | scope         | numbers on the opt-out list      |
| partner_receipt_latency_seconds   | histogram | partner       | accept to receipt sent           |
| partner_submit_answer_seconds     | histogram |               | submit read to submit_sm_resp    |
"""

from __future__ import annotations

import itertools
import math
from bisect import bisect_left
from typing import TYPE_CHECKING, Any, Final, Protocol, TypeVar

from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
    SummaryMetricFamily,
)

from smppgw import __version__

if TYPE_CHECKING:
    # Types only: this module must not pull trio, sockets or SQLite in at import.
    from collections.abc import Iterator, Mapping, Sequence

    from prometheus_client.registry import CollectorRegistry

    from smppgw.gateway.mt import MtStatistics
    from smppgw.gateway.outbound import QueueStatistics
    from smppgw.gateway.throttle import TokenBucketStatistics
    from smppgw.net.carrier import CarrierStatistics
    from smppgw.net.partner_server import ServerStatistics
    from smppgw.store.health import StoreStatistics

from smppgw.app.metric_families import (
    _BUCKET,
    _CARRIER,
    _COMMIT_HELP,
    _COMMIT_NAME,
    _LATENCY_HELP,
    _LATENCY_NAME,
    _MT,
    _QUEUE,
    _REFUSED_HELP,
    _REFUSED_NAME,
    _SERVER,
    _STORE,
    _fill,
    _partner_descriptions,
    _partner_families,
    _Spec,
    cumulative_buckets,
)
from smppgw.protocol.status import CommandStatus

__all__ = [
    "DEFAULT_LATENCY_BUCKETS",
    "CarrierSource",
    "GatewayMetrics",
    "LatencyHistogram",
    "PipelineSource",
    "StatisticsSource",
]

_T_co = TypeVar("_T_co", covariant=True)
_S = TypeVar("_S")

#: Upper bounds (seconds) for submit latency: an SMSC answers in milliseconds when well,
#: in seconds when struggling, and the response timeout is tens of seconds.
DEFAULT_LATENCY_BUCKETS: Final = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
)
#: Lane index (``OutboundMessage.lane``) -> label value.
_LANE_NAMES: Final = ("bulk", "transactional")


# -- what the collector reads ------------------------------------------------------------


class StatisticsSource(Protocol[_T_co]):
    """Anything with trio's ``statistics()`` convention."""

    def statistics(self) -> _T_co: ...


class CarrierSource(Protocol):
    """What :meth:`GatewayMetrics.add_carrier` reads (``CarrierClient`` fits)."""

    @property
    def name(self) -> str: ...

    @property
    def bucket(self) -> StatisticsSource[TokenBucketStatistics]: ...

    def statistics(self) -> CarrierStatistics: ...


class PipelineSource(Protocol):
    """What :meth:`GatewayMetrics.add_pipeline` reads (``MtPipeline`` fits)."""

    @property
    def queues(self) -> Mapping[str, StatisticsSource[QueueStatistics]]: ...

    def statistics(self) -> MtStatistics: ...


# -- the one hot-path instrument ---------------------------------------------------------


class LatencyHistogram:
    """A fixed-bucket histogram cheap enough to observe per message.

    ``observe`` is one ``bisect`` and two additions; buckets are stored per bucket, not
    cumulative, and made cumulative only at scrape time. Values are not checked (a
    negative or NaN value lands in the first bucket): the caller measures with a
    monotonic clock.

    Args:
        bounds: strictly increasing, finite upper bounds in seconds; ``+Inf`` is implied.

    Raises:
        ValueError: the bounds are empty, not finite or not strictly increasing.
    """

    __slots__ = ("_bounds", "_counts", "_sum")

    def __init__(self, bounds: Sequence[float] = DEFAULT_LATENCY_BUCKETS) -> None:
        bounds = tuple(float(b) for b in bounds)
        if not bounds or not all(math.isfinite(b) for b in bounds):
            raise ValueError("bounds must be a non-empty sequence of finite numbers")
        if any(a >= b for a, b in itertools.pairwise(bounds)):
            raise ValueError("bounds must be strictly increasing")
        self._bounds = bounds
        # One slot per bound plus the +Inf one. A value equal to a bound belongs to that
        # bound's bucket (Prometheus' ``le``), which is what bisect_left gives.
        self._counts = [0] * (len(bounds) + 1)
        self._sum = 0.0

    def observe(self, seconds: float) -> None:
        self._counts[bisect_left(self._bounds, seconds)] += 1
        self._sum += seconds

    @property
    def count(self) -> int:
        return sum(self._counts)

    @property
    def sum(self) -> float:
        return self._sum

    def cumulative_buckets(self) -> list[tuple[str, float]]:
        """``(le, count of values <= le)`` for every bound and ``+Inf``, for export."""
        return cumulative_buckets(self._bounds, self._counts)


# -- helpers (the metric tables are in metric_families.py) ------------------------------


def _status_name(status: int) -> str:
    try:
        return CommandStatus(status).name
    except ValueError:
        return f"0x{status:08X}"


def _lane_name(index: int) -> str:
    return _LANE_NAMES[index] if index < len(_LANE_NAMES) else str(index)


# -- the collector -----------------------------------------------------------------------


class GatewayMetrics:
    """The gateway's Prometheus collector; see the module docstring.

    It registers itself in ``registry`` at construction. Components are registered by
    the daemon as it wires them; each ``add_*`` replaces what was there under the same
    key (one store, one pipeline, one carrier per name).

    Args:
        registry: where to register (the one the metrics endpoint serves).
        version: the ``version`` label of ``smppgw_build_info``.
        latency_buckets: upper bounds of the submit latency histogram, in seconds.

    Raises:
        ValueError: ``latency_buckets`` are not valid (see :class:`LatencyHistogram`),
            or the registry already has these metric names.
    """

    def __init__(
        self,
        registry: CollectorRegistry,
        *,
        version: str = __version__,
        latency_buckets: Sequence[float] = DEFAULT_LATENCY_BUCKETS,
    ) -> None:
        self._version = version
        self._buckets = tuple(latency_buckets)
        LatencyHistogram(self._buckets)  # validate now, not at the first observation
        self._store: StatisticsSource[StoreStatistics] | None = None
        self._server: StatisticsSource[ServerStatistics] | None = None
        self._pipeline: PipelineSource | None = None
        self._carriers: dict[str, CarrierSource] = {}
        self._latency: dict[str, LatencyHistogram] = {}
        registry.register(self)

    # -- registration ------------------------------------------------------------------

    def add_server(self, server: StatisticsSource[ServerStatistics]) -> None:
        """The partner server (sessions, submits and refusals, receipts)."""
        self._server = server

    def add_store(self, store: StatisticsSource[StoreStatistics]) -> None:
        self._store = store

    def add_pipeline(self, pipeline: PipelineSource) -> None:
        self._pipeline = pipeline

    def add_carrier(self, client: CarrierSource) -> None:
        """Register a carrier by its name; its latency histogram is kept if it exists
        already (observations may arrive before the client is added)."""
        self._carriers[client.name] = client
        self._latency.setdefault(client.name, LatencyHistogram(self._buckets))

    def remove_carrier(self, name: str) -> None:
        """Forget a carrier and its latency histogram (no-op for an unknown name).

        Call it once the old client's tasks have ended, so that no late observation
        brings its histogram back.
        """
        self._carriers.pop(name, None)
        self._latency.pop(name, None)

    # -- the hot-path hook -------------------------------------------------------------

    def observe_submit_latency(self, carrier: str, seconds: float) -> None:
        """``CarrierClient(on_submit_latency=...)``: one ``submit_sm`` round trip."""
        histogram = self._latency.get(carrier)
        if histogram is None:
            histogram = self._latency[carrier] = LatencyHistogram(self._buckets)
        histogram.observe(seconds)

    def submit_latency(self, carrier: str) -> LatencyHistogram | None:
        """The histogram of ``carrier`` (for tests and diagnostics)."""
        return self._latency.get(carrier)

    # -- the Collector interface -------------------------------------------------------

    def describe(self) -> Iterator[Metric]:
        """Every family this collector can yield, without samples.

        ``CollectorRegistry.register`` uses it to refuse a second collector exposing
        the same names, instead of failing every scrape later.
        """
        tables: tuple[Sequence[_Spec[Any]], ...] = (
            _CARRIER,
            _BUCKET,
            _QUEUE,
            _MT,
            _STORE,
            _SERVER,
        )
        for table in tables:
            for spec in table:
                yield spec.family(())
        yield GaugeMetricFamily("smppgw_up", "")
        yield GaugeMetricFamily("smppgw_build_info", "")
        yield GaugeMetricFamily("smppgw_queue_depth", "")
        yield HistogramMetricFamily(_LATENCY_NAME, "")
        yield SummaryMetricFamily(_COMMIT_NAME, "")
        yield CounterMetricFamily(_REFUSED_NAME, "")
        yield from _partner_descriptions()

    def collect(self) -> Iterator[Metric]:
        """Read every registered component's ``statistics()`` now (scrape time)."""
        yield GaugeMetricFamily("smppgw_up", "1 while the daemon answers scrapes.", value=1)
        build = GaugeMetricFamily(
            "smppgw_build_info", "The running version, in the label.", labels=["version"]
        )
        build.add_metric([self._version], 1)
        yield build
        yield from self._collect_carriers()
        if self._pipeline is not None:
            yield from self._collect_pipeline(self._pipeline)
        if self._store is not None:
            yield from self._collect_store(self._store.statistics())
        if self._server is not None:
            stats = self._server.statistics()
            yield from _fill(_SERVER, [], [((), stats)])
            refused = CounterMetricFamily(_REFUSED_NAME, _REFUSED_HELP, labels=["status"])
            for status, count in sorted(stats.refused_by_status.items()):
                refused.add_metric([_status_name(status)], count)
            yield refused
            yield from _partner_families(stats)

    def _collect_carriers(self) -> Iterator[Metric]:
        names = sorted(self._carriers)
        carriers = [self._carriers[name] for name in names]
        yield from _fill(
            _CARRIER,
            ["carrier"],
            [((n,), c.statistics()) for n, c in zip(names, carriers, strict=True)],
        )
        yield from _fill(
            _BUCKET,
            ["carrier"],
            [((n,), c.bucket.statistics()) for n, c in zip(names, carriers, strict=True)],
        )
        if names:
            latency = HistogramMetricFamily(_LATENCY_NAME, _LATENCY_HELP, labels=["carrier"])
            for name in names:
                histogram = self._latency[name]
                latency.add_metric([name], histogram.cumulative_buckets(), histogram.sum)
            yield latency

    def _collect_pipeline(self, pipeline: PipelineSource) -> Iterator[Metric]:
        queues = [(name, pipeline.queues[name].statistics()) for name in sorted(pipeline.queues)]
        if queues:
            depth = GaugeMetricFamily(
                "smppgw_queue_depth",
                "Messages waiting in the carrier's queue, by lane.",
                labels=["carrier", "lane"],
            )
            for name, q in queues:
                for lane, n in enumerate(q.depth_by_lane):
                    depth.add_metric([name, _lane_name(lane)], n)
            yield depth
        yield from _fill(_QUEUE, ["carrier"], [((name,), q) for name, q in queues])
        yield from _fill(_MT, [], [((), pipeline.statistics())])

    def _collect_store(self, s: StoreStatistics) -> Iterator[Metric]:
        yield from _fill(_STORE, [], [((), s)])
        # The snapshot has the average since start; average x commits gives back the sum,
        # so rate(sum)/rate(count) is the mean over any window.
        yield SummaryMetricFamily(
            _COMMIT_NAME,
            _COMMIT_HELP,
            count_value=s.commits,
            sum_value=s.commit_latency_avg * s.commits,
        )
