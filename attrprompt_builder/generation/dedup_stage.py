"""The near-duplicate stage of a build: ``dedup.NearDuplicateFilter`` plus the counts the card shows.

The engine hands it candidates in their final order (per class, sample index order), so which
member of a near-duplicate pair survives never depends on timing: the earlier sample is kept and
the class draws another sample to refill its quota.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from attrprompt_builder.filters.dedup.filter import DedupDecision, NearDuplicateFilter
from attrprompt_builder.filters.dedup.vectors import VectorStore
from attrprompt_builder.generation.quotas import ClassQuota
from attrprompt_builder.generation.sampling import AttributeDraw
from attrprompt_builder.generation.stats import BuildStats
from attrprompt_builder.recipe.model import Recipe

__all__ = ["DedupStage", "next_batch"]


class DedupStage:
    """Decides candidates; every vector it computes is committed to the build's ``VectorStore`` with its batch."""

    def __init__(
        self,
        *,
        threshold: float | None,
        embedder: str | None,
        drop_cross_class: bool,
        recipe: Recipe,
        precision: str = "auto",
        vectors_path: str | Path | None = None,
    ) -> None:
        self.store = VectorStore(vectors_path) if vectors_path is not None else None
        try:
            self.filter = NearDuplicateFilter(
                embedder=embedder, precision=precision, cache=self.store, threshold=threshold, drop_cross_group=drop_cross_class
            )
        except BaseException:
            self.close()
            raise
        self.recipe = recipe
        self.removed_by_value: dict[str, Counter] = {}
        self.cross_class_flags = 0

    async def batches(
        self, classes: list[ClassQuota], *, in_order: bool, decide: Callable[[ClassQuota, list[bool | str | None]], None]
    ) -> AsyncIterator[None]:
        """Decide ``next_batch`` after batch (off the event loop), handing each class's verdicts to ``decide``;
        yields after each batch, and ends when no candidate waits."""
        loop = asyncio.get_running_loop()
        while batch := next_batch(classes, in_order=in_order):
            verdicts = await loop.run_in_executor(None, self.check_batch, batch)
            for (state, _), keep in zip(batch, verdicts):
                decide(state, keep)
            yield

    def check_batch(self, batch: list[tuple[ClassQuota, int]]) -> list[list[bool | str | None]]:
        """Decide the first ``take`` candidates of each class in ``batch``: True, or the drop reason, per candidate."""
        texts: list[str] = []
        groups: list[str] = []
        draws: list[AttributeDraw] = []
        for state, take in batch:
            texts += [c.text for c in state.candidates[:take]]
            draws += [c.draw for c in state.candidates[:take]]
            groups += [state.label] * take
        decisions = self.check(texts, groups, draws)
        verdicts: list[list[bool | str | None]] = []
        offset = 0
        for _, take in batch:
            verdicts.append([d.keep or d.reason for d in decisions[offset : offset + take]])
            offset += take
        return verdicts

    def check(self, texts: list[str], groups: list[str], draws: list[AttributeDraw]) -> list[DedupDecision]:
        decisions = self.filter.check(texts, groups)
        for decision, draw in zip(decisions, draws):
            if not decision.keep:
                for name, value in draw.values.items():
                    self.removed_by_value.setdefault(name, Counter())[value] += 1
            elif decision.cross_group_match is not None:
                self.cross_class_flags += 1
        return decisions

    def close(self) -> None:
        if self.store is not None:
            self.store.close()

    def update_build_stats(self, stats: BuildStats) -> None:
        stats.cross_class_flags += self.cross_class_flags
        stats.dedup_examples = [
            {"label": e["group"], "kept": e["kept_text"], "dropped": e["dropped_text"], "similarity": e["similarity"]}
            for e in self.filter.stats.examples
        ]
        for name, counts in self.removed_by_value.items():
            stats.dedup_removed_by_value.setdefault(name, Counter()).update(counts)


def next_batch(classes: list[ClassQuota], *, in_order: bool) -> list[tuple[ClassQuota, int]]:
    """The candidates to decide next, as (class, how many of its first candidates); empty when none wait.

    A class offers at most its open slots (more cannot all be kept, counting those with the judge; the rest
    wait for the next batch). With ``in_order`` (cross-class duplicates dropped) later classes wait until the
    classes before them are complete, so they are judged against those classes' final rows, not whichever
    rows had arrived first.
    """
    batch: list[tuple[ClassQuota, int]] = []
    for state in classes:
        if state.done and state.candidates:  # surplus replies: paid and journaled, not needed
            state.outstanding -= len(state.candidates)
            state.candidates.clear()
        take = min(len(state.candidates), state.open_slots)
        if take > 0:
            batch.append((state, take))
        if in_order and not state.done:
            break
    return batch
