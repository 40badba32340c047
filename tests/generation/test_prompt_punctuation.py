"""A value's own full stop followed by the template's gives one full stop, not ".." (issue 11, item 16)."""

from __future__ import annotations

from attrprompt_builder.generation.prompts import PromptRenderer
from attrprompt_builder.generation.sampling import AttributeSampler
from attrprompt_builder.recipe.model import parse_recipe
from attrprompt_builder.recipe.presets import load_preset


def render(values: list[str], template: str) -> list[str]:
    recipe = parse_recipe(
        {
            "name": "dots",
            "domain": "papers",
            "license": "MIT",
            "labels": ["vision", "speech"],
            "attributes": [{"name": "technique", "values": values}],
            "prompts": {"attributed": template, "simple": "Write a {{ label_text }} abstract."},
        }
    )
    renderer = PromptRenderer(recipe)
    sampler = AttributeSampler(recipe, seed=0, strategy="balanced")
    return [renderer.render(sampler.draw("vision", index)) for index in range(len(values))]


def test_a_catch_all_value_ending_in_a_full_stop_gets_one_full_stop():
    prompts = render(["Others technique for vision.", "transformers"], "Use the techniques relevant to {{ technique }}.")
    assert sorted(prompts) == [
        "Use the techniques relevant to Others technique for vision.",
        "Use the techniques relevant to transformers.",
    ]


def test_an_ellipsis_is_left_alone():
    prompts = render(["and so on...", "etc"], "Mention {{ technique }}.")
    assert sorted(prompts) == ["Mention and so on....", "Mention etc."]


def test_no_arxiv_prompt_has_a_doubled_full_stop():
    recipe = load_preset("arxiv")
    renderer = PromptRenderer(recipe)
    sampler = AttributeSampler(recipe, seed=0, strategy="uniform")
    prompts = [renderer.render(sampler.draw(label, index)) for label in recipe.label_names for index in range(5)]
    assert not [p for p in prompts if ".." in p.replace("...", "")]
