"""Reconnect delays: exponential growth with jitter, capped, reset after a good bind.

Kept pure (the random source is injected) so the schedule is tested without a clock, as
go-smpp's ``Bind`` loop would be if it were: 1, e, e^2, ... up to ``maximum``.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["Backoff"]


class Backoff:
    """Successive delays for a reconnect loop.

    Args:
        initial: first delay in seconds.
        maximum: cap on the delay before jitter.
        multiplier: growth factor between attempts.
        jitter: fraction of the delay drawn at random (0.2 -> delay * [0.8, 1.2]).
        uniform: random source, ``random.uniform`` by default (inject for tests).
    """

    __slots__ = ("_attempt", "_initial", "_jitter", "_maximum", "_multiplier", "_uniform")

    def __init__(
        self,
        initial: float = 1.0,
        maximum: float = 60.0,
        multiplier: float = 2.718281828,
        jitter: float = 0.2,
        uniform: Callable[[float, float], float] = random.uniform,
    ) -> None:
        if initial <= 0 or maximum < initial or multiplier < 1 or not 0 <= jitter < 1:
            raise ValueError("need 0 < initial <= maximum, multiplier >= 1, 0 <= jitter < 1")
        self._initial = initial
        self._maximum = maximum
        self._multiplier = multiplier
        self._jitter = jitter
        self._uniform = uniform
        self._attempt = 0

    @property
    def attempt(self) -> int:
        """Failed attempts since the last reset."""
        return self._attempt

    def next_delay(self) -> float:
        """The delay before the next attempt; each call counts one more failure."""
        base = min(self._maximum, self._initial * self._multiplier**self._attempt)
        self._attempt += 1
        if self._jitter:
            base *= self._uniform(1 - self._jitter, 1 + self._jitter)
        return base

    def reset(self) -> None:
        """A bind succeeded: the next failure starts again from ``initial``."""
        self._attempt = 0
