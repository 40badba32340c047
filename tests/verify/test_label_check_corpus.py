"""The classifier label check on a real, human-written corpus with planted flips, and ``attrprompt audit``
on that corpus saved with ``datasets`` (a folder ``attrprompt generate`` did not write).

The corpus is package docstrings labelled by package (tests/support/docstring_corpus.py); 10% of
the labels are flipped to another class. bench/label_check.py measures the same on more rows.
"""

from __future__ import annotations

import random

import datasets
import numpy as np
import pytest
from docstring_corpus import docstring_corpus

from attrprompt_builder import cli
from attrprompt_builder.verify.label_check import check_labels
from attrprompt_builder.verify.vectors import text_vectors

pytestmark = pytest.mark.slow

PACKAGES = ("sympy", "networkx", "pandas", "matplotlib", "mypy", "transformers")
PER_CLASS = 150


@pytest.fixture(scope="module")
def planted():
    corpus = docstring_corpus(PER_CLASS, PACKAGES)
    rng = random.Random(0)
    flipped = set(rng.sample(range(len(corpus)), len(corpus) // 10))
    noisy = [rng.choice([p for p in PACKAGES if p != label]) if i in flipped else label for i, (_, label) in enumerate(corpus)]
    return [text for text, _ in corpus], noisy, flipped


def _precision_recall(flagged: set[int], flipped: set[int]) -> tuple[float, float]:
    hits = len(flagged & flipped)
    return hits / max(1, len(flagged)), hits / len(flipped)


def test_flags_most_planted_flips_on_a_slice(planted, minilm_path, offline_models):
    texts, noisy, flipped = planted
    assert len(texts) >= 100 * len(PACKAGES)
    check = check_labels(text_vectors(texts, embedder=minilm_path), [(label,) for label in noisy], class_names=PACKAGES)
    precision, recall = _precision_recall(set(np.flatnonzero(check.flagged).tolist()), flipped)
    assert recall >= 0.8 and precision >= 0.6, (precision, recall)


def test_audit_writes_the_report_and_the_flagged_rows_of_a_saved_dataset(planted, tmp_path, capsys):
    # The ngram embedder keeps this fast; the check's precision and recall with MiniLM are tested above.
    texts, noisy, flipped = planted
    saved = tmp_path / "docstrings"
    features = datasets.Features({"content": datasets.Value("string"), "topic": datasets.ClassLabel(names=list(PACKAGES))})
    datasets.Dataset.from_dict({"content": texts, "topic": noisy}, features=features).save_to_disk(str(saved))
    out = tmp_path / "report"
    assert cli.main(["audit", str(saved), "-o", str(out), "--embedder", "ngram"]) == 0
    assert f"wrote {out}/audit.md: {len(texts)} rows" in capsys.readouterr().out
    report = (out / "audit.md").read_text(encoding="utf-8")
    assert "text column `content`, label column `topic`" in report
    assert "## Near-duplicates" in report and "## Places mentioned" in report and "Words per text" in report
    assert "| given \\ assigned | sympy | networkx | pandas | matplotlib | mypy | transformers |" in report
    rows = datasets.Dataset.from_parquet(str(out / "flagged.parquet"))
    by_check = {r["row"] for r in rows if any(reason.startswith("label check") for reason in r["reasons"])}
    assert len(by_check & flipped) > len(flipped) // 2  # even hashed n-grams find most flips
    assert f"{len(by_check)} of {len(texts)} rows" in report
    for r in rows:
        assert r["text"] == texts[r["row"]] and r["label"] == [noisy[r["row"]]] and r["reasons"]
        assert (r["label_check"] != r["label"]) == (r["row"] in by_check)


def test_audit_errors_are_one_line(tmp_path, capsys):
    saved = tmp_path / "plain"
    datasets.Dataset.from_dict({"body": ["a b c"] * 12, "x": ["p", "q"] * 6}).save_to_disk(str(saved))
    assert cli.main(["audit", str(saved), "--text-column", "nope"]) != 0
    assert "--text-column: got 'nope'; the dataset's columns are body, x" in capsys.readouterr().err
    assert cli.main(["audit", str(saved)]) != 0
    assert "--label-column: cannot tell which column holds the label among body, x; pass it" in capsys.readouterr().err
