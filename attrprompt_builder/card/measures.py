"""Measures of a generated dataset's texts (diversity, coverage, lengths), for the card and ``compare``.

The constants that fix how a measure is taken (INGF's n, the APS subsample) live here too, so the
card and ``compare`` report the same quantity. Every function reads a ``datasets.Dataset`` (or
plain lists) and returns numbers; ``format_measure`` is how both show one.
Text measures tokenise with ``text.lower().split()`` (whitespace, lower-cased), so they are cheap,
language-agnostic and reproducible without a tokenizer download. Definitions (also in the card):

- distinct-n = distinct n-grams in the corpus / n-grams in the corpus (n-grams never cross texts).
- INGF-n (inter-sample n-gram frequency) = mean, over the distinct n-grams of the corpus, of the
  number of samples containing that n-gram. 1.0 means no n-gram is shared by two samples; higher
  means the same phrases recur across samples (less diverse). It grows with the sample count, so
  compare datasets of similar size.
- APS (average pairwise similarity) = mean cosine similarity over unordered pairs of distinct
  samples; "within" pools the pairs of samples with the same label (the same label set for
  multi-label data), "across" the pairs with different labels.
- combination share = sum over classes of the distinct combinations of listed attribute values
  seen in that class / sum over classes of the possible combinations (the product of the class's
  value-list sizes).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from math import prod
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from attrprompt_builder.dataset.schema import find_label_column
from attrprompt_builder.filters.dedup.vectors import VectorStore, vectors_for

if TYPE_CHECKING:
    import datasets

    from attrprompt_builder.recipe.model import Recipe

__all__ = [
    "APS_MAX_ROWS",
    "ClassCoverage",
    "CombinationCoverage",
    "DISTINCT_NS",
    "EmbedderLike",
    "INGF_N",
    "LengthStats",
    "MISSING",
    "SimilarityStats",
    "attribute_dimensions",
    "attribute_value_counts",
    "average_pairwise_similarity",
    "class_value_coverage",
    "column",
    "combination_coverage",
    "distinct_n",
    "format_measure",
    "ingf",
    "label_distribution",
    "mention_counts",
    "pairwise_similarity",
    "row_labels",
    "subsample_indices",
    "summarize_word_counts",
    "tokenize",
    "vocabulary_size",
    "word_counts",
]


DISTINCT_NS = (1, 2)
INGF_N = 3
# MiniLM embeds roughly 15-30 texts a second on two CPU cores; 2000 rows (~2M pairs) pin the mean
# similarity to about +-0.002, which more rows would not change at the precision shown.
APS_MAX_ROWS = 2000
MISSING = "n/a"  # how a measure that could not be taken is shown (no pair, no row)


def format_measure(value: float | None, digits: int = 3) -> str:
    return MISSING if value is None else f"{value:.{digits}f}"


class EmbedderLike(Protocol):
    """What APS needs from ``attrprompt_builder.filters.dedup.embedders.Embedder``."""

    name: str
    dim: int

    def encode(self, texts: list[str]) -> np.ndarray: ...


# -- columns and labels -----------------------------------------------------------------------------


def column(dataset: datasets.Dataset, name: str) -> list[Any]:
    """One column as Python values, honouring an indices mapping (``select``/``shuffle``)."""
    return dataset.with_format("arrow")[name].to_pylist()


def row_labels(dataset: datasets.Dataset) -> list[tuple[str, ...]]:
    """Each row's label names (one-tuples for single-label data), decoded through ClassLabel."""
    labels = find_label_column(dataset.features)
    if labels is None:
        raise KeyError("the dataset has neither a `label` nor a `labels` column")
    return [labels.names_of(value) for value in column(dataset, labels.name)]


def label_distribution(rows: Sequence[Sequence[str]], names: Sequence[str] = ()) -> dict[str, int]:
    """Rows per label (a multi-label row counts once for each of its labels).

    Labels listed in ``names`` come first in that order, zeros included; others follow by count.
    """
    counts = Counter(label for labels in rows for label in labels)
    ordered = {name: counts.get(name, 0) for name in names}
    for label, count in counts.most_common():
        ordered.setdefault(label, count)
    return ordered


# -- lengths ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LengthStats:
    """Words per text (whitespace split)."""

    count: int
    min: int
    mean: float
    median: float
    p90: float
    max: int


def word_counts(texts: Iterable[str]) -> list[int]:
    return [len(text.split()) for text in texts]


def summarize_word_counts(counts: Sequence[int]) -> LengthStats:
    """``LengthStats`` of precomputed word counts (the percentile interpolates linearly)."""
    values = np.asarray(counts, dtype=np.float64)
    if values.size == 0:
        return LengthStats(count=0, min=0, mean=0.0, median=0.0, p90=0.0, max=0)
    return LengthStats(
        count=int(values.size),
        min=int(values.min()),
        mean=float(values.mean()),
        median=float(np.median(values)),
        p90=float(np.percentile(values, 90)),
        max=int(values.max()),
    )


# -- attribute coverage -----------------------------------------------------------------------------


def attribute_dimensions(dataset: datasets.Dataset, recipe: Recipe) -> list[str]:
    """The recipe's dimensions that the dataset has a column for (none for ``simple`` prompting)."""
    return [name for name in recipe.attribute_names if name in dataset.column_names]


def attribute_value_counts(dataset: datasets.Dataset, recipe: Recipe) -> dict[str, dict[str, int]]:
    """For each dimension, every drawn value with its row count, most drawn first."""
    result: dict[str, dict[str, int]] = {}
    for dimension in attribute_dimensions(dataset, recipe):
        counts = Counter(v for v in column(dataset, dimension) if v is not None)
        result[dimension] = dict(sorted(counts.items(), key=lambda item: (-item[1], item[0])))
    return result


@dataclass(frozen=True)
class ClassCoverage:
    """How one class-dependent dimension's value list was used by one class."""

    label: str
    counts: dict[str, int]  # every value of the class's list, in list order, zeros included
    unexpected: dict[str, int]  # drawn values that are not in the class's list

    @property
    def never_drawn(self) -> list[str]:
        return [value for value, count in self.counts.items() if count == 0]

    @property
    def share_covered(self) -> float:
        return (len(self.counts) - len(self.never_drawn)) / len(self.counts) if self.counts else 0.0


def class_value_coverage(
    dataset: datasets.Dataset, recipe: Recipe, dimension: str, *, rows: Sequence[Sequence[str]] | None = None
) -> list[ClassCoverage]:
    """Class x value counts of ``dimension`` against each class's value list (catch-all included).

    A multi-label row counts for each of its labels. ``rows`` reuses labels from ``row_labels``.
    """
    rows = row_labels(dataset) if rows is None else rows
    drawn: dict[str, Counter] = {label: Counter() for label in recipe.label_names}
    for labels, value in zip(rows, column(dataset, dimension), strict=True):
        if value is None:
            continue
        for label in labels:
            drawn.setdefault(label, Counter())[value] += 1
    coverage = []
    for label, counts in drawn.items():
        expected = recipe.values_for(dimension, label) if label in recipe.label_names else ()
        coverage.append(
            ClassCoverage(
                label=label,
                counts={value: counts.get(value, 0) for value in expected},
                unexpected={value: count for value, count in counts.most_common() if value not in expected},
            )
        )
    return coverage


@dataclass(frozen=True)
class CombinationCoverage:
    """Distinct attribute combinations seen vs. possible, per class and summed."""

    per_class: dict[str, tuple[int, int]]  # label -> (seen, possible)

    @property
    def seen(self) -> int:
        return sum(seen for seen, _ in self.per_class.values())

    @property
    def possible(self) -> int:
        return sum(possible for _, possible in self.per_class.values())

    @property
    def share(self) -> float:
        return self.seen / self.possible if self.possible else 0.0


def combination_coverage(
    dataset: datasets.Dataset, recipe: Recipe, *, rows: Sequence[Sequence[str]] | None = None
) -> CombinationCoverage:
    """Distinct combinations of listed values seen per class / the product of its list sizes.

    A row counts for each of its labels; a row with a missing value, or a value outside the
    class's list, is no combination of that class (so the share never exceeds 1).
    """
    dimensions = attribute_dimensions(dataset, recipe)
    if not dimensions:
        return CombinationCoverage(per_class={})
    rows = row_labels(dataset) if rows is None else rows
    allowed = {label: [set(recipe.values_for(d, label)) for d in dimensions] for label in recipe.label_names}
    seen: dict[str, set[tuple[Any, ...]]] = {label: set() for label in recipe.label_names}
    combinations = zip(*(column(dataset, d) for d in dimensions), strict=True)
    for labels, combination in zip(rows, combinations, strict=True):
        for label in labels:
            if label in allowed and all(v in values for v, values in zip(combination, allowed[label], strict=True)):
                seen[label].add(combination)
    per_class = {label: (len(seen[label]), prod(len(values) for values in allowed[label])) for label in recipe.label_names}
    return CombinationCoverage(per_class=per_class)


# -- lexical diversity ------------------------------------------------------------------------------


def tokenize(text: str) -> list[str]:
    return text.lower().split()


def _ngrams(tokens: list[str], n: int) -> Iterable[tuple[str, ...]]:
    return zip(*(tokens[i:] for i in range(n)), strict=False)  # stops at the shortest: the last n-gram


def vocabulary_size(texts: Iterable[str]) -> int:
    """Distinct lower-cased whitespace tokens over all texts."""
    return len({token for text in texts for token in tokenize(text)})


def distinct_n(texts: Iterable[str], n: int) -> float:
    """Distinct n-grams / total n-grams over the corpus (0.0 when there is no n-gram)."""
    distinct: set[tuple[str, ...]] = set()
    total = 0
    for text in texts:
        grams = list(_ngrams(tokenize(text), n))
        total += len(grams)
        distinct.update(grams)
    return len(distinct) / total if total else 0.0


def ingf(texts: Iterable[str], n: int = 3) -> float:
    """Inter-sample n-gram frequency: mean number of samples each distinct n-gram occurs in."""
    document_frequency: Counter = Counter()
    for text in texts:
        document_frequency.update(set(_ngrams(tokenize(text), n)))
    return sum(document_frequency.values()) / len(document_frequency) if document_frequency else 0.0


def mention_counts(texts: Iterable[str], terms: Sequence[str], *, case_sensitive: bool = False) -> dict[str, int]:
    """Number of texts mentioning each term (whole-word match; longest term wins on overlap)."""
    if not terms:
        return {}
    key = (lambda s: s) if case_sensitive else str.casefold
    by_key = {key(term): term for term in terms}
    alternatives = sorted(by_key, key=len, reverse=True)
    pattern = re.compile(
        r"(?<!\w)(?:" + "|".join(re.escape(t) for t in alternatives) + r")(?!\w)",
        0 if case_sensitive else re.IGNORECASE,
    )
    counts = dict.fromkeys(terms, 0)
    for text in texts:
        for found in {key(match.group(0)) for match in pattern.finditer(text)}:
            counts[by_key[found]] += 1
    return counts


# -- semantic diversity -----------------------------------------------------------------------------


@dataclass(frozen=True)
class SimilarityStats:
    """Average pairwise cosine similarity (APS); ``None`` where there is no such pair."""

    n: int
    overall: float | None
    within: float | None
    across: float | None
    per_class: dict[str, float | None]


def subsample_indices(total: int, limit: int, *, seed: int = 0) -> list[int]:
    """At most ``limit`` row indices, drawn without replacement by a seeded generator, sorted."""
    if total <= limit:
        return list(range(total))
    return sorted(np.random.default_rng(seed).choice(total, size=limit, replace=False).tolist())


def average_pairwise_similarity(
    texts: Sequence[str], rows: Sequence[Sequence[str]], embedder: EmbedderLike, *, cache: VectorStore | None = None
) -> SimilarityStats:
    """APS of at most ``APS_MAX_ROWS`` texts (a seeded subsample); ``rows`` are ``row_labels``.

    Pairs are grouped by label, or by label set for rows that do not have exactly one label. Vectors
    in ``cache`` (the build's) are reused; only texts without one are embedded, and kept there.
    """
    indices = subsample_indices(len(texts), APS_MAX_ROWS, seed=0)
    sample = [texts[i] for i in indices]
    embeddings = vectors_for(sample, embedder=embedder, cache=cache, progress="Measuring how similar the texts are")
    keys = [rows[i][0] if len(rows[i]) == 1 else tuple(rows[i]) for i in indices]
    return pairwise_similarity(embeddings, keys)


def _pair_sum(vectors: np.ndarray) -> tuple[float, int]:
    """Sum of v_i . v_j over unordered pairs i != j, in O(n d): (|sum v|^2 - sum |v|^2) / 2."""
    n = vectors.shape[0]
    total = vectors.sum(axis=0, dtype=np.float64)
    squared_norms = float(np.einsum("ij,ij->", vectors, vectors, dtype=np.float64))
    pair_sum = (float(total @ total) - squared_norms) / 2.0
    return pair_sum, n * (n - 1) // 2


def pairwise_similarity(embeddings: np.ndarray, labels: Sequence[Any] | None = None) -> SimilarityStats:
    """APS overall, within and across labels, without building the n x n similarity matrix.

    Rows are L2-normalised here, so any embedding matrix gives cosine similarity; sums are taken
    in float64. ``labels`` holds one hashable per row (a name, or a tuple of names for multi-label).
    """
    vectors: np.ndarray = np.asarray(embeddings, dtype=np.float32)
    if vectors.ndim != 2:
        raise ValueError(f"embeddings: expected a 2-D matrix, got shape {vectors.shape}")
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    vectors = vectors / np.where(norms == 0.0, 1.0, norms)
    total_sum, total_pairs = _pair_sum(vectors)
    overall = total_sum / total_pairs if total_pairs else None
    if labels is None:
        return SimilarityStats(n=len(vectors), overall=overall, within=None, across=None, per_class={})
    if len(labels) != len(vectors):
        raise ValueError(f"labels: {len(labels)} labels for {len(vectors)} embeddings; pass one label per row")
    groups: dict[Any, list[int]] = {}
    for index, label in enumerate(labels):
        groups.setdefault(label, []).append(index)
    within_sum, within_pairs = 0.0, 0
    per_class: dict[str, float | None] = {}
    for label, indices in groups.items():
        group_sum, group_pairs = _pair_sum(vectors[indices])
        within_sum += group_sum
        within_pairs += group_pairs
        name = " + ".join(label) if isinstance(label, tuple) else str(label)
        per_class[name] = group_sum / group_pairs if group_pairs else None
    across_pairs = total_pairs - within_pairs
    return SimilarityStats(
        n=len(vectors),
        overall=overall,
        within=within_sum / within_pairs if within_pairs else None,
        across=(total_sum - within_sum) / across_pairs if across_pairs else None,
        per_class=per_class,
    )
