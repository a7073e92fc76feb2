"""Content filters: templates, keyword and pattern blocks, normalisation, bounded cost."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smppgw.gateway.content import (
    MAX_RULE_LENGTH,
    MAX_SLOTS,
    ContentFilter,
    ContentPolicyError,
    compile_template,
    normalize,
)

if TYPE_CHECKING:
    from collections.abc import Callable


@dataclass(frozen=True)
class Rules:
    templates: tuple[str, ...] = ()
    block_keywords: tuple[str, ...] = ()
    block_patterns: tuple[str, ...] = ()


def _filter(**kw: tuple[str, ...]) -> ContentFilter:
    return ContentFilter.compile(Rules(**kw))


OTP = "Mã OTP của bạn là {code}. Hết hạn sau {minutes} phút"


def test_normalize() -> None:
    assert normalize("  Mã  OTP\tcủa\nBẠN  ") == "ma otp cua ban"
    assert normalize("ĐẶNG Đức") == "dang duc"


@pytest.mark.parametrize(
    "text",
    [
        "Mã OTP của bạn là 123456. Hết hạn sau 5 phút",
        "MA OTP CUA BAN LA 123456. HET HAN SAU 5 PHUT",
        "  ma otp  cua ban la\n 12 34 56.   het han sau 5 phut ",
        "Mã OTP của bạn là 1. Hết hạn sau 5. Hết hạn sau 6 phút",
    ],
)
def test_template_matches(text: str) -> None:
    verdict = _filter(templates=("Other {x}", OTP)).check(text)
    assert verdict.ok
    assert verdict.matched_template == OTP
    assert verdict.violation is None


@pytest.mark.parametrize(
    "text",
    [
        "Mã OTP của bạn là . Hết hạn sau 5 phút",  # an empty slot
        "Mã OTP của bạn là 123456. Hết hạn sau 5 phút!",  # anchored at the end
        "Xin chào. Mã OTP của bạn là 123456. Hết hạn sau 5 phút",  # and at the start
        "Mã OTP của bạn là 123456",
    ],
)
def test_template_mismatch(text: str) -> None:
    verdict = _filter(templates=(OTP,)).check(text)
    assert not verdict.ok
    assert not verdict.blocked
    assert verdict.matched_template is None
    assert verdict.violation == "matches no template"


def test_no_templates_means_no_template_rule() -> None:
    assert _filter().check("anything at all").ok
    assert _filter(block_keywords=("casino",)).check("hello").ok


def test_literal_braces_and_anonymous_slots() -> None:
    f = _filter(templates=("Code {{ {} }}",))
    assert f.check("code { 42 }").ok
    assert not f.check("code 42").ok


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("a } b", "stray '}'"),
        ("a { b", "stray '{'"),
        ("{x-y}", "stray"),
        ("{a} {b}", "no literal text"),
        ("", "empty"),
        ("x" * (MAX_RULE_LENGTH + 1), "more than 500"),
        ("x{a}" * (MAX_SLOTS + 1), "slots"),
    ],
)
def test_bad_templates_are_refused(template: str, message: str) -> None:
    with pytest.raises(ContentPolicyError, match=message):
        compile_template(template)


def test_compile_names_the_bad_rule() -> None:
    with pytest.raises(ContentPolicyError, match=r"block_patterns\[1\]: not a valid regex"):
        _filter(block_patterns=("ok", "(unclosed"))
    with pytest.raises(ContentPolicyError, match=r"block_keywords\[0\]: .*more than 500"):
        _filter(block_keywords=("k" * 501,))


@pytest.mark.parametrize(
    ("text", "blocked"),
    [
        ("Vay tiền nhanh", True),
        ("VẬY thôi", True),
        ("vay.", True),
        ("(vay)", True),
        ("vayne", False),
        ("xvay", False),
        ("vay_", True),  # '_' is not a letter
        ("Cho vay von lai thap", True),  # phrase
        ("vay  \n von", True),
    ],
)
def test_keywords_whole_word_case_and_diacritics_insensitive(text: str, blocked: bool) -> None:
    verdict = _filter(block_keywords=("vay", "Vay vốn")).check(text)
    assert verdict.blocked is blocked
    assert verdict.ok is not blocked


def test_patterns_match_text_and_normalised_text() -> None:
    f = _filter(block_patterns=(r"https?://", r"khuyen mai \d+%"))
    assert f.check("Go HTTP://x.example").blocked
    assert f.check("Khuyến mãi 50% hôm nay").violation == r"blocked pattern 'khuyen mai \\d+%'"
    assert f.check("hello").ok


def test_blocks_beat_templates() -> None:
    f = _filter(templates=("Hi {name}",), block_keywords=("casino",))
    verdict = f.check("Hi casino")
    assert verdict.blocked
    assert verdict.matched_template is None


def test_fragments_get_the_block_checks_only() -> None:
    f = _filter(templates=(OTP,), block_keywords=("casino",))
    assert f.check_fragment("half a message").ok
    assert f.check_fragment("a casino part").blocked


@pytest.mark.parametrize(
    "template",
    ["{a},{b},{c},{d},{e}X", "{a} {b} x {c} x {d} x {e} y", "x{a}{b}{c}{d}{e}{f}{g}{h}y"],
)
def test_matching_cost_is_bounded(template: str) -> None:
    # Plain .+? slots backtrack exponentially on a text that almost fits.
    f = _filter(templates=(template,))
    texts = ["," * 1600, "x " * 800, "x" * 1600, "a , " * 400]
    started = time.perf_counter()
    for text in texts:
        assert not f.check(text).ok
    assert time.perf_counter() - started < 1.0


# -- properties -------------------------------------------------------------------------

# Letters (Vietnamese ones included), digits, punctuation and whitespace; no braces, no
# lone combining marks (a mark at the start of a slot value would join the literal
# before it under NFC, which is a different text).
_LETTERS = (
    "abcdeghiklmnopqrstuvxyđăâêôơưàáảãạằắẳẵặầấẩẫậèéẻẽẹềếểễệìíỉĩịòóỏõọồốổỗộờớởỡợùúủũụừứửữựỳýỷỹỵ"
)
_ALPHABET = _LETTERS + _LETTERS.upper() + "0123456789 .,:;!?-/%()'\"\n\t"
_literals = st.text(alphabet=_ALPHABET, max_size=12)
_values = st.text(alphabet=_ALPHABET, min_size=1, max_size=15).filter(lambda s: s.strip())


@st.composite
def _template_and_rendering(draw: st.DrawFn) -> tuple[str, str]:
    literals = draw(st.lists(_literals, min_size=2, max_size=6))
    if not any(lit.strip() for lit in literals):
        literals[0] = "OTP" + literals[0]
    template = "".join(
        lit + (f"{{v{i}}}" if i < len(literals) - 1 else "") for i, lit in enumerate(literals)
    )
    rendering = "".join(
        lit + (draw(_values) if i < len(literals) - 1 else "") for i, lit in enumerate(literals)
    )
    return template, rendering


@given(_template_and_rendering(), st.sampled_from([str, str.upper, str.lower, str.swapcase]))
def test_any_rendering_of_a_template_matches(
    case: tuple[str, str], transform: Callable[[str], str]
) -> None:
    template, rendering = case
    f = _filter(templates=(template,))
    text = transform(rendering)
    verdict = f.check(text)
    assert verdict.ok, (template, text)
    assert verdict.matched_template == template
    # Without its accents, as phones without Vietnamese input send it, too.
    assert f.check(normalize(text)).ok


# Each plain letter and some of the ways it is written with diacritics.
_VARIANTS = {
    "a": "aàáảãạăằắẳẵặâầấẩẫậAÀÁẢÃẠĂẰẮẲẴẶÂẦẤẨẪẬ",
    "e": "eèéẻẽẹêềếểễệEÈÉẺẼẸÊỀẾỂỄỆ",
    "i": "iìíỉĩịIÌÍỈĨỊ",
    "o": "oòóỏõọôồốổỗộơờớởỡợOÒÓỎÕỌÔỒỐỔỖỘƠỜỚỞỠỢ",
    "u": "uùúủũụưừứửữựUÙÚỦŨỤƯỪỨỬỮỰ",
    "y": "yỳýỷỹỵYỲÝỶỸỴ",
    "d": "dđDĐ",
}
_PLAIN = "abcdeghiklmnopqrstuvxy"


@st.composite
def _spelling(draw: st.DrawFn, word: str) -> str:
    out = []
    for ch in word:
        choices = _VARIANTS.get(ch, ch + ch.upper())
        out.append(draw(st.sampled_from(choices)))
    return "".join(out)


@given(
    st.text(alphabet=_PLAIN, min_size=2, max_size=10),
    st.lists(st.text(alphabet=_ALPHABET, max_size=10), max_size=4),
    st.lists(st.text(alphabet=_ALPHABET, max_size=10), max_size=4),
    st.sampled_from([" ", ". ", ", ", "\n", "(", "!"]),
    st.data(),
)
def test_block_keywords_are_caught_whatever_the_case_and_diacritics(
    keyword: str, before: list[str], after: list[str], sep: str, data: st.DataObject
) -> None:
    f = _filter(block_keywords=(keyword,))
    written = data.draw(_spelling(keyword))
    text = " ".join(before) + sep + written + sep + " ".join(after)
    verdict = f.check(text)
    assert verdict.blocked, (keyword, text)
    assert not verdict.ok
