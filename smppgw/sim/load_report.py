"""What a load run reports: its summary, and the per-interval timeline (``--timeline``).

Split from ``loadgen.py`` (which sends the load): the figures and how they are written
(a table, JSON, JSON lines per interval) are their own concern.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["LoadSummary", "Timeline", "percentile"]


@dataclass(frozen=True, slots=True)
class LoadSummary:
    """What a load run did. Durations in seconds, latencies in milliseconds."""

    sessions: int
    window: int
    sent: int  # submit_sm written, retries included
    accepted: int
    refused: Mapping[str, int]  # final refusals by status name
    retried: int  # throttling refusals sent again (throttle-friendly mode)
    failed: int  # no answer: the link closed or the response timed out
    duplicate_ids: int
    receipts_expected: int
    receipts_received: int
    receipts_matched: int
    receipt_states: Mapping[str, int]
    mo_received: int
    submit_duration: float
    duration: float
    throughput: float  # accepted per second of submit_duration
    latency_p50_ms: float
    latency_p95_ms: float
    latency_p99_ms: float
    latency_max_ms: float
    #: This process's CPU time from the first send to the end: what the load itself
    #: cost, start-up excluded, so that a benchmark on a shared machine can tell the
    #: tool's share of the cores from the system's under test.
    cpu_seconds: float = 0.0

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    def to_table(self) -> str:
        rows = [(name, _show(value)) for name, value in asdict(self).items()]
        width = max(len(name) for name, _ in rows)
        return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)


def _show(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.3f}"
    if isinstance(value, Mapping):
        return ", ".join(f"{k}={v}" for k, v in sorted(value.items())) or "-"
    return str(value)


def percentile(ordered: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of sorted seconds, in milliseconds."""
    if not ordered:
        return 0.0
    rank = max(1, math.ceil(q * len(ordered)))
    return ordered[rank - 1] * 1000.0


@dataclass(slots=True)
class _Interval:
    responses: int = 0
    accepted: int = 0
    refused: int = 0
    failed: int = 0
    receipts: int = 0
    latencies: list[float] = field(default_factory=list)


class Timeline:
    """Per-interval counts for ``--timeline``; see the module doc.

    Intervals of ``width`` seconds are counted from ``origin`` (trio time of the first
    send); ``wall_origin`` is the wall clock at that moment, written out only to align
    files of loads that ran side by side (never used to measure).
    """

    def __init__(self, width: float = 1.0) -> None:
        if width <= 0:
            raise ValueError("the timeline interval must be > 0")
        self.width = width
        self.origin: float | None = None
        self.wall_origin = 0.0
        self.intervals: dict[int, _Interval] = {}
        self.sent_at: dict[str, float] = {}
        self.early_at: dict[str, float] = {}
        self.round_trips: list[float] = []

    def begin(self, now: float) -> None:
        self.origin = now
        self.wall_origin = time.time()

    def _at(self, now: float) -> _Interval:
        origin = self.origin if self.origin is not None else now
        index = max(0, int((now - origin) / self.width))
        interval = self.intervals.get(index)
        if interval is None:
            interval = self.intervals[index] = _Interval()
        return interval

    def response(self, now: float, t0: float, *, accepted: bool) -> None:
        interval = self._at(now)
        interval.responses += 1
        interval.latencies.append(now - t0)
        if accepted:
            interval.accepted += 1
        else:
            interval.refused += 1

    def failure(self, now: float) -> None:
        self._at(now).failed += 1

    def accepted_id(self, message_id: str, t0: float) -> None:
        arrived = self.early_at.pop(message_id, None)
        if arrived is None:
            self.sent_at[message_id] = t0
        else:
            self.round_trips.append(arrived - t0)

    def receipt(self, now: float, message_id: str | None) -> None:
        self._at(now).receipts += 1
        if message_id is None:
            return
        t0 = self.sent_at.pop(message_id, None)
        if t0 is None:
            self.early_at[message_id] = now
        else:
            self.round_trips.append(now - t0)

    def lines(self, all_latencies: Sequence[float]) -> list[dict[str, Any]]:
        """Every interval from 0 to the last (empty ones as zeros: a stall shows), then
        the total line."""
        out: list[dict[str, Any]] = []
        for index in range(max(self.intervals, default=-1) + 1):
            interval = self.intervals.get(index, _Interval())
            ordered = sorted(interval.latencies)
            start = index * self.width
            out.append(
                {
                    "kind": "interval",
                    "start_s": round(start, 6),
                    "interval_s": self.width,
                    "t": round(self.wall_origin + start, 3),
                    "responses": interval.responses,
                    "accepted": interval.accepted,
                    "accepted_per_s": round(interval.accepted / self.width, 3),
                    "refused": interval.refused,
                    "failed": interval.failed,
                    "receipts": interval.receipts,
                    "latency_p50_ms": round(percentile(ordered, 0.50), 3),
                    "latency_p99_ms": round(percentile(ordered, 0.99), 3),
                    "latency_max_ms": round(ordered[-1] * 1000.0, 3) if ordered else 0.0,
                }
            )
        submits = sorted(all_latencies)
        trips = sorted(self.round_trips)
        out.append(
            {
                "kind": "total",
                "t": round(self.wall_origin, 3),
                "responses": len(submits),
                "latency_p50_ms": round(percentile(submits, 0.50), 3),
                "latency_p99_ms": round(percentile(submits, 0.99), 3),
                "round_trips": len(trips),
                "round_trip_p50_ms": round(percentile(trips, 0.50), 3),
                "round_trip_p99_ms": round(percentile(trips, 0.99), 3),
                "round_trip_max_ms": round(trips[-1] * 1000.0, 3) if trips else 0.0,
            }
        )
        return out
