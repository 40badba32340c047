"""The output folder's layout, in one place: what ``attrprompt generate`` writes and how it is read back.

``data/train-*.parquet`` (the rows), ``recipe.yaml``, ``generation.json`` (the generation record, local
paths shortened as on the card, and the run's stats) and the card ``README.md`` with its PNG plots
beside it (written by ``card/``).
The readers end in one line naming the caller's parameter (``field``) when a folder is not a
generated folder, so ``card``, ``compare`` and ``publish`` refuse such folders the same way.
"""

from __future__ import annotations

import datetime
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from attrprompt_builder.errors import ConfigError
from attrprompt_builder.generation.stats import BuildStats
from attrprompt_builder.recipe.model import Recipe, load_recipe

if TYPE_CHECKING:
    import datasets

    from attrprompt_builder.dataset.builder import AttrPromptBuilder

__all__ = [
    "CARD_FILE",
    "DATA_DIR",
    "DATA_FILES_PATTERN",
    "GENERATION_FILE",
    "GenerationRecord",
    "PLOT_PATTERN",
    "RECIPE_FILE",
    "data_files",
    "plot_files",
    "read_generation",
    "read_recipe",
    "read_rows",
    "require_data_files",
    "write_folder",
]


DATA_DIR = "data"
_SPLIT = "train"  # the one split; shard names start with it
# The card's ``configs`` point the Hub (and ``load_dataset``) at the shards with this pattern.
DATA_FILES_PATTERN = f"{DATA_DIR}/{_SPLIT}-*"
RECIPE_FILE = "recipe.yaml"
GENERATION_FILE = "generation.json"
CARD_FILE = "README.md"
PLOT_PATTERN = "*.png"
_MAX_SHARD_BYTES = 500 * 1024 * 1024
_NOT_GENERATED = "pass a folder `attrprompt generate` wrote"


@dataclass(frozen=True)
class GenerationRecord:
    """``generation.json``: the settings of the build (as the card shows them) and its stats, if recorded."""

    generation: dict[str, Any]
    stats: BuildStats | None


def write_folder(dataset: datasets.Dataset, folder: Path, *, builder: AttrPromptBuilder, stats: BuildStats | None) -> Path:
    """Write parquet shards, ``recipe.yaml`` and ``generation.json``; the card is written by ``card.write_card``."""
    data_dir = folder / DATA_DIR
    data_dir.mkdir(parents=True, exist_ok=True)
    for stale in data_dir.glob(f"{_SPLIT}-*.parquet"):
        stale.unlink()
    num_shards = max(1, math.ceil(dataset.data.nbytes / _MAX_SHARD_BYTES))
    for index in range(num_shards):
        shard = dataset.shard(num_shards=num_shards, index=index, contiguous=True)
        shard.to_parquet(str(data_dir / f"{_SPLIT}-{index:05d}-of-{num_shards:05d}.parquet"))
    (folder / RECIPE_FILE).write_text(builder.config.recipe.to_yaml(), encoding="utf-8")
    generation = builder.generation_info()
    generation["date"] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    generation["license"] = builder.config.license or builder.config.recipe.license
    # ``stats`` is what this run did; on a datasets cache hit it sent nothing, and ``build_stats`` keeps
    # what the build that made the rows spent.
    record: dict[str, Any] = {
        "generation": generation,
        "stats": stats.to_dict() if stats else None,
        "cache_hit": builder.cache_hit,
    }
    if builder.cache_hit:
        built = builder.built_stats
        record["build_stats"] = built.to_dict() if built else None
    (folder / GENERATION_FILE).write_text(json.dumps(record, indent=2, sort_keys=True), encoding="utf-8")
    return folder


def data_files(folder: Path) -> list[Path]:
    """The folder's parquet shards in name order (the order of the rows); empty when there are none."""
    return sorted(path for path in (folder / DATA_DIR).glob("*.parquet") if path.is_file())


def plot_files(folder: Path) -> list[Path]:
    """The PNGs beside the card, in name order."""
    return sorted(path for path in folder.glob(PLOT_PATTERN) if path.is_file())


def require_data_files(folder: Path, *, field: str) -> list[Path]:
    """``data_files``, refusing in one line a path that is not a folder or has no shards."""
    if not folder.is_dir():
        raise ConfigError(f"{field}: {str(folder)!r} is not a folder; {_NOT_GENERATED}")
    shards = data_files(folder)
    if not shards:
        raise ConfigError(f"{field}: {str(folder)!r} has no {DATA_DIR}/*.parquet files; {_NOT_GENERATED}")
    return shards


def read_rows(shards: list[Path]) -> datasets.Dataset:
    """The rows of ``shards`` as one Dataset, with the features stored in their schema (ClassLabel names)."""
    import datasets
    import pyarrow as pa
    import pyarrow.parquet as pq

    # Reading with pyarrow instead of load_dataset writes no cache next to the user's data.
    return datasets.Dataset(pa.concat_tables([pq.read_table(shard) for shard in shards]))


def read_recipe(folder: Path, *, field: str) -> Recipe:
    path = folder / RECIPE_FILE
    if not path.is_file():
        raise ConfigError(f"{field}: {str(folder)!r} has no {RECIPE_FILE}; {_NOT_GENERATED}")
    return load_recipe(path)


def read_generation(folder: Path, *, field: str) -> GenerationRecord:
    path = folder / GENERATION_FILE
    if not path.is_file():
        raise ConfigError(f"{field}: {str(folder)!r} has no {GENERATION_FILE}; {_NOT_GENERATED}")
    fix = "regenerate the folder or fix the file"
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ConfigError(f"{field}: {str(path)!r} is not valid JSON ({err.msg}); {fix}") from err
    if not isinstance(record, dict):
        raise ConfigError(f"{field}: {str(path)!r} holds a {type(record).__name__}, not a JSON object; {fix}")
    stats = BuildStats.from_dict(record["stats"]) if record.get("stats") else None
    return GenerationRecord(generation=record.get("generation") or {}, stats=stats)
