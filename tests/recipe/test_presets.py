"""The packaged presets: they load, hold the paper's values cleanly, and match their source files."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from jinja2 import meta

from attrprompt_builder.errors import ConfigError, RecipeError
from attrprompt_builder.recipe.model import load_recipe, template_environment
from attrprompt_builder.recipe.presets import (
    PRESET_NAMES,
    is_preset,
    load_preset,
    preset_path,
)
from attrprompt_builder.recipe.presets.regenerate import (
    PAPER_COMMIT,
    PRESETS,
    build_preset,
    clean_value,
    main,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
# CI tests an installed copy, so find the paper's files beside this checkout, not beside the package.
SOURCE = REPO_ROOT.parent / "shared" / "attrprompt-paper"
needs_source = pytest.mark.skipif(not SOURCE.exists(), reason=f"AttrPrompt paper data not found at {SOURCE}")

EXPECTED_CLASSES = {
    "agnews": 4,
    "nyt": 26,
    "amazon": 23,
    "reddit": 45,
    "stackexchange": 50,
    "sst2": 2,
    "yelp": 2,
    "arxiv": 98,
}
WITH_SIMILAR = {"amazon", "reddit", "stackexchange", "arxiv"}
# nyt's template has its exclusion line ready for the lists `attrprompt discover --similar-only` makes.
TEMPLATE_WITH_SIMILAR = WITH_SIMILAR | {"nyt"}
# A leftover list marker: "1. x", "1) x", "- x", "(1) x".
LIST_MARKER = re.compile(r"^(\(?\d+[.)]\s|-)")
# The one legitimate way a value starts with a quote: a quoted title followed by more text.
QUOTED_TITLE = re.compile(r'^"[^"]+"\s+\S')


def all_values(name: str) -> list[str]:
    recipe = load_preset(name)
    values = [v for a in recipe.attribute_names for label in recipe.label_names for v in recipe.values_for(a, label)]
    return values + [v for similar in recipe.similar.values() for v in similar]


def raw_lines(path: Path) -> list[str]:
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("1. Artificial intelligence", "Artificial intelligence"),
        ("10) Fractal analysis ", "Fractal analysis"),
        ("(3) Dark matter", "Dark matter"),
        ('- "build a pc"', "build a pc"),
        ("-Game design", "Game design"),
        ('2. "Artificial Intelligence"', "Artificial Intelligence"),
        ("'quoted'", "quoted"),
        ("- 4. nested numbering", "nested numbering"),
        ("3D printing", "3D printing"),  # the paper's lstrip of digits turned this into "D printing"
        ("5. 3M", "3M"),
        ("3.5mm headphone jack", "3.5mm headphone jack"),
        ('"Abbey Road" by The Beatles (Vinyl Record)', '"Abbey Road" by The Beatles (Vinyl Record)'),
        ("6. Reddit community of 'investing' ", "Reddit community of 'investing'"),
        ("   ", ""),
        ("7.", ""),
        ("Others experience for dogecoin.", "Others experience for dogecoin."),
    ],
)
def test_clean_value(line: str, expected: str) -> None:
    assert clean_value(line) == expected


def test_preset_names_match_the_regenerate_table() -> None:
    assert tuple(sorted(PRESETS)) == PRESET_NAMES
    assert tuple(sorted(EXPECTED_CLASSES)) == PRESET_NAMES


@pytest.mark.parametrize("name", sorted(EXPECTED_CLASSES))
def test_preset_loads_with_expected_classes(name: str) -> None:
    recipe = load_preset(name)
    assert recipe.name == name
    assert len(recipe.labels) == EXPECTED_CLASSES[name]
    assert recipe.license == "other" and "Apache-2.0" in (recipe.description or "")
    assert PAPER_COMMIT in (recipe.source or "") and "yueyu1030/AttrPrompt" in (recipe.source or "")
    assert (recipe.generation.temperature, recipe.generation.top_p, recipe.generation.max_new_tokens) == (1.0, 1.0, 512)
    assert preset_path(name).read_text(encoding="utf-8").startswith("# GENERATED FILE: do not edit by hand.")
    assert load_recipe(preset_path(name)).fingerprint == recipe.fingerprint


@pytest.mark.parametrize("name", sorted(EXPECTED_CLASSES))
def test_attributed_template_uses_every_dimension(name: str) -> None:
    recipe = load_preset(name)
    used = meta.find_undeclared_variables(template_environment().parse(recipe.attributed_template))
    assert set(recipe.attribute_names) <= used
    assert ("similar_classes" in used) == (name in TEMPLATE_WITH_SIMILAR)
    assert bool(recipe.similar) == (name in WITH_SIMILAR)


@pytest.mark.parametrize("name", sorted(EXPECTED_CLASSES))
def test_values_carry_no_list_markers_or_wrapping_quotes(name: str) -> None:
    for value in all_values(name):
        assert not LIST_MARKER.match(value), value
        if value[0] in "\"'":
            assert QUOTED_TITLE.match(value), value


def test_every_per_class_dimension_ends_with_the_catch_all() -> None:
    recipe = load_preset("stackexchange")
    assert recipe.values_for("scenario", "game-ai")[-1] == "Others scenario for game-AI."
    assert recipe.attribute("depth").catch_all is None
    # The paper's dogecoin file already holds the catch-all line; it must not appear twice.
    dogecoin = load_preset("reddit").values_for("experience", "dogecoin")
    assert dogecoin.count("Others experience for dogecoin.") == 1


@needs_source
def test_regenerate_drops_and_reports_similar_lists_naming_most_labels() -> None:
    build = build_preset("arxiv", source=SOURCE)
    dropped = [note for note in build.notes if "names 97 of the 98 classes" in note]
    assert len(dropped) == 5
    for label in ("populations_and_evolution", "neurons_and_cognition", "trading_and_market_microstructure"):
        assert label not in build.recipe.similar
    assert all(len(similar) < 49 for similar in build.recipe.similar.values())


@needs_source
def test_agnews_values_come_from_the_paper_files() -> None:
    recipe = load_preset("agnews")
    base = SOURCE / "datasets" / "agnews" / "attrprompt" / "gpt-3.5-turbo"
    assert recipe.attribute_names == ["subtopics", "length", "style", "location"]
    for label in recipe.labels:
        *values, catch_all = recipe.values_for("subtopics", label.name)
        assert catch_all == f"Others subtopics for {label.text}."
        lines = raw_lines(base / "subtopics" / f"{label.name}.jsonl")
        assert len(values) == len(lines)
        for value, line in zip(values, lines):
            assert value in line  # cleaning only trims the raw line
    for dimension in ("length", "style", "location"):
        assert list(recipe.attribute(dimension).values or ()) == raw_lines(base / dimension / f"{dimension}.txt")
    assert "3D printing" in recipe.values_for("subtopics", "sci_tech")


@needs_source
def test_arxiv_is_multi_label_with_a_covering_label_map() -> None:
    recipe = load_preset("arxiv")
    label_map = recipe.attribute("subtopics").label_map or {}
    assert recipe.multi_label and [a.name for a in recipe.attributes if a.kind == "label_map"] == ["subtopics"]
    assert len(label_map) == 1740
    assert {label for labels in label_map.values() for label in labels} == set(recipe.label_names)
    assert label_map["optimization techniques for computer vision"] == (
        "computer_vision_and_pattern_recognition",
        "machine_learning",
    )
    long_name = "distributed,_parallel,_and_cluster_computing"
    assert recipe.label_text[long_name] == "Distributed, Parallel, and Cluster Computing"
    assert "subcellular_processes" not in recipe.similar  # its similar file is empty in the paper's data


@needs_source
def test_ignored_source_files_are_reported() -> None:
    nyt_notes = "\n".join(build_preset("nyt", source=SOURCE).notes)
    assert "subtopics_filter/cosmos.jsonl" in nyt_notes and "location/location_fine.txt" in nyt_notes
    reddit = build_preset("reddit", source=SOURCE)
    assert sum("similar/" in note and "ignored" in note for note in reddit.notes) == 8
    assert reddit.dropped_duplicates == 1


@needs_source
def test_regenerate_check_passes_on_the_committed_files(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--check", "--source", str(SOURCE)]) == 0
    out = capsys.readouterr().out
    assert "agnews: 4 classes; 4 dimensions" in out and "arxiv: 98 classes" in out


@needs_source
@pytest.mark.slow  # a fresh interpreter imports the whole package (datasets, transformers)
def test_regenerate_module_entry_point_checks() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "attrprompt_builder.recipe.presets.regenerate", "--check", "--source", str(SOURCE)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr


@needs_source
def test_regenerate_check_reports_a_stale_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--source", str(SOURCE), "--out", str(tmp_path)]) == 0
    for name in PRESET_NAMES:
        assert (tmp_path / f"{name}.yaml").read_bytes() == preset_path(name).read_bytes()
    stale = tmp_path / "yelp.yaml"
    stale.write_text(stale.read_text(encoding="utf-8").replace("Turkish", "Turkic"), encoding="utf-8")
    (tmp_path / "sst2.yaml").unlink()
    capsys.readouterr()
    assert main(["--check", "--source", str(SOURCE), "--out", str(tmp_path)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    assert "sst2.yaml (missing)" in err and "yelp.yaml (differs)" in err and "agnews" not in err


@needs_source
def test_missing_class_file_fails_with_its_path(tmp_path: Path) -> None:
    shutil.copytree(SOURCE / "datasets" / "agnews", tmp_path / "datasets" / "agnews")
    (tmp_path / "datasets" / "agnews" / "attrprompt" / "gpt-3.5-turbo" / "subtopics" / "sports.jsonl").unlink()
    with pytest.raises(RecipeError, match=r"agnews: missing source file .*subtopics/sports\.jsonl"):
        build_preset("agnews", source=tmp_path)


def test_bad_source_is_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--source", str(tmp_path), "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: --source:") and "\n" not in err


def test_unknown_preset_lists_the_available_ones() -> None:
    assert is_preset("agnews") and not is_preset("ag_news")
    with pytest.raises(ConfigError, match=r"unknown preset 'ag_news'; use one of: agnews, amazon, arxiv"):
        load_preset("ag_news")
    with pytest.raises(ConfigError):
        preset_path("../recipe")
    assert load_preset("yelp") is load_preset("yelp")
