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
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from datasets import ClassLabel, Dataset, DatasetDict, LargeList, List, Value, load_dataset

from .errors import ConfigError, MissingDependencyError

__all__ = ["HELD_OUT_SOURCE", "classification_metrics", "format_metrics", "train_classifier"]

HELD_OUT_SOURCE = "held-out 10% of the synthetic data"
HELD_OUT_FRACTION = 0.1
METRICS_FILE = "metrics.json"  # inside output_dir
DATA_METRICS_FILE = "train_metrics.json"  # inside a local data folder when there is no output_dir
_EVAL_SPLIT_FALLBACKS = ("validation", "test")
_SCORE_NAMES = ("accuracy", "micro_f1", "macro_f1", "subset_accuracy", "eval_loss", "train_loss")
_FILE_BUILDERS = {".parquet": "parquet", ".csv": "csv", ".json": "json", ".jsonl": "json"}

DataArg = str | Path | Dataset | DatasetDict
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
) -> Metrics:
    """Fine-tune ``model`` on ``data``, evaluate on ``eval_data``, and return the metrics.

    ``data``/``eval_data`` are a generated folder, any local dataset folder, a ``.parquet``/``.csv``/
    ``.json(l)`` file, a Hub dataset id or a ``Dataset``; they need a ``text`` column and either
    ``label`` (single-label) or ``labels`` (multi-label: a list per row), as ``ClassLabel`` ids or
    as label-name strings. From ``eval_data`` the split ``eval_split`` is used, else
    ``validation``, else ``test``, else its only split. Training evaluates after every epoch (shown
    in the log) but never selects a checkpoint on the eval set; the figures returned are those of
    the final model. Single-label: ``accuracy`` and ``macro_f1``; multi-label (sigmoid >=
    ``threshold``): ``micro_f1``, ``macro_f1`` and ``subset_accuracy``; both add ``eval_loss``,
    ``train_loss``, ``num_train``, ``num_eval``, ``epochs``, ``model`` and ``eval_source``.

    With ``output_dir`` the final model and tokenizer are saved there with ``metrics.json``.
    Without it, nothing but the metrics is kept: they go to ``train_metrics.json`` inside ``data``
    when it is a local folder (beside ``data/``, where ``load_dataset`` does not look), and the key
    ``metrics_file`` of the result names the file written, if any.
    """
    _check_options(model=model, epochs=epochs, batch_size=batch_size, learning_rate=learning_rate,
                   max_length=max_length, threshold=threshold)
    train_ds = _select_split(_load(data, field="data"), field="data", preferred=("train",))
    label_column, multi_label, label_names = _label_schema(train_ds, field="data")
    train_texts = _texts(train_ds, field="data")
    if not multi_label and len(label_names) < 2:
        raise ConfigError(f"data: column '{label_column}' has {len(label_names)} class(es) {label_names}; "
                          "a classifier needs at least 2")
    label2id = {name: index for index, name in enumerate(label_names)}
    train_targets = _encode(_row_label_names(train_ds, label_column, multi_label, field="data"), label2id,
                            multi_label=multi_label, field="data")

    if eval_data is None:
        train_index, eval_index = _stratified_holdout(train_targets, multi_label=multi_label, seed=seed)
        eval_texts = [train_texts[i] for i in eval_index]
        eval_targets = train_targets[eval_index]
        train_texts = [train_texts[i] for i in train_index]
        train_targets = train_targets[train_index]
        eval_source = HELD_OUT_SOURCE
    else:
        eval_ds, eval_source = _load_eval(eval_data, data=data, eval_split=eval_split)
        eval_column, eval_multi, _ = _label_schema(eval_ds, field="eval_data")
        if eval_multi != multi_label:
            kinds = ("single-label", "multi-label")
            raise ConfigError(f"eval_data: its '{eval_column}' column is {kinds[eval_multi]} but data is "
                              f"{kinds[multi_label]}; pass an eval set of the same kind")
        eval_texts = _texts(eval_ds, field="eval_data")
        eval_targets = _encode(_row_label_names(eval_ds, eval_column, multi_label, field="eval_data"), label2id,
                               multi_label=multi_label, field="eval_data")

    metrics = _fit(
        train_texts, train_targets, eval_texts, eval_targets,
        model=model, label_names=label_names, multi_label=multi_label, epochs=epochs, output_dir=output_dir,
        batch_size=batch_size, learning_rate=learning_rate, max_length=max_length, seed=seed, threshold=threshold,
    )
    metrics.update({"num_train": len(train_texts), "num_eval": len(eval_texts), "epochs": float(epochs),
                    "model": model, "eval_source": eval_source})
    metrics_path = _metrics_path(data, output_dir)
    if metrics_path is not None:
        metrics["metrics_file"] = str(metrics_path)
        metrics_path.parent.mkdir(parents=True, exist_ok=True)
        metrics_path.write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
    return metrics


def format_metrics(metrics: Mapping[str, float | int | str]) -> str:
    """A few lines for a terminal: what was evaluated on, the scores, and where they were written."""
    lines = [f"model {metrics['model']}: trained on {metrics['num_train']} rows for {metrics['epochs']:g} epoch(s), "
             f"evaluated on {metrics['num_eval']} rows from {metrics['eval_source']}"]
    scores = [name for name in _SCORE_NAMES if name in metrics]
    lines += [f"  {name:<16} {float(metrics[name]):.4f}" for name in scores]
    if metrics["eval_source"] == HELD_OUT_SOURCE:
        lines.append("  (synthetic rows score the fit to the generator, not real-world quality: pass a human-labelled "
                     "eval set)")
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
        truth = targets.astype(np.int64)
        present = np.union1d(truth, predicted)
        f1s = [_f1(np.sum((truth == c) & (predicted == c)), np.sum((truth != c) & (predicted == c)),
                   np.sum((truth == c) & (predicted != c))) for c in present]
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


def _check_options(*, model: str, epochs: float, batch_size: int, learning_rate: float, max_length: int,
                   threshold: float) -> None:
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


def _load(source: DataArg, *, field: str) -> Dataset | DatasetDict:
    if isinstance(source, (Dataset, DatasetDict)):
        return source
    path = Path(source)
    builder = _FILE_BUILDERS.get(path.suffix.lower()) if path.is_file() else None
    try:
        return load_dataset(builder, data_files=str(path)) if builder else load_dataset(str(source))
    except (OSError, ValueError) as err:
        raise ConfigError(f"{field}: cannot load {str(source)!r} as a dataset ({_first_line(err)}); pass a generated "
                          "folder, a dataset folder or file, or a reachable Hub dataset id") from err


def _select_split(loaded: Dataset | DatasetDict, *, field: str, preferred: Sequence[str]) -> Dataset:
    if isinstance(loaded, Dataset):
        return loaded
    split = next((name for name in preferred if name in loaded), None)
    if split is None and len(loaded) == 1:
        split = next(iter(loaded))
    if split is None:
        raise ConfigError(f"{field}: no split named {' or '.join(map(repr, preferred))} among {sorted(loaded)}; "
                          "pick one (eval_split=) or pass a folder with one split")
    return loaded[split]


def _load_eval(eval_data: DataArg, *, data: DataArg, eval_split: str) -> tuple[Dataset, str]:
    preferred = (eval_split, *(name for name in _EVAL_SPLIT_FALLBACKS if name != eval_split))
    loaded = _load(eval_data, field="eval_data")
    eval_ds = _select_split(loaded, field="eval_data", preferred=preferred)
    if isinstance(eval_data, (Dataset, DatasetDict)):
        return eval_ds, "eval_data (a Dataset given in code)"
    split = str(eval_ds.split) if eval_ds.split is not None else "?"
    local = isinstance(data, (str, Path)) and Path(data).exists()
    if local and Path(data).resolve() == Path(eval_data).resolve() and split == "train":
        raise ConfigError(f"eval_data: {str(eval_data)!r} is the training data; pass a held-out set labelled "
                          "by people, or omit eval_data to hold out 10% of the training rows")
    return eval_ds, f"{eval_data} (split {split})"


def _label_schema(ds: Dataset, *, field: str) -> tuple[str, bool, list[str]]:
    """The label column, whether it is multi-label, and the class names in id order."""
    if len(ds) == 0:
        raise ConfigError(f"{field}: the split has no rows; pass a dataset with examples")
    column = "labels" if "labels" in ds.column_names else "label"
    if column not in ds.column_names or "text" not in ds.column_names:
        raise ConfigError(f"{field}: needs a 'text' column and a 'label' (or multi-label 'labels') column, "
                          f"found {ds.column_names}; rename the columns")
    feature = ds.features[column]
    multi_label = isinstance(feature, (List, LargeList))
    inner = feature.feature if multi_label else feature
    if isinstance(inner, ClassLabel):
        return column, multi_label, list(inner.names)
    if isinstance(inner, Value) and inner.dtype in ("string", "large_string"):
        values = ds[column]
        names = {name for row in values for name in row or ()} if multi_label else set(values)
        return column, multi_label, sorted(name for name in names if name is not None)
    raise ConfigError(f"{field}: column '{column}' is {feature} without class names; cast it to "
                      "ClassLabel(names=[...]) (or strings) so labels can be matched by name")


def _row_label_names(ds: Dataset, column: str, multi_label: bool, *, field: str) -> list[Any]:
    """Each row's label name (or list of names, multi-label), read through the column's own ClassLabel."""
    feature = ds.features[column]
    inner = feature.feature if multi_label else feature
    values = list(ds[column])
    missing = [i for i, value in enumerate(values) if value is None or (not multi_label and value == -1)]
    if missing:
        raise ConfigError(f"{field}: {len(missing)} row(s) have no label (first: row {missing[0]}); "
                          "drop or label them")
    if not isinstance(inner, ClassLabel):
        return values
    names = inner.names
    if multi_label:
        return [[names[i] for i in row] for row in values]
    return [names[i] for i in values]


def _encode(row_names: list[Any], label2id: dict[str, int], *, multi_label: bool, field: str) -> np.ndarray:
    """Class ids (single-label) or float multi-hot rows, using the training label ids."""
    seen = {name for row in row_names for name in row} if multi_label else set(row_names)
    unknown = sorted(seen - label2id.keys())
    if unknown:
        by_case = {name.lower(): name for name in label2id}
        hint = "".join(f"; did you mean {by_case[name.lower()]!r} for {name!r}?" for name in unknown
                       if name.lower() in by_case)
        raise ConfigError(f"{field}: label name(s) {unknown} are not among the training labels "
                          f"{sorted(label2id)}{hint}; relabel or drop those rows")
    if not multi_label:
        return np.array([label2id[name] for name in row_names], dtype=np.int64)
    targets = np.zeros((len(row_names), len(label2id)), dtype=np.float32)
    for row, names in enumerate(row_names):
        targets[row, [label2id[name] for name in names]] = 1.0
    return targets


def _texts(ds: Dataset, *, field: str) -> list[str]:
    texts = list(ds["text"])
    bad = [i for i, text in enumerate(texts) if not isinstance(text, str)]
    if bad:
        raise ConfigError(f"{field}: {len(bad)} row(s) have a 'text' that is not a string (first: row {bad[0]}); "
                          "drop or fix them")
    return texts


def _stratified_holdout(targets: np.ndarray, *, multi_label: bool, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic stratified split: (train rows, eval rows), eval about 10% of the rows.

    Strata are the classes (single-label) or label combinations, with combinations seen only once
    pooled together (multi-label). Each stratum gives its proportional share (largest remainder)
    and always keeps at least one row for training.
    """
    keys = [tuple(np.flatnonzero(row)) for row in targets] if multi_label else [int(t) for t in targets]
    strata: dict[Any, list[int]] = {}
    for row, key in enumerate(keys):
        strata.setdefault(key, []).append(row)
    if multi_label:
        singles = [rows[0] for rows in strata.values() if len(rows) == 1]
        strata = {key: rows for key, rows in strata.items() if len(rows) > 1}
        if singles:
            strata["rare combinations"] = singles
    groups = [rows for rows in strata.values() if len(rows) >= 2]
    if not groups:
        raise ConfigError(f"data: {len(targets)} row(s) are too few to hold out an eval split; pass eval_data")
    wanted = max(1, round(HELD_OUT_FRACTION * len(targets)))
    quotas = [HELD_OUT_FRACTION * len(rows) for rows in groups]
    take = [min(math.floor(quota), len(rows) - 1) for quota, rows in zip(quotas, groups)]
    by_remainder = sorted(range(len(groups)), key=lambda g: -(quotas[g] - math.floor(quotas[g])))
    for g in by_remainder * 2:  # second pass when capped strata could not take their share
        if sum(take) >= wanted:
            break
        if take[g] < len(groups[g]) - 1:
            take[g] += 1
    rng = np.random.default_rng(seed)
    held_out = [row for rows, k in zip(groups, take) for row in rng.permutation(rows)[:k]]
    eval_index = np.array(sorted(held_out), dtype=np.int64)
    train_index = np.setdiff1d(np.arange(len(targets)), eval_index)
    return train_index, eval_index


def _metrics_path(data: DataArg, output_dir: str | Path | None) -> Path | None:
    if output_dir is not None:
        return Path(output_dir) / METRICS_FILE
    if isinstance(data, (str, Path)) and Path(data).is_dir():
        return Path(data) / DATA_METRICS_FILE
    return None


def _fit(
    train_texts: list[str], train_targets: np.ndarray, eval_texts: list[str], eval_targets: np.ndarray, *,
    model: str, label_names: list[str], multi_label: bool, epochs: float, output_dir: str | Path | None,
    batch_size: int, learning_rate: float, max_length: int, seed: int, threshold: float,
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
        return rows.map(lambda batch: tokenizer(batch["text"], truncation=True, max_length=length),
                        batched=True, remove_columns=["text"], desc="Tokenizing")

    def compute_metrics(prediction: EvalPrediction) -> dict[str, float]:
        logits = prediction.predictions[0] if isinstance(prediction.predictions, tuple) else prediction.predictions
        return classification_metrics(np.asarray(prediction.label_ids), np.asarray(logits),
                                       multi_label=multi_label, threshold=threshold)

    on_gpu = torch.cuda.is_available()
    with tempfile.TemporaryDirectory(prefix="attrprompt-train-") as scratch:
        args = TrainingArguments(
            output_dir=str(output_dir) if output_dir is not None else scratch,
            num_train_epochs=epochs,
            per_device_train_batch_size=batch_size,
            per_device_eval_batch_size=batch_size,
            learning_rate=learning_rate,
            eval_strategy="epoch",
            logging_strategy="epoch",
            save_strategy="no",  # the final model is saved once below; checkpoints would only fill the disk
            report_to=[],
            use_cpu=not on_gpu,
            dataloader_pin_memory=on_gpu,
            seed=seed,
        )
        trainer = Trainer(model=classifier, args=args, train_dataset=encoded(train_texts, train_targets),
                          eval_dataset=encoded(eval_texts, eval_targets), processing_class=tokenizer,
                          compute_metrics=compute_metrics)
        train_output = trainer.train()
        final = [log for log in trainer.state.log_history
                 if "eval_loss" in log and log.get("step") == trainer.state.global_step]
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
        raise ConfigError(f"model: {model!r} cannot be loaded as a sequence classifier ({_first_line(err)}); "
                          "pass an encoder such as a BERT-style model") from err
    return tokenizer, classifier


def _first_line(err: Exception) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__
