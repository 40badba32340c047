"""Issue 5's acceptance, through the console script: generate agnews, read its card, push it to a
loopback Hub, load it back without the plugin, and train a classifier on it."""

from __future__ import annotations

import json
import re

import datasets
import pytest
from hub_server import LoopbackHub
from huggingface_hub import DatasetCard
from test_cli import attrprompt
from test_publish import _LOAD, _run

from attrprompt_builder.recipe.presets import load_preset


@pytest.mark.slow
def test_generate_card_push_load_train(tgi, tmp_path, minilm_path):
    tgi.configure(duplicate_rate=0.2, refusal_rate=0.05)
    out = tmp_path / "agnews"
    env = {"HF_DATASETS_CACHE": str(tmp_path / "cache")}
    result = attrprompt(
        "generate", "agnews", "--endpoint", tgi.url, "-n", "12", "-o", str(out), "--embedder", minilm_path, env=env
    )
    assert result.returncode == 0, result.stderr

    # the card: metadata, every location drawn with its count, similarity, vocabulary, dedup
    card = DatasetCard.load(out / "README.md")
    assert card.data.license == "other"
    assert "text-classification" in card.data.task_categories
    assert card.data.size_categories == ["n<1K"]
    assert "synthetic" in card.data.tags
    ds = datasets.load_dataset(str(out), split="train")
    assert ds.num_rows == 48
    body = card.text
    locations = ds["location"]
    for location in set(locations):
        assert re.search(rf"\|\s*{re.escape(location)}\s*\|\s*{locations.count(location)}\s*\|", body), location
    assert re.search(r"pairwise similarity \(APS\)", body, re.IGNORECASE)
    assert re.search(r"vocabulary", body, re.IGNORECASE)
    generation = json.loads((out / "generation.json").read_text())
    removed = generation["stats"]["dropped"].get("near_duplicate", 0) + generation["stats"]["dropped"].get("exact_duplicate", 0)
    assert removed > 0
    assert re.search(rf"\|\s*near-duplicates removed\s*\|\s*{removed}\s*\|", body)

    # push to a loopback Hub and load back with plain datasets (no plugin in that process)
    with LoopbackHub() as hub:
        hub_env = {"HF_ENDPOINT": hub.url, "HF_HUB_DISABLE_XET": "1", "HF_HOME": str(tmp_path / "hf"), "HF_TOKEN": "hf_test"}
        pushed = attrprompt("push", str(out), "tester/agnews-attrprompt", env=hub_env)
        assert pushed.returncode == 0, pushed.stderr
        loaded, _ = _run(_LOAD, hub, tmp_path, {"repo_id": "tester/agnews-attrprompt"}, hf_token="hf_test")
    assert loaded["ours_imported"] is False
    assert loaded["rows"]["text"] == ds["text"] and loaded["rows"]["label"] == ds["label"]
    assert loaded["features"]["label"]["names"] == load_preset("agnews").label_names

    # train on the folder with the MiniLM encoder; accuracy is printed
    trained = attrprompt(
        "train", str(out), "--model", minilm_path, "--epochs", "1", "--output", str(tmp_path / "model"),
        env={**env, "HF_HUB_OFFLINE": "1"},
    )  # fmt: skip
    assert trained.returncode == 0, trained.stderr
    assert re.search(r"accuracy\s*[:=]?\s*\d\.\d+", trained.stdout), trained.stdout
    assert (tmp_path / "model" / "metrics.json").is_file()
