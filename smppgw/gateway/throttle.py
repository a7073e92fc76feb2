"""A token bucket: the TPS cap of a carrier (across its binds) or of a partner.

Sans-I/O: the caller passes ``now`` and, when refused, gets how long to wait. Tokens are
message *parts*, since carriers count and bill parts. ``rate == 0`` means unlimited.

The bucket also supports the *slow start* that follows a carrier's ``ESME_RTHROTTLED``:
:meth:`TokenBucket.penalise` empties the bucket and scales the rate down, and the rate
then climbs back to the configured cap as sends succeed (:meth:`TokenBucket.recover`),
so a throttled bind neither hammers the SMSC nor stays slow forever.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["TokenBucket", "TokenBucketStatistics"]

_EPSILON = 1e-9
_MIN_WAIT = 1e-6


@dataclass(frozen=True, slots=True)
class TokenBucketStatistics:
    configured_rate: float
    current_rate: float
    tokens: float
    refusals: int
    penalties: int


class TokenBucket:
    """``rate`` tokens a second, at most ``burst`` saved up.

    Args:
        rate: tokens per second; 0 disables the limit.
        burst: bucket capacity; defaults to one second's worth (at least 1).
        now: the time the bucket starts full.
    """

    __slots__ = ("_burst", "_configured", "_last", "_penalties", "_rate", "_refusals", "_tokens")

    def __init__(self, rate: float, burst: float | None = None, *, now: float = 0.0) -> None:
        if rate < 0:
            raise ValueError("rate must be >= 0")
        self._configured = float(rate)
        self._rate = float(rate)
        self._burst = float(burst) if burst is not None else max(1.0, float(rate))
        self._tokens = self._burst
        self._last = now
        self._refusals = 0
        self._penalties = 0

    @property
    def unlimited(self) -> bool:
        return self._configured == 0

    def _refill(self, now: float) -> None:
        if now > self._last:
            self._tokens = min(self._burst, self._tokens + (now - self._last) * self._rate)
            self._last = now

    def try_take(self, tokens: float, now: float) -> float:
        """Take ``tokens`` if there are enough and return 0; else return seconds to wait.

        A request larger than the burst is allowed once the bucket is full, so a long
        message is never refused for ever.
        """
        if self._configured == 0:
            return 0.0
        self._refill(now)
        need = min(tokens, self._burst)
        # The epsilon absorbs float drift from many small refills: without it a bucket
        # at 0.9999999999999999 tokens would ask for a wait too small to advance a clock.
        if self._tokens + _EPSILON >= need:
            self._tokens -= tokens
            return 0.0
        self._refusals += 1
        return max(_MIN_WAIT, (need - self._tokens) / self._rate)

    def penalise(self, now: float, factor: float = 0.5, floor: float = 1.0) -> None:
        """The peer said we are too fast: empty the bucket and lower the rate."""
        if self._configured == 0:
            return
        self._refill(now)
        self._tokens = 0.0
        self._rate = max(floor, self._rate * factor)
        self._penalties += 1

    def recover(self, step: float = 0.05) -> None:
        """A send succeeded: climb back towards the configured rate (slow start)."""
        if self._rate < self._configured:
            self._rate = min(self._configured, self._rate + max(step * self._configured, 0.1))

    def reconfigure(self, rate: float, burst: float | None = None) -> None:
        """Apply a reloaded configuration without losing the saved tokens."""
        self._configured = float(rate)
        self._rate = float(rate)
        self._burst = float(burst) if burst is not None else max(1.0, float(rate))
        self._tokens = min(self._tokens, self._burst)

    def statistics(self) -> TokenBucketStatistics:
        return TokenBucketStatistics(
            self._configured, self._rate, self._tokens, self._refusals, self._penalties
        )
