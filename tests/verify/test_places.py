"""Place detection from the gazetteers: common country spellings, cities with their country, and no hits
on everyday words; word ranges read from prompts."""

from __future__ import annotations

import pytest

from attrprompt_builder.verify.adherence import place_adherence, word_range
from attrprompt_builder.verify.bias import places_mentioned
from attrprompt_builder.verify.places import places_in


def names(text: str) -> list[str]:
    return [place.name for place in places_in(text)]


@pytest.mark.parametrize("spelling", ["the United States", "USA", "U.S.", "U.S.A.", "United States of America", "the US"])
def test_every_everyday_spelling_of_the_united_states(spelling):
    assert names(f"Prices rose in {spelling} last year.") == ["United States"]


def test_cities_and_states_carry_their_country_and_continent():
    found = {place.name: place for place in places_in("From Mexico City to Lagos via Texas and New York.")}
    assert found["Mexico City"].country == "Mexico" and found["Mexico City"].continent == "North America"
    assert "Mexico" not in found  # the longer name wins
    assert found["Lagos"].continent == "Africa"
    assert found["Texas"].kind == "state" and found["Texas"].country == "United States"
    assert found["New York City"].kind == "city"


@pytest.mark.parametrize(
    "text",
    [
        "We roasted a turkey and served it on china plates.",
        "Chad scored twice and Jordan assisted.",
        "Turkey is best served with cranberry sauce.",
        "Reading the news in the morning is a nice habit.",
        "The phoenix rose from the ashes; let us go.",
        "Georgia thanked her team for the award.",
        "A guinea pig and a nice split pea soup.",
    ],
)
def test_no_place_in_everyday_words_and_given_names(text):
    assert names(text) == []


def test_ambiguous_names_count_after_a_place_preposition():
    assert names("Talks resumed in Jordan while Chad waited.") == ["Jordan"]
    assert names("Exports from Turkey grew.") == ["Turkey"]


def test_a_text_counts_once_per_place_and_continents_share_mentions():
    overall, per_class = places_mentioned(["Paris, Paris and France.", "Tokyo news.", "No place here."], ["a", "a", "b"])
    assert overall.texts == 3 and overall.with_place == 2
    assert overall.places == {"Paris": 1, "France": 1, "Tokyo": 1}
    assert overall.continent_shares() == pytest.approx({"Europe": 2 / 3, "Asia": 1 / 3})
    assert per_class["b"].with_place == 0


def test_place_adherence_accepts_a_city_in_the_requested_country_and_a_phrase_fallback():
    result = place_adherence(
        ["Crowds in Nairobi cheered.", "Snow in Oslo.", "A quiet rural village story.", "Nothing."],
        ["Kenya", "Africa", "rural village", "Kenya"],
        dimension="location",
    )
    assert result.by_value == {"Kenya": (2, 1), "Africa": (1, 0), "rural village": (1, 1)}
    assert result.method == {"Kenya": "gazetteer", "Africa": "gazetteer", "rural village": "phrase"}


@pytest.mark.parametrize(
    ("prompt", "expected"),
    [
        ("Should be in length between 100 words and 150 words.", (100, 150)),
        ("3. It is between 30 and 80 words long.", (30, 80)),
        ("Write at least 50 words.", (50, None)),
        ("Use at most 80 words.", (0, 80)),
        ("Write a news article about sports.", None),
    ],
)
def test_word_range_is_read_from_the_prompt(prompt, expected):
    assert word_range(prompt) == expected
