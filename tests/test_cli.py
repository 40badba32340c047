"""The ``attrprompt`` command line, run as users run it (a subprocess, real stdout/stderr)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import datasets
import pytest
from huggingface_hub import DatasetCard

from attrprompt_builder.presets import PRESET_NAMES


def attrprompt(*args: str, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    executable = shutil.which("attrprompt", path=os.path.dirname(sys.executable)) or shutil.which("attrprompt")
    assert executable, "the console script `attrprompt` is not installed"
    return subprocess.run(
        [executable, *args], capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})}
    )


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
