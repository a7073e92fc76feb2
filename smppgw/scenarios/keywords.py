"""Reading what a subscriber typed: keywords without case, diacritics or stray spacing.

Subscribers type ``TD``, ``td`` or ``Tđ`` on phones with and without Vietnamese
input; all of them must reach the same scenario. :func:`normalize` gives the form that
keywords are compared in; :func:`split_command` cuts an MO into its keyword and the words
after it (the arguments keep their case: a scratch-card code or a name is the
subscriber's own).
"""

from __future__ import annotations

from smppgw.protocol.text.choose import strip_diacritics

__all__ = ["normalize", "split_command"]


def normalize(text: str) -> str:
    """Upper case, no diacritics (``đ`` -> ``D``), runs of whitespace as one space.

    One pass is not always a fixed point: ``ὠ`` has no GSM plain form, so it keeps its
    mark, but its upper case ``Ὠ`` then strips to ``Ω``. A keyword file and an MO must
    meet in the same form, so the pass repeats until nothing changes (every code point
    settles within two passes; the bound only guards against a future table change).
    """
    folded = _fold_once(text)
    for _ in range(_MAX_PASSES):
        again = _fold_once(folded)
        if again == folded:
            break
        folded = again
    return folded


_MAX_PASSES = 4


def _fold_once(text: str) -> str:
    return " ".join(strip_diacritics(text).upper().split())


def split_command(text: str) -> tuple[str, list[str]]:
    """``("TD", ["ABC123"])`` for ``" td  ABC123 "``: the normalized first word and the
    remaining words as typed. An empty text gives ``("", [])``."""
    words = text.split()
    if not words:
        return "", []
    return normalize(words[0]), words[1:]
