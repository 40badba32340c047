"""Whether each text follows the attributes its prompt asked for, per dimension and per value.

- **length**: the word range is read from the row's prompt as sent ("between 100 words and 150
  words", "between 30 and 80 words", "at least 50 words", "at most 80 words"); a text is within,
  below or above it by its whitespace-separated word count.
- **places** (a dimension named location, place, country, city or region): the requested value's
  places are found with the gazetteer (``verify/places.py``); a text follows it when it names one
  of them, a city or state inside a requested country, or any place on a requested continent. A
  value the gazetteer does not know (e.g. "a rural village") is looked for as the literal phrase.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from attrprompt_builder.verify.places import Place, places_in

__all__ = ["LengthAdherence", "PlaceAdherence", "length_adherence", "place_adherence", "place_dimension", "word_range"]

PLACE_DIMENSIONS = ("location", "place", "country", "city", "region")
_BETWEEN = re.compile(r"between\s+(\d+)\s*(?:words?\s+)?(?:and|to|-)\s+(\d+)\s+words?", re.IGNORECASE)
_AT_LEAST = re.compile(r"(?:at least|no fewer than|more than|over)\s+(\d+)\s+words?", re.IGNORECASE)
_AT_MOST = re.compile(r"(?:at most|no more than|fewer than|less than|under|up to)\s+(\d+)\s+words?", re.IGNORECASE)


def word_range(prompt: str) -> tuple[int, int | None] | None:
    """The word range a prompt asks for, ``(low, high)`` (``high`` None: no upper bound), or None."""
    found = _BETWEEN.search(prompt or "")
    if found:
        low, high = sorted((int(found.group(1)), int(found.group(2))))
        return low, high
    low_found, high_found = _AT_LEAST.search(prompt or ""), _AT_MOST.search(prompt or "")
    if low_found or high_found:
        return (int(low_found.group(1)) if low_found else 0), (int(high_found.group(1)) if high_found else None)
    return None


@dataclass(frozen=True)
class LengthAdherence:
    """Per value of the length dimension: (rows, within, below, above) and the range asked for."""

    dimension: str
    by_value: dict[str, tuple[int, int, int, int]]
    ranges: dict[str, str]

    def totals(self) -> tuple[int, int, int, int]:
        return tuple(sum(counts[i] for counts in self.by_value.values()) for i in range(4))  # type: ignore[return-value]


def length_adherence(
    texts: Sequence[str], prompts: Sequence[str], values: Sequence[str], *, dimension: str
) -> LengthAdherence | None:
    """Length adherence of rows whose prompt asks for a word range (None when no prompt does)."""
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    ranges: dict[str, set[str]] = defaultdict(set)
    for text, prompt, value in zip(texts, prompts, values):
        asked = word_range(prompt)
        if asked is None:
            continue
        low, high = asked
        words = len((text or "").split())
        entry = counts[str(value)]
        entry[0] += 1
        entry[1 if low <= words and (high is None or words <= high) else 2 if words < low else 3] += 1
        ranges[str(value)].add(f"{low}-{high}" if high is not None else f">= {low}")
    if not counts:
        return None
    by_value = {value: (c[0], c[1], c[2], c[3]) for value, c in counts.items()}
    return LengthAdherence(dimension, by_value, {value: ", ".join(sorted(r)) for value, r in ranges.items()})


def place_dimension(dimensions: Sequence[str]) -> str | None:
    """The attribute dimension that asks for a place, by its name (location, country, city, ...)."""
    for name in dimensions:
        if any(name.lower().startswith(word) for word in PLACE_DIMENSIONS):
            return name
    return None


@dataclass(frozen=True)
class PlaceAdherence:
    """Per requested value: (rows, rows naming it) and how it was matched ("gazetteer" or "phrase")."""

    dimension: str
    by_value: dict[str, tuple[int, int]]
    method: dict[str, str]

    def totals(self) -> tuple[int, int]:
        return sum(n for n, _ in self.by_value.values()), sum(m for _, m in self.by_value.values())


def _follows(requested: list[Place], mentioned: list[Place]) -> bool:
    for want in requested:
        for seen in mentioned:
            if seen.name == want.name:
                return True
            if want.kind == "country" and seen.country == want.name:
                return True
            if want.kind == "continent" and seen.continent == want.name:
                return True
    return False


def place_adherence(
    texts: Sequence[str], values: Sequence[str], *, dimension: str, mentioned: Sequence[list[Place]] | None = None
) -> PlaceAdherence:
    """Whether each text names the place its row asked for; ``mentioned``: places already found per text."""
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    method: dict[str, str] = {}
    requested_of: dict[str, list[Place]] = {}
    for row, (text, value) in enumerate(zip(texts, values)):
        value = str(value)
        if value not in requested_of:
            requested_of[value] = places_in(value, require_context=False)
            method[value] = "gazetteer" if requested_of[value] else "phrase"
        requested = requested_of[value]
        if requested:
            found = list(mentioned[row]) if mentioned is not None else places_in(text)
            follows = _follows(requested, found)
        else:
            follows = value.strip().lower() in (text or "").lower()
        counts[value][0] += 1
        counts[value][1] += int(follows)
    return PlaceAdherence(dimension, {value: (c[0], c[1]) for value, c in counts.items()}, method)
