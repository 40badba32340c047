"""Near-duplicate decisions against the keep-first rule computed row by row, with no index and no
batches: streaming batches, the exact-text shortcut and the approximate (IVF) index must agree with it."""

from __future__ import annotations

import math

import numpy as np
import pytest
from vectors_by_text import VectorsByText, run

from attrprompt_builder.filters.dedup.filter import NearDuplicateFilter

_END_PUNCTUATION = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~ \u2018\u2019\u201c\u201d\u00ab\u00bb\u2026\u2013\u2014"


def normalised(text: str) -> str:
    """The documented exact-duplicate rule: lower-cased, whitespace collapsed, end punctuation stripped."""
    return " ".join(text.lower().split()).strip(_END_PUNCTUATION)


def keep_first_by_brute_force(
    texts: list[str], groups: list[str], vectors: np.ndarray, threshold: float, *, drop_cross_group: bool
) -> list[tuple]:
    """Each row in order against every kept row so far, exactly as the rule reads (no index, no batches).

    Returns (keep, reason, match_group, match_index, cross_group_match, similarity) per row.
    """
    kept: list[int] = []
    position: dict[int, int] = {}
    kept_per_group: dict[str, int] = {}
    by_text: dict[tuple[str, str], int] = {}
    out: list[tuple] = []
    for i, (text, group) in enumerate(zip(texts, groups)):
        copy_of = by_text.get((group, normalised(text)))
        if copy_of is not None:
            out.append((False, "exact_duplicate", group, position[copy_of], None, 1.0))
            continue
        own = [j for j in kept if groups[j] == group]
        other = [j for j in kept if groups[j] != group]
        own_sims = vectors[own] @ vectors[i] if own else np.zeros(0)
        other_sims = vectors[other] @ vectors[i] if other else np.zeros(0)
        best = int(np.argmax(own_sims)) if own else -1
        if own and own_sims[best] >= threshold:
            out.append((False, "near_duplicate", group, position[own[best]], None, float(own_sims[best])))
            continue
        cross = int(np.argmax(other_sims)) if other else -1
        if other and other_sims[cross] >= threshold:
            match = other[cross]
            sim = float(other_sims[cross])
            if drop_cross_group:
                out.append((False, "cross_class_duplicate", groups[match], position[match], groups[match], sim))
                continue
            out.append((True, None, groups[match], position[match], groups[match], sim))
        else:
            out.append((True, None, None, None, None, max(float(own_sims[best]), 0.0) if own else 0.0))
        kept.append(i)
        position[i] = kept_per_group.get(group, 0)
        kept_per_group[group] = position[i] + 1
        by_text.setdefault((group, normalised(text)), i)
    return out


def planted_corpus(count: int, *, dim: int = 48, seed: int = 7) -> tuple[list[str], list[str], dict[str, np.ndarray]]:
    """Random unit vectors (unrelated rows: cosine < ~0.6) with planted near-copies (~0.98) of
    earlier rows, chains A~B (0.94), B~C (0.94), A!~C (0.77), some copies in another group, and
    exact copies that differ in case, spacing (tabs, runs, no-break spaces) and end punctuation
    (half of them with an unrelated vector)."""
    rng = np.random.default_rng(seed)

    def unit(vector: np.ndarray) -> np.ndarray:
        return vector / np.linalg.norm(vector)

    texts: list[str] = []
    groups: list[str] = []
    vectors: dict[str, np.ndarray] = {}

    def emit(text: str, group: str, vector: np.ndarray) -> None:
        texts.append(text)
        groups.append(group)
        vectors.setdefault(text, unit(vector).astype(np.float32))

    while len(texts) < count:
        roll = rng.random()
        group = f"g{rng.integers(3)}"
        i = len(texts)
        if roll < 0.70 or i < 20:
            emit(f"row {i} says {rng.integers(10**9)}.", group, rng.standard_normal(dim))
        elif roll < 0.82:  # near-copy of an earlier row, usually of its own group
            j = int(rng.integers(i))
            same = rng.random() < 0.8
            emit(f"row {i}, close to row {j}", groups[j] if same else group, vectors[texts[j]] + 0.02 * rng.standard_normal(dim))
        elif roll < 0.90:  # a chain A, B, C in order, possibly with rows in between
            a = rng.standard_normal(dim)
            u = rng.standard_normal(dim)
            u -= (u @ a) / (a @ a) * a
            a, u = unit(a), unit(u)
            for step, degrees in enumerate((0, 20, 40)):
                emit(f"chain {i} link {step}", group, math.cos(math.radians(degrees)) * a + math.sin(math.radians(degrees)) * u)
        else:  # an exact copy of an earlier text
            j = int(rng.integers(i))
            variant = ["  " + texts[j].upper() + " !", texts[j].replace(" ", "\t"), texts[j].replace(" ", " \u00a0 ") + "..."][
                rng.integers(3)
            ]
            # An embedder may see the copy as another text altogether: a copy is caught by its text.
            emit(
                variant,
                groups[j],
                vectors[texts[j]] + 0.001 * rng.standard_normal(dim) if rng.random() < 0.5 else rng.standard_normal(dim),
            )
    return texts[:count], groups[:count], vectors


@pytest.mark.parametrize("drop_cross_group", [False, True])
def test_batched_decisions_equal_brute_force_keep_first(drop_cross_group):
    texts, groups, vectors = planted_corpus(2500)
    matrix = np.stack([vectors[text] for text in texts])
    want = keep_first_by_brute_force(texts, groups, matrix, 0.9, drop_cross_group=drop_cross_group)
    reasons = {row[1] for row in want}
    assert {"exact_duplicate", "near_duplicate"} <= reasons and sum(not row[0] for row in want) > 300
    assert any(row[4] is not None for row in want)  # cross-group matches happen
    chains = [i for i, text in enumerate(texts) if text.startswith("chain") and text.endswith("link 2")]
    assert chains and all(want[i][0] for i in chains)  # every chain's far end stays
    for batch in (1, 37, 256):
        dedup = NearDuplicateFilter(embedder=VectorsByText(vectors), threshold=0.9, drop_cross_group=drop_cross_group)
        got = run(dedup, texts, batch=batch, groups=groups)
        assert [(d.keep, d.reason, d.match_group, d.match_index, d.cross_group_match) for d in got] == [row[:5] for row in want]
        assert [d.similarity for d in got] == pytest.approx([row[5] for row in want], abs=1e-5)
        assert dedup.stats.kept == sum(row[0] for row in want)


def test_approximate_index_finds_the_brute_force_duplicates():
    texts, _, vectors = planted_corpus(3000, dim=96, seed=11)  # 96-d: centroids compared in 64 principal components
    groups = ["all"] * len(texts)  # one group, so its index grows past exact_limit
    matrix = np.stack([vectors[text] for text in texts])
    want = np.array([not row[0] for row in keep_first_by_brute_force(texts, groups, matrix, 0.9, drop_cross_group=False)])
    dedup = NearDuplicateFilter(embedder=VectorsByText(vectors), threshold=0.9, exact_limit=300)
    got = run(dedup, texts, batch=128, groups=groups)
    assert dedup.approximate_groups == ["all"]
    dropped = np.array([not d.keep for d in got])
    assert (want & dropped).sum() / want.sum() >= 0.99 and (want == dropped).mean() >= 0.99
    # Every drop is real: the kept row it names reaches the threshold.
    kept_rows = np.flatnonzero(~dropped)
    for i, decision in enumerate(got):
        if decision.reason == "near_duplicate":
            assert matrix[kept_rows[decision.match_index]] @ matrix[i] == pytest.approx(decision.similarity, abs=1e-5)
            assert decision.similarity >= 0.9


def test_exact_key_shortcut_matches_the_documented_rule():
    from attrprompt_builder.filters.dedup.filter import _text_key

    rng = np.random.default_rng(5)
    alphabet = list("ab .,!?-'\"Z") + [
        "\t",
        "\n",
        "\r",
        "\x0b",
        "\x0c",
        "\x1c",
        "\x1f",
        "\x7f",
        "\u00a0",
        "\u2003",
        "\u2019",
        "\u2014",
        "\x85",
        "\u00c9",
    ]
    samples = ["".join(rng.choice(alphabet, size=rng.integers(0, 12))) for _ in range(20000)]
    by_key: dict[bytes, str] = {}
    for text in samples:
        assert by_key.setdefault(_text_key(text), normalised(text)) == normalised(text)
    assert len(set(by_key.values())) == len(by_key) > 1000  # equal keys exactly when the normal forms are equal
