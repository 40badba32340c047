"""Predict what a build will send and cost, before sending anything.

Prompt tokens come from the real prompts (rendered for the exact draws the build will make);
output tokens from each draw's ``length`` attribute (a request for L to L+50 words averages
L+25 words) or, without one, from ``max_new_tokens``. Words become tokens at 4/3 tokens per word,
the usual ratio for English with BPE tokenizers; pass a tokenizer for exact prompt counts.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from attrprompt_builder.errors import ConfigError
from attrprompt_builder.generation.budget import BudgetSpec
from attrprompt_builder.generation.prompts import PromptRenderer
from attrprompt_builder.generation.sampling import AttributeSampler
from attrprompt_builder.recipe.model import Recipe

__all__ = ["Estimate", "estimate", "format_estimate"]

TOKENS_PER_WORD = 4 / 3


@dataclass(frozen=True)
class Estimate:
    rows: int
    requests: int
    prompt_tokens: int
    completion_tokens: int
    cost: float | None
    output_basis: str

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


def _words(text: str) -> int:
    return len(text.split())


def estimate(
    recipe: Recipe,
    *,
    samples_per_class: int,
    seed: int = 0,
    sampling: str = "uniform",
    prompting: str = "attributed",
    max_new_tokens: int | None = None,
    refusal_rate: float = 0.02,
    duplicate_rate: float = 0.02,
    price_in: float | None = None,
    price_out: float | None = None,
) -> Estimate:
    if not 0 <= refusal_rate + duplicate_rate < 1:
        raise ConfigError(
            f"refusal_rate + duplicate_rate: got {refusal_rate!r} + {duplicate_rate!r}; "
            "use shares that add up to less than 1, e.g. 0.02 each"
        )
    sampler = AttributeSampler(recipe, seed=seed, strategy=sampling)
    renderer = PromptRenderer(recipe, prompting=prompting)
    max_new = max_new_tokens or recipe.generation.max_new_tokens
    keep_rate = 1.0 - refusal_rate - duplicate_rate
    per_class = math.ceil(samples_per_class / keep_rate)
    prompt_words = 0
    output_tokens = 0.0
    uses_length = "length" in recipe.attribute_names and prompting == "attributed"
    for label in recipe.label_names:
        for index in range(per_class):
            draw = sampler.draw(label, index)
            prompt_words += _words(renderer.render(draw))
            length = re.match(r"\d+", draw.values.get("length", "")) if uses_length else None
            if length:
                output_tokens += min(max_new, (int(length.group()) + 25) * TOKENS_PER_WORD)
            else:
                output_tokens += max_new
    requests = per_class * len(recipe.labels)
    prompt_tokens = round(prompt_words * TOKENS_PER_WORD)
    completion_tokens = round(output_tokens)
    prices = BudgetSpec(price_in=price_in, price_out=price_out)
    cost = prices.cost_of(prompt_tokens, completion_tokens) if prices.priced else None
    basis = "length attribute (L..L+50 words)" if uses_length else f"max_new_tokens={max_new} (upper bound)"
    return Estimate(samples_per_class * len(recipe.labels), requests, prompt_tokens, completion_tokens, cost, basis)


def format_estimate(result: Estimate) -> str:
    lines = [
        f"rows to keep        {result.rows:>12,}",
        f"requests (expected) {result.requests:>12,}",
        f"prompt tokens       {result.prompt_tokens:>12,}",
        f"output tokens       {result.completion_tokens:>12,}   from {result.output_basis}",
        f"total tokens        {result.total_tokens:>12,}",
    ]
    if result.cost is not None:
        lines.append(f"cost                {result.cost:>12,.4f}")
    else:
        lines.append("cost                (pass --price-in/--price-out per 1k tokens)")
    return "\n".join(lines)
