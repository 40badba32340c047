"""Post-processing of replies: normalise text, then keep it or say why not.

A filter returns ``True`` to keep a text or ``(False, reason)``; reasons are counted in the build
stats and shown in the dataset card. Refusal detection is a list of tested patterns, not a bare
"sorry" substring: a restaurant review may well say "sorry" and must be kept.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Literal, TypeAlias

__all__ = [
    "FilterResult",
    "REFUSAL_PATTERNS",
    "ascii_squeeze",
    "check_reply",
    "check_reply_substrings",
    "is_refusal",
    "normalise_whitespace",
    "screen_reply",
]

FilterResult: TypeAlias = Literal[True] | tuple[Literal[False], str]

# Each pattern targets how assistants decline, not words that ordinary text uses. Patterns marked
# "opening" only fire in the first sentence, where refusals put their apology; deeper in a text
# "I'm sorry" is usually part of the content.
_REFUSAL_TAIL = r"[,.!]?\s*(?:but\b|i\b|i'm\b|as an\b|this (?:request|prompt|task)\b|that request\b|your request\b|$)"
_OPENING = [
    r"(?:i'?m|i am) (?:so |very |really |truly )?(?:sorry|afraid)" + _REFUSAL_TAIL,
    r"(?:i )?apologi[sz]e(?: for any confusion)?" + _REFUSAL_TAIL,
    r"my apologies" + _REFUSAL_TAIL,
    r"sorry" + _REFUSAL_TAIL,
    r"unfortunately,? (?:i|as an ai)\b.{0,40}\b(?:can(?:no|')t|unable|not able)\b",
    r"i (?:can(?:no|')t|can not|won'?t|will not|am unable to|'m unable to|am not able to|'m not able to)"
    r" (?:help|assist|comply|fulfil+|provide|generate|create|write|produce|complete|do) ",
]
_ANYWHERE = [
    r"\bas an ai(?: language)?(?: model| assistant)?\b",
    r"\bi(?:'m| am) (?:just )?an ai(?: language model| model| assistant)?\b",
    r"\bas a (?:large )?language model\b",
    r"\bi (?:can(?:no|')t|am unable to|'m unable to) (?:fulfil+|comply with) (?:this|that|your) request\b",
    r"\bagainst (?:my|openai'?s?) (?:content |usage )?(?:policy|policies|guidelines)\b",
]
REFUSAL_PATTERNS: tuple[re.Pattern[str], ...] = tuple(
    [re.compile(r"^\W*" + p, re.IGNORECASE) for p in _OPENING] + [re.compile(p, re.IGNORECASE) for p in _ANYWHERE]
)
# One search per reply instead of one per pattern: screening runs on every reply of a build.
_OPENING_REFUSAL = re.compile(r"^\W*(?:" + "|".join(f"(?:{p})" for p in _OPENING) + ")", re.IGNORECASE)
_ANYWHERE_REFUSAL = re.compile("|".join(f"(?:{p})" for p in _ANYWHERE), re.IGNORECASE)
_SPACES = re.compile(r"[ \t\f\v\u00a0\u2000-\u200b\u202f\u205f\u3000]+")
# When neither occurs, collapsing runs would only replace each lone " " by itself, at every word of every reply.
_OTHER_SPACES = re.compile(r"[\t\f\v\u00a0\u2000-\u200b\u202f\u205f\u3000]")
_BLANK_LINES = re.compile(r"\n\s*\n\s*(?:\n\s*)+")


def normalise_whitespace(text: str) -> str:
    """Unify line endings, collapse runs of spaces, keep at most one blank line, strip the ends."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if "  " in text or _OTHER_SPACES.search(text):
        text = _SPACES.sub(" ", text)
    text = "\n".join(line.strip() for line in text.split("\n"))
    return _BLANK_LINES.sub("\n\n", text).strip()


_NOT_KEPT = re.compile(r"[^A-Za-z0-9(),.!?\"']")
_SPACE_RUNS = re.compile(r"\s{2,}")


def ascii_squeeze(text: str) -> str:
    """The paper's ``clean_str``, byte for byte: every character other than ASCII letters, digits and
    ``(),.!?"'`` becomes a space, runs of whitespace become one space, the ends are stripped.

    Nothing is transliterated: "Café" becomes "Caf", as in the reference code.
    """
    return _SPACE_RUNS.sub(" ", _NOT_KEPT.sub(" ", text)).strip()


# Each pattern found anywhere contains one of these words, so a reply without any of them needs no regex
# search (a slow one: case-insensitive alternations of word-boundary patterns over the whole reply).
# casefold() folds every character IGNORECASE treats as one of these letters (the long s, the Kelvin sign).
_ANYWHERE_WORDS = ("an ai", "language model", "request", "against")


def is_refusal(text: str) -> bool:
    if _OPENING_REFUSAL.search(text.lstrip()[:200]):
        return True
    folded = text.casefold()
    return any(word in folded for word in _ANYWHERE_WORDS) and bool(_ANYWHERE_REFUSAL.search(text))


def check_reply(text: str) -> FilterResult:
    """Keep a (normalised) reply, or say why it is dropped: ``empty`` or ``refusal``."""
    if not text.strip():
        return False, "empty"
    if is_refusal(text):
        return False, "refusal"
    return True


def check_reply_substrings(text: str, refusals: Iterable[str]) -> FilterResult:
    """The paper's filter: drop a raw reply containing any of ``refusals`` (case-sensitive substrings, as
    the reference code tests them), or one that is empty."""
    for phrase in refusals:
        if phrase in text:
            return False, "refusal"
    if not text.strip():
        return False, "empty"
    return True


def screen_reply(raw: str, *, refusals: Iterable[str] | None = None, ascii_only: bool = False) -> tuple[str, FilterResult]:
    """The text a reply becomes, and whether it is kept.

    ``refusals`` given (paper mode): the reference's order, its substrings tested on the raw reply, then its
    cleaning. Otherwise whitespace is normalised, ``ascii_only`` applies the same cleaning, and the refusal
    patterns test the result. A reply that cleaning leaves empty (an emoji-only one) is dropped either way.
    """
    if refusals is not None:
        text = ascii_squeeze(raw)
        verdict = check_reply_substrings(raw, refusals)
    else:
        text = normalise_whitespace(raw)
        if ascii_only:
            text = ascii_squeeze(text)
        verdict = check_reply(text)
    if verdict is True and not text:
        verdict = (False, "empty")
    return text, verdict
