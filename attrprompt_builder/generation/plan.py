"""Everything one build needs at generation time, as a picklable value.

``AttrPromptConfig.plan`` turns the validated config into ``RunSettings`` once, in the main process;
datasets ships it to ``num_proc`` workers inside ``gen_kwargs``. Options that belong together travel
as small specs (backend, dedup, budget, retry); what every part of a build reads (the recipe, how
many rows, the seed, how attributes are drawn and prompts written) stays at the top. Secrets are not
part of it: the token travels on the builder and goes straight into the backends.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from attrprompt_builder.client.backends import BackendSpec
from attrprompt_builder.client.resilience import RetryPolicy
from attrprompt_builder.client.types import SamplingParams
from attrprompt_builder.generation.budget import BudgetSpec
from attrprompt_builder.generation.sampling import AttributeDraw, class_quotas
from attrprompt_builder.recipe.model import Recipe
from attrprompt_builder.verify.judge import JudgeSpec

if TYPE_CHECKING:
    from attrprompt_builder.generation.cluster import ReplyVectors
    from attrprompt_builder.generation.dedup_stage import DedupStage

__all__ = ["ClusterSpec", "DedupSpec", "RetrySpec", "RunSettings"]


@dataclass(frozen=True)
class DedupSpec:
    """The near-duplicate filter: ``threshold`` None turns it off."""

    threshold: float | None = None
    embedder: str | None = None
    drop_cross_class_duplicates: bool = False
    embed_precision: str = "auto"

    @classmethod
    def resolve(
        cls,
        threshold: float | str | None,
        *,
        embedder: str | None = None,
        drop_cross_class_duplicates: bool = False,
        embed_precision: str = "auto",
    ) -> DedupSpec:
        """The spec for a ``dedup_threshold`` option: a number, "auto" (the embedder's measured default), None or "off"."""
        if threshold in (None, "off"):
            resolved = None
        elif threshold == "auto":
            from attrprompt_builder.filters.dedup.filter import (  # measured defaults (bench/dedup_threshold.py)
                MINILM_THRESHOLD,
                NGRAM_THRESHOLD,
            )

            resolved = NGRAM_THRESHOLD if embedder == "ngram" else MINILM_THRESHOLD
        else:
            resolved = threshold  # type: ignore[assignment]  # a number: the config validated it
        return cls(
            resolved, embedder=embedder, drop_cross_class_duplicates=drop_cross_class_duplicates, embed_precision=embed_precision
        )


@dataclass(frozen=True)
class RetrySpec:
    """How hard a build tries: attempts per request, failed requests per build, draws per class, and how
    long an endpoint may take to give its first reply.

    None caps scale with the build (see ``RunSettings.max_errors`` and ``max_draws_per_class``).
    """

    max_attempts: int = 6
    first_request_timeout: float = 60.0
    max_errors: int | None = None
    max_draws_per_class: int | None = None


@dataclass(frozen=True)
class ClusterSpec:
    """A build on Ray: the cluster's ``address`` ("auto", host:port or ray://host:port), how many ``workers``
    (None: as many as the cluster's cores, or GPUs for a local model) and the ``replies`` folder (an fsspec
    URL every node can write) where workers persist paid replies."""

    address: str
    replies: str
    workers: int | None = None


@dataclass(frozen=True)
class RunSettings:
    recipe: Recipe
    backend: BackendSpec
    params: SamplingParams
    journal_path: str
    run_id: str
    samples_per_class: int = 10
    seed: int = 0
    sampling: str = "uniform"
    prompting: str = "attributed"
    fidelity: str = "default"
    ascii_squeeze: bool = False
    max_concurrency: int = 16
    dedup: DedupSpec = field(default_factory=DedupSpec)
    budget: BudgetSpec = field(default_factory=BudgetSpec)
    retry: RetrySpec = field(default_factory=RetrySpec)
    label_check: str | None = None
    drop_label_issues: bool = False
    judge: JudgeSpec = field(default_factory=JudgeSpec)
    cluster: ClusterSpec | None = None

    @property
    def paper(self) -> bool:
        """Paper mode: the reference code's prompts, loop, cleaning and refusal phrases (recipe.paper)."""
        return self.fidelity == "paper"

    @property
    def cleans_ascii(self) -> bool:
        return self.ascii_squeeze or self.paper

    @property
    def paper_refusals(self) -> tuple[str, ...] | None:
        """The reference's refusal substrings for this prompting mode in paper mode, else None (our patterns)."""
        if not self.paper or self.recipe.paper is None:
            return None
        return self.recipe.paper.refusals[self.prompting]

    @cached_property
    def quotas(self) -> dict[str, int]:
        """Rows to keep per class (see ``class_quotas``: paper mode's arxiv loop keeps -n per subtopic)."""
        return class_quotas(self.recipe, self.samples_per_class, paper=self.paper, prompting=self.prompting)

    @property
    def total_rows(self) -> int:
        return sum(self.quotas.values())

    @property
    def progress_desc(self) -> str:
        return f"AttrPrompt {self.recipe.name}"

    @property
    def decides_classes_in_order(self) -> bool:
        """Dropping cross-class duplicates makes a class's rows depend on the classes before it: each class
        is decided only once those are complete, and all classes run in one shard."""
        return self.dedup.threshold is not None and self.dedup.drop_cross_class_duplicates

    @property
    def one_shard(self) -> bool:
        """All classes in one worker: when classes are decided in order, or a label check compares them all."""
        return self.decides_classes_in_order or self.label_check is not None

    # -- concurrency: one cap per endpoint, however many processes send ---------------------------
    @property
    def judge_on_driver(self) -> bool:
        """On Ray, a judge asking the build's own endpoint sends from the driver, beside the workers."""
        return self.cluster is not None and self.judge.enabled and self.judge.backend is None

    @property
    def driver_concurrency(self) -> int:
        """Requests this process may have in flight to the build's endpoint: all of them on one machine; on Ray
        none (the workers send) or, with a judge on that endpoint, half the cap for its questions."""
        if not self.judge_on_driver:
            return self.max_concurrency
        return max(1, self.max_concurrency // 2)

    @property
    def worker_concurrency(self) -> int:
        """What the Ray workers share of ``max_concurrency``: together with the driver's, exactly the cap."""
        return self.max_concurrency - self.driver_concurrency if self.judge_on_driver else self.max_concurrency

    # -- retry caps, with the defaults that scale with the build ---------------------------------
    @property
    def retry_policy(self) -> RetryPolicy:
        return RetryPolicy(max_attempts=self.retry.max_attempts)

    @property
    def first_request_timeout(self) -> float | None:
        return self.first_timeout_of(self.backend)

    def first_timeout_of(self, backend: BackendSpec) -> float | None:
        """How long ``backend``'s first reply may take (the build's, or a judge's on its own backend)."""
        # A local model's first batch may legitimately take minutes on a CPU; it hangs on nothing remote.
        return None if backend.kind == "transformers" else self.retry.first_request_timeout

    @property
    def max_errors(self) -> int:
        # A build of many rows meets more transient failures before anything is really wrong.
        return self.retry.max_errors or max(100, self.total_rows)

    def max_draws(self, label: str) -> int:
        # Room for refusals and duplicates, yet a class whose replies never pass stops in bounded time.
        return self.retry.max_draws_per_class or 3 * self.quotas[label] + 20

    # -- budget: the names the engine reads ------------------------------------------------------
    @property
    def max_requests(self) -> int | None:
        return self.budget.max_requests

    @property
    def max_tokens(self) -> int | None:
        return self.budget.max_tokens

    @property
    def max_cost(self) -> float | None:
        return self.budget.max_cost

    @property
    def priced(self) -> bool:
        return self.budget.priced

    def cost_of(self, prompt_tokens: int, completion_tokens: int) -> float:
        return self.budget.cost_of(prompt_tokens, completion_tokens)

    # -- rows -------------------------------------------------------------------------------------
    def make_row(self, draw: AttributeDraw, text: str, prompt: str) -> dict[str, Any]:
        row: dict[str, Any] = {"text": text}
        if self.recipe.multi_label:
            order = self.recipe.label_names  # the prompt's order may be shuffled (paper mode); rows keep the recipe's
            row["labels"] = sorted(draw.labels, key=order.index)
        else:
            row["label"] = draw.label
        # A simple (SimPrompt) prompt saw no attribute, so the row must not claim any.
        attributed = self.prompting == "attributed"
        for name in self.recipe.attribute_names:
            row[name] = draw.values[name] if attributed else None
        row["prompt"] = prompt
        return row

    def make_dedup_filter(self) -> DedupStage | None:
        if self.dedup.threshold is None:
            return None
        from attrprompt_builder.generation.dedup_stage import DedupStage

        return DedupStage(
            threshold=self.dedup.threshold,
            embedder=self.dedup.embedder,
            precision=self.dedup.embed_precision,
            drop_cross_class=self.dedup.drop_cross_class_duplicates,
            recipe=self.recipe,
            vectors_path=self.vectors_path,
        )

    def worker_vectors(self) -> ReplyVectors | None:
        """What Ray workers embed for the near-duplicate check (None: no check, or n-grams, cheaper to redo here)."""
        if self.dedup.threshold is None or self.dedup.embedder == "ngram":
            return None
        from attrprompt_builder.generation.cluster import ReplyVectors

        return ReplyVectors(self.dedup.embedder, self.dedup.embed_precision, self.paper_refusals, self.cleans_ascii)

    @property
    def vectors_path(self) -> Path:
        """The build's vector store, beside its journal: each text is embedded once, resumed builds included."""
        from attrprompt_builder.filters.dedup.vectors import store_beside

        return store_beside(self.journal_path)
