"""Near-duplicates are dropped while generation streams, and quotas are refilled (real MiniLM, real FAISS)."""

from __future__ import annotations

import datasets
import pytest

from attrprompt_builder.filters.dedup.filter import MINILM_THRESHOLD
from attrprompt_builder.generation.quotas import SPECULATIVE_DRAWS_PER_CLASS
from attrprompt_builder.pipeline import build_dataset, make_builder


@pytest.mark.slow
def test_duplicates_are_dropped_and_quotas_refilled(tgi, minilm_path, offline_models, monkeypatch):
    import huggingface_hub.constants as hub_constants

    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", False)  # the client must reach the loopback server
    tgi.configure(duplicate_rate=0.3)
    builder = make_builder("agnews", endpoint=tgi.url, samples_per_class=12, embedder=minilm_path)
    ds = build_dataset(builder)
    assert [ds["label"].count(i) for i in range(4)] == [12, 12, 12, 12]
    stats = builder.stats
    removed = stats.dropped["near_duplicate"] + stats.dropped["exact_duplicate"]
    assert tgi.kinds["duplicate"] > 0 and removed > 0
    # every drop was replaced by another draw; speculative draws a class no longer needed are bounded
    assert 48 + removed <= stats.sent <= 48 + removed + 4 * SPECULATIVE_DRAWS_PER_CLASS
    assert stats.dedup_examples and all(e["similarity"] >= MINILM_THRESHOLD for e in stats.dedup_examples)
    assert sum(sum(c.values()) for c in stats.dedup_removed_by_value.values()) == 4 * removed
    assert builder.generation_info()["dedup_threshold"] == MINILM_THRESHOLD


@pytest.mark.slow
def test_dedup_decisions_do_not_depend_on_concurrency(tgi, tmp_path, minilm_path, monkeypatch):
    tgi.configure(duplicate_rate=0.3)

    def run(tag: str, concurrency: int) -> list[dict]:
        builder = datasets.load_dataset_builder(
            "attrprompt", "sst2", endpoint=tgi.url, samples_per_class=10, embedder=minilm_path, max_concurrency=concurrency,
            journal_dir=str(tmp_path / "journal"), cache_dir=str(tmp_path / tag),
        )  # fmt: skip
        builder.download_and_prepare()
        return builder.as_dataset(split="train").to_list()

    # one shared journal: the second run reuses the same replies, arriving in a different order
    assert run("one", 1) == run("sixteen", 16)


_SHARED = "The service was slow and the food arrived cold, but the staff apologised and brought dessert on the house."
_REPEATED = "Honestly one of the dullest evenings I have spent in a cinema, and the popcorn was stale too."


@pytest.mark.slow
def test_dropping_cross_class_duplicates_keeps_the_earlier_class_whatever_the_timing(tgi, tmp_path, minilm_path):
    """The shared text reaches the second class (positive) in its first wave but the first class
    (negative) only in a refill: with drop_cross_class_duplicates the first class keeps it anyway,
    and the rows are the same at any concurrency and num_proc."""
    from attrprompt_builder.generation.prompts import PromptRenderer
    from attrprompt_builder.generation.sampling import AttributeSampler
    from attrprompt_builder.recipe.presets import load_preset

    recipe = load_preset("sst2")
    sampler, renderer = AttributeSampler(recipe, seed=0), PromptRenderer(recipe)

    def prompt(label: str, index: int) -> str:
        return "\n".join(message["content"] for message in renderer.messages(sampler.draw(label, index)))

    scripted = {prompt("negative", i): f"{_REPEATED} ({'!' * (i - 4)})" for i in range(5, 10)}  # 4 drops, 4 refills
    scripted[prompt("negative", 10)] = _SHARED  # the first refill
    scripted[prompt("positive", 0)] = _SHARED.replace("the staff", "staff")
    compose = tgi.compose
    tgi.compose = lambda request, behaviour: (
        (scripted[request.prompt], "scripted") if request.prompt in scripted else compose(request, behaviour)
    )

    def run(tag: str, concurrency: int, num_proc: int | None = None) -> tuple[list[dict], object]:
        builder = datasets.load_dataset_builder(
            "attrprompt", "sst2", endpoint=tgi.url, samples_per_class=10, embedder=minilm_path, max_concurrency=concurrency,
            drop_cross_class_duplicates=True, journal_dir=str(tmp_path / "journal"), cache_dir=str(tmp_path / tag),
        )  # fmt: skip
        builder.download_and_prepare(num_proc=num_proc)
        return builder.as_dataset(split="train").to_list(), builder.stats

    rows, stats = run("sixteen", 16)
    assert stats.dropped["cross_class_duplicate"] == 1
    assert stats.dropped["near_duplicate"] + stats.dropped["exact_duplicate"] == 4
    assert [row["label"] for row in rows if row["text"].startswith("The service was slow")] == [0]
    # one shared journal: later runs reuse the same replies, arriving in other orders
    assert run("one", 1)[0] == rows
    assert run("two-workers", 16, num_proc=2)[0] == rows


def test_a_class_that_cannot_fill_its_quota_ends_the_build_with_reasons(tgi, minilm_path):
    """One class only ever gets the same reply: dedup drops the copies until its draw cap is reached."""
    from attrprompt_builder.errors import QuotaNotMetError

    compose = tgi.compose

    def same_reply_for_negative(request, behaviour):
        if "negative" in request.prompt.splitlines()[0]:
            return "The same short review, every single time, whatever was asked.", "normal"
        return compose(request, behaviour)

    tgi.compose = same_reply_for_negative
    builder = make_builder("sst2", endpoint=tgi.url, samples_per_class=3, embedder=minilm_path, max_draws_per_class=6)
    with pytest.raises(QuotaNotMetError, match=r"class 'negative': only 1 of 3 rows kept after 6 draws \(exact_duplicate: 5\)"):
        build_dataset(builder)
