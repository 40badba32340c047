"""``attrprompt discover --similar-only``: nyt's missing similar-class lists from the user's LLM (the scripted
loopback server, real HTTP and journal), merged into a recipe that generates with the paper's fifth line."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
from scripted_llm import ScriptedLLM

import attrprompt_builder  # noqa: F401  registers the "attrprompt" dataset
from attrprompt_builder.discover.command import add_discover_arguments, run_discover
from attrprompt_builder.errors import ConfigError
from attrprompt_builder.generation.prompts import PromptRenderer
from attrprompt_builder.generation.sampling import AttributeSampler
from attrprompt_builder.pipeline import generate_folder
from attrprompt_builder.recipe.model import load_recipe
from attrprompt_builder.recipe.presets import load_preset


@pytest.fixture
def llm():
    with ScriptedLLM() as server:
        yield server


def discover(*argv: str) -> int:
    parser = argparse.ArgumentParser()
    add_discover_arguments(parser)
    return run_discover(parser.parse_args(list(argv)))


def test_similar_only_makes_nyts_lists_and_the_fifth_line(llm, tmp_path, capsys):
    output = tmp_path / "nyt-similar.yaml"
    assert discover("--similar-only", "--preset", "nyt", "--endpoint", llm.url, "--output", str(output)) == 0
    sent = llm.count()
    assert sent == 26  # one question per class (the scripted model answers each the first time)
    assert "similar classes for 26 of 26 classes" in capsys.readouterr().out
    text = output.read_text(encoding="utf-8")
    assert text.startswith("# Recipe 'nyt' with similar-class lists made by `attrprompt discover --similar-only`")
    recipe = load_recipe(output)
    preset = load_preset("nyt")
    assert recipe.name == "nyt_similar" and recipe.label_names == preset.label_names
    assert recipe.attributes == preset.attributes and recipe.paper is not None
    texts = set(preset.label_text.values())
    for label in recipe.label_names:
        similar = recipe.similar[label]
        assert len(similar) == 5 and set(similar) <= texts and preset.label_text[label] not in similar

    # The fifth line, in the reference's words (paper mode) and in the default mode's.
    draw = AttributeSampler(recipe, seed=0, paper=True).draw("federal_budget", 0)
    joined = ",".join(recipe.similar["federal_budget"])
    paper = PromptRenderer(recipe, paper=True).render(draw)
    assert paper.split("\n")[-1] == f"5. The news must be relevant to federal budget and irrelevant to: {joined}."
    default = PromptRenderer(recipe).render(draw)
    assert default.split("\n")[-1].startswith("5. The news must be relevant to federal budget and irrelevant to: ")
    assert "have no similar-class list" not in " ".join(recipe.paper_deviations())
    assert recipe.paper_deviations()[0].startswith("Similar-class lists made by")
    assert "have no similar-class list" in load_preset("nyt").paper_deviations()[0]

    # A rerun pays nothing; a paper-mode build from the reviewed file sends the fifth line.
    assert discover("--similar-only", "--preset", "nyt", "--endpoint", llm.url, "--output", str(output)) == 0
    assert llm.count() == sent
    folder = generate_folder(str(output), tmp_path / "out", endpoint=llm.url, samples_per_class=1, fidelity="paper", card=False)
    record = json.loads((folder / "generation.json").read_text(encoding="utf-8"))
    assert record["generation"]["fidelity"] == "paper"
    assert record["generation"]["paper_deviations"][0].startswith("Similar-class lists made by")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--similar-only"], "--similar-only: needs --preset"),
        (["--similar-only", "--preset", "nyt", "--labels", "a,b"], "drop --labels and --domain"),
        (["--preset", "nyt"], "--preset: only with --similar-only"),
        (["--similar-only", "--preset", "amazon"], "already has a similar-class list for every class"),
    ],
)
def test_similar_only_arguments_fail_in_one_line(argv, message, tmp_path):
    with pytest.raises(ConfigError, match=message):
        discover(*argv, "--endpoint", "http://127.0.0.1:9", "--output", str(tmp_path / "r.yaml"))
    assert not Path(tmp_path / "r.yaml").exists()
