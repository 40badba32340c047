"""The fast paths of screening decide exactly what the plain definitions decide.

``is_refusal`` skips its whole-text search when no trigger word occurs, and ``normalise_whitespace``
leaves lone spaces alone; both run on every reply. Each is compared with the plain definition (one
search per pattern; every run of spaces replaced) on many random mixes of refusal phrases, case and
Unicode look-alikes, and every kind of space the normaliser knows.
"""

from __future__ import annotations

import random
import re

from attrprompt_builder.filters.screening import REFUSAL_PATTERNS, is_refusal, normalise_whitespace

_PIECES = [
    "As an AI language model", "AS AN AI", "as an  ai", "I am an AI assistant", "i'm just an ai",
    "As a large language model", "I can't fulfill this request", "I cannot comply with your request",
    "against my content policy", "AGAINST OPENAI'S usage guidelines", "I'm sorry, but", "Sorry.",
    "I apologize for any confusion, I", "Unfortunately, I can't", "requeſt", "aſ an ai", "\u212aelvin",
    "The market rallied", "said the analyst", "an aide", "a request for comment", "against the odds",
    "language modelling", "Café", "naïve", "İstanbul", "\u00a0", "\t", "\u2003", "\u200b", "\u3000",
    "\r\n", "\n\n\n", "  ", " ", ".", ",", "!", "**bold**", "- item",
]  # fmt: skip
_OPENING_COUNT = 6  # REFUSAL_PATTERNS lists the opening patterns first
_OLD_SPACES = re.compile(r"[ \t\f\v\u00a0\u2000-\u200b\u202f\u205f\u3000]+")
_OLD_BLANK = re.compile(r"\n\s*\n\s*(?:\n\s*)+")


def _plain_is_refusal(text: str) -> bool:
    opening = text.lstrip()[:200]
    return any(p.search(opening if i < _OPENING_COUNT else text) for i, p in enumerate(REFUSAL_PATTERNS))


def _plain_normalise(text: str) -> str:
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = _OLD_SPACES.sub(" ", text)
    text = "\n".join(line.strip() for line in text.split("\n"))
    return _OLD_BLANK.sub("\n\n", text).strip()


def _mixes(count: int) -> list[str]:
    rng = random.Random(20261201)
    return [
        "".join(rng.choice(_PIECES) + rng.choice(["", " ", "  ", "\u00a0"]) for _ in range(rng.randint(1, 12)))
        for _ in range(count)
    ]


def test_the_opening_patterns_are_counted_right():
    assert all(p.pattern.startswith(r"^\W*") for p in REFUSAL_PATTERNS[:_OPENING_COUNT])
    assert not any(p.pattern.startswith(r"^\W*") for p in REFUSAL_PATTERNS[_OPENING_COUNT:])


def test_refusal_and_whitespace_fast_paths_match_the_plain_definitions():
    texts = _mixes(4000)
    assert [t for t in texts if is_refusal(t) != _plain_is_refusal(t)] == []
    assert [t for t in texts if normalise_whitespace(t) != _plain_normalise(t)] == []


def test_the_mixes_hit_both_outcomes():
    texts = _mixes(4000)
    refusals = sum(_plain_is_refusal(t) for t in texts)
    assert 400 < refusals < 3600
    assert sum(_plain_normalise(t) != t for t in texts) > 2000
