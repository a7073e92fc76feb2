"""Which alerts are due: pure functions of orders, violation counts, ``now`` and the keys
already seen. No I/O and no clock, so hypothesis can drive them through any history.

Keys are what make an alert happen once: the service records each one in the store
(``event.event_key`` is unique) together with the alert's SMS, and passes the keys it
knows back in as ``seen``.

Orders (``alert:order:<id>:<threshold>`` and ``alert:order:<id>:expiring:<days>d``):

- usage is ``reserved + spent`` against ``limit`` (what the partner can no longer
  reserve, as ``Order.remaining`` counts it); threshold ``t`` is crossed when
  ``used * 100 >= t * limit`` (integers: exact). 100 is "used up";
- when several thresholds are crossed at once (a big batch, or alerts switched on for an
  order already at 97 %), only the highest is sent; the lower ones are returned as
  ``covers`` and recorded too, so they never arrive late and out of order;
- expiring: ``days`` is due when ``0 < expires_at - now <= days * 86400``; the most
  urgent due one is sent and covers the longer ones;
- an order with limit 0 has nothing to warn about and is skipped.

Content violations (``alert:content:<partner>:<period>``): the partner server counts
refused and held messages since the process started. :class:`ViolationTracker` turns
successive totals into timed increments and says when ``count`` of them fall within the
window since the partner's last alert. The period in the key is ``now // window``:
at most one content alert per partner per window-length period, also across restarts.
"""

from __future__ import annotations

import enum
import math
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from collections.abc import Container, Iterable, Mapping

    from smppgw.store.records import Order

__all__ = [
    "DAY",
    "AlertKind",
    "DueAlert",
    "OrderUsage",
    "ViolationTracker",
    "content_key",
    "expiring_key",
    "order_alerts",
    "threshold_key",
    "violation_counts",
]

DAY = 86_400.0


class AlertKind(enum.StrEnum):
    """What an alert is about; each kind has its own templates."""

    QUOTA = "quota"  # an order crossed a usage threshold below 100 %
    USED_UP = "used_up"  # the 100 % threshold: nothing left
    EXPIRING = "expiring"  # the order expires within N days
    CONTENT = "content"  # repeated content-filter violations


@dataclass(frozen=True, slots=True)
class OrderUsage:
    """What the rules need of an order (amounts in the order's unit)."""

    order_id: int
    partner: str
    limit: int
    used: int
    expires_at: float | None = None

    @classmethod
    def of(cls, order: Order) -> OrderUsage:
        return cls(
            order.id, order.partner, order.limit, order.reserved + order.spent, order.expires_at
        )


@dataclass(frozen=True, slots=True)
class DueAlert:
    """An alert to send. ``values`` fill its templates; ``covers`` are keys of alerts it
    makes pointless (lower thresholds crossed at the same time), recorded without
    being sent."""

    key: str
    kind: AlertKind
    partner: str
    values: Mapping[str, object]
    covers: tuple[str, ...] = ()

    @property
    def keys(self) -> tuple[str, ...]:
        return (self.key, *self.covers)


def threshold_key(order_id: int, threshold: int) -> str:
    return f"alert:order:{order_id}:{threshold}"


def expiring_key(order_id: int, days: int) -> str:
    return f"alert:order:{order_id}:expiring:{days}d"


def content_key(partner: str, now: float, window: float) -> str:
    return f"alert:content:{partner}:{math.floor(now / window)}"


def _percent(used: int, limit: int) -> int:
    return used * 100 // limit


def order_alerts(
    orders: Iterable[OrderUsage],
    now: float,
    thresholds: Iterable[int],
    expiring_days: Iterable[int],
    seen: Container[str] = frozenset(),
) -> list[DueAlert]:
    """The order alerts due at ``now`` whose keys are not in ``seen``."""
    ts = sorted(set(thresholds))
    ds = sorted(set(expiring_days))
    out: list[DueAlert] = []
    for order in orders:
        if order.limit <= 0:
            continue
        base: dict[str, object] = {
            "partner": order.partner,
            "order_id": order.order_id,
            "used": order.used,
            "limit": order.limit,
            "remaining": max(order.limit - order.used, 0),
            "percent": _percent(order.used, order.limit),
            "expires_at": order.expires_at,
        }
        crossed = [t for t in ts if order.used * 100 >= t * order.limit]
        if crossed and threshold_key(order.order_id, crossed[-1]) not in seen:
            top = crossed[-1]
            covers = tuple(
                k for k in (threshold_key(order.order_id, t) for t in crossed[:-1]) if k not in seen
            )
            kind = AlertKind.USED_UP if top >= 100 else AlertKind.QUOTA
            out.append(
                DueAlert(
                    threshold_key(order.order_id, top),
                    kind,
                    order.partner,
                    {**base, "threshold": top},
                    covers,
                )
            )
        if order.expires_at is None:
            continue
        left = order.expires_at - now
        due_days = [d for d in ds if 0 < left <= d * DAY]
        if due_days and expiring_key(order.order_id, due_days[0]) not in seen:
            first = due_days[0]
            covers = tuple(
                k for k in (expiring_key(order.order_id, d) for d in due_days[1:]) if k not in seen
            )
            out.append(
                DueAlert(
                    expiring_key(order.order_id, first),
                    AlertKind.EXPIRING,
                    order.partner,
                    {**base, "days": first},
                    covers,
                )
            )
    return out


class _PartnerCounts(Protocol):
    @property
    def content_rejected(self) -> int: ...

    @property
    def content_held(self) -> int: ...


class _ServerStats(Protocol):
    @property
    def partners(self) -> Mapping[str, _PartnerCounts]: ...


def violation_counts(stats: _ServerStats) -> dict[str, int]:
    """Content violations per partner (refused + held) from the partner server's
    ``statistics()`` snapshot, read structurally so this package needs no ``net``."""
    return {
        name: counts.content_rejected + counts.content_held
        for name, counts in stats.partners.items()
    }


@dataclass(slots=True)
class _Partner:
    total: int = 0
    events: deque[tuple[float, int]] = field(default_factory=deque)
    since: float = -math.inf  # violations before the last alert no longer count


class ViolationTracker:
    """Content violations per partner within a sliding window, from running totals.

    ``observe`` takes the totals since the process started (a lower total than before
    means the counters restarted: the new total is all new). Totals are baselined at 0:
    the service runs for the life of the process, so everything counted is recent.
    """

    def __init__(self, count: int, window: float) -> None:
        if count < 1 or window <= 0:
            raise ValueError("count >= 1 and window > 0")
        self.count = count
        self.window = window
        self._partners: dict[str, _Partner] = {}

    def observe(self, totals: Mapping[str, int], now: float) -> None:
        for name, total in totals.items():
            p = self._partners.setdefault(name, _Partner())
            delta = total - p.total if total >= p.total else total
            p.total = total
            if delta > 0:
                p.events.append((now, delta))

    def within(self, partner: str, now: float) -> int:
        """Violations of ``partner`` in the window ending at ``now`` since its last alert."""
        p = self._partners.get(partner)
        if p is None:
            return 0
        start = max(now - self.window, p.since)
        while p.events and p.events[0][0] <= start:
            p.events.popleft()
        return sum(n for _, n in p.events)

    def due(self, now: float) -> list[DueAlert]:
        out = []
        for name in sorted(self._partners):
            n = self.within(name, now)
            if n >= self.count:
                out.append(
                    DueAlert(
                        content_key(name, now, self.window),
                        AlertKind.CONTENT,
                        name,
                        {"partner": name, "count": n, "hours": f"{self.window / 3600:g}"},
                    )
                )
        return out

    def fired(self, partner: str, now: float) -> None:
        """An alert for ``partner`` was recorded (or already was): start counting anew."""
        p = self._partners.setdefault(partner, _Partner())
        p.since = now
        p.events.clear()
