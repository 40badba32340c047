"""What a generated dataset looks like: its features, and the paper's citation that goes with it."""

from __future__ import annotations

import datasets

from attrprompt_builder.recipe.model import Recipe

__all__ = ["CITATION", "features_for"]

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


def features_for(recipe: Recipe) -> datasets.Features:
    """``text``, the label column (``label``, or ``labels`` for multi-label recipes), one string column per attribute, ``prompt``."""
    if recipe.multi_label:
        list_feature = getattr(datasets, "List", None) or datasets.Sequence  # datasets < 4 spells List "Sequence"
        label_feature = {"labels": list_feature(datasets.ClassLabel(names=recipe.label_names))}
    else:
        label_feature = {"label": datasets.ClassLabel(names=recipe.label_names)}
    return datasets.Features(
        {
            "text": datasets.Value("string"),
            **label_feature,
            **{name: datasets.Value("string") for name in recipe.attribute_names},
            "prompt": datasets.Value("string"),
        }
    )
