"""The classifiers ``attrprompt reproduce`` trains, kept so that a rerun trains nothing.

Each model folder holds the saved weights and a marker written after them: the key (the fingerprint
of the training rows plus the training settings) and the scores per test set (by the test set's
fingerprint). A matching key reuses the model; a new test set scores it without training again.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

from attrprompt_builder.card import measures
from attrprompt_builder.dataset import folder as layout
from attrprompt_builder.reproduce.report import TrainingSettings

__all__ = [
    "MODEL_MARKER",
    "STATUS_NOTES",
    "rows_fingerprint",
    "trained_scores",
]

MODEL_MARKER = "reproduce-model.json"  # beside the saved weights
# How a method's scores were obtained in this run.
STATUS_NOTES = {
    "trained": "trained now and scored on the test set",
    "reused": "trained and scored on this test set by an earlier run",
    "re-scored": "the model an earlier run trained, scored now on a new test set",
}


def rows_fingerprint(texts: list[Any], labels: list[Any]) -> str:
    payload = json.dumps({"texts": texts, "labels": labels}, ensure_ascii=False, sort_keys=True, default=list)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def trained_scores(
    folder: Path, model_dir: Path, gold: str | Path, gold_split: str, gold_key: str, training: TrainingSettings
) -> tuple[dict[str, Any], str]:
    """The saved model's scores on the gold set, and how they were obtained (a key of ``STATUS_NOTES``)."""
    from attrprompt_builder.train.classifier import train_classifier
    from attrprompt_builder.train.evaluate import evaluate_classifier

    rows = layout.read_rows(layout.data_files(folder))
    data_key = rows_fingerprint(list(measures.column(rows, "text")), measures.row_labels(rows))
    settings = asdict(training)
    key = hashlib.sha256(json.dumps({"data": data_key, "training": settings}, sort_keys=True).encode()).hexdigest()
    marker = _read_marker(model_dir)
    if marker.get("key") == key and (model_dir / "config.json").is_file():
        stored = marker.get("scores", {}).get(gold_key)
        if stored is not None:
            return stored, "reused"
        scores = evaluate_classifier(
            model_dir, str(gold), batch_size=training.batch_size, max_length=training.max_length, eval_split=gold_split
        )
        how = "re-scored"
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
