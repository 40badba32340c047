"""Fine-tune a sequence classifier on a generated (or any) dataset and score it on a real eval set.

The point of a synthetic dataset is the classifier it trains, judged on data a person labelled, so
``eval_data`` should be such a set. Without one, a stratified 10% of the training rows is held out
and the returned metrics say so (``eval_source``): those figures measure fit to the synthetic
distribution, not real-world quality.

Labels travel by *name*: the training set's ``ClassLabel`` fixes the ids (and the model's
``id2label``); eval labels are mapped to those ids through their names, and a name the training set
does not know is an error, never a silent relabel.
"""

from __future__ import annotations

import json
import math
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from datasets import Dataset

from attrprompt_builder.errors import ConfigError, MissingDependencyError, one_line
from attrprompt_builder.train.data import (
    DataArg,
    encode_labels,
    label_schema,
    load_data,
    load_eval_rows,
    row_label_names,
    select_split,
    stratified_holdout,
    texts_of,
)

__all__ = ["HELD_OUT_SOURCE", "check_training_options", "classification_metrics", "format_metrics", "train_classifier"]

HELD_OUT_SOURCE = "held-out 10% of the synthetic data"
METRICS_FILE = "metrics.json"  # inside output_dir
DATA_METRICS_FILE = "train_metrics.json"  # inside a local data folder when there is no output_dir
_SCORE_NAMES = ("accuracy", "micro_f1", "macro_f1", "subset_accuracy", "eval_loss", "train_loss")

Metrics = dict[str, float | int | str]


def train_classifier(
    data: DataArg,
    *,
    model: str,
    eval_data: DataArg | None = None,
    epochs: float = 3.0,
    output_dir: str | Path | None = None,
    batch_size: int = 16,
    learning_rate: float = 5e-5,
    max_length: int = 256,
    seed: int = 0,
    threshold: float = 0.5,
    eval_split: str = "test",
    eval_each_epoch: bool = True,
) -> Metrics:
    """Fine-tune ``model`` on ``data``, evaluate on ``eval_data``, and return the metrics.

    ``data``/``eval_data`` are a generated folder, any local dataset folder, a ``.parquet``/``.csv``/
    ``.json(l)`` file, a Hub dataset id or a ``Dataset``; they need a ``text`` column and either
    ``label`` (single-label) or ``labels`` (multi-label: a list per row), as ``ClassLabel`` ids or
    as label-name strings. From ``eval_data`` the split ``eval_split`` is used, else
    ``validation``, else ``test``, else its only split. Training evaluates after every epoch (shown
    in the log) but never selects a checkpoint on the eval set; the figures returned are those of
    the final model (``eval_each_epoch=False`` evaluates only the final model, as the paper
    reports it; the eval set is then read once). Single-label: ``accuracy`` and ``macro_f1``; multi-label (sigmoid >=
    ``threshold``): ``micro_f1``, ``macro_f1`` and ``subset_accuracy``; both add ``eval_loss``,
    ``train_loss``, ``num_train``, ``num_eval``, ``epochs``, ``model`` and ``eval_source``.

    With ``output_dir`` the final model and tokenizer are saved there with ``metrics.json``.
    Without it, nothing but the metrics is kept: they go to ``train_metrics.json`` inside ``data``
    when it is a local folder (beside ``data/``, where ``load_dataset`` does not look), and the key
    ``metrics_file`` of the result names the file written, if any.
    """
    check_training_options(
        model=model, epochs=epochs, batch_size=batch_size, learning_rate=learning_rate, max_length=max_length, threshold=threshold
    )
    train_ds = select_split(load_data(data, field="data"), field="data", preferred=("train",))
    labels, label_names = label_schema(train_ds, field="data")
    multi_label = labels.multi_label
    train_texts = texts_of(train_ds, field="data")
    if not multi_label and len(label_names) < 2:
        raise ConfigError(
            f"data: column '{labels.name}' has {len(label_names)} class(es) {label_names}; a classifier needs at least 2"
        )
    label2id = {name: index for index, name in enumerate(label_names)}
    train_targets = encode_labels(
        row_label_names(train_ds, labels, field="data"), label2id, multi_label=multi_label, field="data"
    )

    if eval_data is None:
        train_index, eval_index = stratified_holdout(train_targets, multi_label=multi_label, seed=seed)
        eval_texts = [train_texts[i] for i in eval_index]
        eval_targets = train_targets[eval_index]
        train_texts = [train_texts[i] for i in train_index]
        train_targets = train_targets[train_index]
        eval_source = HELD_OUT_SOURCE
    else:
        eval_texts, eval_targets, eval_source = load_eval_rows(
            eval_data, data=data, eval_split=eval_split, label2id=label2id, multi_label=multi_label, trained_on="data"
        )

    metrics = _fit(
        train_texts,
        train_targets,
        eval_texts,
        eval_targets,
        model=model,
        label_names=label_names,
        multi_label=multi_label,
        epochs=epochs,
        output_dir=output_dir,
        batch_size=batch_size,
        learning_rate=learning_rate,
        max_length=max_length,
        seed=seed,
        threshold=threshold,
        eval_each_epoch=eval_each_epoch,
    )
    metrics.update(
        {
            "num_train": len(train_texts),
            "num_eval": len(eval_texts),
            "epochs": float(epochs),
            "model": model,
            "eval_source": eval_source,
        }
    )
    metrics_path = _metrics_path(data, output_dir)
    if metrics_path is not None:
        metrics["metrics_file"] = str(metrics_path)
        metrics_path.parent.mkdir(parents=True, exist_ok=True)
        metrics_path.write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
    return metrics


def format_metrics(metrics: Mapping[str, float | int | str]) -> str:
    """A few lines for a terminal: what was evaluated on, the scores, and where they were written."""
    lines = [
        f"model {metrics['model']}: trained on {metrics['num_train']} rows for {metrics['epochs']:g} epoch(s), "
        f"evaluated on {metrics['num_eval']} rows from {metrics['eval_source']}"
    ]
    scores = [name for name in _SCORE_NAMES if name in metrics]
    lines += [f"  {name:<16} {float(metrics[name]):.4f}" for name in scores]
    if metrics["eval_source"] == HELD_OUT_SOURCE:
        lines.append("  (synthetic rows score the fit to the generator, not real-world quality: pass a human-labelled eval set)")
    if "metrics_file" in metrics:
        lines.append(f"metrics written to {metrics['metrics_file']}")
    return "\n".join(lines)


def classification_metrics(
    targets: np.ndarray, logits: np.ndarray, *, multi_label: bool, threshold: float = 0.5
) -> dict[str, float]:
    """Accuracy/F1 from raw logits, with numpy only.

    Macro-F1 averages over the labels that occur in the targets or the predictions (scikit-learn's
    choice for single-label), so a class absent from a small eval set does not count as a zero.
    """
    if not multi_label:
        predicted = logits.argmax(axis=-1)
        truth: np.ndarray = targets.astype(np.int64)
        present = np.union1d(truth, predicted)
        f1s = [
            _f1(
                np.sum((truth == c) & (predicted == c)),
                np.sum((truth != c) & (predicted == c)),
                np.sum((truth == c) & (predicted != c)),
            )
            for c in present
        ]
        return {"accuracy": float(np.mean(truth == predicted)), "macro_f1": float(np.mean(f1s))}
    predicted = logits >= math.log(threshold / (1.0 - threshold))  # sigmoid(x) >= t, without overflow
    truth = targets >= 0.5
    tp = np.sum(truth & predicted, axis=0)
    fp = np.sum(~truth & predicted, axis=0)
    fn = np.sum(truth & ~predicted, axis=0)
    present = (tp + fp + fn) > 0
    per_label = [_f1(*counts) for counts in zip(tp[present], fp[present], fn[present])]
    macro = float(np.mean(per_label)) if per_label else 0.0
    return {
        "micro_f1": _f1(tp.sum(), fp.sum(), fn.sum()),
        "macro_f1": macro,
        "subset_accuracy": float(np.mean(np.all(truth == predicted, axis=1))),
    }


def _f1(tp: int, fp: int, fn: int) -> float:
    denominator = 2 * tp + fp + fn
    return float(2 * tp / denominator) if denominator else 0.0


def check_training_options(
    *, model: str, epochs: float, batch_size: int, learning_rate: float, max_length: int, threshold: float
) -> None:
    checks = (
        ("model", model, isinstance(model, str) and model.strip() != "", "pass a local model folder or a Hub model id"),
        ("epochs", epochs, epochs > 0, "use a positive number such as 3"),
        ("batch_size", batch_size, isinstance(batch_size, int) and batch_size >= 1, "use a positive integer"),
        ("learning_rate", learning_rate, learning_rate > 0, "use a positive number such as 5e-5"),
        ("max_length", max_length, isinstance(max_length, int) and max_length >= 8, "use an integer >= 8"),
        ("threshold", threshold, 0 < threshold < 1, "use a number between 0 and 1 such as 0.5"),
    )
    for name, value, ok, fix in checks:
        if not ok:
            raise ConfigError(f"{name}: {value!r} is not usable; {fix}")


def _metrics_path(data: DataArg, output_dir: str | Path | None) -> Path | None:
    if output_dir is not None:
        return Path(output_dir) / METRICS_FILE
    if isinstance(data, (str, Path)) and Path(data).is_dir():
        return Path(data) / DATA_METRICS_FILE
    return None


def _fit(
    train_texts: list[str],
    train_targets: np.ndarray,
    eval_texts: list[str],
    eval_targets: np.ndarray,
    *,
    model: str,
    label_names: list[str],
    multi_label: bool,
    epochs: float,
    output_dir: str | Path | None,
    batch_size: int,
    learning_rate: float,
    max_length: int,
    seed: int,
    threshold: float,
    eval_each_epoch: bool,
) -> Metrics:
    try:
        import torch
        from transformers import EvalPrediction, Trainer, TrainingArguments, set_seed
    except ImportError as err:
        raise MissingDependencyError("train_classifier needs torch: pip install 'attrprompt-builder[local]'") from err

    set_seed(seed)  # the new classification head is initialised before Trainer seeds anything
    tokenizer, classifier = _load_model(model, label_names=label_names, multi_label=multi_label)
    model_limit = tokenizer.model_max_length if tokenizer.model_max_length < 1_000_000 else max_length
    length = min(max_length, model_limit)  # past the position table the model would crash

    def encoded(texts: list[str], targets: np.ndarray) -> Dataset:
        rows = Dataset.from_dict({"text": texts, "labels": targets.tolist()})
        return rows.map(
            lambda batch: tokenizer(batch["text"], truncation=True, max_length=length),
            batched=True,
            remove_columns=["text"],
            desc="Tokenizing",
        )

    def compute_metrics(prediction: EvalPrediction) -> dict[str, float]:
        logits = prediction.predictions[0] if isinstance(prediction.predictions, tuple) else prediction.predictions
        return classification_metrics(
            np.asarray(prediction.label_ids), np.asarray(logits), multi_label=multi_label, threshold=threshold
        )

    on_gpu = torch.cuda.is_available()
    with tempfile.TemporaryDirectory(prefix="attrprompt-train-") as scratch:
        args = TrainingArguments(
            output_dir=str(output_dir) if output_dir is not None else scratch,
            num_train_epochs=epochs,
            per_device_train_batch_size=batch_size,
            per_device_eval_batch_size=batch_size,
            learning_rate=learning_rate,
            eval_strategy="epoch" if eval_each_epoch else "no",
            logging_strategy="epoch",
            save_strategy="no",  # the final model is saved once below; checkpoints would only fill the disk
            report_to=[],
            use_cpu=not on_gpu,
            dataloader_pin_memory=on_gpu,
            seed=seed,
        )
        trainer = Trainer(
            model=classifier,
            args=args,
            train_dataset=encoded(train_texts, train_targets),
            eval_dataset=encoded(eval_texts, eval_targets),
            processing_class=tokenizer,
            compute_metrics=compute_metrics,
        )
        train_output = trainer.train()
        final = [log for log in trainer.state.log_history if "eval_loss" in log and log.get("step") == trainer.state.global_step]
        evaluation = final[-1] if final else trainer.evaluate()
        if output_dir is not None:
            trainer.save_model(str(output_dir))
    names = ("accuracy", "macro_f1") if not multi_label else ("micro_f1", "macro_f1", "subset_accuracy")
    metrics: Metrics = {name: float(evaluation[f"eval_{name}"]) for name in names}
    metrics["eval_loss"] = float(evaluation["eval_loss"])
    metrics["train_loss"] = float(train_output.training_loss)
    if multi_label:
        metrics["threshold"] = float(threshold)
    return metrics


def _load_model(model: str, *, label_names: list[str], multi_label: bool) -> tuple[Any, Any]:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(model)
        classifier = AutoModelForSequenceClassification.from_pretrained(
            model,
            num_labels=len(label_names),
            id2label=dict(enumerate(label_names)),
            label2id={name: index for index, name in enumerate(label_names)},
            problem_type="multi_label_classification" if multi_label else "single_label_classification",
        )
    except OSError as err:
        raise MissingDependencyError(
            f"model: {model!r} is not a local model folder and could not be fetched or found in the Hugging Face "
            "cache (offline or unreachable Hub); pass a model folder, or download it once with network access"
        ) from err
    except ValueError as err:
        raise ConfigError(
            f"model: {model!r} cannot be loaded as a sequence classifier ({one_line(err)}); "
            "pass an encoder such as a BERT-style model"
        ) from err
    return tokenizer, classifier
