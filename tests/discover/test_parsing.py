"""Reply parsing: list shapes, yes/no in free text, class-dependence answers, dimension and label names."""

from __future__ import annotations

import pytest

from attrprompt_builder.discover.answers import (
    clean_item,
    dimension_name,
    match_labels,
    parse_class_dependence,
    parse_list,
    parse_yes_no,
)


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ("1. Elections\n2. Diplomacy\n3. Trade wars", ["Elections", "Diplomacy", "Trade wars"]),
        ("1) Elections\n2) Diplomacy", ["Elections", "Diplomacy"]),
        ("- Elections\n* Diplomacy\n• Trade wars", ["Elections", "Diplomacy", "Trade wars"]),
        ("Elections, Diplomacy, and Trade wars.", ["Elections", "Diplomacy", "Trade wars"]),
        ('["Elections", "Diplomacy"]', ["Elections", "Diplomacy"]),
        ('Sure:\n```json\n["Elections", "Diplomacy"]\n```\nEnjoy!', ["Elections", "Diplomacy"]),
        ('{"subtopics": ["Elections", "Diplomacy"]}', ["Elections", "Diplomacy"]),
        ('[{"name": "Elections", "why": "x"}, {"name": "Diplomacy"}]', ["Elections", "Diplomacy"]),
        ("Formal\nCasual", ["Formal", "Casual"]),
    ],
    ids=["numbered", "paren", "bullets", "commas", "json", "json-fence", "json-object", "json-records", "lines"],
)
def test_list_shapes(reply: str, expected: list[str]) -> None:
    assert parse_list(reply) == expected


def test_list_drops_preamble_closing_markup_and_duplicates() -> None:
    reply = (
        "Here are 10 subtopics for world news:\n\n"
        "1. **Elections**\n"
        "2) 'Diplomacy'.\n"
        '3. "Trade wars",\n'
        "4. elections\n"
        "5. \n"
        "I hope this helps! Let me know if you need more."
    )
    assert parse_list(reply) == ["Elections", "Diplomacy", "Trade wars"]


def test_list_preamble_on_the_comma_line_and_limit() -> None:
    assert parse_list("Here are some styles: formal, casual, humorous, Formal.") == ["formal", "casual", "humorous"]
    assert parse_list("1. a\n2. b\n3. c\n4. d", limit=2) == ["a", "b"]


def test_list_keeps_top_level_items_only() -> None:
    reply = "1. **Topic**\n   - Politics\n   - Sports\n2. **Style**: formal or casual"
    assert parse_list(reply) == ["Topic", "Style: formal or casual"]


def test_list_with_nothing_usable_is_empty() -> None:
    assert parse_list("") == []
    assert parse_list("   \n ") == []
    assert parse_list('{"world": ["a"], "sports": ["b"]}') == []  # which list? not guessed
    assert parse_list("```\n```") == []


def test_clean_item() -> None:
    assert clean_item('  **"Paris"**. ') == "Paris"
    assert clean_item("*Op-ed*;") == "Op-ed"
    assert clean_item("The 'Big Apple' tour") == "The 'Big Apple' tour"
    assert clean_item("Washington D.C.") == "Washington D.C."
    assert clean_item("**U.S.**,") == "U.S."


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ("Yes.", True),
        ("yes, it is related", True),
        ("No, it is not related to those classes.", False),
        ("**No**", False),
        ("Answer: yes", True),
        ("The answer is no.", False),
        ("I would say yes.", True),
        ("NOPE", False),
        ("It depends", None),
        ("It depends on the context; yes in some cases.", None),
        ("yes and no", None),
        ("Yes or no, hard to tell", None),
        ("Eyes on the ball", None),  # no substring tricks
        ("Not sure.", None),
        ("", None),
    ],
)
def test_yes_no(reply: str, expected: bool | None) -> None:
    assert parse_yes_no(reply) is expected


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ("Yes.", True),
        ("No", False),
        ("It depends on the class.", True),
        ("The attribute is class-independent.", False),
        ("It is not class-dependent.", False),
        ("Class-specific values are needed.", True),
        ("The same values fit every class.", False),
        ("Hard to tell.", None),
    ],
)
def test_class_dependence(reply: str, expected: bool | None) -> None:
    assert parse_class_dependence(reply) is expected


@pytest.mark.parametrize(
    ("item", "expected"),
    [
        ("**Writing style**: formal or casual", "writing_style"),
        ("Location (country or city)", "location"),
        ("Subtopic - the event covered", "subtopic"),
        ("Target audience", "target_audience"),
        ("The specific news event that the article reports on in detail", None),
        ("2024", None),
        ("For", None),  # no Jinja variable can be called that
    ],
)
def test_dimension_name(item: str, expected: str | None) -> None:
    assert dimension_name(item) == expected


def test_match_labels_never_invents() -> None:
    texts = {"world": "world", "sci_tech": "sci tech", "business": "business"}
    found, unmatched = match_labels(["Sci/Tech", "World (politics)", "Economy", "BUSINESS", "world"], texts)
    assert found == ["sci_tech", "world", "business"]
    assert unmatched == ["Economy"]


def test_match_labels_keeps_punctuation_when_it_tells_labels_apart() -> None:
    texts = {"c++": "c++", "c#": "c#"}
    assert match_labels(["C#", "c"], texts) == (["c#"], ["c"])
