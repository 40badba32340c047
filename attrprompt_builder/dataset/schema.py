"""What a generated dataset looks like: its features, where its labels are and how they read, and its citation."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

import datasets

from attrprompt_builder.recipe.model import Recipe
from attrprompt_builder.verify.judge import LABEL_CHECK_COLUMN

__all__ = [
    "CITATION",
    "LABEL_CHECK_COLUMN",
    "LABEL_COLUMN",
    "LABEL_COLUMNS",
    "LabelColumn",
    "MULTI_LABEL_COLUMN",
    "features_for",
    "find_label_column",
]

LABEL_COLUMN = "label"
MULTI_LABEL_COLUMN = "labels"
# Searched in this order, so a dataset that has both is read as single-label.
LABEL_COLUMNS = (LABEL_COLUMN, MULTI_LABEL_COLUMN)

# The one citation: DatasetInfo.citation and the card's "Citation" section both show it.
CITATION = """@inproceedings{yu2023large,
  title     = {Large Language Model as Attributed Training Data Generator: A Tale of Diversity and Bias},
  author    = {Yu, Yue and Zhuang, Yuchen and Zhang, Jieyu and Meng, Yu and Ratner, Alexander and
               Krishna, Ranjay and Shen, Jiaming and Zhang, Chao},
  booktitle = {Advances in Neural Information Processing Systems 36 (NeurIPS 2023), Datasets and Benchmarks Track},
  year      = {2023},
  eprint    = {2306.15895},
  archivePrefix = {arXiv},
  url       = {https://arxiv.org/abs/2306.15895}
}"""


def features_for(recipe: Recipe, *, label_check: bool = False) -> datasets.Features:
    """``text``, the label column (``label``, or ``labels`` when multi-label), a string column per attribute, ``prompt``;
    with ``label_check``, ``label_check``: the label names the check gives the text (a row is flagged when they
    differ from its own)."""
    list_feature = getattr(datasets, "List", None) or datasets.Sequence  # datasets < 4 spells List "Sequence"
    if recipe.multi_label:
        label_feature = {MULTI_LABEL_COLUMN: list_feature(datasets.ClassLabel(names=recipe.label_names))}
    else:
        label_feature = {LABEL_COLUMN: datasets.ClassLabel(names=recipe.label_names)}
    return datasets.Features(
        {
            "text": datasets.Value("string"),
            **label_feature,
            **{name: datasets.Value("string") for name in recipe.attribute_names},
            "prompt": datasets.Value("string"),
            **({LABEL_CHECK_COLUMN: list_feature(datasets.Value("string"))} if label_check else {}),
        }
    )


@dataclass(frozen=True)
class LabelColumn:
    """A column of labels and how its stored values read as class names.

    ``multi_label`` columns hold a list of labels per row; ``item`` is the feature of one label
    (the list's item feature for those). Ids of a ``ClassLabel`` read as its names; any other
    value, an id out of range included (``-1`` marks an unlabelled row), reads as ``str(value)``.
    """

    name: str
    multi_label: bool
    item: Any

    @classmethod
    def of(cls, features: datasets.Features, name: str) -> LabelColumn:
        feature = features[name]
        inner = getattr(feature, "feature", None)  # List, LargeList and (datasets < 4) Sequence all have one
        return cls(name=name, multi_label=inner is not None, item=feature if inner is None else inner)

    @cached_property
    def class_names(self) -> tuple[str, ...] | None:
        """The ``ClassLabel``'s names in id order, or ``None`` when the column stores names (or anything else)."""
        return tuple(self.item.names) if isinstance(self.item, datasets.ClassLabel) else None

    def names_of(self, value: Any) -> tuple[str, ...]:
        """One row's label names, in stored order: a one-tuple for single-label rows; none for a missing list."""
        if self.multi_label:
            return tuple(self._name(label) for label in value or ())
        return (self._name(value),)

    def _name(self, value: Any) -> str:
        names = self.class_names
        if names and isinstance(value, int) and 0 <= value < len(names):
            return names[value]
        return str(value)


def find_label_column(features: datasets.Features) -> LabelColumn | None:
    """The ``label`` column, else the ``labels`` column; ``None`` when the dataset has neither."""
    name = next((name for name in LABEL_COLUMNS if name in features), None)
    return None if name is None else LabelColumn.of(features, name)
