"""Measured bias: which places the texts name, overall and per class (the AttrPrompt paper's regional-bias check).

Counts are texts, not mentions: a text naming the United States three times counts once for it.
A place's continent is its own (a continent) or its country's; the continent shares are over all
place mentions so counted, so a text naming Paris and Tokyo adds one to Europe and one to Asia.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from attrprompt_builder.verify.places import Place, places_in

__all__ = ["PlacesMentioned", "mentioned_places", "places_mentioned"]

TOP_PLACES = 10


@dataclass
class PlacesMentioned:
    """Places named by a set of texts: ``texts`` in all, ``with_place`` naming at least one."""

    texts: int = 0
    with_place: int = 0
    places: Counter[str] = field(default_factory=Counter)  # place -> texts naming it
    continents: Counter[str] = field(default_factory=Counter)  # continent -> place mentions in it
    countries: Counter[str] = field(default_factory=Counter)  # country -> texts naming it or a place in it

    def add(self, found: list[Place]) -> None:
        self.texts += 1
        self.with_place += int(bool(found))
        self.places.update(place.name for place in found)
        self.continents.update(place.continent for place in found if place.continent)
        self.countries.update({place.country for place in found if place.country})

    def continent_shares(self) -> dict[str, float]:
        total = sum(self.continents.values())
        return {name: count / total for name, count in self.continents.most_common()} if total else {}

    def top(self, n: int = TOP_PLACES) -> list[tuple[str, int]]:
        return self.places.most_common(n)

    def to_dict(self) -> dict:
        return {
            "texts": self.texts,
            "with_place": self.with_place,
            "top_places": self.top(),
            "continent_shares": self.continent_shares(),
            "top_countries": self.countries.most_common(TOP_PLACES),
        }


def mentioned_places(texts: Sequence[str]) -> list[list[Place]]:
    """Per text, the distinct places it names."""
    return [places_in(text) for text in texts]


def places_mentioned(
    texts: Sequence[str], labels: Sequence[str], *, found: Sequence[list[Place]] | None = None
) -> tuple[PlacesMentioned, dict[str, PlacesMentioned]]:
    """Places named overall and per class (``labels``: one class name per text; multi-label: join them first)."""
    found = mentioned_places(texts) if found is None else found
    overall = PlacesMentioned()
    per_class: dict[str, PlacesMentioned] = {}
    for label, places in zip(labels, found):
        overall.add(places)
        per_class.setdefault(label, PlacesMentioned()).add(places)
    return overall, per_class
