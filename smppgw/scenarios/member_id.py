"""Member IDs in the operator's format: a pattern with a province prefix and random digits.

The seeds ask for IDs that are random (not guessable from the registration order) and
carry the operator's classification, e.g. the province: ``HN483920`` for a member from
Ha Noi. The pattern is configured per scenario::

    member_id:
      pattern: "{province}{digits:6}"
      provinces: {"ha noi": HN, "hn": HN, "ho chi minh": HCM, "hcm": HCM}
      default_province: VN

Placeholders: ``{province}`` (the code of the member's province, looked up without case
or diacritics, else ``default_province``), ``{digits:N}`` (N random decimal digits),
``{letters:N}`` (N random upper-case letters, no I or O: they read as 1 and 0).
Uniqueness is the caller's: it tries again on a collision (the store's primary key).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from smppgw.scenarios.keywords import normalize

if TYPE_CHECKING:
    import random
    from collections.abc import Mapping

__all__ = ["MemberIdFormat", "PatternError"]

_PLACEHOLDER = re.compile(r"\{(province|digits|letters)(?::(\d+))?\}")
_LETTERS = "ABCDEFGHJKLMNPQRSTUVWXYZ"


class PatternError(ValueError):
    """A member-ID pattern the generator cannot use (said at config load)."""


@dataclass(frozen=True)
class MemberIdFormat:
    """How to make a member ID; see the module docstring."""

    pattern: str = "{digits:8}"
    provinces: Mapping[str, str] = field(default_factory=dict)
    default_province: str = ""

    def __post_init__(self) -> None:
        rest = _PLACEHOLDER.sub("", self.pattern)
        if "{" in rest or "}" in rest:
            raise PatternError(
                f"unknown placeholder in {self.pattern!r}: use {{province}}, {{digits:N}}"
                " or {letters:N}"
            )
        random_units = 0
        for match in _PLACEHOLDER.finditer(self.pattern):
            kind, size = match.group(1), match.group(2)
            if kind != "province":
                if size is None or not 1 <= int(size) <= 20:
                    raise PatternError(f"{{{kind}:N}} needs N from 1 to 20 in {self.pattern!r}")
                random_units += int(size)
        if random_units < 4:
            raise PatternError(
                f"{self.pattern!r} has fewer than 4 random characters: IDs would run out"
            )
        object.__setattr__(
            self, "provinces", {normalize(k): v for k, v in dict(self.provinces).items()}
        )

    def province_code(self, province: str | None) -> str:
        if not province:
            return self.default_province
        return self.provinces.get(normalize(province), self.default_province)

    def new(self, rng: random.Random, province: str | None = None) -> str:
        """A fresh candidate ID (the caller checks it is not taken)."""

        def fill(match: re.Match[str]) -> str:
            kind, size = match.group(1), match.group(2)
            if kind == "province":
                return self.province_code(province)
            alphabet = "0123456789" if kind == "digits" else _LETTERS
            return "".join(rng.choice(alphabet) for _ in range(int(size)))

        return _PLACEHOLDER.sub(fill, self.pattern)
