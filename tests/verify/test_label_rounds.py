"""``label_check="classifier"`` on a build: the column, and with ``drop_label_issues`` redraw rounds that
drop the off-topic replies a scripted LLM planted, meet every quota and re-pay nothing on a rerun."""

from __future__ import annotations

import json
from collections import Counter

import datasets
import pytest
from scripted_labels import ScriptedLabels, topic_of

from attrprompt_builder.errors import ConfigError
from attrprompt_builder.pipeline import generate_folder

RECIPE = """\
name: topics
domain: note
license: other
labels: [weather, cooking, finance]
attributes:
  - name: tone
    values: [calm, urgent, dry, warm]
prompts:
  attributed: "Write a note about {{ label_text }} in a {{ tone }} tone."
  simple: "Write a note about {{ label_text }}."
"""
N = 20


@pytest.fixture
def recipe(tmp_path):
    path = tmp_path / "topics.yaml"
    path.write_text(RECIPE, encoding="utf-8")
    return path


def _build(recipe, folder, server, root, embedder, **options):
    return generate_folder(
        str(recipe),
        folder,
        endpoint=server.url,
        samples_per_class=N,
        embedder=embedder,
        dedup_threshold="off",  # the scripted texts share one small vocabulary per class: MiniLM finds them alike
        label_check="classifier",
        journal_dir=str(root / "journal"),
        cache_dir=str(root / folder.name),
        **options,
    )


def _rows(folder):
    return datasets.load_dataset(str(folder), split="train")


def test_label_check_column_marks_the_off_topic_rows(recipe, tmp_path, minilm_path):
    with ScriptedLabels() as server:
        folder = _build(recipe, tmp_path / "marked", server, tmp_path, minilm_path)
    rows = _rows(folder)
    names = rows.features["label"].names
    off_topic = [topic_of(r["text"]) != names[r["label"]] for r in rows]
    flagged = [r["label_check"] != [names[r["label"]]] for r in rows]
    assert sum(off_topic) >= 5  # the scripted LLM planted some
    caught = sum(o and f for o, f in zip(off_topic, flagged))
    # Confident learning estimates each class pair's noise from the data: on 60 rows it misses some.
    assert caught / sum(off_topic) >= 0.8 and caught / sum(flagged) >= 0.6, (caught, sum(off_topic), sum(flagged))
    for row, is_flagged in zip(rows, flagged):
        if is_flagged and topic_of(row["text"]) != names[row["label"]]:
            assert row["label_check"] == [topic_of(row["text"])]  # the class the text is really about
    card = (folder / "README.md").read_text(encoding="utf-8")
    assert "### Label check" in card and "| requested \\ assigned | weather | cooking | finance |" in card


@pytest.mark.slow
def test_drop_label_issues_redraws_until_quotas_are_met_and_reruns_pay_nothing(recipe, tmp_path, minilm_path):
    with ScriptedLabels() as server:
        folder = _build(recipe, tmp_path / "dropped", server, tmp_path, minilm_path, drop_label_issues=True)
        paid = server.served
        again = _build(recipe, tmp_path / "again", server, tmp_path, minilm_path, drop_label_issues=True)
        assert server.served == paid  # every round's replies came from the journal
    rows = _rows(folder)
    names = rows.features["label"].names
    assert Counter(names[r["label"]] for r in rows) == dict.fromkeys(names, N)
    left = sum(topic_of(r["text"]) != names[r["label"]] for r in rows)
    assert left <= 2  # the first round's misses stay: a row that passed is not judged again
    stats = json.loads((folder / "generation.json").read_text(encoding="utf-8"))["stats"]
    assert stats["dropped"]["label_issue"] >= 3
    assert stats["sent"] == paid and stats["kept"] == 3 * N
    assert _rows(again)["text"] == rows["text"]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"label_check": "bert"}, "label_check: got 'bert'; use one of classifier, judge"),
        ({"drop_label_issues": True}, "drop_label_issues: got True; also pass label_check='classifier'"),
        ({"label_check": "classifier", "drop_label_issues": "yes"}, "drop_label_issues: got 'yes'; use True or False"),
        ({"label_check": "classifier", "samples_per_class": 3}, "label_check: got 'classifier'; the classifier check"),
        ({"label_check": "judge", "drop_label_issues": True}, "drop_label_issues: got True; also pass label_check='classifier'"),
    ],
)
def test_bad_label_check_options_are_one_line(recipe, tmp_path, options, message):
    with pytest.raises(ConfigError) as caught:
        generate_folder(str(recipe), tmp_path / "out", endpoint="http://127.0.0.1:9", **options)
    assert str(caught.value).startswith(message) and "\n" not in str(caught.value)
