"""``attrprompt audit`` and ``attrprompt_builder.audit(dataset)``: the card's quality checks on any labelled text dataset.

Human-labelled data, another tool's output or a folder written by ``attrprompt generate`` alike:
the classifier label check (sentence vectors, out-of-fold logistic regression, confident learning),
near-duplicate statistics (the dedup filter, keep-first, on the same vectors), the places the texts
name and length statistics. ``audit`` writes ``audit.md``, its PNGs and ``flagged.parquet`` (the
flagged rows with their reasons) into ``output_dir``. (The module is not called ``audit``: that name
is the public function, and a submodule of that name would shadow it once imported.)
"""

from __future__ import annotations

import argparse
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from attrprompt_builder.card import measures
from attrprompt_builder.card.quality import label_check_summary, places_summary
from attrprompt_builder.dataset.schema import LabelColumn, find_label_column
from attrprompt_builder.errors import ConfigError
from attrprompt_builder.verify.bias import places_mentioned
from attrprompt_builder.verify.label_check import METHOD, check_labels
from attrprompt_builder.verify.places import COVERAGE
from attrprompt_builder.verify.vectors import text_vectors

if TYPE_CHECKING:
    import datasets

__all__ = ["AuditReport", "add_audit_arguments", "audit", "load_source", "run_audit"]

TEXT_COLUMNS = ("text", "sentence", "content", "review", "document", "body", "question")
LABEL_NAMES = ("label", "labels", "category", "class", "topic", "intent", "coarse_label", "fine_label")
FLAGGED_FILE = "flagged.parquet"
REPORT_FILE = "audit.md"


@dataclass
class AuditReport:
    """What ``audit`` measured; ``flagged``: row -> reasons."""

    rows: int
    text_column: str
    label_column: str
    label_check: dict[str, Any]
    duplicates: Counter[str]
    places: dict[str, Any]
    lengths: measures.LengthStats
    flagged: dict[int, list[str]] = field(default_factory=dict)
    output_dir: Path | None = None


class _Precomputed:
    """The vectors already computed for the label check, served to the dedup filter by text."""

    def __init__(self, texts: list[str], vectors: np.ndarray, *, name: str, kind: str | None) -> None:
        self._rows = {text: row for row, text in enumerate(texts)}
        self._vectors = vectors
        self.name, self.dim, self.kind = name, int(vectors.shape[1]), kind

    def encode(self, texts: list[str]) -> np.ndarray:
        return np.ascontiguousarray(self._vectors[[self._rows[text] for text in texts]])


def load_source(source: str, *, split: str | None = None) -> datasets.Dataset:
    """A dataset from a folder (generated, ``save_to_disk``, or data files) or a Hub id."""
    import datasets

    from attrprompt_builder.dataset import folder as layout

    path = Path(source).expanduser()
    try:
        if path.is_dir() and layout.data_files(path):
            return layout.read_rows(layout.data_files(path))
        if path.is_dir() and ((path / "state.json").is_file() or (path / "dataset_dict.json").is_file()):
            loaded = datasets.load_from_disk(str(path))
        else:
            loaded = datasets.load_dataset(str(path) if path.exists() else source)
    except (FileNotFoundError, ValueError, datasets.exceptions.DatasetNotFoundError) as err:
        raise ConfigError(f"source: cannot load {source!r} ({err}); pass a dataset folder or a Hub dataset id") from err
    if isinstance(loaded, datasets.DatasetDict):
        name = split or ("train" if "train" in loaded else next(iter(loaded)))
        if name not in loaded:
            raise ConfigError(f"split: got {name!r}; use one of {', '.join(loaded)}")
        return loaded[name]
    return loaded


def _pick_columns(dataset: datasets.Dataset, text_column: str | None, label_column: str | None) -> tuple[str, LabelColumn]:
    import datasets

    columns = dataset.column_names
    for flag, given in (("--text-column", text_column), ("--label-column", label_column)):
        if given is not None and given not in columns:
            raise ConfigError(f"{flag}: got {given!r}; the dataset's columns are {', '.join(columns)}")
    strings = [
        name for name, feature in dataset.features.items() if getattr(feature, "dtype", None) in ("string", "large_string")
    ]
    text = text_column or next((name for name in TEXT_COLUMNS if name in strings), None)
    if text is None:
        text = next(iter(strings), None) if len(strings) == 1 else None
    if text is None:
        raise ConfigError(f"--text-column: cannot tell which column holds the text among {', '.join(columns)}; pass it")
    if label_column is not None:
        return text, LabelColumn.of(dataset.features, label_column)
    found = find_label_column(dataset.features)
    if found is None:
        class_labels = [n for n, f in dataset.features.items() if isinstance(f, datasets.ClassLabel)]
        name = next(iter(class_labels), None) or next((n for n in LABEL_NAMES if n in columns and n != text), None)
        found = LabelColumn.of(dataset.features, name) if name else None
    if found is None:
        raise ConfigError(f"--label-column: cannot tell which column holds the label among {', '.join(columns)}; pass it")
    return text, found


def audit(
    dataset: datasets.Dataset,
    *,
    text_column: str | None = None,
    label_column: str | None = None,
    embedder: str | None = None,
    dedup_threshold: float | None = None,
    output_dir: str | Path | None = None,
    seed: int = 0,
    progress: bool = True,
    vectors_file: str | Path | None = None,
) -> AuditReport:
    """Run the label check, near-duplicate statistics, places mentioned and length statistics on ``dataset``.

    Columns are detected (``text``/``sentence``/...; ``label``/``labels`` or a ``ClassLabel``) unless
    given. With ``output_dir``, writes ``audit.md``, the PNGs and ``flagged.parquet`` there.
    ``vectors_file``: a vector store (a generated folder's) whose vectors are used instead of embedding again.
    """

    from attrprompt_builder.filters.dedup.embedders import load_embedder
    from attrprompt_builder.filters.dedup.filter import default_threshold

    if dedup_threshold is not None and not (isinstance(dedup_threshold, (int, float)) and 0 < dedup_threshold <= 1):
        raise ConfigError(f"dedup_threshold: got {dedup_threshold!r}; use a cosine similarity in (0, 1]")
    text, labels = _pick_columns(dataset, text_column, label_column)
    texts = [str(value or "") for value in measures.column(dataset, text)]
    given = [labels.names_of(value) for value in measures.column(dataset, labels.name)]
    names = list(labels.class_names or sorted({name for row in given for name in row}))
    model = load_embedder(embedder)
    vectors = text_vectors(texts, embedder=model, cache=vectors_file, progress="audit: sentence vectors" if progress else None)
    check = check_labels(vectors, given, class_names=names, multi_label=labels.multi_label, seed=seed)
    flagged: dict[int, list[str]] = {}
    for row in np.flatnonzero(check.flagged):
        flagged.setdefault(int(row), []).append(f"label check: reads as {' + '.join(check.assigned[row]) or 'no class'}")
    threshold = default_threshold(model) if dedup_threshold is None else float(dedup_threshold)
    duplicates = _duplicates(texts, vectors, given, model, threshold, flagged, progress=progress)
    overall, per_class = places_mentioned(texts, [" + ".join(row) for row in given])
    report = AuditReport(
        rows=len(texts),
        text_column=text,
        label_column=labels.name,
        label_check={"method": METHOD, **label_check_summary(given, check.assigned, names)},
        duplicates=duplicates,
        places={"threshold": threshold, **places_summary(overall, per_class)},
        lengths=measures.summarize_word_counts(measures.word_counts(texts)),
        flagged=dict(sorted(flagged.items())),
    )
    if output_dir is not None:
        report.output_dir = _write(report, Path(output_dir), texts=texts, given=given, assigned=check.assigned)
        _write_places_figure(report.output_dir, overall, per_class)
    return report


_BATCH = 1024


def _duplicates(
    texts: list[str],
    vectors: np.ndarray,
    given: list[tuple[str, ...]],
    model: Any,
    threshold: float,
    flagged: dict[int, list[str]],
    *,
    progress: bool,
) -> Counter[str]:
    """Keep-first near-duplicates within each class, and across classes, on the label check's vectors."""
    from datasets.utils import tqdm

    from attrprompt_builder.filters.dedup.filter import NearDuplicateFilter

    served = _Precomputed(texts, vectors, name=getattr(model, "name", "embedder"), kind=getattr(model, "kind", None))
    dedup = NearDuplicateFilter(embedder=served, threshold=threshold, cross_group=True)
    groups = [" + ".join(row) for row in given]
    kept_rows: dict[str, list[int]] = {}  # group -> dataset rows of its kept texts, in order
    counts: Counter[str] = Counter()
    for start in tqdm(range(0, len(texts), _BATCH), desc="audit: near-duplicates", unit="batch", disable=not progress):
        batch = range(start, min(start + _BATCH, len(texts)))
        decisions = dedup.check([texts[i] for i in batch], [groups[i] for i in batch])
        for row, decision in zip(batch, decisions):
            match = None
            if decision.match_group is not None and decision.match_index is not None:
                match = kept_rows.get(decision.match_group, [])[decision.match_index]
            if decision.keep:
                kept_rows.setdefault(groups[row], []).append(row)
                if decision.cross_group_match is not None:
                    counts["cross_class_near_duplicate"] += 1
                    flagged.setdefault(row, []).append(
                        f"near-duplicate (cosine {decision.similarity:.2f}) of row {match}, labelled {decision.cross_group_match}"
                    )
                continue
            reason = str(decision.reason)
            counts[reason] += 1
            flagged.setdefault(row, []).append(f"{reason.replace('_', ' ')} (cosine {decision.similarity:.2f}) of row {match}")
    return counts


def _write(
    report: AuditReport, folder: Path, *, texts: list[str], given: list[tuple[str, ...]], assigned: list[tuple[str, ...]]
) -> Path:
    import datasets

    from attrprompt_builder.dataset.folder import require_writable_folder

    require_writable_folder(folder, field="output")
    rows = list(report.flagged)
    datasets.Dataset.from_dict(
        {
            "row": rows,
            "text": [texts[i] for i in rows],
            "label": [list(given[i]) for i in rows],
            "label_check": [list(assigned[i]) for i in rows],
            "reasons": [report.flagged[i] for i in rows],
        },
        features=datasets.Features(
            {
                "row": datasets.Value("int64"),
                "text": datasets.Value("string"),
                "label": datasets.Sequence(datasets.Value("string")),
                "label_check": datasets.Sequence(datasets.Value("string")),
                "reasons": datasets.Sequence(datasets.Value("string")),
            }
        ),
    ).to_parquet(str(folder / FLAGGED_FILE))
    (folder / REPORT_FILE).write_text(format_audit(report), encoding="utf-8")
    return folder


def _write_places_figure(folder: Path, overall: Any, per_class: dict[str, Any]) -> None:
    from attrprompt_builder.card.plots import load_pyplot, places_figure

    plt = load_pyplot()
    if plt is not None and overall.with_place:
        shares = {"all": overall.continent_shares(), **{k: v.continent_shares() for k, v in per_class.items()}}
        places_figure(plt, overall.top(), shares, folder)


def format_audit(report: AuditReport) -> str:
    """``audit.md``: every figure, with how it was computed."""
    check, places, lengths = report.label_check, report.places, report.lengths
    lines = [
        "# Audit",
        "",
        f"{report.rows} rows; text column `{report.text_column}`, label column `{report.label_column}`.",
        "",
        "## Label check",
        "",
        f"Method: {check['method']}. {check['flagged']} of {check['rows']} rows ({check['share']}) are flagged; "
        f"they are in `{FLAGGED_FILE}` with the label the check assigns.",
        "",
        "| class | flagged | rows | mismatch rate |",
        "|---|---|---|---|",
        *(f"| {name} | {n} | {rows} | {share} |" for name, n, rows, share in check["per_class"]),
    ]
    if check["confusion"]:
        names = check["confusion"]["names"]
        lines += ["", "Given label (rows) x label assigned by the check (columns):", ""]
        lines += [f"| given \\ assigned | {' | '.join(names)} |", "|---|" + "---|" * len(names)]
        lines += [f"| {name} | {' | '.join(map(str, counts))} |" for name, counts in check["confusion"]["rows"]]
    dupes = report.duplicates
    lines += [
        "",
        "## Near-duplicates",
        "",
        f"Keep-first in row order, cosine similarity of the same sentence vectors >= {places['threshold']:g} (the dedup "
        "filter's measured default for the embedder): "
        f"{dupes['exact_duplicate']} exact and {dupes['near_duplicate']} near-duplicates of an earlier row of the same "
        f"class; {dupes['cross_class_near_duplicate']} rows nearly duplicate a row of another class (likely label noise).",
        "",
        "## Length",
        "",
        f"Words per text (whitespace split): mean {lengths.mean:.1f}, median {lengths.median:.1f}, "
        f"min {lengths.min}, max {lengths.max}, p90 {lengths.p90:.1f}.",
        "",
        "## Places mentioned",
        "",
        f"Places named in the texts: {COVERAGE}; a text counts once per place. {places['with_place']} of {places['texts']} texts "
        f"({places['with_place_share']}) name at least one place.",
        "",
        "| place | texts | share of texts |",
        "|---|---|---|",
        *(f"| {name} | {n} | {share} |" for name, n, share in places["top"]),
        "",
        "By continent (share of place mentions): " + (", ".join(f"{n} {s}" for n, s in places["continents"]) or "none"),
        "",
        "| class | texts naming a place | top places | top continents |",
        "|---|---|---|---|",
        *(f"| {label} | {share} | {top} | {cont} |" for label, share, top, cont in places["per_class"]),
    ]
    if places["with_place"]:
        lines += ["", "![Places mentioned](places_mentioned.png)"]
    return "\n".join(lines) + "\n"


def add_audit_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", help="a dataset folder (generated, saved with datasets, or data files) or a Hub dataset id")
    parser.add_argument(
        "-o", "--output", default=None, help="folder for audit.md, PNGs and flagged.parquet (default: audit-NAME)"
    )
    parser.add_argument("--text-column", default=None, help="the column holding the text (default: detected)")
    parser.add_argument("--label-column", default=None, help="the column holding the label(s) (default: detected)")
    parser.add_argument("--split", default=None, help="the split to audit (default: train, else the first)")
    parser.add_argument("--embedder", default=None, help="sentence embedder: model folder/Hub id or 'ngram' (default: MiniLM)")
    parser.add_argument("--dedup-threshold", type=float, default=None, help="near-duplicate cosine (default: the embedder's)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the cross-validation folds (default 0)")


def run_audit(args: argparse.Namespace) -> int:
    output = args.output or f"audit-{Path(args.source.rstrip('/')).name or 'dataset'}"
    from attrprompt_builder.dataset.folder import VECTORS_FILE

    stored = Path(args.source).expanduser() / VECTORS_FILE  # a generated folder keeps its build's vectors
    report = audit(
        load_source(args.source, split=args.split),
        vectors_file=stored if stored.is_file() else None,
        text_column=args.text_column,
        label_column=args.label_column,
        embedder=args.embedder,
        dedup_threshold=args.dedup_threshold,
        output_dir=output,
        seed=args.seed,
    )
    print(
        f"wrote {report.output_dir}/{REPORT_FILE}: {report.rows} rows, {report.label_check['flagged']} flagged by the label "
        f"check, {sum(report.duplicates.values())} near-duplicate findings; flagged rows in {FLAGGED_FILE}"
    )
    return 0
