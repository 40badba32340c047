"""End to end: ``load_dataset("attrprompt", ...)`` against a loopback TGI-compatible server."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import datasets
import pytest

import attrprompt_builder
from attrprompt_builder import AttrPromptBuilder
from attrprompt_builder.errors import ConfigError
from attrprompt_builder.recipe.presets import load_preset

NO_DEDUP = {"dedup_threshold": None}


def agnews(url: str, **kwargs) -> datasets.Dataset:
    return datasets.load_dataset("attrprompt", "agnews", endpoint=url, split="train", **{**NO_DEDUP, **kwargs})


@pytest.mark.slow
def test_agnews_acceptance(tgi):
    ds = agnews(tgi.url, samples_per_class=25, seed=0)
    recipe = load_preset("agnews")
    assert ds.num_rows == 100
    assert ds.features["label"] == datasets.ClassLabel(names=["world", "sports", "business", "sci_tech"])
    assert [ds.features[name] for name in ("subtopics", "length", "style", "location")] == [datasets.Value("string")] * 4
    assert list(ds.features) == ["text", "label", "subtopics", "length", "style", "location", "prompt"]
    names = ds.features["label"].names
    assert [names[i] for i in ds["label"]].count("sci_tech") == 25
    for row in ds:
        label = names[row["label"]]
        for dimension in ("subtopics", "length", "style", "location"):
            assert row[dimension] in recipe.values_for(dimension, label)
            assert row[dimension] in row["prompt"]
        assert row["text"].strip()
    # every prompt sent is a row's prompt, and each was sent once
    sent = [r["body"]["messages"][-1]["content"] for r in tgi.requests if r["route"] == "/v1/chat/completions"]
    assert sorted(sent) == sorted(ds["prompt"])
    before = tgi.count()
    again = agnews(tgi.url, samples_per_class=25, seed=0)
    assert tgi.count() == before  # the identical call sends zero requests
    assert again["text"] == ds["text"]


@pytest.mark.slow
@pytest.mark.parametrize(("preset", "n"), [("nyt", 2), ("sst2", 3), ("amazon", 1), ("reddit", 1)])
def test_presets_end_to_end(tgi, preset, n):
    ds = datasets.load_dataset("attrprompt", preset, endpoint=tgi.url, samples_per_class=n, split="train", **NO_DEDUP)
    recipe = load_preset(preset)
    assert ds.num_rows == n * len(recipe.labels)
    assert ds.features["label"].names == recipe.label_names
    assert set(recipe.attribute_names) <= set(ds.column_names)


@pytest.mark.slow
def test_multi_label_arxiv(tgi):
    ds = datasets.load_dataset("attrprompt", "arxiv", endpoint=tgi.url, samples_per_class=1, split="train", **NO_DEDUP)
    recipe = load_preset("arxiv")
    assert ds.num_rows == len(recipe.labels)
    assert ds.features["labels"] == datasets.List(datasets.ClassLabel(names=recipe.label_names))
    label_map = recipe.attribute("subtopics").label_map
    names = recipe.label_names
    for position, row in enumerate(ds):
        assert [names[i] for i in row["labels"]] == list(label_map[row["subtopics"]])
        assert position in row["labels"]  # class-major: row i was drawn for class i


@pytest.mark.slow
def test_rows_do_not_depend_on_concurrency_or_num_proc(tgi, tmp_path):
    def build(tag: str, **kwargs) -> datasets.Dataset:
        builder = datasets.load_dataset_builder(
            "attrprompt",
            "agnews",
            endpoint=tgi.url,
            samples_per_class=6,
            seed=3,
            journal_dir=str(tmp_path / f"journal-{tag}"),
            cache_dir=str(tmp_path / f"cache-{tag}"),
            max_concurrency=kwargs.pop("max_concurrency"),
            **NO_DEDUP,
        )
        builder.download_and_prepare(**kwargs)
        return builder.as_dataset(split="train")

    serial = build("serial", max_concurrency=1)
    parallel = build("parallel", max_concurrency=16)
    multiproc = build("multiproc", max_concurrency=4, num_proc=2)
    assert serial.to_list() == parallel.to_list() == multiproc.to_list()
    assert tgi.served == 3 * 24


@pytest.mark.slow
def test_refusals_and_empty_replies_are_replaced(tgi):
    tgi.configure(refusal_rate=0.25, empty_rate=0.1)
    ds = agnews(tgi.url, samples_per_class=8, seed=1)
    assert ds.num_rows == 32
    assert all(len(ds.filter(lambda r, c=c: r["label"] == c)) == 8 for c in range(4))
    assert tgi.kinds["refusal"] > 0 and tgi.kinds["empty"] > 0
    assert not any(text.lower().startswith(("i'm sorry", "i apologize", "as an ai")) for text in ds["text"])


def test_streaming_yields_rows_in_class_order(tgi):
    stream = datasets.load_dataset(
        "attrprompt", "sst2", endpoint=tgi.url, samples_per_class=3, split="train", streaming=True, **NO_DEDUP
    )
    rows = list(stream)
    assert [r["label"] for r in rows] == [0, 0, 0, 1, 1, 1]


def test_builder_class_works_directly(tgi):
    builder = AttrPromptBuilder(config_name="yelp", endpoint=tgi.url, samples_per_class=2, **NO_DEDUP)
    builder.download_and_prepare()
    ds = builder.as_dataset(split="train")
    assert ds.num_rows == 4 and ds.features["label"].names == ["negative", "positive"]
    stats = builder.stats
    assert stats.kept == 4 and stats.sent == 4 and stats.total_tokens > 0


def test_custom_recipe_through_config_path(tgi, tmp_path):
    recipe = tmp_path / "tickets.yaml"
    recipe.write_text(
        """
name: tickets
domain: support ticket
license: cc-by-4.0
labels: [billing, outage]
attributes:
  - name: product
    values: [mobile app, web dashboard]
prompts:
  attributed: "Write a {{ domain }} about {{ label_text }} for the {{ product }}."
  simple: "Write a {{ domain }} about {{ label_text }}."
""",
        encoding="utf-8",
    )
    ds = datasets.load_dataset("attrprompt", config=str(recipe), endpoint=tgi.url, samples_per_class=3, split="train", **NO_DEDUP)
    assert ds.num_rows == 6 and ds.features["label"].names == ["billing", "outage"]
    assert ds.info.license == "cc-by-4.0"
    same = datasets.load_dataset("attrprompt", str(recipe), endpoint=tgi.url, samples_per_class=3, split="train", **NO_DEDUP)
    assert same["text"] == ds["text"]
    # editing the recipe changes the cache key: no stale dataset comes back
    recipe.write_text(recipe.read_text().replace("web dashboard", "public API"), encoding="utf-8")
    edited = datasets.load_dataset(
        "attrprompt", config=str(recipe), endpoint=tgi.url, samples_per_class=3, split="train", **NO_DEDUP
    )
    assert "public API" in set(edited["product"])


def test_simple_prompting_sends_no_attribute(tgi):
    ds = agnews(tgi.url, samples_per_class=3, prompting="simple")
    recipe = load_preset("agnews")
    values = {v for name in recipe.attribute_names for label in recipe.label_names for v in recipe.values_for(name, label)}
    for row in ds:
        assert row["subtopics"] is None and row["location"] is None
        assert not any(value in row["prompt"] for value in values if len(value) > 3)


def _builder_kind(name: str) -> type:
    return type(datasets.load_dataset_builder(name, "agnews", endpoint="http://127.0.0.1:9"))


def test_plugin_from_an_empty_directory(in_empty_dir):
    assert issubclass(_builder_kind("attrprompt"), AttrPromptBuilder)


def test_plugin_from_a_directory_with_data_files_and_an_attrprompt_folder(in_empty_dir, tgi):
    (in_empty_dir / "train.csv").write_text("text,label\nhello,0\n", encoding="utf-8")
    (in_empty_dir / "data.json").write_text('{"text": "x"}\n', encoding="utf-8")
    (in_empty_dir / "attrprompt").mkdir()
    (in_empty_dir / "attrprompt" / "train.csv").write_text("text\nstray\n", encoding="utf-8")
    assert issubclass(_builder_kind("attrprompt"), AttrPromptBuilder)
    ds = datasets.load_dataset("attrprompt", "sst2", endpoint=tgi.url, samples_per_class=1, split="train", **NO_DEDUP)
    assert ds.num_rows == 2 and "prompt" in ds.column_names


def test_plugin_registration_is_idempotent_and_checks_datasets_internals():
    factory = datasets.load.dataset_module_factory
    attrprompt_builder.register()
    attrprompt_builder.register()
    assert datasets.load.dataset_module_factory is factory
    # the internals the plugin relies on; if datasets changes them this fails loudly
    assert factory._attrprompt_names == {"attrprompt"}
    assert datasets.inspect.dataset_module_factory is not None
    assert {"module_path", "hash", "builder_kwargs"} <= set(datasets.load.DatasetModule.__dataclass_fields__)
    module = datasets.load.dataset_module_factory("attrprompt")
    assert module.module_path == "attrprompt_builder.dataset.builder"
    assert datasets.get_dataset_config_names("attrprompt") == list(attrprompt_builder.PRESET_NAMES)


def test_other_datasets_still_load(tmp_path):
    (tmp_path / "train.csv").write_text("text,label\nhello,0\nworld,1\n", encoding="utf-8")
    ds = datasets.load_dataset(str(tmp_path), split="train")
    assert ds["text"] == ["hello", "world"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"endpoint": "localhost:8080"}, "endpoint: got 'localhost:8080'; use a base URL such as http://localhost:8080"),
        ({"endpoint": "http://x", "samples_per_class": 0}, "samples_per_class: got 0; use a whole number >= 1"),
        ({"endpoint": "http://x", "sampling": "random"}, "sampling: got 'random'; use one of uniform, balanced"),
        ({"endpoint": "http://x", "top_p": 1.5}, "top_p: got 1.5; use a number in (0, 1]"),
        ({"endpoint": "http://x", "dedup_threshold": 2}, "dedup_threshold: got 2"),
        ({"backend": "providers"}, "model: got None; pass model="),
        ({"endpoint": "http://x", "max_cost": 3.0}, "max_cost: got 3.0; also pass price_in and price_out"),
    ],
)
def test_bad_config_values_are_one_clear_line(kwargs, message):
    with pytest.raises(ConfigError) as info:
        datasets.load_dataset_builder("attrprompt", "agnews", **kwargs)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_unknown_preset_lists_the_choices():
    with pytest.raises(ValueError, match="agnews"):
        datasets.load_dataset_builder("attrprompt", "agnewz", endpoint="http://x")


def test_loading_script_for_datasets_3_imports_and_builds(tgi, monkeypatch):
    # datasets 3.x copies the script into its modules cache and imports it; do the same here
    script = Path(__file__).resolve().parents[2] / "loading_scripts" / "attrprompt.py"
    spec = importlib.util.spec_from_file_location("attrprompt_script", script)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "attrprompt_script", module)
    spec.loader.exec_module(module)
    builder_cls = datasets.load.import_main_class("attrprompt_script")
    assert builder_cls is module.Attrprompt and issubclass(builder_cls, AttrPromptBuilder)
    builder = builder_cls(config_name="sst2", endpoint=tgi.url, samples_per_class=1, **NO_DEDUP)
    builder.download_and_prepare()
    assert builder.as_dataset(split="train").num_rows == 2
