"""Each text is embedded once per build (issue 15, item 3): the card, ``compare``, ``audit`` and a resumed build reuse
the vectors the build's dedup stage computed, counted as real forward calls of the real MiniLM."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np

from attrprompt_builder import cli
from attrprompt_builder.dataset import folder as layout
from attrprompt_builder.filters.dedup.embedders import load_embedder
from attrprompt_builder.filters.dedup.vectors import VECTORS_FILE, VectorStore, text_hash, vectors_for
from attrprompt_builder.pipeline import generate_folder

APS_LINE = "Pairwise similarity is the cosine similarity of"


def generate(tgi, tmp_path: Path, minilm_path: str, *, out: str, cache: str, card: bool) -> Path:
    return generate_folder(
        "agnews", tmp_path / out, endpoint=tgi.url, cache_dir=str(tmp_path / cache), journal_dir=str(tmp_path / "journal"),
        samples_per_class=5, seed=4, embedder=minilm_path, card=card,
    )  # fmt: skip


def stored(path: Path) -> int:
    with sqlite3.connect(path) as db:
        return db.execute("SELECT count(*) FROM vectors").fetchone()[0]


def test_the_card_and_compare_of_a_fresh_folder_embed_nothing(tgi, tmp_path, minilm_path, minilm_forwards, capsys):
    folder = generate(tgi, tmp_path, minilm_path, out="out", cache="cache", card=True)
    build_store = tmp_path / "journal" / VECTORS_FILE
    # Every text the build embedded is stored once, and the card that generate wrote embedded none again.
    assert sum(minilm_forwards) == stored(build_store) >= 20
    assert f"{APS_LINE} local folder" in (folder / layout.CARD_FILE).read_text(encoding="utf-8")
    assert stored(folder / layout.VECTORS_FILE) == 20  # the rows' vectors, beside the rows

    minilm_forwards.clear()
    assert cli.main(["card", str(folder)]) == 0
    assert cli.main(["compare", str(folder), "--embedder", minilm_path]) == 0
    assert minilm_forwards == []
    assert "APS: mean cosine similarity of pairs" in capsys.readouterr().out
    # The audit's label check (5 rows per class: its folds) and near-duplicate counts read the same vectors.
    assert cli.main(["audit", str(folder), "--embedder", minilm_path, "-o", str(tmp_path / "audit")]) == 0
    assert minilm_forwards == []
    assert (tmp_path / "audit" / "audit.md").is_file()

    # A build that replays the journal into a fresh datasets cache reuses the stored vectors too.
    again = generate(tgi, tmp_path, minilm_path, out="again", cache="cache2", card=True)
    assert minilm_forwards == []
    assert layout.read_rows(layout.data_files(again))["text"] == layout.read_rows(layout.data_files(folder))["text"]


def test_vectors_for_embeds_only_what_the_store_lacks_and_matches_the_encoder(tmp_path, minilm_path, minilm_forwards):
    texts = ["A red fox runs.", "Stocks fell sharply on Monday.", "A red fox runs.", "Rain is expected later today."]
    store = tmp_path / "store.sqlite"
    first = vectors_for(texts[:2], embedder=minilm_path, cache=store, progress=None)
    assert sum(minilm_forwards) == 2
    both = vectors_for(texts, embedder=minilm_path, cache=store, progress=None)
    assert sum(minilm_forwards) == 3  # only the one new text; the repeat is the same vector
    np.testing.assert_array_equal(both[:2], first)
    np.testing.assert_array_equal(both[2], both[0])
    fresh = load_embedder(minilm_path).encode(texts)
    assert np.min(np.sum(fresh * both, axis=1)) > 0.999
    with VectorStore(store) as opened:  # stored under the encoder's identity (model files, precision)
        model = load_embedder(minilm_path)
        assert set(opened.get(model.identity, [text_hash(t) for t in texts])) == {text_hash(t) for t in set(texts)}
        assert opened.get(model.identity.replace(model.compute, "other"), [text_hash(texts[0])]) == {}


def test_an_unreadable_store_is_reported_once_and_the_vectors_are_computed(tmp_path, minilm_path, minilm_forwards, capsys):
    broken = tmp_path / "store.sqlite"
    broken.write_bytes(b"this is not an SQLite file" * 10)
    vectors = vectors_for(["One sentence here."], embedder=minilm_path, cache=broken, progress=None)
    assert vectors.shape == (1, 384) and sum(minilm_forwards) == 1
    err = capsys.readouterr().err
    assert err.count("warning: the vector store") == 1 and err[-1] == "\n" and err.count("\n") == 1
    assert broken.read_bytes() == b"this is not an SQLite file" * 10  # left alone
