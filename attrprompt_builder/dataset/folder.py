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
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from attrprompt_builder.errors import ConfigError, one_line
from attrprompt_builder.filters.dedup.transformer import PRECISIONS
from attrprompt_builder.filters.dedup.vectors import VectorStore, store_beside, text_hash
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
    "MARKER_FILE",
    "PLOT_PATTERN",
    "RECIPE_FILE",
    "REPLIES_FOLDER",
    "VECTORS_FILE",
    "check_output_folder",
    "data_files",
    "is_generated_folder",
    "plot_files",
    "read_generation",
    "read_recipe",
    "read_rows",
    "recorded_embedder",
    "recorded_precision",
    "require_data_files",
    "require_writable_folder",
    "vector_store",
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
# What stays on this machine (publish never uploads it): that this tool wrote the folder, and the
# embedder exactly as given, which generation.json shortens when it is a local folder.
MARKER_FILE = ".attrprompt.json"
# Where a Ray build's workers persist paid replies by default (hidden: load_dataset and publish never read
# it); the driver copies them into its journal. A folder holding only these is a build that died: ours.
REPLIES_FOLDER = ".attrprompt-replies"
# The embedding of every row's text (filters/dedup/vectors.py), so the card and ``compare`` embed nothing
# the build already embedded. Local like the marker: publish never uploads it; hidden, so load_dataset ignores it.
VECTORS_FILE = ".attrprompt-vectors.sqlite"
# Where a Ray build's workers persist paid replies, inside its output folder (hidden: load_dataset never reads
# it, publish never uploads it); the driver copies them into its journal. Made before the rows exist, so a
# folder holding only it is an interrupted build of ours.
REPLIES_FOLDER = ".attrprompt-replies"
_MAX_SHARD_BYTES = 500 * 1024 * 1024
_NOT_GENERATED = "pass a folder `attrprompt generate` wrote"


@dataclass(frozen=True)
class GenerationRecord:
    """``generation.json``: the settings of the build (as the card shows them) and its stats, if recorded.

    ``stats`` is what the run that wrote the folder did (nothing sent on a datasets cache hit);
    ``built`` what the build that made the rows spent, that run's or an earlier one's.
    """

    generation: dict[str, Any]
    stats: BuildStats | None
    built: BuildStats | None = None


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
    _write_marker(folder, embedder=builder.config.embedder, precision=builder.config.embed_precision)
    _write_vectors(dataset, folder, build_store=store_beside(builder.journal_path))
    return folder


def _write_vectors(dataset: datasets.Dataset, folder: Path, *, build_store: Path) -> None:
    """Copy the build's vectors of the rows' texts into the folder (none when the build embedded nothing)."""
    for suffix in ("", "-wal", "-shm"):  # a regenerated folder keeps only its own rows' vectors
        (folder / (VECTORS_FILE + suffix)).unlink(missing_ok=True)
    if not build_store.is_file() or "text" not in dataset.column_names:
        return
    keys = [text_hash(text) for text in dataset["text"] if isinstance(text, str)]
    with VectorStore(build_store) as source, VectorStore(folder / VECTORS_FILE) as target:
        source.copy_to(target, keys)


def vector_store(folder: Path, *, create: bool) -> VectorStore | None:
    """The folder's store of row vectors; None when it has none and ``create`` is False."""
    path = folder / VECTORS_FILE
    return VectorStore(path) if create or path.is_file() else None


def _write_marker(folder: Path, *, embedder: str | None, precision: str) -> None:
    if embedder is not None and Path(embedder).expanduser().is_dir():
        embedder = str(Path(embedder).expanduser().resolve())  # `attrprompt card` may run from another directory
    marker = {"written_by": "attrprompt-builder", "embedder": embedder, "embed_precision": precision}
    (folder / MARKER_FILE).write_text(json.dumps(marker, indent=2) + "\n", encoding="utf-8")


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
    built = record.get("build_stats") if record.get("cache_hit") else record.get("stats")
    return GenerationRecord(
        generation=record.get("generation") or {}, stats=stats, built=BuildStats.from_dict(built) if built else None
    )


def _read_marker(folder: Path) -> dict[str, Any] | None:
    try:
        marker = json.loads((folder / MARKER_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return marker if isinstance(marker, dict) and marker.get("written_by") == "attrprompt-builder" else None


def is_generated_folder(folder: Path) -> bool:
    """Whether ``attrprompt generate`` wrote ``folder``: its marker, or (folders of 0.1.0) its generation.json."""
    if _read_marker(folder) is not None or (folder / REPLIES_FOLDER).is_dir():
        return True
    try:
        record = json.loads((folder / GENERATION_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(record, dict) and isinstance(record.get("generation"), dict)


def recorded_embedder(folder: Path, *, field: str) -> str | None:
    """The embedder the folder's build used, as ``load_embedder`` takes it (None: the default MiniLM).

    Raises ``ConfigError`` when generation.json names it only in a form that cannot be loaded here
    (a shortened local path, or a folder this machine does not have).
    """
    marker = _read_marker(folder)
    if marker is not None and "embedder" in marker:
        return marker["embedder"]
    named = read_generation(folder, field=field).generation.get("embedder")
    if named is None or named == "ngram" or Path(str(named)).expanduser().is_dir():
        return named
    if not re.fullmatch(r"[\w.-]+(/[\w.-]+)?", str(named)):  # not a Hub id: a folder that is not here
        raise ConfigError(
            f"{field}: {GENERATION_FILE} names the embedder {named!r}, which is not a folder on this machine; "
            "pass embedder= its folder, or embedder='none' to leave out pairwise similarity"
        )
    return named


def recorded_precision(folder: Path) -> str:
    """The encoder precision the folder's build used ("auto" for folders written before it was recorded)."""
    marker = _read_marker(folder) or {}
    precision = marker.get("embed_precision")
    return precision if precision in PRECISIONS else "auto"


def check_output_folder(output_dir: str | Path, *, overwrite: bool, field: str = "output_dir") -> Path:
    """The folder to write, refused before any work when writing it would lose or fail.

    Refused: an empty path (the current directory, where a project's README.md would be replaced),
    a file, a folder that cannot be written, and a non-empty folder this tool did not write unless
    ``overwrite``. A folder written by ``attrprompt generate`` is regenerated in place.
    """
    if not str(output_dir).strip():
        raise ConfigError(f"{field}: got {str(output_dir)!r}; pass the folder to write, e.g. {field}='agnews-synthetic'")
    folder = Path(output_dir).expanduser()
    try:
        occupied = folder.is_dir() and any(entry.name != REPLIES_FOLDER for entry in folder.iterdir())
    except OSError as err:
        raise ConfigError(f"{field}: cannot read {str(folder)!r} ({err.strerror}); pass a folder you can write to") from err
    if occupied and not overwrite and not is_generated_folder(folder):
        raise ConfigError(
            f"{field}: {str(folder)!r} is not empty and was not written by attrprompt; choose a new folder, "
            "or pass overwrite=True to write the dataset into it (files of the same name are replaced)"
        )
    require_writable_folder(folder, field=field)
    return folder


def require_writable_folder(folder: Path, *, field: str) -> None:
    """Refuse in one line a folder that cannot be created or written; leaves no folder it had to create."""
    existing = folder.absolute()
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise ConfigError(f"{field}: cannot write to {str(folder)!r}: {str(existing)!r} is a file; pass a folder path")
    created = [parent for parent in (folder.absolute(), *folder.absolute().parents) if not parent.exists()]
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as err:
        reason = err.strerror or one_line(err)
        raise ConfigError(f"{field}: cannot write to {str(folder)!r} ({reason}); pass a folder you can write to") from err
    finally:
        for parent in created:  # deepest first
            try:
                parent.rmdir()
            except OSError:
                break
