"""Deterministic attribute draws, prompt rendering, and the reply filters."""

from __future__ import annotations

from collections import Counter

import pytest

from attrprompt_builder.filters.screening import (
    ascii_squeeze,
    check_reply,
    is_refusal,
    normalise_whitespace,
)
from attrprompt_builder.generation.prompts import PromptRenderer
from attrprompt_builder.generation.sampling import AttributeSampler, request_seed
from attrprompt_builder.recipe.presets import load_preset


def test_draws_depend_only_on_seed_label_and_index():
    recipe = load_preset("agnews")
    first = AttributeSampler(recipe, seed=7)
    second = AttributeSampler(recipe, seed=7)
    forward = [first.draw("world", i).values for i in range(50)]
    backward = [second.draw("world", i).values for i in reversed(range(50))][::-1]
    assert forward == backward
    other_seed = [AttributeSampler(recipe, seed=8).draw("world", i).values for i in range(50)]
    assert forward != other_seed


def test_uniform_draws_stay_inside_the_value_lists():
    recipe = load_preset("agnews")
    sampler = AttributeSampler(recipe, seed=0)
    for label in recipe.label_names:
        for i in range(100):
            draw = sampler.draw(label, i)
            for name, value in draw.values.items():
                assert value in recipe.values_for(name, label)
    counts = Counter(sampler.draw("sports", i).values["length"] for i in range(2000))
    assert set(counts) == {"30", "100"} and abs(counts["30"] - 1000) < 120  # roughly uniform


def test_balanced_sampling_covers_every_value_in_the_first_cycle():
    recipe = load_preset("agnews")
    sampler = AttributeSampler(recipe, seed=3, strategy="balanced")
    locations = recipe.values_for("location", "business")
    seen = [sampler.draw("business", i).values["location"] for i in range(len(locations))]
    assert sorted(seen) == sorted(locations)
    subtopics = recipe.values_for("subtopics", "business")
    second_cycle = [sampler.draw("business", i).values["subtopics"] for i in range(len(subtopics), 2 * len(subtopics))]
    assert sorted(second_cycle) == sorted(subtopics)


def test_multi_label_draw_fixes_the_label_set():
    recipe = load_preset("arxiv")
    sampler = AttributeSampler(recipe, seed=0)
    subtopics = recipe.attribute("subtopics").label_map
    for i in range(30):
        draw = sampler.draw("machine_learning", i)
        assert "machine_learning" in draw.labels
        assert draw.labels == subtopics[draw.values["subtopics"]]


def test_request_seed_is_a_stable_int32():
    seeds = {request_seed(0, "world", i) for i in range(1000)}
    assert len(seeds) == 1000 and all(0 <= s < 2**31 for s in seeds)
    assert request_seed(0, "world", 5) == request_seed(0, "world", 5) != request_seed(1, "world", 5)


def test_attributed_prompt_contains_every_drawn_value_and_the_length_range():
    recipe = load_preset("agnews")
    draw = AttributeSampler(recipe, seed=0).draw("sci_tech", 4)
    prompt = PromptRenderer(recipe).render(draw)
    for value in draw.values.values():
        assert value in prompt
    length = int(draw.values["length"])
    assert f"between {length} words and {length + 50} words" in prompt
    assert "sci tech" in prompt


def test_simple_prompt_carries_no_attribute_value():
    recipe = load_preset("agnews")
    renderer = PromptRenderer(recipe, prompting="simple")
    for i in range(20):
        draw = AttributeSampler(recipe, seed=0).draw("world", i)
        prompt = renderer.render(draw)
        assert all(value not in prompt for value in draw.values.values())
        assert "world" in prompt


def test_similar_classes_exclusion_drops_the_samples_own_labels():
    recipe = load_preset("arxiv")
    sampler = AttributeSampler(recipe, seed=0)
    renderer = PromptRenderer(recipe)
    draw = next(d for d in (sampler.draw("machine_learning", i) for i in range(500)) if "artificial_intelligence" in d.labels)
    similar = renderer.similar_classes(draw)
    assert all(name.lower() not in ("artificial intelligence", "machine learning") for name in similar)
    assert "irrelevant to" in renderer.render(draw)


REFUSALS = [
    "I'm sorry, but I can't help with that request.",
    "I am sorry, I cannot generate content like this.",
    "As an AI language model, I cannot write a review of a restaurant I have never visited.",
    "I apologize, but I cannot create that.",
    "Sorry, but I can't assist with that.",
    "  I cannot fulfill this request because it asks for misleading content.",
    "Unfortunately, I am unable to provide a sample on this topic.",
    "Here is the news. Note: I'm an AI language model and this text is fictional.",
    "My apologies, but this goes against my content policy.",
]
KEPT = [
    "I'm sorry to say the pasta was cold, but the staff apologized and brought a fresh plate. Four stars.",
    "The minister said he was sorry for the delays at the border crossing, which lasted three days.",
    "Sorry, wrong number! That is how the comedy opens, and it never lets up for two hours.",
    "Researchers cannot yet explain why the galaxy rotates so fast, the paper says.",
    "She wrote: 'I apologize for nothing.' The memoir sold a million copies.",
]


@pytest.mark.parametrize("text", REFUSALS)
def test_refusals_are_dropped(text):
    assert is_refusal(text)
    assert check_reply(text) == (False, "refusal")


@pytest.mark.parametrize("text", KEPT)
def test_ordinary_texts_that_mention_sorry_are_kept(text):
    assert not is_refusal(text)
    assert check_reply(text) is True


def test_empty_replies_are_dropped():
    assert check_reply("   \n\t ") == (False, "empty")


def test_whitespace_normalisation_keeps_paragraphs():
    text = "  First  line\r\n\r\n\r\n\tsecond\u00a0 line  \n"
    assert normalise_whitespace(text) == "First line\n\nsecond line"


def test_ascii_squeeze_is_the_papers_cleaning():
    # Nothing is transliterated: the reference's clean_str turns "é" into a space (tests/filters/test_paper_cleaning.py).
    assert ascii_squeeze("Café — “quoted” text;   done!") == "Caf quoted text done!"
