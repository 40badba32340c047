"""Everything one build needs at generation time, as a picklable value.

The builder turns its validated config into ``RunSettings`` once, in the main process; datasets
ships it to ``num_proc`` workers inside ``gen_kwargs``. Secrets are not part of it: the token
travels on the builder and goes straight into the backends.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from attrprompt_builder.client.backends import BackendSpec
from attrprompt_builder.client.resilience import RetryPolicy
from attrprompt_builder.client.types import SamplingParams
from attrprompt_builder.generation.sampling import AttributeDraw
from attrprompt_builder.recipe.model import Recipe

if TYPE_CHECKING:
    from attrprompt_builder.generation.dedup_stage import DedupStage

__all__ = ["RunSettings"]


@dataclass(frozen=True)
class RunSettings:
    recipe: Recipe
    backend: BackendSpec
    samples_per_class: int
    seed: int
    params: SamplingParams
    journal_path: str
    run_id: str
    sampling: str = "uniform"
    prompting: str = "attributed"
    max_concurrency: int = 16
    retry_policy: RetryPolicy = field(default_factory=RetryPolicy)
    max_errors: int = 200
    max_draws_per_class: int = 100
    max_requests: int | None = None
    max_tokens: int | None = None
    max_cost: float | None = None
    price_in: float | None = None
    price_out: float | None = None
    ascii_squeeze: bool = False
    dedup_threshold: float | None = None
    embedder: str | None = None
    drop_cross_class_duplicates: bool = False
    progress_desc: str = "Generating"

    @property
    def backend_identity(self) -> str:
        return self.backend.identity

    @property
    def model_key(self) -> str:
        return self.backend.model or ""

    @property
    def decides_classes_in_order(self) -> bool:
        """Dropping cross-class duplicates makes a class's rows depend on the classes before it: each class
        is decided only once those are complete, and all classes run in one shard."""
        return self.dedup_threshold is not None and self.drop_cross_class_duplicates

    @property
    def priced(self) -> bool:
        return self.price_in is not None or self.price_out is not None

    def cost_of(self, prompt_tokens: int, completion_tokens: int) -> float:
        return prompt_tokens / 1000 * (self.price_in or 0.0) + completion_tokens / 1000 * (self.price_out or 0.0)

    def make_row(self, draw: AttributeDraw, text: str, prompt: str) -> dict[str, Any]:
        row: dict[str, Any] = {"text": text}
        if self.recipe.multi_label:
            row["labels"] = list(draw.labels)
        else:
            row["label"] = draw.label
        # A simple (SimPrompt) prompt saw no attribute, so the row must not claim any.
        attributed = self.prompting == "attributed"
        for name in self.recipe.attribute_names:
            row[name] = draw.values[name] if attributed else None
        row["prompt"] = prompt
        return row

    def make_dedup_filter(self) -> DedupStage | None:
        if self.dedup_threshold is None:
            return None
        from attrprompt_builder.generation.dedup_stage import DedupStage

        return DedupStage(
            threshold=self.dedup_threshold,
            embedder=self.embedder,
            drop_cross_class=self.drop_cross_class_duplicates,
            recipe=self.recipe,
        )
