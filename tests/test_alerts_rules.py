"""The alert rules: thresholds and expiry once each, never early; content violations in a
sliding window."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from smppgw.alerts.rules import (
    DAY,
    AlertKind,
    DueAlert,
    OrderUsage,
    ViolationTracker,
    content_key,
    expiring_key,
    order_alerts,
    threshold_key,
    violation_counts,
)
from smppgw.net.partner_stats import PartnerStatistics, ServerStatistics

NOW = 1_790_000_000.0
THRESHOLDS = (80, 95, 100)


def _run(orders: list[OrderUsage], now: float, seen: set[str], **kw: object) -> list[DueAlert]:
    """One check as the service does it: due alerts, their keys then recorded."""
    due = order_alerts(
        orders,
        now,
        kw.get("thresholds", THRESHOLDS),  # type: ignore[arg-type]
        kw.get("days", (7, 1)),  # type: ignore[arg-type]
        seen,
    )
    for alert in due:
        assert alert.key not in seen
        assert not set(alert.covers) & seen
        seen.update(alert.keys)
    return due


@given(
    limit=st.integers(1, 10_000),
    steps=st.lists(st.integers(0, 3_000), min_size=1, max_size=40),
    thresholds=st.lists(st.integers(1, 100), min_size=1, max_size=5, unique=True),
)
def test_usage_thresholds_fire_once_and_never_early(
    limit: int, steps: list[int], thresholds: list[int]
) -> None:
    seen: set[str] = set()
    fired: list[int] = []
    used = 0
    for step in steps:
        used = min(limit, used + step)
        order = OrderUsage(1, "acme", limit, used)
        for alert in _run([order], NOW, seen, thresholds=thresholds, days=()):
            threshold = alert.values["threshold"]
            assert isinstance(threshold, int)
            # never below: the usage really is at or above the threshold
            assert used * 100 >= threshold * limit
            assert alert.kind is (AlertKind.USED_UP if threshold == 100 else AlertKind.QUOTA)
            fired.append(threshold)
            # what it covers are lower thresholds crossed too
            for key in alert.covers:
                lower = int(key.rsplit(":", 1)[1])
                assert lower < threshold
                assert used * 100 >= lower * limit
    assert len(fired) == len(set(fired)), "a threshold fired twice"
    crossed = [t for t in thresholds if used * 100 >= t * limit]
    below = [t for t in thresholds if used * 100 < t * limit]
    for t in crossed:
        assert threshold_key(1, t) in seen
    for t in below:
        assert threshold_key(1, t) not in seen
    if crossed:
        assert max(crossed) in fired, "the highest threshold reached was sent"
    # a further check with the same usage sends nothing
    assert _run([OrderUsage(1, "acme", limit, used)], NOW, seen, thresholds=thresholds) == []


@given(
    limit=st.integers(100, 10_000),
    permille=st.lists(st.integers(0, 40), min_size=1, max_size=30),
)
def test_small_steps_send_every_threshold(limit: int, permille: list[int]) -> None:
    """Usage growing by less than the gap between thresholds (the steps repeat until the
    order is used up): each one is sent, in order, never covering another."""
    seen: set[str] = set()
    fired: list[int] = []
    used = 0
    i = 0
    while used < limit:
        used = min(limit, used + max(1, limit * permille[i % len(permille)] // 1000))
        i += 1
        for alert in _run([OrderUsage(7, "acme", limit, used)], NOW, seen, days=()):
            assert alert.covers == ()
            fired.append(alert.values["threshold"])  # type: ignore[arg-type]
    assert fired == [80, 95, 100]


def test_a_jump_sends_the_highest_and_covers_the_rest() -> None:
    seen: set[str] = set()
    [alert] = _run([OrderUsage(3, "acme", 100, 97)], NOW, seen, days=())
    assert alert.key == threshold_key(3, 95)
    assert alert.covers == (threshold_key(3, 80),)
    assert alert.values["remaining"] == 3
    assert alert.values["percent"] == 97
    [last] = _run([OrderUsage(3, "acme", 100, 100)], NOW, seen, days=())
    assert last.kind is AlertKind.USED_UP
    assert last.covers == ()


def test_zero_limit_and_going_down_send_nothing_again() -> None:
    seen: set[str] = set()
    assert _run([OrderUsage(1, "acme", 0, 0)], NOW, seen) == []
    assert len(_run([OrderUsage(2, "acme", 10, 8)], NOW, seen, days=())) == 1
    # reservations released: usage falls, then climbs past 80 % again
    assert _run([OrderUsage(2, "acme", 10, 5)], NOW, seen, days=()) == []
    assert _run([OrderUsage(2, "acme", 10, 8)], NOW, seen, days=()) == []


@given(
    days=st.lists(st.integers(1, 60), min_size=1, max_size=4, unique=True),
    lifetime=st.floats(0.5, 90.0),
    checks=st.lists(st.floats(0.01, 3.0), min_size=1, max_size=200),
)
def test_expiring_fires_once_per_configured_day(
    days: list[int], lifetime: float, checks: list[float]
) -> None:
    expires = NOW + lifetime * DAY
    seen: set[str] = set()
    fired: list[int] = []
    now = NOW
    for step in checks:
        for alert in _run([OrderUsage(9, "acme", 100, 0, expires)], now, seen, days=days):
            assert alert.kind is AlertKind.EXPIRING
            d = alert.values["days"]
            assert isinstance(d, int)
            assert 0 < expires - now <= d * DAY, "not before N days are left, not after expiry"
            fired.append(d)
        now += step * DAY
    assert len(fired) == len(set(fired))
    # fired in order, the longest first; the ones skipped over are covered
    assert fired == sorted(fired, reverse=True)
    for d in days:
        reached = now - sum(checks[-1:]) * DAY  # the last check's time
        if 0 < expires - reached <= d * DAY:
            assert expiring_key(9, d) in seen


def test_expiring_values_and_never_after_expiry() -> None:
    seen: set[str] = set()
    order = OrderUsage(4, "acme", 50, 10, NOW + 3 * DAY)
    [alert] = _run([order], NOW, seen)
    assert alert.key == expiring_key(4, 7)
    assert alert.values["days"] == 7
    assert alert.values["expires_at"] == NOW + 3 * DAY
    [urgent] = _run([order], NOW + 2.5 * DAY, seen)
    assert urgent.key == expiring_key(4, 1)
    fresh: set[str] = set()
    assert _run([order], NOW + 3 * DAY, fresh) == []  # expired: nothing
    [both] = _run([order], NOW + 2.5 * DAY, fresh)  # first look at 12 h left
    assert both.key == expiring_key(4, 1)
    assert both.covers == (expiring_key(4, 7),)


def test_violations_in_a_sliding_window() -> None:
    tracker = ViolationTracker(count=5, window=3600)
    tracker.observe({"acme": 3, "beta": 1}, NOW)
    assert tracker.due(NOW) == []
    tracker.observe({"acme": 4}, NOW + 1800)
    assert tracker.due(NOW + 1800) == []
    # the first three fall out of the window; two more make only 3 within it
    tracker.observe({"acme": 6}, NOW + 3700)
    assert tracker.within("acme", NOW + 3700) == 3
    assert tracker.due(NOW + 3700) == []
    tracker.observe({"acme": 8}, NOW + 3800)
    [alert] = tracker.due(NOW + 3800)
    assert alert.kind is AlertKind.CONTENT
    assert alert.key == content_key("acme", NOW + 3800, 3600)
    assert alert.values == {"partner": "acme", "count": 5, "hours": "1"}
    tracker.fired("acme", NOW + 3800)
    assert tracker.due(NOW + 3801) == []  # counted anew after an alert
    # counters restarted (a lower total): the new total is all new
    tracker.observe({"acme": 5}, NOW + 3900)
    assert tracker.within("acme", NOW + 3900) == 5


@given(increments=st.lists(st.integers(0, 4), max_size=60), count=st.integers(1, 20))
def test_violation_alert_once_per_count_reached(increments: list[int], count: int) -> None:
    """With a window longer than the run, alerts = violations // count, each after
    ``count`` more."""
    tracker = ViolationTracker(count=count, window=10 * DAY)
    total = 0
    alerts = 0
    since = 0
    for i, inc in enumerate(increments):
        total += inc
        now = NOW + i
        tracker.observe({"acme": total}, now)
        due = tracker.due(now)
        if total - since >= count:
            assert len(due) == 1
            alerts += 1
            since = total
            tracker.fired("acme", now)
        else:
            assert due == []
    assert alerts <= sum(increments) // count


def test_violation_counts_from_server_statistics() -> None:
    stats = ServerStatistics(
        sessions=0,
        bound=0,
        binds_refused=0,
        submits=0,
        accepted=0,
        refused_by_status={},
        receipts_sent=0,
        receipts_acked=0,
        partners={"acme": PartnerStatistics(content_rejected=3, content_held=2)},
    )
    assert violation_counts(stats) == {"acme": 5}
