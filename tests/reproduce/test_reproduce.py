"""`attrprompt reproduce` end to end at a tiny scale: the loopback TGI server generates both methods, the
tiny local model is the classifier, and the test set is real human-written text (Python's stdlib
docstrings, labelled by the module they document). A rerun sends no request and trains nothing."""

from __future__ import annotations

import importlib
import inspect
import json
import re
from pathlib import Path

import datasets
import pytest
from tiny_model import build_tiny_chat_model

from attrprompt_builder import cli
from attrprompt_builder.card.measures import MISSING, format_measure
from attrprompt_builder.compare import compare_folders
from attrprompt_builder.reproduce.models import MODEL_MARKER
from attrprompt_builder.reproduce.report import RESULTS_JSON, RESULTS_MD
from attrprompt_builder.train.evaluate import evaluate_classifier

MODULES = ("math", "random", "shutil")
RECIPE = """\
name: stdlib_docs
domain: Python standard library docstring
license: other
labels:
  - {name: math, text: mathematical functions}
  - {name: random, text: random numbers}
  - {name: shutil, text: copying and moving files}
attributes:
  - name: length
    values: [10, 20]
  - name: style
    values: [terse, detailed]
prompts:
  attributed: "Write a {{ domain }} about {{ label_text }}, {{ style }}, between {{ length }} and {{ length | int + 10 }} words long."
  simple: "Write a {{ domain }} about {{ label_text }}."
"""


def _docstrings(module_name: str, limit: int) -> list[str]:
    """First paragraphs of the docstrings of a stdlib module's public callables: text people wrote."""
    module = importlib.import_module(module_name)
    found: list[str] = []
    for name in sorted(dir(module)):
        value = getattr(module, name)
        doc = inspect.getdoc(value) if not name.startswith("_") and callable(value) else None
        paragraph = " ".join((doc or "").split("\n\n")[0].split())
        if len(paragraph.split()) >= 5 and paragraph not in found:
            found.append(paragraph)
    return found[:limit]


def _gold(folder: Path, modules: tuple[str, ...] = MODULES, per_module: int = 10) -> Path:
    texts, labels = [], []
    for module in modules:
        docs = _docstrings(module, per_module)
        assert len(docs) >= 5, f"{module}: too few docstrings for a test set"
        texts += docs
        labels += [module] * len(docs)
    features = datasets.Features({"text": datasets.Value("string"), "label": datasets.ClassLabel(names=sorted(set(labels)))})
    folder.mkdir(parents=True)
    datasets.Dataset.from_dict({"text": texts, "label": labels}, features=features).to_parquet(str(folder / "test.parquet"))
    return folder


@pytest.fixture
def counted_training(monkeypatch) -> list[int]:
    """Each real ``Trainer.train`` call, counted."""
    from transformers import Trainer

    calls: list[int] = []
    real = Trainer.train

    def train(self, *args, **kwargs):
        calls.append(1)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Trainer, "train", train)
    return calls


def _cells(text: str, row: str) -> list[str]:
    match = re.search(rf"^{re.escape(row)}  +(\S+) +(\S+)$", text, re.MULTILINE)
    assert match, f"no row {row!r} in:\n{text}"
    return list(match.groups())


@pytest.mark.slow
def test_reproduce_runs_end_to_end_and_a_rerun_sends_and_trains_nothing(tgi, tmp_path, in_empty_dir, counted_training, capsys):
    recipe = tmp_path / "stdlib.yaml"
    recipe.write_text(RECIPE, encoding="utf-8")
    gold = _gold(tmp_path / "gold")
    classifier = build_tiny_chat_model(tmp_path / "tiny")

    def command(test_set: Path) -> list[str]:
        return ["reproduce", str(recipe), "--endpoint", tgi.url, "-n", "6", "--embedder", "ngram", "--gold", str(test_set),
                "-o", "out", "--classifier", str(classifier), "--epochs", "2", "--max-length", "32",
                "--train-batch-size", "8", "--learning-rate", "1e-3"]  # fmt: skip

    argv = command(gold)

    assert cli.main(argv) == 0
    first = capsys.readouterr()
    out = Path("out")
    results = json.loads((out / RESULTS_JSON).read_text())
    methods = results["methods"]
    assert len(counted_training) == 2
    assert methods["attrprompt"]["prompting"] == "attributed" and methods["simprompt"]["prompting"] == "simple"
    paid = tgi.served
    assert paid >= 36 and sum(m["spent"]["sent"] for m in methods.values()) == paid
    assert [m["sent_this_run"] for m in methods.values()] == [m["spent"]["sent"] for m in methods.values()]
    # the scores are those of the saved models on the test set, not numbers from anywhere else
    for name, method in methods.items():
        again = evaluate_classifier(out / "models" / name, str(gold), batch_size=8, max_length=32)
        assert method["scores"]["num_eval"] == 30 == again["num_eval"]
        assert method["scores"]["accuracy"] == pytest.approx(again["accuracy"], abs=1e-6)
        assert method["scores"]["macro_f1"] == pytest.approx(again["macro_f1"], abs=1e-6)
        assert _cells(first.out, "accuracy")[list(methods).index(name)] == format_measure(again["accuracy"], 4)
    # diversity is compare's, measured on the two generated folders
    compared = compare_folders([out / "attrprompt", out / "simprompt"], embedder="ngram")
    assert _cells(first.out, "distinct-2") == [format_measure(s.distinct[2], 4) for s in compared.datasets]
    assert _cells(first.out, "APS overall") == [format_measure(s.similarity.overall) for s in compared.datasets]
    assert _cells(first.out, "rows") == ["18", "18"]
    assert _cells(first.out, "requests sent") == [str(m["spent"]["sent"]) for m in methods.values()]
    # places named: the verify stage's gazetteer count, as compare reports it
    named = [s.places for s in compared.datasets]
    assert all(p is not None and p.texts == 18 for p in named)
    assert _cells(first.out, "texts naming a place") == [f"{100 * p.with_place / p.texts:.1f}%" for p in named]
    # nothing the run did not measure: no prices given
    assert _cells(first.out, "cost") == [MISSING, MISSING]
    assert "Same budget: both builds had the same options, 6 rows per class and no cap on requests" in first.out
    assert "| texts naming a place |" in (out / RESULTS_MD).read_text()
    for phase in ("[1/5] generating attrprompt", "[2/5] generating simprompt", "[3/5] classifier on attrprompt",
                  "[4/5] classifier on simprompt", "[5/5] measuring diversity", "trained (trained now and scored on the test set): accuracy"):  # fmt: skip
        assert phase in first.err

    weights = sorted((out / "models").glob("*/model.safetensors"))
    assert len(weights) == 2
    mtimes = [path.stat().st_mtime_ns for path in weights]
    requests = tgi.count()
    assert cli.main(argv) == 0
    second = capsys.readouterr()
    assert tgi.count() == requests and tgi.served == paid  # not even a request answered from cache
    assert len(counted_training) == 2
    assert [path.stat().st_mtime_ns for path in weights] == mtimes
    assert "This run sent 0 (attrprompt), 0 (simprompt) requests; models: attrprompt reused, simprompt reused." in second.out
    for row in ("accuracy", "macro-F1", "requests sent", "tokens", "distinct-1", "APS within class"):
        assert _cells(second.out, row) == _cells(first.out, row)

    # another test set scores the saved models; it trains nothing and sends nothing
    other = _gold(tmp_path / "gold-small", MODULES, per_module=5)
    assert cli.main(command(other)) == 0
    third = capsys.readouterr()
    assert len(counted_training) == 2 and tgi.count() == requests
    assert third.err.count("re-scored (the model an earlier run trained") == 2 and "scored on 15 rows" in third.out
    assert "models: attrprompt re-scored, simprompt re-scored." in third.out
    markers = [json.loads((out / "models" / name / MODEL_MARKER).read_text()) for name in methods]
    assert all(len(marker["scores"]) == 2 for marker in markers)  # one entry per test set


def test_a_test_set_with_other_labels_stops_before_any_request(tgi, tmp_path, in_empty_dir, capsys):
    recipe = tmp_path / "stdlib.yaml"
    recipe.write_text(RECIPE, encoding="utf-8")
    gold = _gold(tmp_path / "gold", ("math", "random", "json"), per_module=5)
    argv = ["reproduce", str(recipe), "--endpoint", tgi.url, "--gold", str(gold), "-o", "out", "--classifier", "x"]
    assert cli.main(argv) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("error:") == 1
    assert err.splitlines()[-1] == (
        "error: --gold: label name(s) ['json'] are not among the recipe's labels ['math', 'random', 'shutil']; "
        "relabel or drop those rows, or pick the recipe of this test set"
    )
    assert tgi.count() == 0


def test_prompting_is_not_a_reproduce_flag_and_bad_training_settings_name_their_flag(tmp_path, capsys):
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["reproduce", "agnews", "--gold", "g", "-o", "o", "--prompting", "simple"])
    capsys.readouterr()
    assert cli.main(["reproduce", "agnews", "--gold", "g", "-o", str(tmp_path / "o"), "--epochs", "0"]) == 1
    assert capsys.readouterr().err.strip() == "error: --epochs: 0.0 is not usable; use a positive number such as 3"


def test_quick_picks_bert_mini_and_a_classifier_out_of_reach_stops_before_any_request(
    tgi, tmp_path, in_empty_dir, dead_hub, capsys
):
    recipe = tmp_path / "stdlib.yaml"
    recipe.write_text(RECIPE, encoding="utf-8")
    gold = _gold(tmp_path / "gold", per_module=5)
    assert cli.main(["reproduce", str(recipe), "--endpoint", tgi.url, "--gold", str(gold), "-o", "out", "--quick"]) == 1
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith(
        "error: --classifier: 'google/bert_uncased_L-4_H-256_A-4' is not a model folder and could not be fetched or found"
    )
    assert err.endswith("pass a model folder, or download it once with network access")
    assert tgi.count() == 0 and not Path("out").exists()
