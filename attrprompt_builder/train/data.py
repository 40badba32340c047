"""Turn the datasets ``train_classifier`` is given into texts and label targets, by label *name*.

Kept apart from the training loop because this is where user data is checked: a missing column, an
unlabelled row, a label name the training set does not know each end in one line naming the field
(``data`` or ``eval_data``) and the fix; labels are never silently remapped. Also holds the
deterministic stratified hold-out used when no eval set is given.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeAlias

import numpy as np
from datasets import Dataset, DatasetDict, Value, load_dataset

from attrprompt_builder.dataset.schema import LabelColumn, find_label_column
from attrprompt_builder.errors import ConfigError, one_line

__all__ = [
    "DataArg",
    "HELD_OUT_FRACTION",
    "encode_labels",
    "label_schema",
    "load_data",
    "load_eval",
    "load_eval_rows",
    "row_label_names",
    "select_split",
    "stratified_holdout",
    "texts_of",
]

HELD_OUT_FRACTION = 0.1
_EVAL_SPLIT_FALLBACKS = ("validation", "test")
_FILE_BUILDERS = {".parquet": "parquet", ".csv": "csv", ".json": "json", ".jsonl": "json"}

DataArg: TypeAlias = str | Path | Dataset | DatasetDict


def load_data(source: DataArg, *, field: str) -> Dataset | DatasetDict:
    if isinstance(source, (Dataset, DatasetDict)):
        return source
    path = Path(source)
    builder = _FILE_BUILDERS.get(path.suffix.lower()) if path.is_file() else None
    try:
        return load_dataset(builder, data_files=str(path)) if builder else load_dataset(str(source))
    except (OSError, ValueError) as err:
        raise ConfigError(
            f"{field}: cannot load {str(source)!r} as a dataset ({one_line(err)}); pass a generated "
            "folder, a dataset folder or file, or a reachable Hub dataset id"
        ) from err


def select_split(loaded: Dataset | DatasetDict, *, field: str, preferred: Sequence[str]) -> Dataset:
    if isinstance(loaded, Dataset):
        return loaded
    split = next((name for name in preferred if name in loaded), None)
    if split is None and len(loaded) == 1:
        split = next(iter(loaded))
    if split is None:
        raise ConfigError(
            f"{field}: no split named {' or '.join(map(repr, preferred))} among {sorted(loaded)}; "
            "pick one (eval_split=) or pass a folder with one split"
        )
    return loaded[split]


def load_eval(eval_data: DataArg, *, data: DataArg, eval_split: str) -> tuple[Dataset, str]:
    preferred = (eval_split, *(name for name in _EVAL_SPLIT_FALLBACKS if name != eval_split))
    loaded = load_data(eval_data, field="eval_data")
    eval_ds = select_split(loaded, field="eval_data", preferred=preferred)
    if isinstance(eval_data, (Dataset, DatasetDict)):
        return eval_ds, "eval_data (a Dataset given in code)"
    split = str(eval_ds.split) if eval_ds.split is not None else "?"
    local = isinstance(data, (str, Path)) and Path(data).exists()
    if local and Path(data).resolve() == Path(eval_data).resolve() and split == "train":
        raise ConfigError(
            f"eval_data: {str(eval_data)!r} is the training data; pass a held-out set labelled "
            "by people, or omit eval_data to hold out 10% of the training rows"
        )
    return eval_ds, f"{eval_data} (split {split})"


def load_eval_rows(
    eval_data: DataArg, *, data: DataArg, eval_split: str, label2id: dict[str, int], multi_label: bool, trained_on: str
) -> tuple[list[str], np.ndarray, str]:
    """The eval set's texts, its labels encoded with ``label2id``, and where it came from; a set of the other kind
    (multi-label against single-label) than ``trained_on`` (what the labels were learned from) is one error line."""
    eval_ds, source = load_eval(eval_data, data=data, eval_split=eval_split)
    labels, _ = label_schema(eval_ds, field="eval_data")
    if labels.multi_label != multi_label:
        kinds = ("single-label", "multi-label")
        raise ConfigError(
            f"eval_data: its '{labels.name}' column is {kinds[labels.multi_label]} but {trained_on} is "
            f"{kinds[multi_label]}; pass an eval set of the same kind"
        )
    texts = texts_of(eval_ds, field="eval_data")
    targets = encode_labels(
        row_label_names(eval_ds, labels, field="eval_data"), label2id, multi_label=multi_label, field="eval_data"
    )
    return texts, targets, source


def label_schema(ds: Dataset, *, field: str) -> tuple[LabelColumn, list[str]]:
    """The label column (which one, multi-label or not) and the class names in id order."""
    if len(ds) == 0:
        raise ConfigError(f"{field}: the split has no rows; pass a dataset with examples")
    labels = find_label_column(ds.features)
    if labels is None or "text" not in ds.column_names:
        raise ConfigError(
            f"{field}: needs a 'text' column and a 'label' (or multi-label 'labels') column, "
            f"found {ds.column_names}; rename the columns"
        )
    if labels.class_names is not None:
        return labels, list(labels.class_names)
    if isinstance(labels.item, Value) and labels.item.dtype in ("string", "large_string"):
        values = ds[labels.name]
        names = {name for row in values for name in row or ()} if labels.multi_label else set(values)
        return labels, sorted(name for name in names if name is not None)
    raise ConfigError(
        f"{field}: column '{labels.name}' is {ds.features[labels.name]} without class names; cast it "
        "to ClassLabel(names=[...]) (or strings) so labels can be matched by name"
    )


def row_label_names(ds: Dataset, labels: LabelColumn, *, field: str) -> list[Any]:
    """Each row's label name (or list of names, multi-label), read through the column's own ClassLabel."""
    values = list(ds[labels.name])
    missing = [i for i, value in enumerate(values) if value is None or (not labels.multi_label and value == -1)]
    if missing:
        raise ConfigError(f"{field}: {len(missing)} row(s) have no label (first: row {missing[0]}); drop or label them")
    if labels.multi_label:
        return [list(labels.names_of(row)) for row in values]
    return [labels.names_of(value)[0] for value in values]


def encode_labels(row_names: list[Any], label2id: dict[str, int], *, multi_label: bool, field: str) -> np.ndarray:
    """Class ids (single-label) or float multi-hot rows, using the training label ids."""
    seen = {name for row in row_names for name in row} if multi_label else set(row_names)
    unknown = sorted(seen - label2id.keys())
    if unknown:
        by_case = {name.lower(): name for name in label2id}
        hint = "".join(f"; did you mean {by_case[name.lower()]!r} for {name!r}?" for name in unknown if name.lower() in by_case)
        raise ConfigError(
            f"{field}: label name(s) {unknown} are not among the training labels "
            f"{sorted(label2id)}{hint}; relabel or drop those rows"
        )
    if not multi_label:
        return np.array([label2id[name] for name in row_names], dtype=np.int64)
    targets = np.zeros((len(row_names), len(label2id)), dtype=np.float32)
    for row, names in enumerate(row_names):
        targets[row, [label2id[name] for name in names]] = 1.0
    return targets


def texts_of(ds: Dataset, *, field: str) -> list[str]:
    texts = list(ds["text"])
    bad = [i for i, text in enumerate(texts) if not isinstance(text, str)]
    if bad:
        raise ConfigError(
            f"{field}: {len(bad)} row(s) have a 'text' that is not a string (first: row {bad[0]}); drop or fix them"
        )
    return texts


def stratified_holdout(targets: np.ndarray, *, multi_label: bool, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic stratified split: (train rows, eval rows), eval about 10% of the rows.

    Strata are the classes (single-label) or label combinations, with combinations seen only once
    pooled together (multi-label). Each stratum gives its proportional share (largest remainder)
    and always keeps at least one row for training.
    """
    keys = [tuple(np.flatnonzero(row)) for row in targets] if multi_label else [int(t) for t in targets]
    strata: dict[Any, list[int]] = {}
    for row, key in enumerate(keys):
        strata.setdefault(key, []).append(row)
    if multi_label:
        singles = [rows[0] for rows in strata.values() if len(rows) == 1]
        strata = {key: rows for key, rows in strata.items() if len(rows) > 1}
        if singles:
            strata["rare combinations"] = singles
    groups = [rows for rows in strata.values() if len(rows) >= 2]
    if not groups:
        raise ConfigError(f"data: {len(targets)} row(s) are too few to hold out an eval split; pass eval_data")
    wanted = max(1, round(HELD_OUT_FRACTION * len(targets)))
    quotas = [HELD_OUT_FRACTION * len(rows) for rows in groups]
    take = [min(math.floor(quota), len(rows) - 1) for quota, rows in zip(quotas, groups)]
    by_remainder = sorted(range(len(groups)), key=lambda g: -(quotas[g] - math.floor(quotas[g])))
    for g in by_remainder * 2:  # second pass when capped strata could not take their share
        if sum(take) >= wanted:
            break
        if take[g] < len(groups[g]) - 1:
            take[g] += 1
    rng = np.random.default_rng(seed)
    held_out = [row for rows, k in zip(groups, take) for row in rng.permutation(rows)[:k]]
    eval_index = np.array(sorted(held_out), dtype=np.int64)
    train_index = np.setdiff1d(np.arange(len(targets)), eval_index)
    return train_index, eval_index
