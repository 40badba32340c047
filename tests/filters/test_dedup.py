"""Near-duplicate filtering: keep-first semantics, streaming batches, grouping, stats (real FAISS).

Where a test needs exact similarities it uses ``VectorsByText``, a stand-in for the *model* that
returns chosen unit vectors; the filter, FAISS and ``deduplicate`` stay real. Other tests use the
real ngram embedder or the real MiniLM folder.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from datasets import ClassLabel, Dataset, Features, List, Value
from vectors_by_text import VectorsByText, at_angle, run

from attrprompt_builder.dataset.deduplicate import deduplicate
from attrprompt_builder.errors import ConfigError
from attrprompt_builder.filters.dedup.embedders import NgramEmbedder, load_embedder
from attrprompt_builder.filters.dedup.filter import (
    MINILM_THRESHOLD,
    NGRAM_THRESHOLD,
    DedupDecision,
    NearDuplicateFilter,
    default_threshold,
)
from attrprompt_builder.filters.dedup.index import GrowingIndex

# -- keep-first semantics ---------------------------------------------------------------------


def test_exact_pair_keeps_the_first_and_skips_the_encoder():
    embedder = VectorsByText({"Hello there, world.": at_angle(0), "Other": at_angle(90)})
    dedup = NearDuplicateFilter(embedder=embedder, threshold=0.9)
    first = dedup.check(["Hello there, world.", "Other"], ["g", "g"])
    second = dedup.check(["  hello THERE,   world!"], ["g"])  # case, spaces, end punctuation
    assert [d.keep for d in first] == [True, True]
    assert second == [DedupDecision(False, "exact_duplicate", "g", 0, 1.0)]
    assert embedder.calls == [2]  # the copy never reached the model
    assert dedup.stats.exact_examples == [
        {"group": "g", "kept_text": "Hello there, world.", "dropped_text": "  hello THERE,   world!", "similarity": 1.0}
    ]


@pytest.mark.parametrize("batch", [1, 2])
def test_mutual_pair_keeps_only_the_first(batch):
    # distilabel's embedding dedup drops both members of such a pair; the first must stay.
    embedder = VectorsByText({"A": at_angle(0), "B": at_angle(10)})
    decisions = run(NearDuplicateFilter(embedder=embedder, threshold=0.9), ["B", "A"], batch=batch)
    assert [d.keep for d in decisions] == [True, False]
    assert decisions[1].reason == "near_duplicate" and decisions[1].match_index == 0
    assert decisions[1].similarity == pytest.approx(math.cos(math.radians(10)), abs=1e-6)


@pytest.mark.parametrize("batch", [1, 3])
def test_chain_keeps_both_ends(batch):
    # A~B (20 deg), B~C (20 deg), A!~C (40 deg): B is dropped and never compared again, so C stays.
    embedder = VectorsByText({"A": at_angle(0), "B": at_angle(20), "C": at_angle(40)})
    decisions = run(NearDuplicateFilter(embedder=embedder, threshold=0.9), ["A", "B", "C"], batch=batch)
    assert [d.keep for d in decisions] == [True, False, True]
    assert decisions[1].match_index == 0
    assert decisions[2].similarity == pytest.approx(math.cos(math.radians(40)), abs=1e-6)


@pytest.mark.parametrize("batch", [1, 2])
def test_similarity_exactly_at_the_threshold_is_a_duplicate(batch):
    embedder = VectorsByText({"A": [1.0, 0.0], "B": [0.5, math.sqrt(0.75)]})  # A.B == 0.5 exactly
    at = run(NearDuplicateFilter(embedder=embedder, threshold=0.5), ["A", "B"], batch=batch)
    above = run(NearDuplicateFilter(embedder=embedder, threshold=float(np.nextafter(0.5, 1.0))), ["A", "B"], batch=batch)
    assert [d.keep for d in at] == [True, False] and at[1].similarity == 0.5
    assert [d.keep for d in above] == [True, True] and above[1].similarity == 0.5


def test_batching_does_not_change_any_decision():
    texts = corpus_with_copies()
    reference = run(NearDuplicateFilter(embedder="ngram"), texts, batch=len(texts))
    assert 5 < sum(not d.keep for d in reference) < len(texts) / 2
    for batch in (1, 7, 64):
        decisions = run(NearDuplicateFilter(embedder="ngram"), texts, batch=batch)
        assert [(d.keep, d.reason, d.match_index) for d in decisions] == [(d.keep, d.reason, d.match_index) for d in reference]
        assert [d.similarity for d in decisions] == pytest.approx([d.similarity for d in reference], abs=1e-5)


def test_deduplicate_embeds_a_window_in_one_call_and_decides_as_check_per_batch_does():
    texts = corpus_with_copies() * 2  # the second half: exact copies of kept rows, never embedded
    ngram = NgramEmbedder()
    embedder = VectorsByText(dict(zip(texts, ngram.encode(texts).tolist())))
    embedder.kind = "ngram"
    reference = run(NearDuplicateFilter(embedder="ngram"), texts, batch=7)
    dataset = Dataset.from_dict({"text": texts, "row": list(range(len(texts)))})
    result = deduplicate(dataset, embedder=embedder, by=None, batch_size=7)
    assert result["row"] == [row for row, decision in enumerate(reference) if decision.keep]
    assert embedder.calls == [60]  # one call for the window, none per batch of 7


def test_one_encode_call_per_check():
    embedder = VectorsByText({str(i): at_angle(i * 30) for i in range(6)})
    dedup = NearDuplicateFilter(embedder=embedder, threshold=0.99)
    dedup.check(["0", "1", "2"], ["g"] * 3)
    dedup.check(["3", "4", "5"], ["g", "h", "g"])
    assert embedder.calls == [3, 3]


# -- groups -----------------------------------------------------------------------------------


def test_other_groups_are_flagged_not_dropped_unless_asked():
    embedder = VectorsByText({"A": at_angle(0), "A'": at_angle(5), "Z": at_angle(90)})
    flagging = NearDuplicateFilter(embedder=embedder, threshold=0.9)
    decisions = run(flagging, ["A", "Z", "A'"], batch=1, groups=["sports", "sports", "world"])
    assert decisions[2].keep and decisions[2].cross_group_match == "sports" and decisions[2].match_index == 0
    assert flagging.stats.cross_group_flags == {"world": 1} and flagging.stats.total_removed == 0

    dropping = NearDuplicateFilter(embedder=embedder, threshold=0.9, drop_cross_group=True)
    decisions = run(dropping, ["A", "Z", "A'"], batch=3, groups=["sports", "sports", "world"])
    assert not decisions[2].keep and decisions[2].reason == "cross_class_duplicate"
    assert dropping.stats.removed_per_group == {"world": {"cross_class_duplicate": 1}}


def test_cross_group_view_sees_rows_kept_before_the_second_group_appeared():
    vectors = {f"s{i}": at_angle(i * 3) for i in range(3)} | {"w": at_angle(6.5)}
    dedup = NearDuplicateFilter(embedder=VectorsByText(vectors), threshold=0.999)
    run(dedup, ["s0", "s1", "s2"], batch=1, groups=["a"] * 3)
    (decision,) = dedup.check(["w"], ["b"])
    assert decision.keep and decision.cross_group_match == "a" and decision.match_index == 2


def test_by_label_compares_within_a_class_and_by_none_across_all():
    texts = [
        "The harbour froze overnight and ferries stayed in port.",
        "The harbour froze overnight and the ferries stayed in port.",
    ]
    dataset = Dataset.from_dict({"text": texts, "label": [0, 1]})
    per_label, stats = deduplicate(dataset, embedder="ngram", return_stats=True)
    assert per_label["text"] == texts and stats.cross_group_flags == {"1": 1}
    assert deduplicate(dataset, embedder="ngram", by=None)["text"] == texts[:1]
    assert deduplicate(dataset, embedder="ngram", drop_cross_group=True)["text"] == texts[:1]


def test_multi_label_rows_are_grouped_by_their_label_set():
    text = "Graph neural networks for protein folding with attention over residues."
    features = Features({"text": Value("string"), "labels": List(ClassLabel(names=["bio", "cs", "math"]))})
    dataset = Dataset.from_dict({"text": [text, text, text, text], "labels": [[0, 1], [1, 0], [1], [1]]}, features=features)
    result, stats = deduplicate(dataset, embedder="ngram", return_stats=True)
    assert result["labels"] == [[0, 1], [1]]  # {bio, cs} == {cs, bio}; {cs} is another group
    assert stats.removed_per_group == {"bio + cs": {"exact_duplicate": 1}, "cs": {"exact_duplicate": 1}}


# -- deduplicate on a dataset -----------------------------------------------------------------


def test_every_column_and_the_row_order_are_kept():
    texts = corpus_with_copies()
    features = Features({
        "text": Value("string"), "label": ClassLabel(names=["a", "b"]), "score": Value("int32"),
        "tags": List(Value("string")), "style": Value("string"),
    })  # fmt: skip
    dataset = Dataset.from_dict(
        {
            "text": texts,
            "label": [i % 2 for i in range(len(texts))],
            "score": list(range(len(texts))),
            "tags": [[f"t{i}"] for i in range(len(texts))],
            "style": [f"style{i % 3}" for i in range(len(texts))],
        },
        features=features,
    )
    result, stats = deduplicate(dataset, embedder="ngram", by=None, return_stats=True)
    assert result.features == dataset.features
    assert result["score"] == sorted(result["score"]) and len(result) == len(dataset) - stats.total_removed > 0
    assert result.to_list() == [dataset[i] for i in result["score"]]
    # attribute columns default to the string columns the builder does not write itself
    assert set(stats.removed_by_value) == {"style"} and sum(stats.removed_by_value["style"].values()) == stats.total_removed


def test_runs_are_deterministic():
    dataset = Dataset.from_dict({"text": corpus_with_copies(), "label": [0] * len(corpus_with_copies())})
    first, first_stats = deduplicate(dataset, embedder="ngram", return_stats=True)
    second, second_stats = deduplicate(dataset, embedder="ngram", return_stats=True)
    assert first["text"] == second["text"] and first_stats.to_dict() == second_stats.to_dict()


def test_stats_for_the_card():
    dataset = Dataset.from_dict({"text": corpus_with_copies(), "label": [0] * len(corpus_with_copies()), "topic": ["x"] * 60})
    _, stats = deduplicate(dataset, embedder="ngram", return_stats=True, attributes=["topic"])
    data = stats.to_dict()
    assert data["embedder"] == "ngram-3-5-d256" and data["threshold"] == NGRAM_THRESHOLD
    assert data["checked"] == 60 and data["kept"] + stats.total_removed == 60
    assert data["removed_per_group"] == {"0": data["removed"]} and data["removed_by_value"] == {
        "topic": {"x": stats.total_removed}
    }
    assert 0 < len(data["examples"]) <= 10
    for example in data["examples"]:
        assert set(example) == {"group", "kept_text", "dropped_text", "similarity"}
        assert example["similarity"] >= NGRAM_THRESHOLD and example["kept_text"] != example["dropped_text"]


def test_approximate_index_gives_the_exact_decisions():
    rng = np.random.default_rng(3)
    base = rng.standard_normal((900, 24))
    copies = base[rng.choice(900, 300, replace=False)] + 0.03 * rng.standard_normal((300, 24))
    vectors = np.concatenate([base, copies])[rng.permutation(1200)]
    embedder = VectorsByText({f"t{i}": v.tolist() for i, v in enumerate(vectors)})
    texts = [f"t{i}" for i in range(1200)]
    exact = NearDuplicateFilter(embedder=embedder, threshold=0.95)
    approximate = NearDuplicateFilter(embedder=embedder, threshold=0.95, exact_limit=100, nprobe=3)
    want = run(exact, texts, batch=50)
    got = run(approximate, texts, batch=50)
    assert approximate.approximate_groups == ["g"] and exact.approximate_groups == []
    assert 250 < sum(not d.keep for d in want) <= 300
    assert [(d.keep, d.match_index) for d in got] == [(d.keep, d.match_index) for d in want]


def test_growing_index_moves_to_ivf_and_keeps_ids():
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((1000, 8)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    index = GrowingIndex(8, exact_limit=200, nprobe=1)
    index.add(vectors[:200])
    assert not index.approximate
    for start in range(200, 1000, 100):  # grows past 4x the first IVF: retrained with more lists
        index.add(vectors[start : start + 100])
    assert index.approximate and index.ntotal == 1000
    scores, ids = index.search(vectors, 1)  # a stored vector's own cell is always probed
    assert ids[:, 0].tolist() == list(range(1000)) and np.allclose(scores[:, 0], 1.0, atol=1e-5)


# -- defaults and errors ----------------------------------------------------------------------


def test_default_thresholds_follow_the_embedder_kind():
    assert default_threshold(NgramEmbedder()) == NGRAM_THRESHOLD
    assert NearDuplicateFilter(embedder="ngram").threshold == NGRAM_THRESHOLD
    with pytest.raises(ConfigError, match="threshold: no default"):
        NearDuplicateFilter(embedder=VectorsByText({"a": [1.0]}))


@pytest.mark.parametrize("threshold", [0.0, -0.5, 1.5])
def test_threshold_outside_zero_one_is_rejected(threshold):
    with pytest.raises(ConfigError, match=r"threshold: got .*\(0, 1\]"):
        NearDuplicateFilter(embedder="ngram", threshold=threshold)


def test_bad_dataset_arguments_are_one_line_errors():
    dataset = Dataset.from_dict({"text": ["a b c d", None], "label": [0, 0]})
    for kwargs, pattern in [
        ({"column": "body"}, "column: 'body' is not a column"),
        ({"by": "topic"}, "by: 'topic' is not a column"),
    ]:
        with pytest.raises(ConfigError, match=pattern):
            deduplicate(dataset, embedder="ngram", **kwargs)
    with pytest.raises(ConfigError, match="column 'text': row 1 is empty"):
        deduplicate(dataset, embedder="ngram")


def test_check_rejects_mismatched_input_and_non_unit_vectors():
    dedup = NearDuplicateFilter(embedder="ngram")
    with pytest.raises(ConfigError, match="groups: got 1 groups for 2 texts"):
        dedup.check(["a", "b"], ["g"])
    with pytest.raises(ConfigError, match=r"texts\[0\]: expected a string"):
        dedup.check([None], ["g"])  # type: ignore[list-item]

    class Unnormalised(VectorsByText):
        def encode(self, texts: list[str]) -> np.ndarray:
            return 2 * super().encode(texts)

    with pytest.raises(ConfigError, match="not unit vectors"):
        NearDuplicateFilter(embedder=Unnormalised({"a": [1.0, 0.0]}), threshold=0.9).check(["a"], ["g"])


# -- the real model ---------------------------------------------------------------------------

PARAGRAPHS = [
    (
        "The lighthouse keeper climbed the spiral stairs every evening to light the lamp. Ships passing the rocky "
        "headland relied on its beam, and in forty years he never once let it go dark, not even during the great storm."
    ),
    (
        "Bread dough needs time to rise in a warm place. If the kitchen is cold, the yeast works slowly and the loaf "
        "turns out dense, so many bakers leave the bowl near the oven or cover it with a damp towel."
    ),
    (
        "The city council voted on Tuesday to extend the tram line to the northern suburbs. Construction is expected "
        "to begin next spring and will take about three years, according to the transport department."
    ),
    (
        "Honeybees communicate the location of flowers through a waggle dance. The angle of the dance shows the "
        "direction relative to the sun, while its duration tells the other bees how far they need to fly."
    ),
    (
        "Our tram line to the southern suburbs opened on Monday after two years of work. Commuters said the trip to "
        "the city centre is now twenty minutes shorter than it was by bus."
    ),
]


@pytest.mark.slow
def test_minilm_default_drops_edited_copies_not_originals(minilm_path, offline_models):
    copies = [
        PARAGRAPHS[0].replace("every evening", "each evening").replace("once ", ""),
        PARAGRAPHS[1].replace("warm", "WARM").replace(", so", "; so"),
        PARAGRAPHS[3].replace("through a", "through a little"),
    ]
    texts = PARAGRAPHS[:2] + [copies[0]] + PARAGRAPHS[2:4] + [copies[1], PARAGRAPHS[4], copies[2]]
    dataset = Dataset.from_dict({"text": texts, "row": list(range(len(texts)))})
    result, stats = deduplicate(dataset, embedder=minilm_path, return_stats=True)
    assert result["row"] == [0, 1, 3, 4, 6]  # the two tram paragraphs are related, not copies
    assert stats.threshold == MINILM_THRESHOLD and stats.embedder == load_embedder(minilm_path).name
    assert all(example["similarity"] >= MINILM_THRESHOLD for example in stats.examples)


def corpus_with_copies() -> list[str]:
    """60 short texts; every fifth one is a light edit of an earlier one."""
    subjects = ["the river", "a small bakery", "the old library", "our football club", "the night train", "a hill farm"]
    events = ["reopened after repairs", "won a regional prize", "lost power during the storm", "hired two new staff",
              "changed its opening hours", "celebrated its centenary", "moved to a bigger building"]  # fmt: skip
    places = ["in Leeds", "near Porto", "outside Graz", "in Dunedin", "by Lake Bled", "in Tromso", "near Cusco"]
    texts: list[str] = []
    for i in range(60):
        if i % 5 == 4:
            words = texts[i - 3].split()
            words.insert(3, "really")
            texts.append(" ".join(words).replace(".", "!"))
        else:
            texts.append(
                f"Last week {subjects[i % 6]} {events[i % 7]} {places[(i * 3) % 7]}, and local people were "
                f"{['surprised', 'pleased', 'worried', 'curious'][i % 4]} by the news reported on day {i}."
            )
    return texts
