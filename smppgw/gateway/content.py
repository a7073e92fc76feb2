"""Content filters: does a partner's message fit its templates, and is it free of blocks?

Theory of operation
-------------------
A :class:`ContentFilter` is compiled once from a partner's content policy (at config
load and on reload) and then answers :meth:`ContentFilter.check` per message.

Matching is done on a *normalised* form of both the text and the policy's words:
casefolded, Vietnamese (and other) diacritics stripped with
:func:`smppgw.protocol.text.strip_diacritics` (``Mã OTP`` -> ``ma otp``, ``Đ`` -> ``d``),
whitespace runs collapsed to one space and the ends trimmed. So a template written
``Ma OTP cua ban la {code}`` accepts ``MÃ  OTP của bạn là 123456``.

- **Templates**: ``{name}`` (or ``{}``) is a slot for any non-empty run of text;
  ``{{`` and ``}}`` are literal braces; the rest is literal. A template becomes an
  anchored regex. Slots are written as atomic groups ``(?>.+?LITERAL)``: each slot takes
  the *first* place where the literal after it fits. That is exact for this pattern
  shape (as greedy glob matching is: taking a literal's earliest occurrence never
  leaves less room for the rest), and it keeps matching linear in the text for each
  slot instead of the exponential backtracking plain ``.+?`` slots allow on a text
  that almost fits.
- **Block keywords**: whole words or phrases (no letter or digit on either side),
  normalised as above: ``vay`` catches ``VAY``, ``vầy`` and ``Vay.`` but not ``vayne``.
- **Block patterns**: the operator's regexes, matched case-insensitively against the
  text as sent *and* its normalised form, so a pattern written without accents also
  catches accented text.

Bounded cost: a template, keyword or pattern longer than :data:`MAX_RULE_LENGTH`, or a
template with more than :data:`MAX_SLOTS` slots, is refused when the policy is compiled
(that is, at config time). A block pattern is the operator's own regex and can still
be written to backtrack badly (``(a+)+b``); we do not try to detect that.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from smppgw.protocol.text import strip_diacritics

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

__all__ = [
    "MAX_RULE_LENGTH",
    "MAX_SLOTS",
    "ContentFilter",
    "ContentPolicyError",
    "ContentRules",
    "ContentVerdict",
    "compile_keyword",
    "compile_pattern",
    "compile_template",
    "normalize",
]

#: The longest template, keyword or pattern accepted, in characters.
MAX_RULE_LENGTH = 500
#: The most ``{slots}`` one template may have.
MAX_SLOTS = 32

_WHITESPACE = re.compile(r"\s+")
_TEMPLATE_TOKEN = re.compile(r"\{\{|\}\}|\{(\w*)\}|[{}]")


class ContentRules(Protocol):
    """What the filter reads of a policy (``smppgw.app`` ``ContentPolicy``)."""

    @property
    def templates(self) -> Sequence[str]: ...
    @property
    def block_keywords(self) -> Sequence[str]: ...
    @property
    def block_patterns(self) -> Sequence[str]: ...


class ContentPolicyError(ValueError):
    """A template, keyword or pattern cannot be compiled; the message says why."""


def normalize(text: str) -> str:
    """The form texts and rules are compared in: casefolded, no diacritics, single spaces."""
    return _WHITESPACE.sub(" ", strip_diacritics(text.casefold())).strip()


def _check_length(kind: str, rule: str) -> None:
    if len(rule) > MAX_RULE_LENGTH:
        raise ContentPolicyError(f"{kind} is {len(rule)} characters, more than {MAX_RULE_LENGTH}")


def compile_template(template: str) -> re.Pattern[str]:
    """The anchored regex (to ``fullmatch`` a normalised text) a template stands for.

    Raises:
        ContentPolicyError: too long, too many slots, a stray brace, or no literal text.
    """
    _check_length("the template", template)
    # Literal runs between slots, normalised on their own; slots are None.
    tokens: list[str | None] = []
    literal: list[str] = []
    pos = 0
    for match in _TEMPLATE_TOKEN.finditer(template):
        literal.append(template[pos : match.start()])
        token = match.group(0)
        if token in ("{{", "}}"):
            literal.append(token[0])
        elif token in ("{", "}"):
            raise ContentPolicyError(
                f"stray {token!r} at {match.start()}: write a slot as {{name}},"
                " a literal brace as {{ or }}"
            )
        else:
            tokens.append("".join(literal))
            literal = []
            tokens.append(None)
        pos = match.end()
    literal.append(template[pos:])
    tokens.append("".join(literal))
    slots = tokens.count(None)
    if slots > MAX_SLOTS:
        raise ContentPolicyError(f"the template has {slots} slots, more than {MAX_SLOTS}")
    # Normalise each literal, keeping one space where it had whitespace at an end (the
    # text's whitespace next to a slot value collapses to one space too).
    parts: list[str | None] = []
    for piece in tokens:
        if piece is None:
            parts.append(None)
            continue
        lead = " " if piece[:1].isspace() else ""
        trail = " " if piece[-1:].isspace() else ""
        core = normalize(piece)
        parts.append(f"{lead}{core}{trail}" if core else (" " if lead or trail else ""))
    # The whole text is stripped, so the template's own ends are too.
    if parts and parts[0] is not None:
        parts[0] = parts[0].lstrip()
    if parts and parts[-1] is not None:
        parts[-1] = parts[-1].rstrip()
    if slots and not any(p and p.strip() for p in parts if p is not None):
        raise ContentPolicyError("the template has no literal text: it would match anything")
    if not slots and not parts[0]:
        raise ContentPolicyError("the template is empty")
    regex: list[str] = []
    i = 0
    while i < len(parts):
        part = parts[i]
        if part is not None:
            regex.append(re.escape(part))
            i += 1
            continue
        following = parts[i + 1] if i + 1 < len(parts) else ""
        if i + 2 >= len(parts):
            # The last slot: its literal must end the text.
            regex.append(f".+{re.escape(following or '')}")
        else:
            regex.append(f"(?>.+?{re.escape(following or '')})")
        i += 2
    return re.compile("".join(regex), re.DOTALL)


def compile_keyword(keyword: str) -> re.Pattern[str]:
    """The regex finding ``keyword`` as a whole word in a normalised text."""
    _check_length("the keyword", keyword)
    word = normalize(keyword)
    if not word:
        raise ContentPolicyError("the keyword is empty")
    return re.compile(rf"(?<![^\W_]){re.escape(word)}(?![^\W_])")


def compile_pattern(pattern: str) -> re.Pattern[str]:
    """An operator's block regex, case-insensitive."""
    _check_length("the pattern", pattern)
    try:
        return re.compile(pattern, re.IGNORECASE)
    except re.error as exc:
        raise ContentPolicyError(f"not a valid regex: {exc}") from None


@dataclass(frozen=True, slots=True)
class ContentVerdict:
    """What the filter thinks of a text.

    Attributes:
        ok: no block matched and, if the policy has templates, one of them matched.
        matched_template: the template that matched, as configured.
        violation: why it is not ok: a blocked keyword or pattern, or no template.
        blocked: the violation is a block (keyword or pattern), not a missing template.
    """

    ok: bool
    matched_template: str | None = None
    violation: str | None = None
    blocked: bool = False


_OK = ContentVerdict(ok=True)


class ContentFilter:
    """A compiled content policy. Build it with :meth:`compile`."""

    __slots__ = ("_keywords", "_patterns", "_templates")

    def __init__(
        self,
        templates: Sequence[tuple[str, re.Pattern[str]]] = (),
        keywords: Sequence[tuple[str, re.Pattern[str]]] = (),
        patterns: Sequence[tuple[str, re.Pattern[str]]] = (),
    ) -> None:
        self._templates = tuple(templates)
        self._keywords = tuple(keywords)
        self._patterns = tuple(patterns)

    @classmethod
    def compile(cls, rules: ContentRules) -> ContentFilter:
        """Compile a policy.

        Raises:
            ContentPolicyError: a rule is refused; the message names which one.
        """

        def each(
            kind: str, items: Sequence[str], fn: Callable[[str], re.Pattern[str]]
        ) -> list[tuple[str, re.Pattern[str]]]:
            out: list[tuple[str, re.Pattern[str]]] = []
            for i, item in enumerate(items):
                try:
                    out.append((item, fn(item)))
                except ContentPolicyError as exc:
                    raise ContentPolicyError(f"{kind}[{i}]: {exc}") from None
            return out

        return cls(
            each("templates", rules.templates, compile_template),
            each("block_keywords", rules.block_keywords, compile_keyword),
            each("block_patterns", rules.block_patterns, compile_pattern),
        )

    @property
    def has_templates(self) -> bool:
        return bool(self._templates)

    def check(self, text: str) -> ContentVerdict:
        """Judge a whole message's text: blocks first, then templates."""
        return self._check(text, templates=True)

    def check_fragment(self, text: str) -> ContentVerdict:
        """Judge one part of a message the partner split itself: blocks only.

        A part holds a piece of the text, which no template can be expected to match;
        a keyword cut across two parts escapes this check (a documented limit).
        """
        return self._check(text, templates=False)

    def _check(self, text: str, *, templates: bool) -> ContentVerdict:
        if not self._keywords and not self._patterns and not (templates and self._templates):
            return _OK  # no rules: skip normalising (it is most of the cost per message)
        normal = normalize(text)
        for keyword, regex in self._keywords:
            if regex.search(normal):
                return ContentVerdict(False, None, f"blocked keyword {keyword!r}", blocked=True)
        for pattern, regex in self._patterns:
            if regex.search(text) or regex.search(normal):
                return ContentVerdict(False, None, f"blocked pattern {pattern!r}", blocked=True)
        if not templates or not self._templates:
            return _OK
        for template, regex in self._templates:
            if regex.fullmatch(normal):
                return ContentVerdict(True, template)
        return ContentVerdict(False, None, "matches no template")
