"""Score a classifier saved by ``train_classifier(output_dir=...)`` on a labelled set, without training it again.

``attrprompt reproduce`` keeps the models it trained; when only the evaluation set changes, the saved
model is scored here rather than retrained. Labels are matched by name through the model's own
``id2label``, as in training, and scored with the same ``classification_metrics``.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
from datasets import Dataset

from attrprompt_builder.errors import ConfigError, MissingDependencyError
from attrprompt_builder.train.classifier import Metrics, classification_metrics
from attrprompt_builder.train.data import DataArg, load_eval_rows

__all__ = ["evaluate_classifier"]


def evaluate_classifier(
    model_dir: str | Path,
    eval_data: DataArg,
    *,
    batch_size: int = 32,
    max_length: int = 128,
    threshold: float = 0.5,
    eval_split: str = "test",
) -> Metrics:
    """The metrics ``train_classifier`` reports for its final model, for the model saved in ``model_dir``.

    Returns ``accuracy`` and ``macro_f1`` (multi-label: ``micro_f1``, ``macro_f1``,
    ``subset_accuracy``), ``num_eval``, ``model`` and ``eval_source``.
    """
    try:
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer, Trainer, TrainingArguments
    except ImportError as err:
        raise MissingDependencyError("evaluate_classifier needs torch: pip install 'attrprompt-builder[local]'") from err

    folder = Path(model_dir)
    if not (folder / "config.json").is_file():
        raise ConfigError(f"model_dir: {str(folder)!r} holds no saved model; train one with train_classifier(output_dir=...)")
    tokenizer = AutoTokenizer.from_pretrained(folder)
    classifier = AutoModelForSequenceClassification.from_pretrained(folder)
    label_names = [classifier.config.id2label[index] for index in range(classifier.config.num_labels)]
    multi_label = classifier.config.problem_type == "multi_label_classification"
    label2id = {name: index for index, name in enumerate(label_names)}
    texts, targets, eval_source = load_eval_rows(
        eval_data, data=folder, eval_split=eval_split, label2id=label2id, multi_label=multi_label,
        trained_on=f"the model in {str(folder)!r}",
    )  # fmt: skip
    model_limit = tokenizer.model_max_length if tokenizer.model_max_length < 1_000_000 else max_length
    length = min(max_length, model_limit)
    encoded = Dataset.from_dict({"text": texts}).map(
        lambda batch: tokenizer(batch["text"], truncation=True, max_length=length),
        batched=True,
        remove_columns=["text"],
        desc="Tokenizing",
    )
    on_gpu = torch.cuda.is_available()
    with tempfile.TemporaryDirectory(prefix="attrprompt-eval-") as scratch:
        args = TrainingArguments(
            output_dir=scratch,
            per_device_eval_batch_size=batch_size,
            report_to=[],
            use_cpu=not on_gpu,
            dataloader_pin_memory=on_gpu,
        )
        prediction = Trainer(model=classifier, args=args, processing_class=tokenizer).predict(encoded)
    logits = prediction.predictions[0] if isinstance(prediction.predictions, tuple) else prediction.predictions
    metrics: Metrics = dict(classification_metrics(targets, np.asarray(logits), multi_label=multi_label, threshold=threshold))
    metrics.update({"num_eval": len(texts), "model": str(folder), "eval_source": eval_source})
    return metrics
