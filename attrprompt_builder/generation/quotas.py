"""Per-class quota state, and how far ahead of its remaining need a class may draw.

The engine walks each class's sample indices in order; this module holds what it knows about one
class (drawn, in flight, decided, kept) and the admission rule: a class may have in flight what it
still needs plus the drops it can expect among them, bounded by ``SPECULATIVE_DRAWS_PER_CLASS``.
Because drops shrink the surplus and keeps shrink need and in-flight alike, the bound also caps the
paid-but-unneeded replies of a class once its quota is met.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from attrprompt_builder.client.types import ChatReply, ChatRequest
from attrprompt_builder.errors import QuotaNotMetError
from attrprompt_builder.generation.sampling import AttributeDraw

__all__ = ["Candidate", "ClassQuota", "SPECULATIVE_DRAWS_PER_CLASS", "keep_rate"]

# Unneeded replies stay in the journal and serve a later, larger build; the cap keeps their cost small.
SPECULATIVE_DRAWS_PER_CLASS = 4
# Below this many decisions the observed keep rate is noise: assume every reply is kept.
_MIN_DECISIONS = 10
# A floor keeps a run of early drops from sending a class far ahead (the cap bounds it anyway).
_MIN_KEEP_RATE = 0.2


@dataclass
class Candidate:
    """A reply that passed the filters and waits for the near-duplicate decision."""

    index: int
    draw: AttributeDraw
    prompt: str
    text: str


@dataclass
class ClassQuota:
    label: str
    position: int
    quota: int
    next_index: int = 0
    next_decide: int = 0
    outstanding: int = 0  # dispatched, not yet finally decided
    judging: int = 0  # passed every other check, waiting for the judge's label
    kept: int = 0
    finalized: int = 0
    results: dict[int, tuple[AttributeDraw, ChatRequest, ChatReply | None]] = field(default_factory=dict)
    candidates: list[Candidate] = field(default_factory=list)
    rows: list[dict] = field(default_factory=list)
    kept_indices: list[int] = field(default_factory=list)  # the sample index of each kept row, in row order
    emitted: int = 0

    @property
    def done(self) -> bool:
        return self.kept >= self.quota

    def decided(self, *, kept: bool) -> None:
        """One drawn sample is finally decided: kept as a row, or dropped."""
        self.outstanding -= 1
        self.finalized += 1
        self.kept += kept

    @property
    def open_slots(self) -> int:
        """Rows still to find beyond those kept or with the judge: more candidates than this could not all be kept."""
        return self.quota - self.kept - self.judging

    @property
    def ready(self) -> int:
        """Waiting candidates that may be decided now: all of a complete class (surplus), else as many as it could keep."""
        return len(self.candidates) if self.done else max(0, min(len(self.candidates), self.open_slots))

    def not_met(self, dropped: Counter[str]) -> QuotaNotMetError:
        """The error of a class that has drawn all it may and still lacks rows (``dropped``: reason -> count)."""
        reasons = ", ".join(f"{reason}: {n}" for reason, n in dropped.most_common())
        return QuotaNotMetError(
            f"class {self.label!r}: only {self.kept} of {self.quota} rows kept after {self.next_index} draws "
            f"({reasons or 'no reason recorded'}); raise max_draws_per_class or check what the endpoint replies "
            "(`attrprompt show` prints the prompts)"
        )

    def wants_draw(self, keep_rate: float, *, max_draws: int) -> bool:
        """Whether one more request for this class is worth sending now."""
        if self.done or self.next_index >= max_draws:
            return False
        remaining = self.quota - self.kept
        spare = min(SPECULATIVE_DRAWS_PER_CLASS, math.ceil(remaining * (1 - keep_rate) / keep_rate))
        return self.outstanding < remaining + spare


def keep_rate(classes: Sequence[ClassQuota]) -> float:
    """The share of decided replies kept so far, over all classes."""
    finalized = sum(c.finalized for c in classes)
    if finalized < _MIN_DECISIONS:
        return 1.0
    return max(_MIN_KEEP_RATE, sum(c.kept for c in classes) / finalized)
