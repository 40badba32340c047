"""The reproduce table: multi-label scores get their own rows, and what was not measured shows MISSING."""

from __future__ import annotations

from pathlib import Path

from attrprompt_builder.card.measures import MISSING
from attrprompt_builder.generation.stats import BuildStats
from attrprompt_builder.reproduce.report import PAPER_TRAINING, MethodResult, ReproduceReport, format_reproduce, table_rows


def _method(name: str, *, built: BuildStats | None, priced: bool) -> MethodResult:
    scores = {"micro_f1": 0.5, "macro_f1": 0.25, "subset_accuracy": 0.125, "num_eval": 8, "eval_source": "t (split test)"}
    return MethodResult(
        name=name, prompting="simple", folder=Path(name), model_dir=Path("models") / name, scores=scores,
        trained="trained", built=built, sent_this_run=0, priced=priced,
    )  # fmt: skip


def test_multi_label_rows_and_unmeasured_cells():
    spent = BuildStats(sent=3, reused=1, prompt_tokens=10, completion_tokens=5, cost=0.5)
    report = ReproduceReport(
        recipe="arxiv",
        gold="t",
        training=PAPER_TRAINING,
        methods=(_method("attrprompt", built=None, priced=False), _method("simprompt", built=spent, priced=True)),
        embedder=None,
        terms=(),
        budget={"samples_per_class": 4, "max_requests": None, "max_tokens": 900, "max_cost": None},
    )
    rows = dict(table_rows(report))
    assert list(rows)[:3] == ["micro-F1", "macro-F1", "subset accuracy"] and "accuracy" not in rows
    assert rows["subset accuracy"] == ["0.1250", "0.1250"]
    assert rows["requests sent"] == [MISSING, "3"] and rows["tokens"] == [MISSING, "15"]
    assert rows["cost"] == [MISSING, "0.5000"]  # a build without prices has no cost, even when the other has one
    assert rows["APS overall"] == [MISSING, MISSING] and rows["rows"] == [MISSING, MISSING]  # nothing measured them
    assert "recipe locations mentioned" not in rows  # no location terms
    text = format_reproduce(report)
    assert "APS not measured (no embedder)." in text
    assert "Same budget: both builds had the same options, 4 rows per class and each its own max_tokens 900." in text
    assert "scored on 8 rows of t (split test)" in text
