"""A recipe's ``paper:`` section and ``per_label`` dimensions: checked on load, one line per problem."""

from __future__ import annotations

import copy

import pytest

from attrprompt_builder.errors import RecipeError
from attrprompt_builder.recipe.model import parse_recipe
from attrprompt_builder.recipe.presets import load_preset

AGNEWS = load_preset("agnews").to_dict()


def with_paper(**changes) -> dict:
    data = copy.deepcopy(AGNEWS)
    data["paper"].update(changes)
    return data


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (with_paper(prompts={"attributed": "x"}), r"paper\.prompts: .*give one entry for `attributed` and one for `simple`"),
        (with_paper(max_new_tokens={"attributed": 0, "simple": 512}), r"paper\.max_new_tokens\.attributed: 0 is not a positive"),
        (with_paper(refusals={"attributed": "sorry", "simple": []}), r"paper\.refusals\.attributed: .*write a list"),
        (with_paper(iterate="subtopics"), r"paper\.iterate: 'subtopics' is not a label_map dimension"),
        (with_paper(simple_extra_labels={"zipf": 0.5, "max_labels": 4}), r"paper\.simple_extra_labels: .*zipf: 2\.5"),
        (with_paper(colour="red"), r"paper\.colour: unknown field"),
        (
            with_paper(prompts={"attributed": "{{ flavour }}", "simple": "x"}),
            r"paper\.prompts\.attributed: template uses undefined variable 'flavour'",
        ),
    ],
)
def test_a_bad_paper_section_is_one_line(data: dict, message: str) -> None:
    with pytest.raises(RecipeError, match=message) as caught:
        parse_recipe(data, origin="task.yaml")
    assert "\n" not in str(caught.value)


def test_per_label_needs_a_multi_label_recipe() -> None:
    data = copy.deepcopy(AGNEWS)
    data["attributes"][0]["per_label"] = True
    with pytest.raises(RecipeError, match=r"per_label: got True; one value per label needs a multi-label recipe"):
        parse_recipe(data, origin="task.yaml")


def test_the_paper_section_round_trips() -> None:
    for name in ("agnews", "arxiv"):
        recipe = load_preset(name)
        again = parse_recipe(recipe.to_dict(), origin="again")
        assert again.paper == recipe.paper and again.fingerprint == recipe.fingerprint
    assert load_preset("arxiv").attribute("technique").per_label
