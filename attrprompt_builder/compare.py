"""Compare generated dataset folders side by side: size, labels, lengths, diversity, attributes, mentions.

Every number comes from ``card.measures`` (the functions and constants the dataset card uses), so
``compare`` and the cards agree. Keyword mentions are counted in the text of every dataset, which is how data without
attribute columns (SimPrompt) is compared with attributed data: by default the terms are the
values of a ``location`` column, the paper's regional-bias check.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from attrprompt_builder.card import measures
from attrprompt_builder.card.measures import DISTINCT_NS, INGF_N, format_measure
from attrprompt_builder.dataset import folder as layout
from attrprompt_builder.dataset.schema import find_label_column
from attrprompt_builder.errors import ConfigError, MissingDependencyError
from attrprompt_builder.verify.bias import PlacesMentioned, places_mentioned
from attrprompt_builder.verify.places import COVERAGE

if TYPE_CHECKING:
    import datasets

    from attrprompt_builder.recipe.model import Recipe

__all__ = [
    "CompareReport",
    "DatasetSummary",
    "add_compare_arguments",
    "compare_folders",
    "format_report",
    "load_folder",
    "run_compare",
    "text_table",
]

_TOP_VALUES = 5
_TOP_TERMS = 15


@dataclass(frozen=True)
class DatasetSummary:
    """The measurements of one dataset folder."""

    name: str
    path: Path
    rows: int
    labels: dict[str, int]
    lengths: measures.LengthStats
    vocabulary: int
    distinct: dict[int, float]
    ingf: float
    similarity: measures.SimilarityStats | None
    attributes: dict[str, dict[str, int]]  # dimension -> value -> rows; dimensions with no value are absent
    mentions: dict[str, int]  # term -> texts mentioning it
    word_counts: tuple[int, ...]
    places: PlacesMentioned | None = None  # the places the texts name (gazetteer), the measured regional bias


@dataclass(frozen=True)
class CompareReport:
    datasets: tuple[DatasetSummary, ...]
    terms: tuple[str, ...]
    terms_source: str
    embedder: str | None
    plot: Path | None = None


def load_folder(folder: str | Path) -> tuple[datasets.Dataset, Recipe | None]:
    """The rows of a generated dataset folder and its recipe, if it kept one (a recipe names the attributes)."""
    folder = Path(folder).expanduser()
    dataset = layout.read_rows(layout.require_data_files(folder, field="folders"))
    if "text" not in dataset.column_names or find_label_column(dataset.features) is None:
        raise ConfigError(
            f"folders: {str(folder)!r} has columns {sorted(dataset.column_names)}; compare needs `text` and `label` or `labels`"
        )
    has_recipe = (folder / layout.RECIPE_FILE).is_file()
    return dataset, layout.read_recipe(folder, field="folders") if has_recipe else None


def _summarize(name: str, path: Path, dataset: datasets.Dataset, recipe: Recipe | None, embedder: Any) -> DatasetSummary:
    texts = [str(text or "") for text in measures.column(dataset, "text")]
    rows = measures.row_labels(dataset)
    similarity = None
    if embedder is not None and len(texts) >= 2:
        # A generated folder keeps its rows' vectors: only texts without one are embedded. A folder
        # without a store gets none: compare creates no file in the folders it reads.
        store = layout.vector_store(path, create=False)
        try:
            similarity = measures.average_pairwise_similarity(texts, rows, embedder, cache=store)
        finally:
            if store is not None:
                store.close()
    attributes = {}
    if recipe is not None:
        attributes = {k: v for k, v in measures.attribute_value_counts(dataset, recipe).items() if v}
    counts = measures.word_counts(texts)
    return DatasetSummary(
        name=name,
        path=path,
        rows=len(texts),
        labels=measures.label_distribution(rows, recipe.label_names if recipe else ()),
        lengths=measures.summarize_word_counts(counts),
        vocabulary=measures.vocabulary_size(texts),
        distinct={n: measures.distinct_n(texts, n) for n in DISTINCT_NS},
        ingf=measures.ingf(texts, INGF_N),
        similarity=similarity,
        attributes=attributes,
        mentions={},
        word_counts=tuple(counts),
        places=places_mentioned(texts, [" + ".join(labels) for labels in rows])[0],
    )


def _names(paths: list[Path]) -> list[str]:
    """Folder names, or longer path tails where two folders share a name."""
    for depth in range(1, 64):
        names = ["/".join(path.resolve().parts[-depth:]) for path in paths]
        if len(set(names)) == len(names):
            return names
    return [str(path) for path in paths]


def compare_folders(
    folders: list[str | Path],
    *,
    embedder: Any = None,
    plot: str | Path | None = None,
    terms: list[str] | None = None,
) -> CompareReport:
    """Measure each folder; ``embedder`` as ``embed.load_embedder`` takes it, or "none" to skip APS.

    ``terms``: keywords whose mentions are counted in every dataset's text; default: the locations
    listed in the recipe of the first dataset that drew locations. ``plot``: a PNG path (needs matplotlib).
    """
    from datasets.utils import tqdm

    if not folders:
        raise ConfigError("folders: none given; pass one or more folders written by `attrprompt generate`")
    paths = [Path(folder).expanduser() for folder in folders]
    loaded = [load_folder(path) for path in paths]
    model = None
    if not (isinstance(embedder, str) and embedder == "none"):
        from attrprompt_builder.filters.dedup.embedders import load_embedder

        model = load_embedder(embedder)
    summaries = []
    with tqdm(total=len(paths), desc="Measuring", unit="dataset") as progress:
        for name, path, (dataset, recipe) in zip(_names(paths), paths, loaded):
            summaries.append(_summarize(name, path, dataset, recipe, model))
            progress.update(1)
    source = "the given terms"
    if terms is None:
        terms, source = _location_terms(summaries, [recipe for _, recipe in loaded])
    terms = list(dict.fromkeys(term.strip() for term in terms if term.strip()))
    if terms:
        summaries = [
            replace(summary, mentions=measures.mention_counts((t or "" for t in measures.column(dataset, "text")), terms))
            for summary, (dataset, _) in zip(summaries, loaded)
        ]
    report = CompareReport(tuple(summaries), tuple(terms), source, getattr(model, "name", None))
    return replace(report, plot=_plot(report, Path(plot))) if plot is not None else report


def _location_terms(summaries: list[DatasetSummary], recipes: list[Recipe | None]) -> tuple[list[str], str]:
    """Every listed location of the first dataset drawing locations (drawn or not: bias shows in both)."""
    for summary, recipe in zip(summaries, recipes):
        if recipe is not None and summary.attributes.get("location"):
            attribute = recipe.attribute("location")
            listed = [*(attribute.values or ()), *(v for vs in (attribute.per_class or {}).values() for v in vs)]
            return listed, f"the location values of {summary.name}'s recipe"
    return [], ""


def text_table(header: list[str], rows: list[list[str]]) -> str:
    """Rows under a header and a rule, for a terminal: the first column left-aligned, the others right-aligned."""
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]

    def line(row: list[str]) -> str:  # names left-aligned, numbers right-aligned
        return "  ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths)))

    lines = [line(row) for row in [header, *rows]]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(line.rstrip() for line in lines)


def format_report(report: CompareReport) -> str:
    """The comparison as plain-text tables for the terminal."""
    sets = report.datasets
    header = ["", *(s.name for s in sets)]

    def aps(part: str) -> list[str]:
        return [format_measure(getattr(s.similarity, part) if s.similarity else None) for s in sets]

    rows = [
        ["rows", *(str(s.rows) for s in sets)],
        ["classes", *(str(sum(1 for n in s.labels.values() if n)) for s in sets)],
        ["words mean", *(f"{s.lengths.mean:.1f}" for s in sets)],
        ["words median", *(f"{s.lengths.median:.1f}" for s in sets)],
        ["words p90", *(f"{s.lengths.p90:.1f}" for s in sets)],
        ["vocabulary", *(str(s.vocabulary) for s in sets)],
        *[[f"distinct-{n}", *(format_measure(s.distinct[n], 4) for s in sets)] for n in DISTINCT_NS],
        [f"INGF-{INGF_N}", *(format_measure(s.ingf) for s in sets)],
        ["APS overall", *aps("overall")],
        ["APS within class", *aps("within")],
        ["APS across classes", *aps("across")],
    ]
    parts = [text_table(header, rows)]
    if report.embedder is None:
        parts.append("APS: not measured (embedder 'none')")
    else:
        parts.append(f"APS: mean cosine similarity of pairs, embedder {report.embedder} (lower = more diverse)")
    labels = list(dict.fromkeys(label for s in sets for label in s.labels))
    label_rows = [[label, *(str(s.labels.get(label, 0)) for s in sets)] for label in labels]
    parts.append("\nLabel distribution\n" + text_table(["label", *header[1:]], label_rows))
    attribute_lines = []
    for s in sets:
        for dimension, counts in s.attributes.items():
            top = ", ".join(f"{value} ({n})" for value, n in list(counts.items())[:_TOP_VALUES])
            attribute_lines.append(f"{s.name} {dimension}: {len(counts)} distinct values; top: {top}")
        if not s.attributes:
            attribute_lines.append(f"{s.name}: no attribute values (simple prompting, or no recipe.yaml)")
    parts.append("\nAttributes\n" + "\n".join(attribute_lines))
    if report.terms:
        totals = {term: sum(s.mentions.get(term, 0) for s in sets) for term in report.terms}
        shown = sorted(report.terms, key=lambda term: -totals[term])[:_TOP_TERMS]
        rows = [[term, *(str(s.mentions.get(term, 0)) for s in sets)] for term in shown]
        mentioned = (sum(1 for n in s.mentions.values() if n) for s in sets)
        rows.append(["terms mentioned", *(f"{n}/{len(report.terms)}" for n in mentioned)])
        title = f"\nTexts mentioning each term ({len(report.terms)} terms from {report.terms_source}; top {len(shown)})"
        parts.append(title + "\n" + text_table(["term", *header[1:]], rows))
    parts.append(_places_section(sets, header))
    if report.plot is not None:
        parts.append(f"\nwrote {report.plot}")
    return "\n".join(parts)


def _places_section(sets: tuple[DatasetSummary, ...], header: list[str]) -> str:
    """Places the texts name, side by side: the paper's regional-bias comparison, measured with the gazetteer."""
    counted = [s.places or PlacesMentioned() for s in sets]

    def share(part: int, whole: int) -> str:
        return f"{100 * part / whole:.1f}%" if whole else "-"

    totals: dict[str, int] = {}
    for places in counted:
        for name, n in places.places.items():
            totals[name] = totals.get(name, 0) + n
    shown = sorted(totals, key=lambda name: -totals[name])[:_TOP_TERMS]
    rows = [["texts naming a place", *(share(p.with_place, p.texts) for p in counted)]]
    rows += [[name, *(share(p.places.get(name, 0), p.texts) for p in counted)] for name in shown]
    continents = sorted({name for p in counted for name in p.continents})
    shares = [p.continent_shares() for p in counted]
    rows += [[f"continent: {name}", *(f"{100 * s.get(name, 0.0):.1f}%" for s in shares)] for name in continents]
    title = f"\nPlaces mentioned (share of texts naming each place; continent rows: share of place mentions; {COVERAGE})"
    return title + "\n" + text_table(["place", *header[1:]], rows)


def _plot(report: CompareReport, path: Path) -> Path:
    from attrprompt_builder.card.plots import load_pyplot

    plt = load_pyplot()
    if plt is None:
        raise MissingDependencyError("plot: matplotlib is not installed; pip install 'attrprompt-builder[plots]' or drop --plot")
    import numpy as np

    sets = report.datasets
    panels = 4 if report.terms else 3
    figure, axes = plt.subplots(1, panels, figsize=(5.5 * panels, 4.2))
    width = 0.8 / len(sets)
    parts = ("overall", "within", "across")
    bins = np.histogram_bin_edges([n for s in sets for n in s.word_counts] or [0], bins=20)
    for k, s in enumerate(sets):
        values = [getattr(s.similarity, part) or 0.0 if s.similarity else 0.0 for part in parts]
        axes[0].bar(np.arange(3) + k * width, values, width, label=s.name)
        axes[1].hist(s.word_counts, bins=bins, alpha=0.5, label=s.name)
    axes[0].set_xticks(np.arange(3) + width * (len(sets) - 1) / 2, [f"APS {p}" for p in parts])
    axes[0].set_title("Average pairwise similarity (lower = more diverse)")
    axes[1].set_title("Words per text")
    if report.terms:
        totals = {term: sum(s.mentions.get(term, 0) for s in sets) for term in report.terms}
        shown = sorted(report.terms, key=lambda term: -totals[term])[:_TOP_TERMS]
        for k, s in enumerate(sets):
            axes[2].bar(np.arange(len(shown)) + k * width, [s.mentions.get(t, 0) for t in shown], width, label=s.name)
        axes[2].set_xticks(np.arange(len(shown)) + width * (len(sets) - 1) / 2, shown, rotation=60, ha="right")
        axes[2].set_title("Texts mentioning each term")
    _continent_panel(axes[-1], sets)
    for axis in axes:
        axis.legend(fontsize="small")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def _continent_panel(axis: Any, sets: tuple[DatasetSummary, ...]) -> None:
    """Per dataset, the share of its place mentions on each continent (the measured regional bias)."""
    shares = [(s.places or PlacesMentioned()).continent_shares() for s in sets]
    starts = [0.0] * len(sets)
    for continent in sorted({name for share in shares for name in share}):
        widths = [share.get(continent, 0.0) for share in shares]
        axis.barh(range(len(sets)), widths, left=starts, label=continent)
        starts = [start + width for start, width in zip(starts, widths)]
    axis.set_yticks(range(len(sets)), [s.name for s in sets])
    axis.set_xlim(0, 1)
    axis.set_title("Places mentioned, by continent")


def add_compare_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("folders", nargs="+", help="dataset folders written by `attrprompt generate`")
    parser.add_argument("--embedder", default=None, help="APS embedder: model folder/Hub id, 'ngram', or 'none'")
    parser.add_argument("--plot", default=None, help="write a PNG comparison to this path")
    parser.add_argument("--terms", default=None, help="comma-separated keywords to count (default: location values)")


def run_compare(args: argparse.Namespace) -> int:
    terms = [term for term in args.terms.split(",") if term.strip()] if args.terms else None
    print(format_report(compare_folders(args.folders, embedder=args.embedder, plot=args.plot, terms=terms)))
    return 0
