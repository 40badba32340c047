"""Builds with a label check: generate every class, check the labels of all rows together, and with
``drop_label_issues`` redraw in rounds.

The classifier check compares classes, so it needs every row of the build: the engine fills all
quotas first, then the check runs and each row gets its ``label_check`` column. With
``drop_label_issues``, the flagged samples (class, sample index) are excluded and the engine runs
again: it replays every reply from the journal (nothing is paid twice), drops the excluded samples
as ``label_issue`` and draws further samples for the classes they leave short. Only rows not yet
checked are judged in a later round (a row that passed stays), so the rounds end when a round
flags no new row, or after ``MAX_LABEL_ROUNDS`` rounds; rows still flagged then are kept, marked
in ``label_check``, with one warning. A class that cannot be refilled within
``max_draws_per_class`` stops the build with the engine's one-line error.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator

from attrprompt_builder.client.journal import Journal
from attrprompt_builder.filters.dedup.vectors import store_beside
from attrprompt_builder.generation.engine import GenerationRun
from attrprompt_builder.generation.plan import RunSettings
from attrprompt_builder.generation.stats import BuildStats
from attrprompt_builder.verify.judge import LABEL_CHECK_COLUMN
from attrprompt_builder.verify.label_check import check_labels
from attrprompt_builder.verify.vectors import text_vectors

__all__ = ["MAX_LABEL_ROUNDS", "checked_rows"]

MAX_LABEL_ROUNDS = 4
_SPENDING = ("sent", "prompt_tokens", "completion_tokens")


def checked_rows(
    settings: RunSettings, make_run: Callable[[frozenset[tuple[str, int]]], GenerationRun]
) -> Iterator[tuple[int, int, dict]]:
    """The rows of every class with their ``label_check`` column, as ``GenerationRun.rows`` yields them."""
    recipe = settings.recipe
    excluded: set[tuple[str, int]] = set()
    accepted: set[tuple[str, int]] = set()
    earlier: list[BuildStats] = []
    for round_number in range(1, MAX_LABEL_ROUNDS + 1):
        run = make_run(frozenset(excluded))
        rows = list(run.rows())
        ids = [(run.classes[position].label, run.classes[position].kept_indices[index]) for position, index, _ in rows]
        given = [tuple(row["labels"]) if recipe.multi_label else (row["label"],) for _, _, row in rows]
        vectors = text_vectors(  # the dedup stage stored most of them beside the journal already
            [row["text"] for _, _, row in rows],
            embedder=settings.dedup.embedder,
            precision=settings.dedup.embed_precision,
            cache=store_beside(settings.journal_path),
            progress="label check: sentence vectors",  # shown only when some are not stored yet
        )
        check = check_labels(vectors, given, class_names=recipe.label_names, multi_label=recipe.multi_label, seed=settings.seed)
        new_flags = {ids[i] for i in check.flagged.nonzero()[0] if ids[i] not in accepted}
        last = not settings.drop_label_issues or not new_flags or round_number == MAX_LABEL_ROUNDS
        if last:
            _save_stats(settings, run, earlier)
            if settings.drop_label_issues and new_flags:
                print(
                    f"attrprompt: label check: {len(new_flags)} rows still flagged after {MAX_LABEL_ROUNDS} rounds are "
                    "kept and marked in the label_check column",
                    file=sys.stderr,
                )
            for (position, index, row), sample, label, assigned in zip(rows, ids, given, check.assigned):
                row[LABEL_CHECK_COLUMN] = list(label if sample in accepted else assigned)  # a row that passed stays passed
                yield position, index, row
            return
        accepted |= {sample for sample in ids if sample not in new_flags}
        excluded |= new_flags
        earlier.append(run.stats)


def _save_stats(settings: RunSettings, final: GenerationRun, earlier: list[BuildStats]) -> None:
    """One record for the whole build: the last round's rows and drops, every round's spending.

    Later rounds replay earlier rounds' replies from the journal; those are not "reused" by this build.
    """
    if not earlier:
        return
    stats = final.stats
    for previous in earlier:
        for name in _SPENDING:
            setattr(stats, name, getattr(stats, name) + getattr(previous, name))
        stats.reused = max(0, stats.reused - previous.sent)
        stats.cost += previous.cost
        stats.wall_time_s += previous.wall_time_s
        stats.retries.update(previous.retries)
        stats.failures.update(previous.failures)
    journal = Journal(settings.journal_path)
    try:
        journal.save_stats(settings.run_id, final.worker, stats.to_dict())
    finally:
        journal.close()
