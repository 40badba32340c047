"""The in-process transformers backend through the whole pipeline (tiny model built on the fly, CPU)."""

from __future__ import annotations

import pytest

from attrprompt_builder.client.backends import DEFAULT_MODEL, BackendSpec
from attrprompt_builder.pipeline import build_dataset, make_builder


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory) -> str:
    from tiny_model import build_tiny_chat_model

    return str(build_tiny_chat_model(tmp_path_factory.mktemp("tiny-chat")))


@pytest.mark.slow
def test_transformers_backend_builds_a_dataset_and_resumes_from_the_journal(tiny_model_dir, offline_models, tmp_path):
    def run(tag: str):
        builder = make_builder(
            "sst2", backend="transformers", model=tiny_model_dir, samples_per_class=3, batch_size=4, max_new_tokens=24,
            dedup_threshold=None, journal_dir=str(tmp_path / "journal"), cache_dir=str(tmp_path / tag),
        )  # fmt: skip
        return build_dataset(builder), builder

    ds, builder = run("first")
    assert ds.num_rows == 6 and ds.features["label"].names == ["negative", "positive"]
    assert all(text.strip() for text in ds["text"])
    assert builder.generation_info()["backend"] == "transformers"
    assert builder.stats.sent >= 6 and builder.stats.completion_tokens > 0
    again, rerun = run("second")  # fresh cache, same journal: nothing is generated again
    assert again.to_list() == ds.to_list()
    assert rerun.stats.sent == 0 and rerun.stats.reused >= 6


def test_no_endpoint_and_no_model_is_the_default_model_and_providers_need_one():
    assert make_builder("sst2", samples_per_class=1).config.backend_spec() == BackendSpec("transformers", model=DEFAULT_MODEL)
    with pytest.raises(ValueError, match="for backend='providers'"):
        make_builder("sst2", backend="providers")
