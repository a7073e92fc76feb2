"""The partner server's counters and their snapshot (``PartnerServer.statistics()``),
and the reads of the journal behind its gauges (quota, the opt-out list).

Plain ints bumped on the hot path, a frozen snapshot read by the Prometheus collector at
scrape time (lesson 11): nothing here formats a label or takes a lock. Per-partner
counters are keyed by ``system_id`` only (configured partners: few), never by a number.

Receipt latency (accept -> the partner's receipt ``deliver_sm`` written) is kept as
per-bucket counts here rather than in ``smppgw.app.metrics``' histogram: ``net`` does not
import ``app``, and the daemon wires no hook for it. The bounds are minutes, not
milliseconds: a receipt waits for the handset.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

import structlog
import trio

from smppgw.protocol.status import CommandStatus
from smppgw.store import StoreError
from smppgw.store.opt_out import count_opt_outs

if TYPE_CHECKING:
    from collections.abc import Mapping

    from smppgw.store import Store

log = structlog.get_logger("smppgw.partners")

#: The opt-out list is counted at every this many reads of the quota (each count is a
#: scan of the list: a regulator's do-not-call list may hold millions).
OPT_OUT_REFRESH_EVERY = 4

__all__ = [
    "ANSWER_LATENCY_BUCKETS",
    "MAX_TRACKED",
    "RECEIPT_LATENCY_BUCKETS",
    "PartnerCounts",
    "PartnerStatistics",
    "ServerCounters",
    "ServerStatistics",
]

#: Accept times kept for the receipt latency histogram (the oldest are forgotten).
MAX_TRACKED = 100_000
#: Upper bounds (seconds) of the receipt latency histogram; ``+Inf`` is implied.
RECEIPT_LATENCY_BUCKETS: Final = (
    1.0,
    5.0,
    15.0,
    60.0,
    300.0,
    900.0,
    3600.0,
    21600.0,
    86400.0,
)

#: Upper bounds (seconds) of the submit answer histogram: from a submit's read to its
#: ``submit_sm_resp`` (admission and the journal commit); ``+Inf`` is implied.
ANSWER_LATENCY_BUCKETS: Final = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)


@dataclass(frozen=True, slots=True)
class PartnerStatistics:
    """One partner's counts since start (``binds`` is a gauge).

    ``accepted`` will be sent, ``held`` waits for moderation, ``refused`` got an error
    status (``throttled``, ``content_rejected`` and ``opted_out``, marketing to a number
    on the opt-out list, are among them); ``content_held`` are the held ones whose
    content broke the policy. ``commands`` counts query_sm, cancel_sm
    and replace_sm by ``(command, "ok" | "failed")``. ``receipt_latency`` holds one count
    per bucket of :data:`RECEIPT_LATENCY_BUCKETS` plus ``+Inf`` (not cumulative).
    """

    binds: int = 0
    accepted: int = 0
    held: int = 0
    refused: int = 0
    throttled: int = 0
    content_rejected: int = 0
    content_held: int = 0
    opted_out: int = 0
    commands: Mapping[tuple[str, str], int] = field(default_factory=dict)
    receipt_latency: tuple[int, ...] = ()
    receipt_latency_sum: float = 0.0


@dataclass(frozen=True, slots=True)
class ServerStatistics:
    """The server's snapshot. ``submits`` counts messages: a submit_sm, a data_sm, or one
    destination of a submit_multi. ``quota_remaining`` is keyed by (partner, order id),
    in the order's unit (parts for prepaid, money for postpaid), as of the last refresh.
    """

    sessions: int
    bound: int
    binds_refused: int
    submits: int
    accepted: int
    refused_by_status: Mapping[int, int]
    receipts_sent: int
    receipts_acked: int
    partners: Mapping[str, PartnerStatistics] = field(default_factory=dict)
    #: Receipts partners answered with an error (sent again after a pause, or dropped
    #: when the error says never).
    receipts_refused: int = 0
    quota_remaining: Mapping[tuple[str, int], int] = field(default_factory=dict)
    #: Numbers on the opt-out list by scope ("": every partner's marketing, else one
    #: partner's), as of the last read.
    opt_out_numbers: Mapping[str, int] = field(default_factory=dict)
    #: Accepted submits by :data:`ANSWER_LATENCY_BUCKETS` plus ``+Inf`` (not cumulative).
    answer_latency: tuple[int, ...] = ()
    answer_latency_sum: float = 0.0


@dataclass(slots=True)
class PartnerCounts:
    """The mutable counters behind one :class:`PartnerStatistics`."""

    accepted: int = 0
    held: int = 0
    refused: int = 0
    throttled: int = 0
    content_rejected: int = 0
    content_held: int = 0
    opted_out: int = 0
    commands: dict[tuple[str, str], int] = field(default_factory=dict)
    latency: list[int] = field(default_factory=lambda: [0] * (len(RECEIPT_LATENCY_BUCKETS) + 1))
    latency_sum: float = 0.0

    def command(self, name: str, ok: bool) -> None:
        key = (name, "ok" if ok else "failed")
        self.commands[key] = self.commands.get(key, 0) + 1

    def observe_receipt(self, seconds: float) -> None:
        self.latency[bisect_left(RECEIPT_LATENCY_BUCKETS, seconds)] += 1
        self.latency_sum += seconds

    def snapshot(self, binds: int) -> PartnerStatistics:
        return PartnerStatistics(
            binds=binds,
            accepted=self.accepted,
            held=self.held,
            refused=self.refused,
            throttled=self.throttled,
            content_rejected=self.content_rejected,
            content_held=self.content_held,
            opted_out=self.opted_out,
            commands=dict(self.commands),
            receipt_latency=tuple(self.latency),
            receipt_latency_sum=self.latency_sum,
        )


class ServerCounters:
    """Everything the server counts, and the snapshot it makes of it.

    Receipt latency: :meth:`receipt_expected` notes when a message that asked for a
    receipt was accepted (monotonic time, at most :data:`MAX_TRACKED` at once, oldest
    forgotten: a message whose receipt never comes must not hold memory for ever), and
    :meth:`receipt_sent` observes the time once, when its receipt is written. Messages
    accepted before a restart are not observed.
    """

    def __init__(self) -> None:
        self.binds_refused = 0
        self.submits = 0
        self.accepted = 0
        self.refused: dict[int, int] = {}
        #: (partner, order id) -> remaining, replaced whole by each refresh.
        self.quota: dict[tuple[str, int], int] = {}
        #: scope -> numbers on the opt-out list, replaced whole by each refresh.
        self.opt_outs: dict[str, int] = {}
        self._per: dict[str, PartnerCounts] = {}
        self._receipt_due: OrderedDict[int, float] = OrderedDict()
        self._answers = [0] * (len(ANSWER_LATENCY_BUCKETS) + 1)
        self._answers_sum = 0.0

    def answered(self, seconds: float, count: int) -> None:
        """``count`` accepted submits answered ``seconds`` after they were read."""
        self._answers[bisect_left(ANSWER_LATENCY_BUCKETS, seconds)] += count
        self._answers_sum += seconds * count

    def partner(self, system_id: str) -> PartnerCounts:
        counts = self._per.get(system_id)
        if counts is None:
            counts = self._per[system_id] = PartnerCounts()
        return counts

    def refusal(self, system_id: str | None, status: int) -> None:
        """One message refused with ``status`` (``system_id`` None: not bound)."""
        self.refused[status] = self.refused.get(status, 0) + 1
        if system_id is None:
            return
        counts = self.partner(system_id)
        counts.refused += 1
        if status == CommandStatus.ESME_RTHROTTLED:
            counts.throttled += 1
        elif status == CommandStatus.ESME_RX_P_APPN:
            counts.content_rejected += 1

    def receipt_expected(self, message_id: int, now: float) -> None:
        self._receipt_due[message_id] = now
        if len(self._receipt_due) > MAX_TRACKED:
            self._receipt_due.popitem(last=False)

    def receipt_sent(self, system_id: str, message_id: int, now: float) -> None:
        accepted_at = self._receipt_due.pop(message_id, None)
        if accepted_at is not None:
            self.partner(system_id).observe_receipt(now - accepted_at)

    def snapshot(
        self,
        *,
        sessions: int,
        binds: Mapping[str, int],
        receipts_sent: int,
        receipts_acked: int,
        receipts_refused: int = 0,
    ) -> ServerStatistics:
        """``binds``: bound sessions by partner (configured partners with 0 included)."""
        names = sorted(binds.keys() | self._per.keys())
        return ServerStatistics(
            sessions=sessions,
            bound=sum(binds.values()),
            binds_refused=self.binds_refused,
            submits=self.submits,
            accepted=self.accepted,
            refused_by_status=dict(self.refused),
            receipts_sent=receipts_sent,
            receipts_acked=receipts_acked,
            receipts_refused=receipts_refused,
            partners={name: self.partner(name).snapshot(binds.get(name, 0)) for name in names},
            quota_remaining=dict(self.quota),
            opt_out_numbers=dict(self.opt_outs),
            answer_latency=tuple(self._answers),
            answer_latency_sum=self._answers_sum,
        )


async def refresh_gauges(store: Store, counters: ServerCounters, *, opt_outs: bool = True) -> None:
    """Read what the gauges show of the journal (a scrape cannot await): every active
    order's remaining quota, and with ``opt_outs`` the size of the opt-out list."""
    orders = await store.active_orders()
    counters.quota = {(o.partner, o.id): o.remaining for o in orders}
    if opt_outs:
        counters.opt_outs = await store.read(count_opt_outs)


async def refresh_gauges_every(store: Store, counters: ServerCounters, seconds: float) -> None:
    """:func:`refresh_gauges` every ``seconds`` (the opt-out list every
    :data:`OPT_OUT_REFRESH_EVERY` times), until cancelled; a failed read waits for the
    next."""
    serial = 0
    while True:
        try:
            await refresh_gauges(store, counters, opt_outs=serial % OPT_OUT_REFRESH_EVERY == 0)
        except StoreError as exc:
            log.debug("quota gauges not refreshed", error=str(exc))
        serial += 1
        await trio.sleep(seconds)
