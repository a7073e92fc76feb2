"""Token bucket, reconnect backoff and prefix routing: pure parts of the carrier side."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smppgw.gateway.routing import NoRoute, PrefixRouter, normalise_msisdn
from smppgw.gateway.throttle import TokenBucket
from smppgw.net.backoff import Backoff


def test_bucket_caps_rate_over_time() -> None:
    bucket = TokenBucket(rate=100, now=0.0)
    sent = 0
    now = 0.0
    while now < 10.0:
        wait = bucket.try_take(1, now)
        if wait == 0:
            sent += 1
        else:
            now += wait
    # one second of burst plus ten seconds at 100/s
    assert 1000 <= sent <= 1101


@given(st.lists(st.tuples(st.floats(0, 1), st.integers(1, 5)), max_size=200))
def test_bucket_never_exceeds_rate_plus_burst(steps: list[tuple[float, int]]) -> None:
    bucket = TokenBucket(rate=50, burst=10, now=0.0)
    now = 0.0
    taken = 0
    for dt, n in steps:
        now += dt
        if bucket.try_take(n, now) == 0:
            taken += n
    assert taken <= 10 + 50 * now + 5  # a single oversize take may overdraw by one request


def test_bucket_wait_is_exact_and_unlimited_never_waits() -> None:
    bucket = TokenBucket(rate=10, burst=1, now=0.0)
    assert bucket.try_take(1, 0.0) == 0
    assert bucket.try_take(1, 0.0) == pytest.approx(0.1)
    assert bucket.try_take(1, 0.1) == 0
    free = TokenBucket(rate=0)
    assert all(free.try_take(1000, 0.0) == 0 for _ in range(100))


def test_penalise_then_slow_start_back_to_cap() -> None:
    bucket = TokenBucket(rate=100, now=0.0)
    bucket.penalise(0.0)
    assert bucket.statistics().current_rate == 50
    assert bucket.try_take(1, 0.0) > 0
    for _ in range(100):
        bucket.recover()
    assert bucket.statistics().current_rate == 100
    assert bucket.statistics().penalties == 1


def test_backoff_grows_by_e_caps_and_resets() -> None:
    backoff = Backoff(initial=1, maximum=60, multiplier=math.e, jitter=0)
    delays = [backoff.next_delay() for _ in range(7)]
    assert delays[:4] == pytest.approx([1, math.e, math.e**2, math.e**3])
    assert delays[-1] == 60
    backoff.reset()
    assert backoff.next_delay() == 1


def test_backoff_jitter_stays_in_band() -> None:
    backoff = Backoff(initial=10, maximum=10, jitter=0.2, uniform=lambda lo, hi: hi)
    assert backoff.next_delay() == pytest.approx(12)


def test_longest_prefix_wins_and_failover() -> None:
    router = PrefixRouter({"84": ["a"], "8491": ["b", "a"], "849": ["c"]}, default=["d"])
    assert router.candidates("+84912345678") == ("b", "a")
    assert router.candidates("0084931234567") == ("c",)
    assert router.candidates("84881234567") == ("a",)
    assert router.candidates("1555") == ("d",)
    assert router.choose("84912345678", is_up=lambda c: c != "b") == "a"
    with pytest.raises(NoRoute):
        router.choose("84912345678", is_up=lambda c: False)


def test_normalise_and_bad_prefix() -> None:
    assert normalise_msisdn(" +84 912 ") == "84912"
    with pytest.raises(ValueError, match="digits"):
        PrefixRouter({"84x": ["a"]})


@given(
    st.dictionaries(st.text("0123456789", min_size=1, max_size=6), st.just(["x"])),
    st.text("0123456789", max_size=12),
)
def test_router_matches_brute_force(routes: dict[str, list[str]], dest: str) -> None:
    named = {p: [p] for p in routes}
    router = PrefixRouter(named, default=["default"])
    digits = normalise_msisdn(dest)
    matches = [p for p in named if digits.startswith(p)]
    expected = (max(matches, key=len),) if matches else ("default",)
    assert router.candidates(dest) == expected
