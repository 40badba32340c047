"""PNG figures for the dataset card: label distribution, lengths, class x value coverage.

matplotlib is optional (the ``plots`` extra): it is imported lazily with the Agg backend, and
when it is missing ``write_plots`` logs one line and returns no figures. Bar charts of many classes
show the largest and smallest ``MAX_BARS // 2`` only, so a figure stays a readable size. Labels in a
script the default font lacks (CJK...) are drawn with an installed font that has it; without one,
one log line says so instead of one matplotlib warning per glyph.
"""

from __future__ import annotations

import logging
import re
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from attrprompt_builder.card.measures import ClassCoverage

__all__ = [
    "Figure",
    "MAX_BARS",
    "MAX_HEATMAP_CLASSES",
    "MAX_HEATMAP_VALUES",
    "coverage_figure",
    "label_bar_chart",
    "length_histogram",
    "load_pyplot",
    "write_plots",
]

logger = logging.getLogger(__name__)

# Past these sizes a heatmap's cells and tick labels are unreadable: draw a per-class bar chart
# of the share of values covered instead.
MAX_HEATMAP_CLASSES = 30
MAX_HEATMAP_VALUES = 40
_MAX_HISTOGRAM_CLASSES = 10
_MAX_ANNOTATED_CELLS = 300
# More bars than this (1000 classes made a 28100 px tall PNG) show the largest and smallest half each.
MAX_BARS = 40


@dataclass(frozen=True)
class Figure:
    """A written PNG: ``path`` is relative to the folder it was written to."""

    title: str
    path: str


def load_pyplot() -> Any | None:
    """``matplotlib.pyplot`` on the Agg backend, or ``None`` when matplotlib is not installed."""
    try:
        import matplotlib
    except ImportError:
        return None
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _save(plt: Any, figure: Any, folder: Path, filename: str) -> str:
    figure.tight_layout()
    figure.savefig(folder / filename, dpi=100)
    plt.close(figure)
    return filename


def _short(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _extremes(values: Mapping[str, float], noun: str) -> tuple[list[str], list[float], str]:
    """Tick labels, bar values and a title note: every bar, or the largest and smallest ``MAX_BARS // 2``.

    A gap row (value 0) between the two halves says how many bars are left out.
    """
    if len(values) <= MAX_BARS:
        return list(values), list(values.values()), ""
    ranked = sorted(values, key=lambda name: -values[name])  # stable: ties keep their order
    half = MAX_BARS // 2
    shown = [*ranked[:half], None, *ranked[-half:]]
    ticks = [f"… {len(values) - 2 * half} more {noun} …" if name is None else name for name in shown]
    bars = [0.0 if name is None else values[name] for name in shown]
    return ticks, bars, f" ({half} largest and {half} smallest of {len(values)} {noun})"


def label_bar_chart(plt: Any, counts: Mapping[str, int], folder: Path) -> str:
    """Rows per label, one horizontal bar each (the extremes only, when there are many labels)."""
    labels, values, note = _extremes(counts, "classes")
    height = max(2.5, 0.28 * len(labels) + 1.0)
    figure, axes = plt.subplots(figsize=(7, height))
    axes.barh(range(len(labels)), values, color="#4C72B0")
    axes.set_yticks(range(len(labels)), [_short(label) for label in labels], fontsize=8)
    axes.invert_yaxis()
    axes.set_xlabel("rows")
    axes.set_title("Label distribution" + note)
    return _save(plt, figure, folder, "label_distribution.png")


def length_histogram(plt: Any, lengths_by_class: Mapping[str, Sequence[int]], folder: Path) -> str:
    """Words per text, stacked by class (all classes in one bar when there are many)."""
    figure, axes = plt.subplots(figsize=(7, 4))
    populated = {label: list(values) for label, values in lengths_by_class.items() if values}
    if len(populated) <= _MAX_HISTOGRAM_CLASSES:
        axes.hist(list(populated.values()), bins=30, stacked=True, label=[_short(k, 25) for k in populated])
        axes.legend(fontsize=7)
    else:
        axes.hist([v for values in populated.values() for v in values], bins=30, color="#4C72B0")
    axes.set_xlabel("words per text")
    axes.set_ylabel("rows")
    axes.set_title("Text length" + (" by class" if len(populated) <= _MAX_HISTOGRAM_CLASSES else ""))
    return _save(plt, figure, folder, "length_histogram.png")


def coverage_figure(plt: Any, dimension: str, coverage: Sequence[ClassCoverage], folder: Path) -> str:
    """Class x value counts as a heatmap when it fits, else the share of each class's values drawn."""
    filename = f"coverage_{re.sub(r'[^A-Za-z0-9_.-]', '_', dimension)}.png"
    widest = max((len(c.counts) for c in coverage), default=0)
    if len(coverage) <= MAX_HEATMAP_CLASSES and widest <= MAX_HEATMAP_VALUES:
        # Class-dependent lists differ per class, so columns are value slots (list order), and
        # each row's cells are that class's own values.
        import numpy as np

        grid = np.full((len(coverage), widest), np.nan)
        for row, item in enumerate(coverage):
            grid[row, : len(item.counts)] = list(item.counts.values())
        figure, axes = plt.subplots(figsize=(min(16, max(6, 2 + 0.3 * widest)), max(2.5, 0.4 * len(coverage) + 1.2)))
        image = axes.imshow(grid, aspect="auto", cmap="viridis", vmin=0)
        figure.colorbar(image, ax=axes, label="rows")
        annotate_all = len(coverage) * widest <= _MAX_ANNOTATED_CELLS
        brightest = np.nanmax(grid) if widest else 0
        for row, item in enumerate(coverage):
            for col, count in enumerate(item.counts.values()):
                if count == 0 or annotate_all:
                    # viridis is light at the top of its range: dark text there, light text below.
                    colour = "red" if count == 0 else ("black" if count > 0.6 * brightest else "white")
                    axes.text(col, row, str(count), ha="center", va="center", color=colour, fontsize=7)
        axes.set_yticks(range(len(coverage)), [_short(c.label, 25) for c in coverage], fontsize=8)
        step = max(1, widest // 20)
        axes.set_xticks(range(0, widest, step), [str(i + 1) for i in range(0, widest, step)], fontsize=7)
        axes.set_xlabel("value: position in the class's own list (red 0 = never drawn)")
        axes.set_title(f"{dimension}: rows per class and value")
    else:
        labels, shares, note = _extremes({c.label: 100 * c.share_covered for c in coverage}, "classes")
        figure, axes = plt.subplots(figsize=(7, max(2.5, 0.22 * len(labels) + 1.2)))
        axes.barh(range(len(labels)), shares, color="#55A868")
        axes.set_yticks(range(len(labels)), [_short(label, 30) for label in labels], fontsize=7)
        axes.invert_yaxis()
        axes.set_xlim(0, 100)
        axes.margins(y=0.01)
        axes.set_xlabel("% of the class's values drawn at least once")
        axes.set_title(f"{dimension}: value coverage per class" + note)
    return _save(plt, figure, folder, filename)


def write_plots(
    folder: Path,
    *,
    label_counts: Mapping[str, int],
    lengths_by_class: Mapping[str, Sequence[int]],
    coverage: Mapping[str, Sequence[ClassCoverage]],
) -> dict[str, Figure]:
    """Write every figure into ``folder``; keys are ``labels``, ``lengths`` and ``coverage:<dim>``."""
    plt = load_pyplot()
    if plt is None:
        logger.warning("matplotlib is not installed: the card has no plots (pip install 'attrprompt-builder[plots]')")
        return {}
    folder.mkdir(parents=True, exist_ok=True)
    texts = [*label_counts, *lengths_by_class, *coverage, *(c.label for items in coverage.values() for c in items)]
    with plt.rc_context(_fonts_for(plt, texts)), warnings.catch_warnings():
        # Glyphs no installed font has: _fonts_for said so once; matplotlib would warn per glyph and figure.
        warnings.filterwarnings("ignore", message=r"Glyph \d+ .*missing from font")
        figures = {
            "labels": Figure("Label distribution", label_bar_chart(plt, label_counts, folder)),
            "lengths": Figure("Text length", length_histogram(plt, lengths_by_class, folder)),
        }
        for dimension, items in coverage.items():
            figures[f"coverage:{dimension}"] = Figure(f"{dimension} coverage", coverage_figure(plt, dimension, items, folder))
    return figures


def _fonts_for(plt: Any, texts: Iterable[str]) -> dict[str, Any]:
    """rc settings whose font list can draw every character of ``texts`` (empty when the default can).

    matplotlib falls back glyph by glyph along ``font.family``, so one installed font that has the
    missing characters is added after the default. Without one, the characters show as boxes and
    one log line names them and the fix.
    """
    from matplotlib import font_manager, ft2font

    default = font_manager.findfont(font_manager.FontProperties(family=plt.rcParams["font.family"]))
    have = set(ft2font.FT2Font(default).get_charmap())
    missing = sorted({ch for text in texts for ch in str(text) if not ch.isspace() and ord(ch) not in have})
    if not missing:
        return {}
    for entry in font_manager.fontManager.ttflist:
        if entry.fname == default or "last resort" in entry.name.lower():  # its glyphs are placeholder boxes
            continue
        try:
            charmap = ft2font.FT2Font(entry.fname).get_charmap()
        except (OSError, RuntimeError, ValueError):
            continue
        if all(ord(ch) in charmap for ch in missing):
            return {"font.family": [*plt.rcParams["font.family"], entry.name]}
    logger.warning(
        "no installed font has the characters %s of the class names: the card's plots show boxes for them "
        "(install a font that has them, e.g. Noto Sans CJK, and rerun `attrprompt card`)",
        "".join(missing[:10]) + ("…" if len(missing) > 10 else ""),
    )
    return {}


def places_figure(
    plt: Any, top_places: Sequence[tuple[str, int]], continent_shares: Mapping[str, Mapping[str, float]], folder: Path
) -> str:
    """The places the texts name: texts per place (left) and, per class, the share of mentions by continent (right)."""
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, max(3.0, 0.3 * max(len(top_places), len(continent_shares)) + 1.5)))
    names = [_short(name, 25) for name, _ in top_places]
    left.barh(range(len(names)), [count for _, count in top_places], color="#4C72B0")
    left.set_yticks(range(len(names)), names, fontsize=8)
    left.invert_yaxis()
    left.set_xlabel("texts naming the place")
    left.set_title("Places mentioned (top)")
    continents = sorted({name for shares in continent_shares.values() for name in shares})
    groups = list(continent_shares)
    starts = [0.0] * len(groups)
    for continent in continents:
        widths = [continent_shares[group].get(continent, 0.0) for group in groups]
        right.barh(range(len(groups)), widths, left=starts, label=continent)
        starts = [start + width for start, width in zip(starts, widths)]
    right.set_yticks(range(len(groups)), [_short(group, 25) for group in groups], fontsize=8)
    right.invert_yaxis()
    right.set_xlim(0, 1)
    right.set_xlabel("share of place mentions")
    right.set_title("By continent")
    if continents:
        right.legend(fontsize=7, loc="lower right")
    return _save(plt, figure, folder, "places_mentioned.png")
