"""The classifier label check: out-of-fold probabilities from sentence vectors, then confident learning.

A logistic regression and a k-nearest-neighbours vote on the rows' sentence vectors each predict every
row's class while that row is held out (``cross_val_predict``, stratified folds), so no row is judged
by a model that saw its label; their probabilities are averaged (the k-NN vote raised precision from
0.62 to 0.71 at the same recall in bench/label_check.py).
``cleanlab.filter.find_label_issues`` then flags the rows whose given label the out-of-fold
probabilities contradict beyond each class's estimated noise rate (confident learning, Northcutt et
al. 2021). Multi-label rows use one-vs-rest regressions alone and cleanlab's multi-label filter.

What the check assigns to a row (the ``label_check`` column): its given label(s) when not flagged,
so a row is flagged exactly when the two differ; for a flagged single-label row, the most probable
other class; for a flagged multi-label row, the classes predicted with probability >= 0.5, or, when
those equal the given set, the given set with the class the model most disagrees on toggled.
"""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from attrprompt_builder.errors import ConfigError, MissingDependencyError

__all__ = ["FOLDS", "LabelCheck", "METHOD", "MIN_ROWS_PER_CLASS", "check_labels"]

FOLDS = 5
# A class with fewer rows cannot be held out fold by fold: its rows are left unchecked (and reported).
MIN_ROWS_PER_CLASS = 5
# Measured in bench/label_check.py: C in 1, 2, 4, 10, 30; 1 gave the best precision and recall.
_C = 1.0
_NEIGHBOURS = 15
METHOD = (
    f"a logistic regression (C={_C:g}) and a {_NEIGHBOURS}-nearest-neighbours vote (cosine) on the texts' sentence "
    f"vectors give each row out-of-fold class probabilities ({FOLDS}-fold cross-validation, the row held out; "
    "the two averaged); confident learning "
    "(`cleanlab.filter.find_label_issues`, prune by noise rate) flags the rows whose label those "
    "probabilities contradict; a flagged row's assigned label is the most probable other class"
)


@dataclass(frozen=True)
class LabelCheck:
    """Per row: the label(s) given, the label(s) the check assigns, and whether it was checked at all."""

    given: list[tuple[str, ...]]
    assigned: list[tuple[str, ...]]
    checked: np.ndarray  # bool per row: False for rows of classes too small to hold out
    class_names: tuple[str, ...]
    multi_label: bool

    @property
    def flagged(self) -> np.ndarray:
        return np.array([set(a) != set(g) for a, g in zip(self.assigned, self.given)], dtype=bool)

    def mismatch_by_class(self) -> dict[str, tuple[int, int]]:
        """class -> (flagged rows, rows) over the rows that carry the class."""
        rows: Counter[str] = Counter()
        flagged: Counter[str] = Counter()
        for given, is_flagged in zip(self.given, self.flagged):
            for name in given:
                rows[name] += 1
                flagged[name] += int(is_flagged)
        return {name: (flagged[name], rows[name]) for name in self.class_names if rows[name]}


def _learning() -> tuple:
    try:
        from cleanlab.filter import find_label_issues
        from cleanlab.multilabel_classification.filter import find_label_issues as find_multilabel_issues
        from sklearn.linear_model import LogisticRegression
        from sklearn.model_selection import KFold, StratifiedKFold, cross_val_predict
        from sklearn.multiclass import OneVsRestClassifier
    except ImportError as err:
        raise MissingDependencyError(
            f"the classifier label check needs cleanlab and scikit-learn ({err.name} is missing); "
            "pip install cleanlab scikit-learn"
        ) from err
    from sklearn.neighbors import KNeighborsClassifier

    return (
        KNeighborsClassifier,
        find_label_issues,
        find_multilabel_issues,
        LogisticRegression,
        KFold,
        StratifiedKFold,
        cross_val_predict,
        OneVsRestClassifier,
    )


def check_labels(
    vectors: np.ndarray,
    labels: Sequence[Sequence[str]],
    *,
    class_names: Sequence[str],
    multi_label: bool = False,
    seed: int = 0,
) -> LabelCheck:
    """Check ``labels`` (per row, its label names: one for single-label data) against ``vectors``."""
    given = [tuple(row) for row in labels]
    names = tuple(class_names)
    if len(given) != len(vectors):
        raise ValueError(f"{len(vectors)} vectors for {len(given)} rows")
    counts = Counter(name for row in given for name in row)
    large = [name for name in names if counts[name] >= MIN_ROWS_PER_CLASS]
    if len(large) < 2:
        raise ConfigError(
            f"label_check: got {len(given)} rows with {len(large)} class(es) of at least {MIN_ROWS_PER_CLASS} rows; "
            f"the classifier check needs two or more classes of {MIN_ROWS_PER_CLASS}+ rows (raise samples_per_class)"
        )
    checked = np.array([bool(row) and all(counts[name] >= MIN_ROWS_PER_CLASS for name in row) for row in given])
    rows = np.flatnonzero(checked)
    index = {name: i for i, name in enumerate(large)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sklearn's and cleanlab's advice on small folds; the result stands
        if multi_label:
            verdicts = _multi_label(vectors[rows], [given[i] for i in rows], large, index, seed)
        else:
            verdicts = _single_label(vectors[rows], [given[i][0] for i in rows], large, index, seed)
    assigned = list(given)
    for row, verdict in zip(rows, verdicts):
        if verdict is not None:
            assigned[row] = verdict
    return LabelCheck(given=given, assigned=assigned, checked=checked, class_names=names, multi_label=multi_label)


def _single_label(
    vectors: np.ndarray, labels: list[str], names: list[str], index: dict[str, int], seed: int
) -> list[tuple[str, ...] | None]:
    neighbours, find_issues, _, logistic, _, stratified, cross_val_predict, _ = _learning()
    y = np.array([index[label] for label in labels])
    splits = min(FOLDS, int(np.bincount(y).min()))
    folds = stratified(n_splits=splits, shuffle=True, random_state=seed)
    regression = cross_val_predict(logistic(C=_C, max_iter=1000), vectors, y, cv=folds, method="predict_proba")
    k = min(_NEIGHBOURS, len(y) - -(-len(y) // splits))  # no more neighbours than the smallest training fold holds
    vote = neighbours(n_neighbors=k, weights="distance", metric="cosine")
    probs = (regression + cross_val_predict(vote, vectors, y, cv=folds, method="predict_proba")) / 2
    issues = find_issues(labels=y, pred_probs=probs, filter_by="prune_by_noise_rate")
    verdicts: list[tuple[str, ...] | None] = []
    for row, flagged in enumerate(issues):
        if not flagged:
            verdicts.append(None)
            continue
        others = probs[row].copy()
        others[y[row]] = -1.0
        verdicts.append((names[int(others.argmax())],))
    return verdicts


def _multi_label(
    vectors: np.ndarray, labels: list[tuple[str, ...]], names: list[str], index: dict[str, int], seed: int
) -> list[tuple[str, ...] | None]:
    _, _, find_issues, logistic, kfold, _, cross_val_predict, one_vs_rest = _learning()
    targets = np.zeros((len(labels), len(names)), dtype=int)
    for row, label_set in enumerate(labels):
        targets[row, [index[name] for name in label_set]] = 1
    folds = kfold(n_splits=FOLDS, shuffle=True, random_state=seed)
    model = one_vs_rest(logistic(C=_C, max_iter=1000))
    probs = cross_val_predict(model, vectors, targets, cv=folds, method="predict_proba")
    issues = find_issues(labels=[sorted(index[n] for n in s) for s in labels], pred_probs=probs)
    verdicts: list[tuple[str, ...] | None] = []
    for row, flagged in enumerate(issues):
        if not flagged:
            verdicts.append(None)
            continue
        predicted = probs[row] >= 0.5
        if (predicted == targets[row].astype(bool)).all():
            agreement = np.where(targets[row] == 1, probs[row], 1.0 - probs[row])
            predicted[int(agreement.argmin())] ^= True
        verdicts.append(tuple(names[k] for k in np.flatnonzero(predicted)))
    return verdicts
