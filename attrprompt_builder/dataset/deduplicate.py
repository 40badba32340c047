"""``deduplicate(ds)``: the near-duplicate filter applied to any ``datasets.Dataset``, in order, with every column."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from datasets import Dataset

from attrprompt_builder.dataset.schema import (
    LABEL_COLUMN,
    LabelColumn,
    find_label_column,
)
from attrprompt_builder.errors import ConfigError
from attrprompt_builder.filters.dedup.embedders import Embedder
from attrprompt_builder.filters.dedup.filter import DedupStats, NearDuplicateFilter
from attrprompt_builder.recipe.model import RESERVED_NAMES

__all__ = ["deduplicate"]

_ONE_GROUP = "all"  # the group name when rows are compared across the whole dataset
_WINDOW = 2048  # rows embedded in one encoder call: sorted by length over the window, little padding


def deduplicate(
    dataset: Dataset,
    *,
    column: str = "text",
    threshold: float | None = None,
    by: str | None = "label",
    embedder: str | Embedder | None = None,
    embed_precision: str = "auto",
    attributes: Sequence[str] | None = None,
    drop_cross_group: bool = False,
    batch_size: int = 256,
    return_stats: bool = False,
) -> Dataset | tuple[Dataset, DedupStats]:
    """Drop near-duplicate rows, keeping the first of each group, in order and with every column.

    ``by="label"`` compares rows within a class: the ``label`` column, or for multi-label data
    (a ``labels`` list column and no ``label``) the set of labels, so rows with labels [a, b] are
    compared with rows labelled exactly {a, b}; a dataset with neither is one group. ``by=None``
    compares across the whole dataset; any other ``by`` names a column. ``threshold=None`` is the
    embedder's measured default (``MINILM_THRESHOLD`` or ``NGRAM_THRESHOLD``); rows at or above it
    are duplicates. Near-duplicates across groups are counted in the stats (and dropped with
    ``drop_cross_group=True``). ``attributes`` are the columns whose removed values are counted
    in ``DedupStats.removed_by_value`` (default: the string columns the builder does not write
    itself). ``embed_precision``: "auto" (bf16 where the CPU or GPU supports it) or "fp32" (exact).
    ``batch_size`` rows are decided at a time; the encoder sees windows of at least ``_WINDOW`` rows,
    so it pads little. ``return_stats=True`` returns ``(dataset, DedupStats)``.
    """
    from datasets.utils import tqdm

    if column not in dataset.column_names:
        raise ConfigError(f"column: {column!r} is not a column of the dataset (it has {dataset.column_names}); pass column=")
    if batch_size < 1:
        raise ConfigError(f"batch_size: got {batch_size!r}; use a positive number of rows per embedding call, e.g. 256")
    group_column = _group_column(dataset, by)
    group = LabelColumn.of(dataset.features, group_column) if group_column else None
    counted = list(attributes) if attributes is not None else _attribute_columns(dataset, column, group_column)
    missing = [name for name in counted if name not in dataset.column_names]
    if missing:
        raise ConfigError(f"attributes: {missing} are not columns of the dataset; pass existing column names")
    dedup = NearDuplicateFilter(
        embedder=embedder, precision=embed_precision, threshold=threshold, drop_cross_group=drop_cross_group
    )
    wanted = list(dict.fromkeys([column, *([group_column] if group_column else []), *counted]))
    kept_rows: list[int] = []
    start = 0
    window = max(_WINDOW, batch_size)
    with tqdm(total=len(dataset), desc="Removing near-duplicates", unit="rows") as bar:
        for rows in dataset.select_columns(wanted).with_format(None).iter(batch_size=window):
            texts = rows[column]
            if any(text is None for text in texts):
                row = start + next(i for i, text in enumerate(texts) if text is None)
                raise ConfigError(f"column {column!r}: row {row} is empty (None); fill or drop empty rows first")
            groups = [_ONE_GROUP] * len(texts) if group is None else [_group_name(value, group) for value in rows[group.name]]
            dedup.prefetch(texts, groups)
            for offset in range(0, len(texts), batch_size):
                end = offset + batch_size
                for position, decision in enumerate(dedup.check(texts[offset:end], groups[offset:end]), offset):
                    if decision.keep:
                        kept_rows.append(start + position)
                        continue
                    for name in counted:
                        dedup.stats.removed_by_value.setdefault(name, Counter())[str(rows[name][position])] += 1
                bar.update(len(texts[offset:end]))
            start += len(texts)
    result = dataset if len(kept_rows) == len(dataset) else dataset.select(kept_rows)
    return (result, dedup.stats) if return_stats else result


def _group_column(dataset: Dataset, by: str | None) -> str | None:
    if by is None:
        return None
    if by == LABEL_COLUMN:
        labels = find_label_column(dataset.features)
        return None if labels is None else labels.name
    if by not in dataset.column_names:
        raise ConfigError(
            f"by: {by!r} is not a column of the dataset (it has {dataset.column_names}); pass by=None to compare all rows"
        )
    return by


def _group_name(value: Any, column: LabelColumn) -> str:
    """A class name; for a list of labels, the label set: sorted, so [a, b] and [b, a] are one group."""
    return " + ".join(column.names_of(sorted(value) if isinstance(value, list) else value))


def _attribute_columns(dataset: Dataset, column: str, group_column: str | None) -> list[str]:
    skipped = {column, group_column, *RESERVED_NAMES}
    return [
        name
        for name, feature in dataset.features.items()
        if name not in skipped and getattr(feature, "dtype", None) in ("string", "large_string")
    ]
