"""MT routing by destination prefix: longest match, with failover to the next carrier.

A route maps a digit prefix to an ordered list of carriers: the first that is up takes
the message, the others are the failover. Destinations are normalised before matching
(a leading ``+`` or ``00`` is dropped) so ``+8491...``, ``008491...`` and ``8491...``
route alike.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping, Sequence

__all__ = ["NoRoute", "PrefixRouter", "normalise_msisdn"]


class NoRoute(LookupError):
    """No carrier that is up serves this destination."""


def normalise_msisdn(destination: str) -> str:
    """Digits of an international number: strip spaces, ``+`` and a ``00`` prefix."""
    digits = destination.strip().replace(" ", "")
    if digits.startswith("+"):
        digits = digits[1:]
    elif digits.startswith("00"):
        digits = digits[2:]
    return digits


class PrefixRouter:
    """Longest-prefix match over a fixed table, cached per prefix length.

    Args:
        routes: ``{prefix: [carrier, fallback, ...]}``.
        default: carriers for destinations no prefix matches (may be empty).
    """

    __slots__ = ("_default", "_lengths", "_routes")

    def __init__(self, routes: Mapping[str, Sequence[str]], default: Sequence[str] = ()) -> None:
        for prefix in routes:
            if not prefix.isdigit():
                raise ValueError(f"route prefix {prefix!r} is not all digits")
        self._routes = {prefix: tuple(carriers) for prefix, carriers in routes.items()}
        self._default = tuple(default)
        self._lengths = sorted({len(p) for p in self._routes}, reverse=True)

    def candidates(self, destination: str) -> tuple[str, ...]:
        """The carriers for ``destination``, best first (longest prefix, then default)."""
        digits = normalise_msisdn(destination)
        routes = self._routes
        for length in self._lengths:
            found = routes.get(digits[:length])
            if found is not None:
                return found
        return self._default

    def choose(self, destination: str, is_up: Callable[[str], bool]) -> str:
        """The first candidate carrier that is up.

        Raises:
            NoRoute: no candidate is up, or none is configured.
        """
        for carrier in self.candidates(destination):
            if is_up(carrier):
                return carrier
        raise NoRoute(destination)

    def carriers(self) -> Iterable[str]:
        """Every carrier some route names."""
        seen: dict[str, None] = {}
        for carriers in (*self._routes.values(), self._default):
            for name in carriers:
                seen.setdefault(name)
        return seen.keys()
