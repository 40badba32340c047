"""The output folder's layout, in one place: parquet shards, ``recipe.yaml``, ``generation.json`` (the card is ``card/``'s)."""

from __future__ import annotations

import datetime
import json
import math
from pathlib import Path

import datasets

from attrprompt_builder.dataset.builder import AttrPromptBuilder
from attrprompt_builder.generation.stats import BuildStats

__all__ = ["GENERATION_FILE", "RECIPE_FILE", "write_folder"]


RECIPE_FILE = "recipe.yaml"
GENERATION_FILE = "generation.json"
_MAX_SHARD_BYTES = 500 * 1024 * 1024


def write_folder(dataset: datasets.Dataset, folder: Path, *, builder: AttrPromptBuilder, stats: BuildStats | None) -> Path:
    """Write parquet shards, ``recipe.yaml`` and ``generation.json``; the card is written by ``card.write_card``."""
    data_dir = folder / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    for stale in data_dir.glob("train-*.parquet"):
        stale.unlink()
    num_shards = max(1, math.ceil(dataset.data.nbytes / _MAX_SHARD_BYTES))
    for index in range(num_shards):
        shard = dataset.shard(num_shards=num_shards, index=index, contiguous=True)
        shard.to_parquet(str(data_dir / f"train-{index:05d}-of-{num_shards:05d}.parquet"))
    (folder / RECIPE_FILE).write_text(builder.config.recipe.to_yaml(), encoding="utf-8")
    generation = builder.generation_info()
    generation["date"] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    generation["license"] = builder.config.license or builder.config.recipe.license
    record = {"generation": generation, "stats": stats.to_dict() if stats else None}
    (folder / GENERATION_FILE).write_text(json.dumps(record, indent=2, sort_keys=True), encoding="utf-8")
    return folder
