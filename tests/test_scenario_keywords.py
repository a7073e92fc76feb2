"""Keywords compare without case or diacritics; member IDs follow the operator's pattern."""

from __future__ import annotations

import random

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from smppgw.scenarios.keywords import normalize, split_command
from smppgw.scenarios.member_id import MemberIdFormat, PatternError


@pytest.mark.parametrize("typed", ["TD", "td", "Td", "Tđ", "TĐ", " td "])
def test_keyword_variants_are_one(typed: str) -> None:
    assert normalize(typed) == "TD"


def test_split_keeps_the_arguments_as_typed() -> None:
    assert split_command("  đk  Nguyễn  Hà Nội ") == ("DK", ["Nguyễn", "Hà", "Nội"])
    assert split_command("   ") == ("", [])


@given(st.text())
@example("ὠ")  # no GSM plain form, but its upper case Ὠ strips to Ω: one pass is not enough
def test_normalize_is_idempotent(text: str) -> None:
    once = normalize(text)
    assert normalize(once) == once
    assert "  " not in once


def test_member_id_uses_the_province_code_and_random_digits() -> None:
    fmt = MemberIdFormat("{province}{digits:6}", {"Hà Nội": "HN", "hcm": "SG"}, "VN")
    rng = random.Random(7)
    assert fmt.new(rng, "ha noi")[:2] == "HN"
    assert fmt.new(rng, "HCM")[:2] == "SG"
    assert fmt.new(rng, "elsewhere")[:2] == "VN"
    ids = {fmt.new(rng, "hn") for _ in range(200)}
    assert len(ids) > 190  # random, not sequential
    assert all(len(i) == 8 and i[2:].isdigit() for i in ids)


@pytest.mark.parametrize("pattern", ["{digits:2}", "{nope}", "{digits}", "X{digits:99}"])
def test_unusable_patterns_are_refused(pattern: str) -> None:
    with pytest.raises(PatternError):
        MemberIdFormat(pattern)
