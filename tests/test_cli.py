"""The ``attrprompt`` command line, run as users run it (a subprocess, real stdout/stderr)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

import datasets
import pytest
from huggingface_hub import DatasetCard

from attrprompt_builder.recipe.presets import PRESET_NAMES


def attrprompt(*args: str, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    executable = shutil.which("attrprompt", path=os.path.dirname(sys.executable)) or shutil.which("attrprompt")
    assert executable, "the console script `attrprompt` is not installed"
    return subprocess.run([executable, *args], capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})})


def test_presets_lists_every_preset_with_counts():
    result = attrprompt("presets")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 1 + len(PRESET_NAMES)
    agnews = next(line for line in lines if line.startswith("agnews"))
    assert agnews.split()[1:3] == ["4", "4"]
    assert "multi-label" in next(line for line in lines if line.startswith("arxiv"))


def test_show_prints_prompts_and_sends_nothing():
    result = attrprompt("show", "agnews", "-k", "4", "--seed", "2")
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("--- ") == 4
    assert "Give a synthetic sample of news on world" in result.stdout


def test_estimate_prints_requests_tokens_and_cost():
    result = attrprompt("estimate", "agnews", "-n", "100", "--price-in", "0.5", "--price-out", "1.5")
    assert result.returncode == 0, result.stderr
    assert "rows to keep                 400" in result.stdout
    assert "requests (expected)" in result.stdout and "cost" in result.stdout


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("show", "no_such.yaml"), "no_such.yaml: file not found"),
        (("generate", "agnews", "--endpoint", "localhost:1", "-o", "out"), "endpoint: got 'localhost:1'"),
        (("show", "agnews", "--label", "weather"), "--label: got 'weather'"),
        (("generate", "agnews", "--endpoint", "http://x", "--max-attempts", "0", "-o", "out"), "--max-attempts: got 0"),
    ],
)
def test_user_mistakes_end_in_one_line_without_traceback(args, expected, tmp_path):
    result = attrprompt(*args)
    assert result.returncode == 1
    assert expected in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_generate_writes_a_folder_that_loads_back(tgi, tmp_path):
    out = tmp_path / "agnews"
    result = attrprompt(
        "generate", "agnews", "--endpoint", tgi.url, "--samples-per-class", "5", "--output", str(out),
        "--dedup-threshold", "off", "--cache-dir", str(tmp_path / "cache"), "--journal-dir", str(tmp_path / "journal"),
        env={"HF_DATASETS_CACHE": str(tmp_path / "cache")},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert (out / "README.md").is_file() and (out / "recipe.yaml").is_file() and (out / "generation.json").is_file()
    assert list((out / "data").glob("train-*.parquet"))
    ds = datasets.load_dataset(str(out), split="train")
    assert ds.num_rows == 20
    assert ds.features["label"].names == ["world", "sports", "business", "sci_tech"]
    card = DatasetCard.load(out / "README.md")
    assert card.data.license and "text-classification" in card.data.task_categories


@pytest.mark.slow
def test_discover_then_generate_then_compare(tmp_path, minilm_path):
    """Issue 6's acceptance, through the console script only."""
    from scripted_llm import NEWS_LABELS, ScriptedLLM

    labels = tmp_path / "labels.txt"
    labels.write_text("\n".join(NEWS_LABELS) + "\n", encoding="utf-8")
    env = {"HF_DATASETS_CACHE": str(tmp_path / "cache")}
    with ScriptedLLM() as server:
        recipe = tmp_path / "recipe.yaml"
        result = attrprompt("discover", "--labels", str(labels), "--domain", "news articles", "--endpoint", server.url,
                            "--output", str(recipe), env=env)  # fmt: skip
        assert result.returncode == 0, result.stderr
        folders = {}
        for mode in ("attributed", "simple"):
            folders[mode] = tmp_path / mode
            result = attrprompt("generate", str(recipe), "--endpoint", server.url, "-n", "5", "--prompting", mode,
                                "--dedup-threshold", "off", "-o", str(folders[mode]), "--embedder", minilm_path, env=env)  # fmt: skip
            assert result.returncode == 0, result.stderr
    attributed = datasets.load_dataset(str(folders["attributed"]), split="train")
    simple = datasets.load_dataset(str(folders["simple"]), split="train")
    assert [attributed["label"].count(i) for i in range(4)] == [5, 5, 5, 5]
    attribute_columns = [c for c in attributed.column_names if c not in ("text", "label", "prompt")]
    assert len(attribute_columns) >= 2
    for row in simple:
        assert all(row[c] is None for c in attribute_columns)
    drawn = {v for c in attribute_columns for v in attributed[c]}
    assert not any(value in prompt for prompt in simple["prompt"] for value in drawn if len(value) > 3)
    result = attrprompt("compare", str(folders["attributed"]), str(folders["simple"]), "--embedder", minilm_path,
                        env={**env, "HF_HUB_OFFLINE": "1"})  # fmt: skip
    assert result.returncode == 0, result.stderr
    aps = next(line for line in result.stdout.splitlines() if line.startswith("APS overall"))
    assert len(re.findall(r"\d\.\d+", aps)) >= 2  # a pairwise similarity for both datasets
