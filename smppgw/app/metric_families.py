"""The metric families the gateway exports: one row per metric, read from a snapshot.

Split from ``metrics.py`` (which holds the collector and the full table in its
docstring): this module is only the field-to-metric tables and the helper that fills a
family from snapshots.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, Generic, Literal, TypeVar

from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)

from smppgw.net.partner_stats import ANSWER_LATENCY_BUCKETS, RECEIPT_LATENCY_BUCKETS

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence

    from prometheus_client.metrics_core import Metric

    from smppgw.gateway.mt import MtStatistics
    from smppgw.gateway.outbound import QueueStatistics
    from smppgw.gateway.throttle import TokenBucketStatistics
    from smppgw.net.carrier import CarrierStatistics
    from smppgw.net.partner_server import ServerStatistics
    from smppgw.store.health import StoreStatistics

_S = TypeVar("_S")


@dataclass(frozen=True, slots=True)
class _Spec(Generic[_S]):
    """One metric read from one field of a snapshot.

    ``name`` is the exposed name; for counters it ends in ``_total``, which
    ``prometheus_client`` strips from the family name and puts back on the sample.
    """

    name: str
    kind: Literal["counter", "gauge"]
    help: str
    value: Callable[[_S], float]

    def family(self, labels: Sequence[str]) -> CounterMetricFamily | GaugeMetricFamily:
        if self.kind == "counter":
            return CounterMetricFamily(self.name, self.help, labels=labels)
        return GaugeMetricFamily(self.name, self.help, labels=labels)


_CARRIER: Final[tuple[_Spec[CarrierStatistics], ...]] = (
    _Spec(
        "smppgw_carrier_binds_configured",
        "gauge",
        "Binds the configuration asks for.",
        lambda s: s.binds_configured,
    ),
    _Spec("smppgw_carrier_binds_up", "gauge", "Binds currently bound.", lambda s: s.binds_up),
    _Spec(
        "smppgw_carrier_connects_total",
        "counter",
        "TCP/TLS connections opened.",
        lambda s: s.connects,
    ),
    _Spec(
        "smppgw_carrier_bind_failures_total",
        "counter",
        "Binds refused by the SMSC or timed out.",
        lambda s: s.bind_failures,
    ),
    _Spec(
        "smppgw_carrier_reconnects_total",
        "counter",
        "Bind loop restarts after a loss or a failure.",
        lambda s: s.reconnects,
    ),
    _Spec(
        "smppgw_carrier_submits_total",
        "counter",
        "submit_sm answered by the SMSC (any status).",
        lambda s: s.submits,
    ),
    _Spec(
        "smppgw_carrier_submit_errors_total",
        "counter",
        "submit_sm_resp with an error status (throttling included).",
        lambda s: s.submit_errors,
    ),
    _Spec(
        "smppgw_carrier_throttled_total",
        "counter",
        "Throttling answers from the SMSC (the part is sent again).",
        lambda s: s.throttled,
    ),
    _Spec(
        "smppgw_carrier_timeouts_total",
        "counter",
        "submit_sm with no answer in time.",
        lambda s: s.timeouts,
    ),
    _Spec(
        "smppgw_carrier_possible_duplicates_total",
        "counter",
        "Parts sent again after a lost answer.",
        lambda s: s.possible_duplicates,
    ),
    _Spec(
        "smppgw_carrier_empty_ids_total",
        "counter",
        "Parts the SMSC accepted without a message id (no receipt can match them).",
        lambda s: s.empty_ids,
    ),
    _Spec(
        "smppgw_carrier_deliveries_total",
        "counter",
        "deliver_sm journaled and acknowledged.",
        lambda s: s.deliveries,
    ),
    _Spec(
        "smppgw_carrier_deliveries_refused_total",
        "counter",
        "deliver_sm refused while the journal was unavailable.",
        lambda s: s.deliveries_refused,
    ),
    _Spec(
        "smppgw_carrier_inbound_duplicates_total",
        "counter",
        "deliver_sm redelivered by the SMSC and not processed twice.",
        lambda s: s.duplicates_inbound,
    ),
    _Spec(
        "smppgw_carrier_window_used",
        "gauge",
        "submit_sm awaiting their answer, over all binds.",
        lambda s: s.window_used,
    ),
    _Spec(
        "smppgw_carrier_window_size",
        "gauge",
        "Window slots of the live binds.",
        lambda s: s.window_size,
    ),
)

_BUCKET: Final[tuple[_Spec[TokenBucketStatistics], ...]] = (
    _Spec(
        "smppgw_carrier_tps_limit",
        "gauge",
        "Configured parts per second (0: unlimited).",
        lambda s: s.configured_rate,
    ),
    _Spec(
        "smppgw_carrier_tps_current",
        "gauge",
        "Current send rate after throttling penalties.",
        lambda s: s.current_rate,
    ),
    _Spec(
        "smppgw_carrier_tps_waits_total",
        "counter",
        "Sends that waited for the TPS token bucket.",
        lambda s: s.refusals,
    ),
)

_QUEUE: Final[tuple[_Spec[QueueStatistics], ...]] = (
    _Spec(
        "smppgw_queue_put_total",
        "counter",
        "Messages queued for the carrier (put-backs not counted).",
        lambda s: s.put,
    ),
    _Spec(
        "smppgw_queue_taken_total",
        "counter",
        "Messages taken by the carrier's senders.",
        lambda s: s.taken,
    ),
)

_MT: Final[tuple[_Spec[MtStatistics], ...]] = (
    _Spec("smppgw_mt_queued", "gauge", "Messages in all carrier queues.", lambda s: s.queued),
    _Spec(
        "smppgw_mt_delayed",
        "gauge",
        "Messages waiting for their partner's schedule or for a retry.",
        lambda s: s.delayed,
    ),
    _Spec(
        "smppgw_mt_awaiting_receipts",
        "gauge",
        "Accepted messages tracked for their receipts.",
        lambda s: s.in_flight_receipts,
    ),
    _Spec(
        "smppgw_mt_submitted_parts_total",
        "counter",
        "Parts accepted by a carrier.",
        lambda s: s.submitted_parts,
    ),
    _Spec("smppgw_mt_failed_total", "counter", "Messages failed for good.", lambda s: s.failed),
    _Spec(
        "smppgw_mt_retried_total",
        "counter",
        "Messages scheduled to be sent again.",
        lambda s: s.retried,
    ),
    _Spec(
        "smppgw_mt_expired_unsent_total",
        "counter",
        "Messages whose validity_period passed before they could be sent (final expired).",
        lambda s: s.expired_unsent,
    ),
    _Spec(
        "smppgw_mt_opted_out_total",
        "counter",
        "Messages that waited (schedule, moderator) refused when due: the number opted out.",
        lambda s: s.opted_out,
    ),
    _Spec(
        "smppgw_mt_possible_duplicates_total",
        "counter",
        "Messages sent again whose previous answer was lost.",
        lambda s: s.possible_duplicates,
    ),
    _Spec(
        "smppgw_mt_receipts_matched_total",
        "counter",
        "Receipts matched to a message.",
        lambda s: s.receipts_matched,
    ),
    _Spec(
        "smppgw_mt_receipts_unmatched_total",
        "counter",
        "Receipts that matched no message.",
        lambda s: s.receipts_unmatched,
    ),
    _Spec(
        "smppgw_mt_receipts_held_total",
        "counter",
        "Receipts held because they came before their submit_sm_resp.",
        lambda s: s.receipts_held,
    ),
    _Spec(
        "smppgw_mt_unroutable_total",
        "counter",
        "Messages with no route to any carrier.",
        lambda s: s.unroutable,
    ),
    _Spec(
        "smppgw_mt_flush_errors_total",
        "counter",
        "Failed journal writes of carrier outcomes.",
        lambda s: s.flush_errors,
    ),
)

_SERVER: Final[tuple[_Spec[ServerStatistics], ...]] = (
    _Spec("smppgw_partner_sessions", "gauge", "Partner connections open.", lambda s: s.sessions),
    _Spec(
        "smppgw_partner_sessions_bound", "gauge", "Partner connections bound.", lambda s: s.bound
    ),
    _Spec(
        "smppgw_partner_binds_refused_total",
        "counter",
        "Partner binds refused (any reason).",
        lambda s: s.binds_refused,
    ),
    _Spec(
        "smppgw_partner_submits_total",
        "counter",
        "Messages submitted by partners (submit_sm, data_sm, submit_multi destinations).",
        lambda s: s.submits,
    ),
    _Spec(
        "smppgw_partner_accepted_total",
        "counter",
        "Messages journaled and acknowledged with status 0 (held ones included).",
        lambda s: s.accepted,
    ),
    _Spec(
        "smppgw_partner_receipts_sent_total",
        "counter",
        "Delivery receipts sent to partners.",
        lambda s: s.receipts_sent,
    ),
    _Spec(
        "smppgw_partner_receipts_acked_total",
        "counter",
        "Delivery receipts partners answered with status 0.",
        lambda s: s.receipts_acked,
    ),
    _Spec(
        "smppgw_partner_receipts_refused_total",
        "counter",
        "Delivery receipts partners answered with an error (sent again after a pause).",
        lambda s: s.receipts_refused,
    ),
)
_REFUSED_NAME = "smppgw_partner_refused"
_REFUSED_HELP = "Messages refused, by the command_status answered."

# Per partner (label ``partner``: the configured system_id, never a number). Empty
# families are still exposed, so a dashboard sees the names before the first bind.
_PARTNER_BINDS: Final = "smppgw_partner_binds"
_PARTNER_OUTCOMES: Final = "smppgw_partner_submit_outcomes"
_PARTNER_THROTTLED: Final = "smppgw_partner_throttled"
_PARTNER_OPTED_OUT: Final = "smppgw_partner_opted_out"
_PARTNER_CONTENT: Final = "smppgw_partner_content_filtered"
_PARTNER_COMMANDS: Final = "smppgw_partner_commands"
_PARTNER_QUOTA: Final = "smppgw_partner_quota_remaining"
_OPT_OUT_NUMBERS: Final = "smppgw_opt_out_numbers"
_PARTNER_LATENCY: Final = "smppgw_partner_receipt_latency_seconds"
_PARTNER_ANSWER: Final = "smppgw_partner_submit_answer_seconds"
_PARTNER_ANSWER_HELP: Final = (
    "Time from reading an accepted submit_sm to sending its submit_sm_resp: admission"
    " and the journal commit, the gateway's own part of what a partner waits for."
)


def cumulative_buckets(bounds: Sequence[float], counts: Sequence[int]) -> list[tuple[str, float]]:
    """``(le, count of values <= le)`` for every bound and ``+Inf``, from per-bucket
    counts (one a bound, then the ``+Inf`` one), for export; ``le`` as
    ``prometheus_client`` writes it (``0.005``, ``1.0``, ``+Inf``)."""
    buckets: list[tuple[str, float]] = []
    running = 0
    for le, n in zip((*bounds, math.inf), counts, strict=True):
        running += n
        buckets.append(("+Inf" if le == math.inf else repr(le), running))
    return buckets


def _partner_families(s: ServerStatistics) -> Iterator[Metric]:
    """The per-partner families of one server snapshot."""
    binds = GaugeMetricFamily(_PARTNER_BINDS, "Bound sessions, by partner.", labels=["partner"])
    outcomes = CounterMetricFamily(
        _PARTNER_OUTCOMES,
        "Messages submitted (submit_sm, data_sm, submit_multi destinations) by partner and"
        " outcome: accepted, held (for moderation), refused (any error status).",
        labels=["partner", "outcome"],
    )
    throttled = CounterMetricFamily(
        _PARTNER_THROTTLED, "Messages refused ESME_RTHROTTLED, by partner.", labels=["partner"]
    )
    opted_out = CounterMetricFamily(
        _PARTNER_OPTED_OUT,
        "Marketing messages refused (ESME_RX_P_APPN): the number is on the opt-out list.",
        labels=["partner"],
    )
    content = CounterMetricFamily(
        _PARTNER_CONTENT,
        "Messages breaking the content policy, by partner and action (rejected, held).",
        labels=["partner", "action"],
    )
    commands = CounterMetricFamily(
        _PARTNER_COMMANDS,
        "query_sm, cancel_sm and replace_sm answered, by partner, command and result.",
        labels=["partner", "command", "result"],
    )
    latency = HistogramMetricFamily(
        _PARTNER_LATENCY,
        "Time from accepting a message to sending the partner its receipt.",
        labels=["partner"],
    )
    for name, p in s.partners.items():
        binds.add_metric([name], p.binds)
        outcomes.add_metric([name, "accepted"], p.accepted)
        outcomes.add_metric([name, "held"], p.held)
        outcomes.add_metric([name, "refused"], p.refused)
        throttled.add_metric([name], p.throttled)
        opted_out.add_metric([name], p.opted_out)
        content.add_metric([name, "rejected"], p.content_rejected)
        content.add_metric([name, "held"], p.content_held)
        for (command, result), count in sorted(p.commands.items()):
            commands.add_metric([name, command, result], count)
        if p.receipt_latency:
            buckets = cumulative_buckets(RECEIPT_LATENCY_BUCKETS, p.receipt_latency)
            latency.add_metric([name], buckets, p.receipt_latency_sum)
    quota = GaugeMetricFamily(
        _PARTNER_QUOTA,
        "What an active order can still reserve (parts for prepaid, money for postpaid),"
        " as of the last read of the journal.",
        labels=["partner", "order"],
    )
    for (partner, order), remaining in sorted(s.quota_remaining.items()):
        quota.add_metric([partner, str(order)], remaining)
    opt_outs = GaugeMetricFamily(
        _OPT_OUT_NUMBERS,
        "Numbers on the opt-out list, by scope (all: every partner's marketing; else the"
        " one partner's), as of the last read of the journal (every minute).",
        labels=["scope"],
    )
    for scope, numbers in sorted(s.opt_out_numbers.items()):
        opt_outs.add_metric([scope or "all"], numbers)
    answer = HistogramMetricFamily(_PARTNER_ANSWER, _PARTNER_ANSWER_HELP)
    if s.answer_latency:
        buckets = cumulative_buckets(ANSWER_LATENCY_BUCKETS, s.answer_latency)
        answer.add_metric([], buckets, s.answer_latency_sum)
    yield from (binds, outcomes, throttled, opted_out, content, commands, quota, opt_outs)
    yield from (latency, answer)


def _partner_descriptions() -> Iterator[Metric]:
    """The per-partner families without samples (for ``describe``)."""
    yield GaugeMetricFamily(_PARTNER_BINDS, "")
    yield GaugeMetricFamily(_PARTNER_QUOTA, "")
    yield GaugeMetricFamily(_OPT_OUT_NUMBERS, "")
    for name in (
        _PARTNER_OUTCOMES,
        _PARTNER_THROTTLED,
        _PARTNER_OPTED_OUT,
        _PARTNER_CONTENT,
        _PARTNER_COMMANDS,
    ):
        yield CounterMetricFamily(name, "")
    yield HistogramMetricFamily(_PARTNER_LATENCY, "")
    yield HistogramMetricFamily(_PARTNER_ANSWER, "")


_STORE: Final[tuple[_Spec[StoreStatistics], ...]] = (
    _Spec(
        "smppgw_store_available",
        "gauge",
        "1 while the journal accepts writes, 0 while it refuses them.",
        lambda s: 0 if s.refusing else 1,
    ),
    _Spec(
        "smppgw_store_queue_depth",
        "gauge",
        "Work items waiting for the writer thread.",
        lambda s: s.queue_depth,
    ),
    _Spec(
        "smppgw_store_queue_capacity",
        "gauge",
        "Bound of the writer queue.",
        lambda s: s.queue_capacity,
    ),
    _Spec("smppgw_store_commits_total", "counter", "Group commits.", lambda s: s.commits),
    _Spec(
        "smppgw_store_inline_commits_total",
        "counter",
        "Commits the event loop ran itself (quick writes while the writer thread was idle).",
        lambda s: s.inline_commits,
    ),
    _Spec("smppgw_store_items_total", "counter", "Work items committed.", lambda s: s.items),
    _Spec("smppgw_store_rows_total", "counter", "Rows written.", lambda s: s.rows),
    _Spec(
        "smppgw_store_item_errors_total",
        "counter",
        "Items whose own write failed.",
        lambda s: s.item_errors,
    ),
    _Spec(
        "smppgw_store_batch_errors_total",
        "counter",
        "Commits that failed as a whole.",
        lambda s: s.batch_errors,
    ),
    _Spec(
        "smppgw_store_last_batch_items",
        "gauge",
        "Work items in the latest commit.",
        lambda s: s.last_batch_items,
    ),
    _Spec(
        "smppgw_store_commit_seconds_last",
        "gauge",
        "Commit time of the latest commit.",
        lambda s: s.commit_latency_last,
    ),
    _Spec(
        "smppgw_store_commit_seconds_max",
        "gauge",
        "Longest commit time since start.",
        lambda s: s.commit_latency_max,
    ),
)

_LATENCY_NAME: Final = "smppgw_carrier_submit_latency_seconds"
_LATENCY_HELP: Final = "Time from submit_sm to its submit_sm_resp."
_COMMIT_NAME: Final = "smppgw_store_commit_seconds"
_COMMIT_HELP: Final = "Time from handing a batch to the writer thread to its commit returning."


def _fill(
    specs: Sequence[_Spec[_S]],
    labels: Sequence[str],
    rows: Sequence[tuple[Sequence[str], _S]],
) -> Iterator[Metric]:
    """One family per spec, one sample per row; empty families are left out."""
    if not rows:
        return
    for spec in specs:
        family = spec.family(labels)
        for label_values, snapshot in rows:
            family.add_metric(label_values, spec.value(snapshot))
        yield family
