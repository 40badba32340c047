"""How the label check reads its verdicts: multi-label sets, small classes left unchecked, one-line errors.

Vectors here are points around one centre per class (not texts): the quality of the check on real
text is measured in test_label_check_corpus.py and bench/label_check.py.
"""

from __future__ import annotations

import numpy as np
import pytest

from attrprompt_builder.errors import ConfigError
from attrprompt_builder.verify.label_check import check_labels

NAMES = ("a", "b", "c")


def _points(label_sets: list[tuple[str, ...]], seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(len(NAMES), 32))
    rows = np.array([sum(centres[NAMES.index(n)] for n in labels) + 0.3 * rng.normal(size=32) for labels in label_sets])
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def test_multi_label_flags_a_missing_or_extra_label_and_assigns_the_set_the_vectors_show():
    true = [("a",), ("b",), ("c",), ("a", "b"), ("b", "c")] * 16
    given = list(true)
    planted = {3, 17, 29, 41, 55, 66}
    for row in planted:  # drop one label, or add one the text does not support
        given[row] = true[row][:1] if len(true[row]) == 2 else (*true[row], "a" if true[row] != ("a",) else "b")
    check = check_labels(_points(true), given, class_names=NAMES, multi_label=True)
    flagged = set(np.flatnonzero(check.flagged).tolist())
    # Confident learning is conservative on 80 rows: it flags only planted rows, not all of them.
    assert len(flagged) >= len(planted) // 2 and flagged <= planted
    for row in flagged:
        assert set(check.assigned[row]) == set(true[row])
    for row in set(range(len(given))) - flagged:
        assert check.assigned[row] == given[row]


def test_a_class_too_small_to_hold_out_is_left_unchecked():
    given = [("a",)] * 20 + [("b",)] * 20 + [("c",)] * 3
    check = check_labels(_points(given), given, class_names=NAMES)
    assert not check.checked[-3:].any() and check.checked[:40].all()
    assert check.assigned[-3:] == given[-3:]
    assert check.mismatch_by_class()["c"] == (0, 3)


def test_too_few_rows_is_one_line():
    given = [("a",)] * 6 + [("b",)] * 2
    with pytest.raises(
        ConfigError, match=r"^label_check: got 8 rows with 1 class\(es\) of at least 5 rows; .*\(raise samples_per_class\)$"
    ):
        check_labels(_points(given), given, class_names=NAMES)
