"""Each measure in ``measures`` against small cases worked out by hand."""

from __future__ import annotations

import math

import datasets
import numpy as np
import pytest
from papers import papers_dataset, papers_recipe

from attrprompt_builder.card import measures
from attrprompt_builder.recipe.model import Recipe, parse_recipe

LABELS = ["sports", "business"]


def news_recipe() -> Recipe:
    return parse_recipe(
        {
            "name": "tiny_news",
            "domain": "news",
            "license": "Apache-2.0",
            "labels": LABELS,
            "attributes": [
                {
                    "name": "subtopics",
                    "per_class": {"sports": ["tennis", "golf"], "business": ["stocks", "banks", "oil"]},
                },
                {"name": "location", "values": ["Paris", "Lagos", "Lima"]},
            ],
            "prompts": {
                "attributed": "A {{ label_text }} story on {{ subtopics }} in {{ location }}.",
                "simple": "A {{ label_text }} story.",
            },
        }
    )


def news_dataset() -> datasets.Dataset:
    features = datasets.Features(
        {
            "text": datasets.Value("string"),
            "label": datasets.ClassLabel(names=LABELS),
            "subtopics": datasets.Value("string"),
            "location": datasets.Value("string"),
        }
    )
    return datasets.Dataset.from_dict(
        {
            "text": ["a", "b", "c", "d", "e"],
            "label": [0, 0, 1, 1, 1],
            "subtopics": ["tennis", "tennis", "stocks", "banks", "crypto"],
            "location": ["Paris", "Paris", "Paris", "Lagos", None],
        },
        features=features,
    )


def test_label_distribution_single_label_in_class_order_with_zeros() -> None:
    features = datasets.Features({"label": datasets.ClassLabel(names=["a", "b", "c"])})
    dataset = datasets.Dataset.from_dict({"label": [1, 0, 1]}, features=features)
    rows = measures.row_labels(dataset)
    assert rows == [("b",), ("a",), ("b",)]
    assert measures.label_distribution(rows, ["a", "b", "c"]) == {"a": 1, "b": 2, "c": 0}
    assert list(measures.label_distribution(rows, ["c", "a", "b"])) == ["c", "a", "b"]


def test_label_distribution_multi_label_counts_each_label() -> None:
    features = datasets.Features({"labels": datasets.List(datasets.ClassLabel(names=["a", "b", "c"]))})
    dataset = datasets.Dataset.from_dict({"labels": [[0, 1], [1], []]}, features=features)
    rows = measures.row_labels(dataset)
    assert rows == [("a", "b"), ("b",), ()]
    assert measures.label_distribution(rows, ["a", "b", "c"]) == {"a": 1, "b": 2, "c": 0}


def test_row_labels_read_label_before_labels_and_never_turn_an_unlabelled_id_into_a_class() -> None:
    features = datasets.Features(
        {"label": datasets.ClassLabel(names=["a", "b"]), "labels": datasets.List(datasets.ClassLabel(names=["a", "b"]))}
    )
    dataset = datasets.Dataset.from_dict({"label": [1, -1], "labels": [[0], [0, 1]]}, features=features)
    assert measures.row_labels(dataset) == [("b",), ("-1",)]  # -1 marks "no label", not the last class


def test_columns_follow_an_indices_mapping() -> None:
    dataset = news_dataset().select([3, 0])
    assert measures.column(dataset, "text") == ["d", "a"]
    assert measures.row_labels(dataset) == [("business",), ("sports",)]


def test_word_count_summary_hand_computed() -> None:
    texts = ["one", "one two", "a b c", " w  x y z ", "1 2 3 4 5 6 7 8 9 10"]
    stats = measures.summarize_word_counts(measures.word_counts(texts))
    assert (stats.count, stats.min, stats.max) == (5, 1, 10)
    assert stats.mean == pytest.approx(4.0)
    assert stats.median == pytest.approx(3.0)
    assert stats.p90 == pytest.approx(7.6)  # 4 + 0.6 * (10 - 4), linear interpolation
    empty = measures.LengthStats(count=0, min=0, mean=0.0, median=0.0, p90=0.0, max=0)
    assert measures.summarize_word_counts([]) == empty


def test_attribute_value_counts_most_drawn_first_and_skip_missing() -> None:
    counts = measures.attribute_value_counts(news_dataset(), news_recipe())
    assert counts["location"] == {"Paris": 3, "Lagos": 1}
    assert list(counts["location"]) == ["Paris", "Lagos"]
    assert counts["subtopics"] == {"tennis": 2, "banks": 1, "crypto": 1, "stocks": 1}
    assert list(counts["subtopics"]) == ["tennis", "banks", "crypto", "stocks"]  # ties alphabetical


def test_class_value_coverage_lists_never_drawn_and_unexpected_values() -> None:
    coverage = {c.label: c for c in measures.class_value_coverage(news_dataset(), news_recipe(), "subtopics")}
    assert coverage["sports"].counts == {"tennis": 2, "golf": 0}
    assert coverage["sports"].never_drawn == ["golf"]
    assert coverage["sports"].share_covered == pytest.approx(0.5)
    assert coverage["business"].counts == {"stocks": 1, "banks": 1, "oil": 0}
    assert coverage["business"].unexpected == {"crypto": 1}
    assert coverage["business"].share_covered == pytest.approx(2 / 3)


def test_class_value_coverage_multi_label_counts_a_row_for_each_label() -> None:
    recipe = papers_recipe()
    dataset = papers_dataset(["x", "y"], [[0, 1], [0, 1]], ["bandits", "bandits"])
    coverage = {c.label: c for c in measures.class_value_coverage(dataset, recipe, "subtopics")}
    assert coverage["ml"].counts == {"bandits": 2, "cnn": 0}
    assert coverage["stats"].counts == {"bandits": 2}
    combos = measures.combination_coverage(dataset, recipe)
    assert combos.per_class == {"ml": (1, 2), "stats": (1, 1)}


def test_combination_coverage_sums_seen_over_possible() -> None:
    combos = measures.combination_coverage(news_dataset(), news_recipe())
    # sports: (tennis, Paris) twice -> 1 of 2 * 3. business: (stocks, Paris), (banks, Lagos) of 3 * 3;
    # (crypto, None) is not a combination of listed values.
    assert combos.per_class == {"sports": (1, 6), "business": (2, 9)}
    assert (combos.seen, combos.possible) == (3, 15)
    assert combos.share == pytest.approx(3 / 15)


def test_combination_coverage_without_attribute_columns_is_empty() -> None:
    dataset = news_dataset().remove_columns(["subtopics", "location"])
    combos = measures.combination_coverage(dataset, news_recipe())
    assert combos.possible == 0 and combos.share == 0.0
    assert measures.attribute_value_counts(dataset, news_recipe()) == {}


def test_vocabulary_and_distinct_n() -> None:
    assert measures.vocabulary_size(["The cat", "the  DOG"]) == 3
    texts = ["a b a", "A b"]
    assert measures.distinct_n(texts, 1) == pytest.approx(2 / 5)
    assert measures.distinct_n(texts, 2) == pytest.approx(2 / 3)  # (a b), (b a), (a b)
    assert measures.distinct_n(["a b", "c d"], 2) == pytest.approx(1.0)  # no n-gram spans two texts
    assert measures.distinct_n(["one"], 2) == 0.0


def test_ingf_is_mean_sample_frequency_of_distinct_ngrams() -> None:
    # Trigrams: {abc, bcd}, {bcd}, {xyz}: document frequencies 1, 2, 1.
    assert measures.ingf(["a b c d", "b c d", "x y z"], 3) == pytest.approx(4 / 3)
    # A trigram repeated inside one sample counts once for that sample.
    assert measures.ingf(["a b c a b c"], 3) == pytest.approx(1.0)
    assert measures.ingf(["same words here", "same words here"], 3) == pytest.approx(2.0)
    assert measures.ingf(["short"], 3) == 0.0


def test_mention_counts_whole_words_and_longest_match() -> None:
    texts = ["I love New York, and york too", "Paris, paris!", "Parisian food"]
    terms = ["Paris", "New York", "York"]
    assert measures.mention_counts(texts, terms) == {"Paris": 1, "New York": 1, "York": 1}
    assert measures.mention_counts(texts, terms, case_sensitive=True) == {"Paris": 1, "New York": 1, "York": 0}
    assert measures.mention_counts(texts, []) == {}


def test_pairwise_similarity_hand_computed() -> None:
    embeddings = np.array([[1.0, 0.0], [0.0, 1.0], [2.0, 2.0]])  # the last row is normalised inside
    stats = measures.pairwise_similarity(embeddings, ["a", "a", "b"])
    # Pairs: (0,1) = 0 within a; (0,2) = (1,2) = 1/sqrt(2) across.
    assert stats.overall == pytest.approx(math.sqrt(2) / 3)
    assert stats.within == pytest.approx(0.0)
    assert stats.across == pytest.approx(1 / math.sqrt(2))
    assert stats.per_class == {"a": pytest.approx(0.0), "b": None}
    assert measures.pairwise_similarity(embeddings).within is None


def test_pairwise_similarity_matches_the_full_matrix() -> None:
    rng = np.random.default_rng(7)
    vectors = rng.normal(size=(60, 16)).astype(np.float32)
    labels = [("x", "y") if i % 3 == 0 else ("y",) for i in range(60)]
    stats = measures.pairwise_similarity(vectors, labels)
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    sims = unit @ unit.T
    upper = np.triu_indices(60, k=1)
    same = np.array([labels[i] == labels[j] for i, j in zip(*upper, strict=True)])
    assert stats.overall == pytest.approx(sims[upper].mean(), abs=1e-5)
    assert stats.within == pytest.approx(sims[upper][same].mean(), abs=1e-5)
    assert stats.across == pytest.approx(sims[upper][~same].mean(), abs=1e-5)
    assert set(stats.per_class) == {"x + y", "y"}


def test_pairwise_similarity_rejects_mismatched_labels() -> None:
    with pytest.raises(ValueError, match="labels: 1 labels for 2 embeddings"):
        measures.pairwise_similarity(np.eye(2), ["a"])


def test_subsample_indices_is_deterministic_sorted_and_bounded() -> None:
    assert measures.subsample_indices(4, 10) == [0, 1, 2, 3]
    first = measures.subsample_indices(1000, 50, seed=0)
    assert first == measures.subsample_indices(1000, 50, seed=0)
    assert first == sorted(set(first)) and len(first) == 50 and first[-1] < 1000
    assert first != measures.subsample_indices(1000, 50, seed=1)
