"""What the card step shows and draws for awkward class lists (issue 11, item 16).

Many classes must not make a figure thousands of pixels tall; class names in a script the default
font lacks must not flood the output with one matplotlib warning per glyph; the progress bar of
the similarity measure speaks plain words.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

from PIL import Image

from attrprompt_builder.card import measures
from attrprompt_builder.card.measures import ClassCoverage
from attrprompt_builder.card.plots import write_plots
from attrprompt_builder.filters.dedup.embedders import NgramEmbedder

MAX_HEIGHT_PX = 1500


def draw(folder: Path, labels: list[str], coverage: dict[str, list[ClassCoverage]] | None = None) -> dict:
    counts = {label: 1 + index % 7 for index, label in enumerate(labels)}
    return write_plots(folder, label_counts=counts, lengths_by_class={label: [5, 9] for label in labels}, coverage=coverage or {})


def glyph_warnings(caught: list[warnings.WarningMessage]) -> list[str]:
    return [str(w.message) for w in caught if "Glyph" in str(w.message)]


def test_a_thousand_labels_give_a_figure_of_readable_size(tmp_path):
    labels = [f"class_{index:04d}" for index in range(1000)]
    coverage = {
        "subtopic": [
            ClassCoverage(label, {f"v{k}": int(k < index % 50) for k in range(50)}, {}) for index, label in enumerate(labels)
        ]
    }
    figures = draw(tmp_path, labels, coverage)
    for key in ("labels", "coverage:subtopic"):
        width, height = Image.open(tmp_path / figures[key].path).size
        assert height <= MAX_HEIGHT_PX, (key, width, height)  # the label plot was 700 x 28100 px


def test_cjk_labels_warn_once_instead_of_once_per_glyph(tmp_path, caplog):
    labels = ["体育", "政治", "科技", "娱乐"]
    with warnings.catch_warnings(record=True) as caught, caplog.at_level(logging.WARNING, logger="attrprompt_builder"):
        warnings.simplefilter("always")
        draw(tmp_path, labels)
    assert glyph_warnings(caught) == []  # matplotlib gave one per glyph and figure
    records = [r for r in caplog.records if r.name == "attrprompt_builder.card.plots"]
    if _installed_font_has("体"):  # a machine with a CJK font draws the glyphs: nothing to say
        assert records == []
    else:
        assert len(records) == 1
        assert "体" in records[0].getMessage() and "Noto Sans CJK" in records[0].getMessage()


def test_a_character_the_default_font_lacks_is_drawn_with_an_installed_font_that_has_it(tmp_path, caplog):
    rare = "\u2900"  # in DejaVu Serif, which matplotlib ships beside DejaVu Sans (its default, which lacks it)
    assert _installed_font_has(rare)
    with warnings.catch_warnings(record=True) as caught, caplog.at_level(logging.WARNING, logger="attrprompt_builder"):
        warnings.simplefilter("always")
        draw(tmp_path, [f"arrows {rare}", "plain"])
    assert glyph_warnings(caught) == []
    assert [r for r in caplog.records if r.name == "attrprompt_builder.card.plots"] == []


def _installed_font_has(character: str) -> bool:
    """Whether some installed font other than matplotlib's default has ``character``."""
    import matplotlib.pyplot as plt
    from matplotlib import font_manager, ft2font

    default = font_manager.findfont(font_manager.FontProperties(family=plt.rcParams["font.family"]))
    return any(
        ord(character) in ft2font.FT2Font(entry.fname).get_charmap()
        for entry in font_manager.fontManager.ttflist
        if entry.fname != default and "last resort" not in entry.name.lower()
    )


def test_the_similarity_progress_bar_speaks_plain_words(capsys):
    measures.average_pairwise_similarity(["a cat", "a dog", "two birds"], [("x",), ("y",), ("x",)], NgramEmbedder())
    err = capsys.readouterr().err
    assert "Measuring how similar the texts are" in err
    assert "APS" not in err  # was "Embedding for APS"
