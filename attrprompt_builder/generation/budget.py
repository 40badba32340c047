"""What a build may spend, and the one formula that turns tokens into cost.

Prices are per 1,000 tokens, input and output priced apart, as inference providers bill them; both
the running build (its ``max_cost`` cap) and ``attrprompt estimate`` use ``BudgetSpec.cost_of``.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["BudgetSpec"]

TOKENS_PER_PRICE_UNIT = 1000


@dataclass(frozen=True)
class BudgetSpec:
    """Caps that stop a build before the next request (None: no cap), and the token prices."""

    max_requests: int | None = None
    max_tokens: int | None = None
    max_cost: float | None = None
    price_in: float | None = None
    price_out: float | None = None

    @property
    def priced(self) -> bool:
        return self.price_in is not None or self.price_out is not None

    def cost_of(self, prompt_tokens: int, completion_tokens: int) -> float:
        # An unset price counts as free, so pricing only the output (or only the input) works.
        unit = TOKENS_PER_PRICE_UNIT
        return prompt_tokens / unit * (self.price_in or 0.0) + completion_tokens / unit * (self.price_out or 0.0)
