"""The near-duplicate stage of a build: ``dedup.NearDuplicateFilter`` plus the counts the card shows.

The engine hands it candidates in their final order (per class, sample index order), so which
member of a near-duplicate pair survives never depends on timing: the earlier sample is kept and
the class draws another sample to refill its quota.
"""

from __future__ import annotations

from collections import Counter

from attrprompt_builder.filters.dedup.filter import DedupDecision, NearDuplicateFilter
from attrprompt_builder.generation.sampling import AttributeDraw
from attrprompt_builder.generation.stats import BuildStats
from attrprompt_builder.recipe.model import Recipe

__all__ = ["DedupStage"]


class DedupStage:
    def __init__(self, *, threshold: float | None, embedder: str | None, drop_cross_class: bool, recipe: Recipe) -> None:
        self.filter = NearDuplicateFilter(embedder=embedder, threshold=threshold, drop_cross_group=drop_cross_class)
        self.recipe = recipe
        self.removed_by_value: dict[str, Counter] = {}
        self.cross_class_flags = 0

    def check(self, texts: list[str], groups: list[str], draws: list[AttributeDraw]) -> list[DedupDecision]:
        decisions = self.filter.check(texts, groups)
        for decision, draw in zip(decisions, draws):
            if not decision.keep:
                for name, value in draw.values.items():
                    self.removed_by_value.setdefault(name, Counter())[value] += 1
            elif decision.cross_group_match is not None:
                self.cross_class_flags += 1
        return decisions

    def update_build_stats(self, stats: BuildStats) -> None:
        stats.cross_class_flags += self.cross_class_flags
        stats.dedup_examples = [
            {"label": e["group"], "kept": e["kept_text"], "dropped": e["dropped_text"], "similarity": e["similarity"]}
            for e in self.filter.stats.examples
        ]
        for name, counts in self.removed_by_value.items():
            stats.dedup_removed_by_value.setdefault(name, Counter()).update(counts)
