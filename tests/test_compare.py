"""`compare`: side-by-side measurements of dataset folders, on hand-made data and on generated folders."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import datasets
import pytest
from scripted_llm import NEWS_LABELS, ScriptedLLM

from attrprompt_builder.card import measures
from attrprompt_builder.compare import (
    add_compare_arguments,
    compare_folders,
    format_report,
    run_compare,
)
from attrprompt_builder.discover.steps import discover_recipe
from attrprompt_builder.errors import ConfigError
from attrprompt_builder.pipeline import generate_folder


def _folder(path: Path, texts: list[str], labels: list[int], **columns: list) -> Path:
    features = datasets.Features(
        {
            "text": datasets.Value("string"),
            "label": datasets.ClassLabel(names=["world", "sports"]),
            **{name: datasets.Value("string") for name in columns},
        }
    )
    data = datasets.Dataset.from_dict({"text": texts, "label": labels, **columns}, features=features)
    (path / "data").mkdir(parents=True)
    data.to_parquet(str(path / "data" / "train-00000-of-00001.parquet"))
    return path


def test_compare_counts_terms_in_every_dataset(tmp_path):
    a = _folder(tmp_path / "a" / "run", ["Rain in Kenya today", "Kenya and Peru sign a deal", "A quiet day"], [0, 0, 1])
    b = _folder(tmp_path / "b" / "run", ["Markets fell", "Peru wins the cup", "Nothing new"], [0, 1, 1])
    report = compare_folders([a, b], embedder="ngram", terms=["Kenya", "Peru", " "])
    first, second = report.datasets
    assert (first.name, second.name) == ("a/run", "b/run")  # same folder name: longer tails tell them apart
    assert report.terms == ("Kenya", "Peru")
    assert first.mentions == {"Kenya": 2, "Peru": 1}
    assert second.mentions == {"Kenya": 0, "Peru": 1}
    assert first.labels == {"world": 2, "sports": 1}
    assert first.vocabulary == 11 and first.lengths.max == 6
    assert first.similarity is not None and first.similarity.within is not None
    text = format_report(report)
    assert "Texts mentioning each term (2 terms from the given terms" in text
    assert re.search(r"^terms mentioned +2/2 +1/2$", text, re.MULTILINE)
    assert re.search(r"^Kenya +2 +0$", text, re.MULTILINE)


def test_compare_without_embedder_or_terms(tmp_path):
    a = _folder(tmp_path / "a", ["one two", "three four"], [0, 1], location=[None, None])
    report = compare_folders([a], embedder="none")
    assert report.datasets[0].similarity is None and report.terms == ()
    assert report.datasets[0].attributes == {}
    assert "APS: not measured" in format_report(report)


def test_compare_rejects_what_is_not_a_dataset_folder(tmp_path):
    with pytest.raises(ConfigError, match="is not a folder"):
        compare_folders([tmp_path / "missing"], embedder="none")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="has no data/\\*.parquet files"):
        compare_folders([tmp_path / "empty"], embedder="none")
    no_text = tmp_path / "no_text" / "data"
    no_text.mkdir(parents=True)
    datasets.Dataset.from_dict({"body": ["x"], "label": [0]}).to_parquet(str(no_text / "x.parquet"))
    with pytest.raises(ConfigError, match="compare needs `text`"):
        compare_folders([no_text.parent], embedder="none")


@pytest.mark.slow
def test_compare_attributed_and_simple_folders(tmp_path, request, minilm_path, capsys):
    server = ScriptedLLM()
    server.start()
    try:
        result = discover_recipe(list(NEWS_LABELS), domain="news articles", endpoint=server.url, values_per_dimension=4)
        recipe = result.write(tmp_path / "recipe.yaml")
        options = {"endpoint": server.url, "samples_per_class": 5, "dedup_threshold": None, "card": False}
        attributed = generate_folder(str(recipe), tmp_path / "attributed", **options)
        simple = generate_folder(str(recipe), tmp_path / "simple", prompting="simple", **options)
    finally:
        server.stop()
    request.getfixturevalue("offline_models")  # only now: HF_HUB_OFFLINE would refuse the loopback endpoint
    plot = tmp_path / "compare.png"
    parser = argparse.ArgumentParser()
    add_compare_arguments(parser)
    args = parser.parse_args([str(attributed), str(simple), "--embedder", minilm_path, "--plot", str(plot)])
    assert run_compare(args) == 0
    printed = capsys.readouterr().out
    aps_line = next(line for line in printed.splitlines() if line.startswith("APS overall"))
    assert len([cell for cell in aps_line.split()[2:] if cell != measures.MISSING]) == 2  # a number for both datasets
    assert "the location values of attributed's recipe" in printed
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    report = compare_folders([attributed, simple], embedder=minilm_path)
    by_name = {summary.name: summary for summary in report.datasets}
    assert set(report.terms) == set(result.recipe.attribute("location").values or ())
    assert by_name["attributed"].rows == by_name["simple"].rows == 20
    assert by_name["attributed"].attributes["location"] and by_name["simple"].attributes == {}
    for summary in report.datasets:
        assert summary.similarity is not None and -1.0 <= summary.similarity.overall <= 1.0
    # The attributed prompts name a location, the simple ones none: only attributed text mentions them.
    assert sum(by_name["attributed"].mentions.values()) > 0
    assert sum(by_name["simple"].mentions.values()) == 0
    texts = measures.column(datasets.Dataset.from_parquet(str(attributed / "data" / "*.parquet")), "text")
    assert by_name["attributed"].mentions == measures.mention_counts(texts, list(report.terms))
