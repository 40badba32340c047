"""``reproduce()``: check everything that could fail after paying, then generate, train, score and measure."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from attrprompt_builder.compare import compare_folders
from attrprompt_builder.dataset import folder as layout
from attrprompt_builder.errors import ConfigError, MissingDependencyError, one_line
from attrprompt_builder.reproduce.models import STATUS_NOTES, rows_fingerprint, trained_scores
from attrprompt_builder.reproduce.report import (
    PAPER_TRAINING,
    MethodResult,
    ReproduceReport,
    TrainingSettings,
    score_names,
    write_results,
)

__all__ = [
    "FOLDER_MARKER",
    "METHODS",
    "MODELS_DIR",
    "reproduce",
]

# (name in the table and folder, the `prompting` it is generated with)
METHODS = (("attrprompt", "attributed"), ("simprompt", "simple"))
MODELS_DIR = "models"
FOLDER_MARKER = ".attrprompt-reproduce.json"
# What makes the budget the same for both methods: each build gets these options unchanged.
_BUDGET = ("samples_per_class", "max_requests", "max_tokens", "max_cost")


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
    config = make_builder(preset_or_recipe, cache_dir=cache_dir, token=token, **config_kwargs).config
    recipe = config.recipe
    gold_key = _check_gold(gold, gold_split, recipe.label_names, multi_label=recipe.multi_label, root=root)
    _check_classifier(training.model)
    _phase(f"the test set {gold} matches the recipe's labels; classifier {training.model}")
    root.mkdir(parents=True, exist_ok=True)
    (root / FOLDER_MARKER).write_text(json.dumps({"written_by": "attrprompt-builder reproduce"}) + "\n", encoding="utf-8")

    folders, records = {}, {}
    for step, (name, prompting) in enumerate(METHODS, start=1):
        _phase(f"[{step}/5] generating {name} (prompting={prompting}) into {root / name}")
        folders[name] = Path(
            generate_folder(
                preset_or_recipe,
                root / name,
                num_proc=num_proc,
                cache_dir=cache_dir,
                token=token,
                overwrite=overwrite,
                prompting=prompting,
                **config_kwargs,
            )
        )
        records[name] = record = layout.read_generation(folders[name], field="output_dir")
        if record.stats is not None:
            stats = record.stats
            _phase(f"      {stats.kept} rows; this run sent {stats.sent} requests and reused {stats.reused} replies")
    results = []
    for step, (name, prompting) in enumerate(METHODS, start=3):
        _phase(f"[{step}/5] classifier on {name}: {training.model}, {training.epochs:g} epochs")
        scores, how = trained_scores(folders[name], root / MODELS_DIR / name, gold, gold_split, gold_key, training)
        _phase(f"      {how} ({STATUS_NOTES[how]}): {', '.join(f'{k} {scores[k]:.4f}' for k in score_names(scores))}")
        record = records[name]
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
        budget={name: getattr(config, name) for name in _BUDGET},
    )
    return _with(report, files=write_results(report, root))


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
    return rows_fingerprint(texts_of(dataset, field="gold"), names)


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
