"""``attrprompt reproduce``: the paper's comparison, AttrPrompt against SimPrompt, on any model in one command.

Both methods are generated with the same build options (same model, seed, samples per class, sampling
parameters, dedup, and each its own copy of the ``max_requests``/``max_tokens``/``max_cost`` caps);
only ``prompting`` differs. A classifier is trained on each and scored on a real test set; the table
adds what each build spent and the diversity measures ``compare`` takes.

Every phase resumes. Generation goes through the datasets cache and the journal, so a rerun sends
nothing; each trained model is saved with a marker keyed by the fingerprint of its training rows and
the training settings, and is reused when both match; its scores are kept per test set, so a new
test set scores the saved model instead of training it again.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from attrprompt_builder.card import measures
from attrprompt_builder.card.measures import MISSING, format_measure
from attrprompt_builder.compare import DatasetSummary, compare_folders, text_table
from attrprompt_builder.dataset import folder as layout
from attrprompt_builder.errors import ConfigError, MissingDependencyError, one_line
from attrprompt_builder.generation.stats import BuildStats

__all__ = [
    "METHODS",
    "PAPER_TRAINING",
    "QUICK_CLASSIFIER",
    "MethodResult",
    "ReproduceReport",
    "TrainingSettings",
    "format_reproduce",
    "reproduce",
]

# (name in the table and folder, the `prompting` it is generated with)
METHODS = (("attrprompt", "attributed"), ("simprompt", "simple"))
# BERT-Mini (4 layers, hidden 256; Google's BERT miniatures, Apache-2.0): a CPU-sized stand-in for --quick runs.
QUICK_CLASSIFIER = "google/bert_uncased_L-4_H-256_A-4"
MODELS_DIR = "models"
MODEL_MARKER = "reproduce-model.json"  # beside the saved weights
FOLDER_MARKER = ".attrprompt-reproduce.json"
RESULTS_JSON = "results.json"
RESULTS_MD = "results.md"
NOT_MEASURED = "the verify stage's places-mentioned measure; not measured by this version"


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
    trained: str  # "trained", "reused" or "re-scored" (the saved model on a new gold set)
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
    files: tuple[Path, ...] = field(default=())


def reproduce(
    preset_or_recipe: str,
    output_dir: str | Path,
    *,
    gold: str | Path,
    gold_split: str = "test",
    training: TrainingSettings = PAPER_TRAINING,
    num_proc: int | None = None,
    cache_dir: str | None = None,
    token: str | None = None,
    overwrite: bool = False,
    **config_kwargs: Any,
) -> ReproduceReport:
    """Generate both methods' data into ``output_dir``, train and score a classifier on each, write the table.

    ``config_kwargs`` are ``generate``'s build options, passed to both builds unchanged (``prompting``
    is this function's to set). ``gold``: the human-labelled test set, a Hub dataset id or a local
    folder, with the recipe's label names; its ``gold_split`` (else ``validation``, else ``test``, else
    its only split) is used. Writes ``results.md`` and ``results.json`` and returns the report.
    """
    from attrprompt_builder.pipeline import card_embedder, generate_folder, make_builder
    from attrprompt_builder.train.classifier import check_training_options

    if "prompting" in config_kwargs:
        raise ConfigError(f"prompting: got {config_kwargs['prompting']!r}; reproduce generates both methods, leave it out")
    try:
        check_training_options(
            model=training.model,
            epochs=training.epochs,
            batch_size=training.batch_size,
            learning_rate=training.learning_rate,
            max_length=training.max_length,
            threshold=0.5,
        )
    except ConfigError as err:  # its names are train_classifier's keywords; here they are TrainingSettings fields
        raise ConfigError(f"training.{err}") from err
    root = _check_root(output_dir, overwrite=overwrite)
    recipe = make_builder(preset_or_recipe, cache_dir=cache_dir, token=token, **config_kwargs).config.recipe
    gold_key = _check_gold(gold, gold_split, recipe.label_names, multi_label=recipe.multi_label, root=root)
    _check_classifier(training.model)
    _phase(f"the test set {gold} matches the recipe's labels; classifier {training.model}")
    root.mkdir(parents=True, exist_ok=True)
    (root / FOLDER_MARKER).write_text(json.dumps({"written_by": "attrprompt-builder reproduce"}) + "\n", encoding="utf-8")

    folders = {}
    for step, (name, prompting) in enumerate(METHODS, start=1):
        _phase(f"[{step}/5] generating {name} (prompting={prompting}) into {root / name}")
        folders[name] = generate_folder(
            preset_or_recipe,
            root / name,
            num_proc=num_proc,
            cache_dir=cache_dir,
            token=token,
            overwrite=overwrite,
            prompting=prompting,
            **config_kwargs,
        )
    results = []
    for step, (name, prompting) in enumerate(METHODS, start=3):
        _phase(f"[{step}/5] classifier on {name}: {training.model}, {training.epochs:g} epochs")
        scores, how = _trained_scores(folders[name], root / MODELS_DIR / name, gold, gold_split, gold_key, training)
        _phase(f"      {how}: {', '.join(f'{k} {scores[k]:.4f}' for k in _score_names(scores))}")
        record = layout.read_generation(folders[name], field="output_dir")
        results.append(
            MethodResult(
                name=name,
                prompting=prompting,
                folder=folders[name],
                model_dir=root / MODELS_DIR / name,
                scores=scores,
                trained=how,
                built=record.built,
                sent_this_run=record.stats.sent if record.stats else 0,
                priced=config_kwargs.get("price_in") is not None or config_kwargs.get("price_out") is not None,
            )
        )
    _phase("[5/5] measuring diversity (the measures of `attrprompt compare`)")
    embedder = card_embedder(config_kwargs.get("embedder"))
    compared = compare_folders([folders[name] for name, _ in METHODS], embedder=embedder or "none")
    results = [_with(result, diversity=summary) for result, summary in zip(results, compared.datasets)]
    report = ReproduceReport(
        recipe=recipe.name,
        gold=str(gold),
        training=training,
        methods=tuple(results),
        embedder=compared.embedder,
        terms=compared.terms,
    )
    return _with(report, files=_write_results(report, root))


def _with(value: Any, **changes: Any) -> Any:
    from dataclasses import replace

    return replace(value, **changes)


def _phase(message: str) -> None:
    print(f"reproduce: {message}", file=sys.stderr, flush=True)


def _check_root(output_dir: str | Path, *, overwrite: bool) -> Path:
    """The work folder: new, empty, one an earlier reproduce wrote, or any with ``overwrite``."""
    if not str(output_dir).strip():
        raise ConfigError(f"output_dir: got {str(output_dir)!r}; pass the folder to write, e.g. output_dir='nyt-reproduce'")
    root = Path(output_dir).expanduser()
    if root.is_file():
        raise ConfigError(f"output_dir: {str(root)!r} is a file; pass a folder path")
    occupied = root.is_dir() and any(root.iterdir())
    if occupied and not overwrite and not (root / FOLDER_MARKER).is_file():
        raise ConfigError(
            f"output_dir: {str(root)!r} is not empty and was not written by attrprompt reproduce; choose a new folder, "
            "or pass overwrite=True"
        )
    layout.require_writable_folder(root, field="output_dir")
    return root


def _rows_fingerprint(texts: list[Any], labels: list[Any]) -> str:
    payload = json.dumps({"texts": texts, "labels": labels}, ensure_ascii=False, sort_keys=True, default=list)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def _check_gold(gold: str | Path, split: str, label_names: list[str], *, multi_label: bool, root: Path) -> str:
    """Load the test set before anything is paid; refuse labels the recipe does not have. Returns its fingerprint."""
    from attrprompt_builder.train.data import label_schema, load_eval, row_label_names, texts_of

    dataset, _ = load_eval(str(gold), data=root, eval_split=split)
    labels, _ = label_schema(dataset, field="gold")
    if labels.multi_label != multi_label:
        kinds = ("single-label", "multi-label")
        raise ConfigError(
            f"gold: its '{labels.name}' column is {kinds[labels.multi_label]} but the recipe is {kinds[multi_label]}; "
            "pass a test set of the same kind"
        )
    names = row_label_names(dataset, labels, field="gold")
    unknown = sorted({name for row in names for name in (row if multi_label else [row])} - set(label_names))
    if unknown:
        raise ConfigError(
            f"gold: label name(s) {unknown} are not among the recipe's labels {label_names}; "
            "relabel or drop those rows, or pick the recipe of this test set"
        )
    return _rows_fingerprint(texts_of(dataset, field="gold"), names)


def _check_classifier(model: str) -> None:
    """The classifier's config loads now, not after both datasets are paid for."""
    from transformers import AutoConfig

    from attrprompt_builder.hub import hub_reachable

    local = Path(model).expanduser().is_dir()
    try:
        AutoConfig.from_pretrained(model, local_files_only=not local and not hub_reachable())
    except (OSError, ValueError) as err:
        raise MissingDependencyError(
            f"training.model: {model!r} is not a model folder and could not be fetched or found in the Hugging Face cache "
            f"({one_line(err, limit=120)}); pass a model folder, or download it once with network access"
        ) from err


def _trained_scores(
    folder: Path, model_dir: Path, gold: str | Path, gold_split: str, gold_key: str, training: TrainingSettings
) -> tuple[dict[str, Any], str]:
    """The saved model's scores on the gold set: reused, re-scored, or from training it now."""
    from attrprompt_builder.train.classifier import train_classifier
    from attrprompt_builder.train.evaluate import evaluate_classifier

    rows = layout.read_rows(layout.data_files(folder))
    data_key = _rows_fingerprint(list(measures.column(rows, "text")), measures.row_labels(rows))
    settings = asdict(training)
    key = hashlib.sha256(json.dumps({"data": data_key, "training": settings}, sort_keys=True).encode()).hexdigest()
    marker = _read_marker(model_dir)
    if marker.get("key") == key and (model_dir / "config.json").is_file():
        stored = marker.get("scores", {}).get(gold_key)
        if stored is not None:
            return stored, "reused (trained and scored on this test set by an earlier run)"
        scores = evaluate_classifier(
            model_dir, str(gold), batch_size=training.batch_size, max_length=training.max_length, eval_split=gold_split
        )
        how = "re-scored (the model an earlier run trained, on a new test set)"
    else:
        (model_dir / MODEL_MARKER).unlink(missing_ok=True)  # weights about to change: no marker may vouch for them
        scores = train_classifier(
            folder,
            model=training.model,
            eval_data=str(gold),
            epochs=training.epochs,
            output_dir=model_dir,
            batch_size=training.batch_size,
            learning_rate=training.learning_rate,
            max_length=training.max_length,
            seed=training.seed,
            eval_split=gold_split,
            eval_each_epoch=False,
        )
        marker = {"key": key, "data_fingerprint": data_key, "training": settings, "scores": {}}
        how = "trained"
    marker["scores"][gold_key] = scores
    temporary = model_dir / (MODEL_MARKER + ".tmp")
    temporary.write_text(json.dumps(marker, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(temporary, model_dir / MODEL_MARKER)  # after the weights: a marker always describes saved weights
    return scores, how


def _read_marker(model_dir: Path) -> dict[str, Any]:
    try:
        marker = json.loads((model_dir / MODEL_MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return marker if isinstance(marker, dict) and isinstance(marker.get("scores"), dict) else {}


def _score_names(scores: dict[str, Any]) -> list[str]:
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
        (_SCORE_LABELS[name], [format_measure(m.scores.get(name), 4) for m in methods])
        for name in _score_names(methods[0].scores)
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
    rows.append(("places mentioned (regional bias)", [MISSING for _ in methods]))
    return rows


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
        f"This run sent {', '.join(f'{m.sent_this_run} ({m.name})' for m in report.methods)} requests; models: "
        + ", ".join(f"{m.name} {m.trained.split(' ')[0]}" for m in report.methods)
        + ".",
        "Diversity: vocabulary and distinct-n higher = more diverse; INGF and APS lower = more diverse; "
        + (f"APS embedder {report.embedder}." if report.embedder else "APS not measured (no embedder)."),
        f"{MISSING}: not measured. Places mentioned (regional bias): {NOT_MEASURED}.",
    ]
    if not any(m.priced for m in report.methods):
        notes.append("Cost: not measured without --price-in/--price-out.")
    return "\n".join(notes)


def _spent(method: MethodResult) -> dict[str, Any] | None:
    built = method.built
    if built is None:
        return None
    names = ("sent", "reused", "prompt_tokens", "completion_tokens", "total_tokens")
    return {**{name: getattr(built, name) for name in names}, "cost": built.cost if method.priced else None}


def _write_results(report: ReproduceReport, root: Path) -> tuple[Path, ...]:
    markdown = root / RESULTS_MD
    markdown.write_text(format_reproduce(report, markdown=True) + "\n", encoding="utf-8")
    data = {
        "recipe": report.recipe,
        "gold": report.gold,
        "training": asdict(report.training),
        "embedder": report.embedder,
        "methods": {
            m.name: {
                "prompting": m.prompting,
                "folder": str(m.folder),
                "model_dir": str(m.model_dir),
                "model": m.trained.split(" ")[0],
                "scores": m.scores,
                "spent": _spent(m),
                "sent_this_run": m.sent_this_run,
            }
            for m in report.methods
        },
        "table": {name: dict(zip((m.name for m in report.methods), cells)) for name, cells in table_rows(report)},
        "not_measured": {"places mentioned (regional bias)": NOT_MEASURED},
    }
    path = root / RESULTS_JSON
    path.write_text(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n", encoding="utf-8")
    return markdown, path
