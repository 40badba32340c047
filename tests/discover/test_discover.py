"""Attribute discovery end to end against a scripted loopback TGI server (real HTTP, real journal)."""

from __future__ import annotations

import argparse
from pathlib import Path

import datasets
import pytest
import yaml
from scripted_llm import NEWS_LABELS, RELATED_MARKER, WORLD_RELATED, ScriptedLLM

import attrprompt_builder  # noqa: F401  registers the "attrprompt" dataset
from attrprompt_builder.discover.command import add_discover_arguments, read_labels, run_discover
from attrprompt_builder.discover.steps import DiscoveryError, discover_recipe
from attrprompt_builder.errors import ConfigError
from attrprompt_builder.pipeline import generate_folder
from attrprompt_builder.recipe.model import load_recipe


@pytest.fixture
def llm():
    with ScriptedLLM() as server:
        yield server


@pytest.fixture
def labels_file(tmp_path: Path) -> Path:
    path = tmp_path / "labels.txt"
    path.write_text("\n".join(NEWS_LABELS) + "\n\n", encoding="utf-8")
    return path


def _discover_cli(labels: Path, output: Path, url: str, *extra: str) -> int:
    parser = argparse.ArgumentParser()
    add_discover_arguments(parser)
    args = parser.parse_args(
        ["--labels", str(labels), "--domain", "news articles", "--endpoint", url, "--output", str(output), *extra]
    )
    return run_discover(args)


def _every_value(recipe) -> set[str]:
    names, labels = recipe.attribute_names, recipe.label_names
    return {value for name in names for label in labels for value in recipe.values_for(name, label)}


def test_discover_writes_a_reviewed_recipe_that_generates(llm, labels_file, tmp_path, capsys):
    output = tmp_path / "recipe.yaml"
    assert _discover_cli(labels_file, output, llm.url) == 0
    text = output.read_text(encoding="utf-8")
    recipe = load_recipe(output)
    assert recipe.label_names == list(NEWS_LABELS)
    assert recipe.attribute_names == ["subtopic", "writing_style", "location", "length"]
    assert recipe.attribute("subtopic").class_dependent and not recipe.attribute("location").class_dependent
    # Comments for the reviewer: provenance and what the filter removed.
    assert text.startswith("# Recipe discovered by `attrprompt discover`")
    assert "# Step 1: dimensions proposed by the model" in text and "# Step 2:" in text
    assert "step 4 dropped for world: Market angle 1; Market angle 2" in text
    assert "Names it gave that match no label, dropped: world: Entertainment; business: Economy" in text
    # Step 4: related values are gone, at most 5 per class; the cap keeps world's last two.
    world = recipe.values_for("subtopic", "world")
    kept_related = [f"{RELATED_MARKER} angle {i}" for i in range(6, WORLD_RELATED + 1)]
    assert [v for v in world if RELATED_MARKER in v] == kept_related
    for label in ("sports", "business", "sci_tech"):
        assert not any(RELATED_MARKER in v for v in recipe.values_for("subtopic", label))
    assert "Ambiguous rivalry" in recipe.values_for("subtopic", "sports")  # unusable answer: kept, reported
    assert "'Ambiguous rivalry' of class 'sports'" in capsys.readouterr().err
    # Step 2: real labels only, never the class itself nor an invented one.
    assert recipe.similar == {
        "world": ("business", "sci tech"),
        "sports": ("world", "business"),
        "business": ("sci tech", "world"),
        "sci_tech": ("business", "world"),
    }
    # Step 3: duplicates and the duplicate-in-another-case are gone; shared lists parsed from JSON and commas.
    assert recipe.values_for("location", "world")[:2] == ("Kenya", "Peru")
    assert list(recipe.attribute("writing_style").values or ()) == [
        "investigative",
        "op-ed",
        "feature",
        "breaking bulletin",
        "interview",
        "explainer",
    ]
    sent = llm.count()

    folder = generate_folder(
        str(output), tmp_path / "out", endpoint=llm.url, samples_per_class=5, dedup_threshold=None, card=False
    )
    rows = datasets.Dataset.from_parquet(sorted(str(p) for p in (folder / "data").glob("*.parquet")))
    names = rows.features["label"].names
    assert sorted(names[i] for i in rows["label"]) == sorted(list(NEWS_LABELS) * 5)
    for row in rows:
        label = names[row["label"]]
        for dimension in recipe.attribute_names:
            assert row[dimension] in recipe.values_for(dimension, label)
        assert f"'{row['subtopic']}'" in row["prompt"]

    # A rerun re-sends nothing: every question is answered from the journal; the file is identical.
    before = llm.count()
    assert before > sent
    assert _discover_cli(labels_file, output, llm.url) == 0
    assert llm.count() == before
    assert output.read_text(encoding="utf-8") == text
    assert "0 requests sent" in capsys.readouterr().out


def test_simple_prompts_carry_no_attribute_value(llm, tmp_path):
    result = discover_recipe(list(NEWS_LABELS), domain="news articles", endpoint=llm.url, values_per_dimension=4)
    path = result.write(tmp_path / "recipe.yaml")
    assert len(result.recipe.values_for("location", "world")) == 4
    llm.reset()
    rows = datasets.load_dataset(
        "attrprompt",
        config=str(path),
        endpoint=llm.url,
        samples_per_class=5,
        prompting="simple",
        dedup_threshold=None,
        split="train",
    )
    assert len(rows) == 20
    values = _every_value(result.recipe)
    sent_prompts = [r["body"]["messages"][-1]["content"] for r in llm.requests if r["route"] == "/v1/chat/completions"]
    assert len(sent_prompts) >= 20
    for prompt in [*rows["prompt"], *sent_prompts]:
        assert prompt.startswith("Suppose you are a writer for news articles.")
        assert not [value for value in values if value in prompt]
    for name in result.recipe.attribute_names:
        assert set(rows[name]) == {None}


def test_unusable_dimensions_stop_with_one_line(llm, tmp_path):
    llm.dimension_reply = "I'm not able to answer that."
    with pytest.raises(DiscoveryError) as caught:
        discover_recipe(["a", "b"], domain="posts", endpoint=llm.url, journal_dir=tmp_path)
    message = str(caught.value)
    assert "\n" not in message and message.startswith("step 1 (dimensions)") and "I'm not able" in message
    assert llm.count() == 4  # the first question and three retries with new seeds


def test_retried_questions_use_new_seeds(llm, tmp_path):
    llm.dimension_reply = "I'm sorry, but I can't help with that request."  # a refusal is no one-item list
    with pytest.raises(DiscoveryError):
        discover_recipe(["a", "b"], domain="posts", endpoint=llm.url, journal_dir=tmp_path)
    bodies = [r["body"] for r in llm.requests]
    assert len({body["seed"] for body in bodies}) == 4
    assert bodies[0]["temperature"] == 0.7


def test_yes_no_questions_are_greedy(llm, tmp_path):
    discover_recipe(["a", "b"], domain="posts", endpoint=llm.url, journal_dir=tmp_path, values_per_dimension=2)
    dependence = [r["body"] for r in llm.requests if "depend on the class" in r["body"]["messages"][0]["content"]]
    # Three dimensions asked greedily; the one whose first answer was "It depends." asked again, sampling.
    assert sorted(body["temperature"] for body in dependence) == [0.0, 0.0, 0.0, 0.7]
    assert {body["max_tokens"] for body in dependence} == {48}


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"labels": ["only"]}, "labels"),
        ({"labels": ["a", "b", "a"]}, "labels"),
        ({"domain": " "}, "domain"),
        ({"values_per_dimension": 0}, "values_per_dimension"),
        ({"max_filtered_per_class": -1}, "max_filtered_per_class"),
    ],
)
def test_bad_arguments_name_the_field(kwargs, field, tmp_path):
    arguments = {"labels": ["a", "b"], "domain": "posts", "endpoint": "http://127.0.0.1:9", "journal_dir": tmp_path}
    arguments.update(kwargs)
    with pytest.raises(ConfigError, match=f"^{field}: "):
        discover_recipe(arguments.pop("labels"), **arguments)


def test_read_labels(tmp_path):
    path = tmp_path / "labels.txt"
    path.write_text("world\n\n sports \n", encoding="utf-8")
    assert read_labels(str(path)) == ["world", "sports"]
    assert read_labels("world, sports,business") == ["world", "sports", "business"]
    with pytest.raises(ConfigError, match="^--labels: 'missing.txt' is neither a file"):
        read_labels("missing.txt")


def test_write_refuses_to_replace_an_edited_recipe(llm, tmp_path):
    result = discover_recipe(["a", "b"], domain="posts", endpoint=llm.url, journal_dir=tmp_path, values_per_dimension=2)
    path = result.write(tmp_path / "recipe.yaml")
    path.write_text(result.yaml_text.replace("Kenya", "Kenya (checked)"), encoding="utf-8")
    with pytest.raises(ConfigError, match="exists and differs"):
        result.write(path)
    assert "Kenya (checked)" in path.read_text(encoding="utf-8")
    result.write(path, overwrite=True)
    assert yaml.safe_load(path.read_text(encoding="utf-8")) == yaml.safe_load(result.yaml_text)


def test_token_reaches_the_endpoint_only_when_passed(llm, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_localtoken123")
    discover_recipe(["a", "b"], domain="posts", endpoint=llm.url, journal_dir=tmp_path / "j1", values_per_dimension=2)
    assert llm.requests and all("authorization" not in r["headers"] for r in llm.requests)
    llm.reset()
    secret = "sk-owntoken456"
    result = discover_recipe(
        ["a", "b"], domain="posts", endpoint=llm.url, token=secret, journal_dir=tmp_path / "j2", values_per_dimension=2
    )
    assert llm.requests and all(r["headers"]["authorization"] == f"Bearer {secret}" for r in llm.requests)
    assert secret not in result.yaml_text
    assert not [p for p in (tmp_path / "j2").iterdir() if secret.encode() in p.read_bytes()]
