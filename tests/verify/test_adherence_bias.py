"""A scripted LLM ignores one length value and, for simple prompts, always names the United States:
the card's adherence table and places figures show exactly that, and ``compare`` shows the skew."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from scripted_places import IGNORED_LENGTH, ScriptedPlaces

from attrprompt_builder.compare import compare_folders, format_report
from attrprompt_builder.pipeline import generate_folder

RECIPE = """\
name: newsplaces
domain: news
license: other
labels: [world, sports, business]
attributes:
  - name: length
    values: [30, 80]
  - name: location
    values: [Kenya, Peru, Norway]
prompts:
  attributed: |
    Give a synthetic sample of news on {{ label_text }} following the requirements below:
    1. Should be in length between {{ length }} words and {{ length | int + 50 }} words.
    2. The location of the news should be in {{ location }}.
  simple: Please give an example of a synthetic {{ domain }} about {{ label_text }}.
"""


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("places")
    recipe = root / "newsplaces.yaml"
    recipe.write_text(RECIPE, encoding="utf-8")
    with ScriptedPlaces() as server:
        common = {"endpoint": server.url, "samples_per_class": 12, "embedder": "ngram", "journal_dir": str(root / "journal")}
        folders = {
            mode: generate_folder(str(recipe), root / mode, prompting=mode, cache_dir=str(root / "cache"), **common)
            for mode in ("attributed", "simple")
        }
    return folders


def _card(folder: Path) -> str:
    return (folder / "README.md").read_text(encoding="utf-8")


def test_adherence_table_shows_the_ignored_length_and_the_named_places(built):
    card = _card(built["attributed"])
    assert "## Quality checks" in card
    ignored = re.search(rf"^\| {IGNORED_LENGTH} \| 30-80 \| (\d+) \| 0\.0% \| 0\.0% \| 100\.0% \|$", card, re.MULTILINE)
    followed = re.search(r"^\| 80 \| 80-130 \| (\d+) \| 100\.0% \| 0\.0% \| 0\.0% \|$", card, re.MULTILINE)
    assert ignored and followed, card[card.index("### Attribute adherence") :][:1500]
    assert int(ignored.group(1)) + int(followed.group(1)) == 36
    for place in ("Kenya", "Peru", "Norway"):
        assert re.search(rf"^\| {place} \| \d+ \| 100\.0% \| gazetteer \|$", card, re.MULTILINE), place
    assert "| United States |" not in card
    assert (built["attributed"] / "places_mentioned.png").is_file()


def test_simple_prompts_name_the_united_states_every_time(built):
    card = _card(built["simple"])
    assert "36 of 36 texts (100.0%) name at least one place" in card
    assert re.search(r"^\| United States \| 36 \| 100\.0% \|$", card, re.MULTILINE)
    assert "North America 100.0%" in card
    assert "No prompt asked for a word range" in card
    assert "![Places mentioned](places_mentioned.png)" in card


def test_compare_shows_the_regional_skew(built, tmp_path):
    plot = tmp_path / "compare.png"
    report = format_report(compare_folders([built["attributed"], built["simple"]], embedder="none", plot=plot))
    assert plot.is_file()
    section = report[report.index("Places mentioned") :]
    assert re.search(r"^United States\s+0\.0%\s+100\.0%$", section, re.MULTILINE), section
    assert re.search(r"^continent: North America\s+0\.0%\s+100\.0%$", section, re.MULTILINE), section
    assert re.search(r"^texts naming a place\s+100\.0%\s+100\.0%$", section, re.MULTILINE), section
