"""What ``attrprompt reproduce`` reports: the classifier setup, each method's results, and the table.

Every cell comes from something measured in the run (or by the earlier run whose model it reuses):
the scores of the saved classifiers, the spend recorded by each build, and ``compare``'s measures.
A measure nothing took shows ``MISSING``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from attrprompt_builder.card import measures
from attrprompt_builder.card.measures import MISSING, format_measure
from attrprompt_builder.compare import DatasetSummary, text_table
from attrprompt_builder.generation.stats import BuildStats
from attrprompt_builder.verify.places import COVERAGE

__all__ = [
    "MethodResult",
    "PAPER_TRAINING",
    "QUICK_CLASSIFIER",
    "RESULTS_JSON",
    "RESULTS_MD",
    "ReproduceReport",
    "TrainingSettings",
    "format_reproduce",
    "score_names",
    "table_rows",
    "write_results",
]

# BERT-Mini (4 layers, hidden 256; Google's BERT miniatures, Apache-2.0): a CPU-sized stand-in for --quick runs.
QUICK_CLASSIFIER = "google/bert_uncased_L-4_H-256_A-4"
RESULTS_JSON = "results.json"
RESULTS_MD = "results.md"


@dataclass(frozen=True)
class TrainingSettings:
    """The classifier setup; the defaults are the paper's (bert-base-uncased, 128 tokens, 2e-5, batch 32, 8 epochs)."""

    model: str = "bert-base-uncased"
    max_length: int = 128
    learning_rate: float = 2e-5
    batch_size: int = 32
    epochs: float = 8.0
    seed: int = 0


PAPER_TRAINING = TrainingSettings()


@dataclass(frozen=True)
class MethodResult:
    name: str
    prompting: str
    folder: Path
    model_dir: Path
    scores: dict[str, Any]  # train_classifier's metrics on the gold set
    trained: str  # "trained", "reused" or "re-scored" (reproduce.models.STATUS_NOTES)
    built: BuildStats | None  # what the build that made the rows spent
    sent_this_run: int
    priced: bool
    diversity: DatasetSummary | None = None


@dataclass(frozen=True)
class ReproduceReport:
    recipe: str
    gold: str
    training: TrainingSettings
    methods: tuple[MethodResult, ...]
    embedder: str | None
    terms: tuple[str, ...]
    budget: dict[str, Any] = field(default_factory=dict)  # samples_per_class and the caps, given to each build
    files: tuple[Path, ...] = field(default=())


def score_names(scores: dict[str, Any]) -> list[str]:
    return [name for name in ("accuracy", "micro_f1", "macro_f1", "subset_accuracy") if name in scores]


_SCORE_LABELS = {"accuracy": "accuracy", "micro_f1": "micro-F1", "macro_f1": "macro-F1", "subset_accuracy": "subset accuracy"}


def table_rows(report: ReproduceReport) -> list[tuple[str, list[str]]]:
    """The table, row by row: a measure and one cell per method; MISSING where nothing was measured."""
    methods = report.methods

    def spent(name: str) -> list[str]:
        return [str(getattr(m.built, name)) if m.built else MISSING for m in methods]

    def diversity(get: Any, digits: int = 3) -> list[str]:
        return [format_measure(get(m.diversity), digits) if m.diversity else MISSING for m in methods]

    def aps(part: str) -> list[str]:
        return diversity(lambda d: getattr(d.similarity, part) if d.similarity else None)

    rows = [
        (_SCORE_LABELS[name], [format_measure(m.scores.get(name), 4) for m in methods]) for name in score_names(methods[0].scores)
    ]
    rows += [
        ("rows", [str(m.diversity.rows) if m.diversity else MISSING for m in methods]),
        ("requests sent", spent("sent")),
        ("replies reused", spent("reused")),
        ("prompt tokens", spent("prompt_tokens")),
        ("completion tokens", spent("completion_tokens")),
        ("tokens", spent("total_tokens")),
        ("cost", [f"{m.built.cost:.4f}" if m.built and m.priced else MISSING for m in methods]),
        ("words per text (mean)", diversity(lambda d: d.lengths.mean, 1)),
        ("vocabulary", [str(m.diversity.vocabulary) if m.diversity else MISSING for m in methods]),
        *[(f"distinct-{n}", diversity(lambda d, n=n: d.distinct[n], 4)) for n in measures.DISTINCT_NS],
        (f"INGF-{measures.INGF_N}", diversity(lambda d: d.ingf)),
        ("APS overall", aps("overall")),
        ("APS within class", aps("within")),
        ("APS across classes", aps("across")),
    ]
    if report.terms:
        mentioned = [sum(1 for n in m.diversity.mentions.values() if n) if m.diversity else None for m in methods]
        rows.append(("recipe locations mentioned", [f"{n}/{len(report.terms)}" if n is not None else MISSING for n in mentioned]))
    rows += _places_rows(methods)
    return rows


def _places_rows(methods: Sequence[MethodResult]) -> list[tuple[str, list[str]]]:
    """The paper's regional-bias comparison: which places the texts name (verify/bias.py, a gazetteer)."""

    def places(cell: Any) -> list[str]:
        return [cell(m.diversity.places) if m.diversity and m.diversity.places else MISSING for m in methods]

    def share(part: int, whole: int) -> str:
        return f"{100 * part / whole:.1f}%" if whole else MISSING

    def top(counts: Any, whole: int) -> str:
        named = counts.most_common(1)
        return f"{named[0][0]} {share(named[0][1], whole)}" if named else "none"  # measured: no text names one

    return [
        ("texts naming a place", places(lambda p: share(p.with_place, p.texts))),
        ("most named place (share of texts)", places(lambda p: top(p.places, p.texts))),
        ("most named continent (share of mentions)", places(lambda p: top(p.continents, sum(p.continents.values())))),
    ]


def format_reproduce(report: ReproduceReport, *, markdown: bool = False) -> str:
    """The table and what each row means, for a terminal or (``markdown``) for results.md."""
    header = ["", *(m.name for m in report.methods)]
    rows = [[name, *cells] for name, cells in table_rows(report)]
    if markdown:
        lines = ["| " + " | ".join(["measure", *header[1:]]) + " |", "|---" + "|---:" * len(report.methods) + "|"]
        table = "\n".join([*lines, *("| " + " | ".join(row) + " |" for row in rows)])
    else:
        table = text_table(header, rows)
    first = report.methods[0]
    t = report.training
    notes = [
        f"AttrPrompt vs SimPrompt on {report.recipe}: classifier {t.model} (max length {t.max_length}, learning rate "
        f"{t.learning_rate:g}, batch {t.batch_size}, {t.epochs:g} epochs, seed {t.seed}), scored on "
        f"{first.scores.get('num_eval', '?')} rows of {first.scores.get('eval_source', report.gold)}",
        "",
        table,
        "",
        "Scores: the final model of each run on the test set (higher is better). Requests, tokens and cost: what the "
        "build that made each dataset sent (replies an earlier, interrupted run paid for count as reused).",
        _budget_line(report.budget),
        f"This run sent {', '.join(f'{m.sent_this_run} ({m.name})' for m in report.methods)} requests; models: "
        + ", ".join(f"{m.name} {m.trained}" for m in report.methods)
        + ".",
        "Diversity: vocabulary and distinct-n higher = more diverse; INGF and APS lower = more diverse; "
        + (f"APS embedder {report.embedder}." if report.embedder else "APS not measured (no embedder)."),
        f"Places (regional bias): {COVERAGE} named in the texts; "
        f"one place or continent taking most mentions is the skew the paper found in SimPrompt data. {MISSING}: not measured.",
    ]
    if not any(m.priced for m in report.methods):
        notes.append("Cost: not measured without --price-in/--price-out.")
    return "\n".join(notes)


def _budget_line(budget: dict[str, Any]) -> str:
    caps = [f"{name} {value:g}" for name, value in budget.items() if name != "samples_per_class" and value is not None]
    return f"Same budget: both builds had the same options, {budget.get('samples_per_class', '?')} rows per class and " + (
        f"each its own {', '.join(caps)}." if caps else "no cap on requests, tokens or cost."
    )


def _spent(method: MethodResult) -> dict[str, Any] | None:
    built = method.built
    if built is None:
        return None
    names = ("sent", "reused", "prompt_tokens", "completion_tokens", "total_tokens")
    return {**{name: getattr(built, name) for name in names}, "cost": built.cost if method.priced else None}


def write_results(report: ReproduceReport, root: Path) -> tuple[Path, ...]:
    markdown = root / RESULTS_MD
    markdown.write_text(format_reproduce(report, markdown=True) + "\n", encoding="utf-8")
    data = {
        "recipe": report.recipe,
        "gold": report.gold,
        "training": asdict(report.training),
        "embedder": report.embedder,
        "budget": report.budget,
        "methods": {
            m.name: {
                "prompting": m.prompting,
                "folder": str(m.folder),
                "model_dir": str(m.model_dir),
                "model": m.trained,
                "scores": m.scores,
                "spent": _spent(m),
                "sent_this_run": m.sent_this_run,
            }
            for m in report.methods
        },
        "table": {name: dict(zip((m.name for m in report.methods), cells)) for name, cells in table_rows(report)},
    }
    path = root / RESULTS_JSON
    path.write_text(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n", encoding="utf-8")
    return markdown, path
