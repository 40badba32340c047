"""What a build may spend, the one formula that turns tokens into cost, and the hard caps of a run.

Prices are per 1,000 tokens, input and output priced apart, as inference providers bill them; both
the running build (its ``max_cost`` cap) and ``attrprompt estimate`` use ``BudgetSpec.cost_of``.

A cap is hard: ``Spending`` lets a request out only if what the run has paid plus the worst case of
every request still out, this one included, fits every cap; a judge's questions count like generation
requests. A request's worst case is its prompt tokens plus its own ``max_new_tokens`` (a judge's question
asks for few). Prompt tokens are not known before the reply says so, so they are over-estimated: one
token per UTF-8 byte of the messages (a tokenizer's token covers at least one byte of text) plus
``PROMPT_OVERHEAD`` for the chat template. A reply that reports more prompt
tokens than that raises the overhead for the rest of the run, and a reply without usage is charged
its worst case.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from attrprompt_builder.client.types import ChatReply, ChatRequest

__all__ = ["BudgetSpec", "Hold", "PROMPT_OVERHEAD", "Spending"]

TOKENS_PER_PRICE_UNIT = 1000
# Tokens a chat template adds around the messages (role headers, a default system prompt).
PROMPT_OVERHEAD = 64


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

    @property
    def capped(self) -> bool:
        return self.max_requests is not None or self.max_tokens is not None or self.max_cost is not None

    def cost_of(self, prompt_tokens: int, completion_tokens: int) -> float:
        # An unset price counts as free, so pricing only the output (or only the input) works.
        unit = TOKENS_PER_PRICE_UNIT
        return prompt_tokens / unit * (self.price_in or 0.0) + completion_tokens / unit * (self.price_out or 0.0)

    def share(self, fraction: float) -> BudgetSpec:
        """The part of each cap one of several ``num_proc`` workers may spend: the parts add up to at most the cap."""
        if fraction >= 1:
            return self
        return replace(
            self,
            max_requests=None if self.max_requests is None else math.floor(self.max_requests * fraction),
            max_tokens=None if self.max_tokens is None else math.floor(self.max_tokens * fraction),
            max_cost=None if self.max_cost is None else self.max_cost * fraction,
        )


@dataclass(frozen=True)
class Hold:
    """What one request let out may cost at most."""

    prompt_tokens: int
    tokens: int
    cost: float

    @property
    def completion_tokens(self) -> int:
        return self.tokens - self.prompt_tokens


class Spending:
    """Paid so far and held for requests in flight, against the caps of ``spec``."""

    def __init__(self, spec: BudgetSpec, *, whole: BudgetSpec | None = None) -> None:
        self.spec = spec
        self.whole = whole or spec  # the caps the user gave, when ``spec`` is one worker's share of them
        self.requests = 0
        self.tokens = 0
        self.cost = 0.0
        self._held_requests = 0
        self._held_tokens = 0
        self._held_cost = 0.0
        self._overhead = PROMPT_OVERHEAD

    def worst_case(self, request: ChatRequest) -> Hold:
        prompt = sum(len(message["content"].encode()) for message in request.messages) + self._overhead
        completion = request.params.max_new_tokens
        return Hold(prompt, prompt + completion, self.spec.cost_of(prompt, completion))

    def over(self, hold: Hold) -> str | None:
        """The cap that ``hold`` on top of what is paid and held would exceed (its option name), or None."""
        s = self.spec
        if s.max_requests is not None and self.requests + self._held_requests + 1 > s.max_requests:
            return "max_requests"
        if s.max_tokens is not None and self.tokens + self._held_tokens + hold.tokens > s.max_tokens:
            return "max_tokens"
        if s.max_cost is not None and self.cost + self._held_cost + hold.cost > s.max_cost:
            return "max_cost"
        return None

    @property
    def holding(self) -> bool:
        return self._held_requests > 0

    def hold(self, hold: Hold) -> None:
        self._held_requests += 1
        self._held_tokens += hold.tokens
        self._held_cost += hold.cost

    def settle(self, hold: Hold, reply: ChatReply | None) -> None:
        """The request is over: release its hold and charge its reply (nothing when every attempt failed)."""
        self._held_requests -= 1
        self._held_tokens -= hold.tokens
        self._held_cost -= hold.cost
        if reply is None:
            return
        prompt, completion = reply.prompt_tokens, reply.completion_tokens
        if not prompt and not completion:  # the server reports no usage: charge the worst case
            prompt, completion = hold.prompt_tokens, hold.completion_tokens
        # A template longer than assumed: later estimates cover it.
        self._overhead += max(0, prompt - hold.prompt_tokens)
        self.requests += 1
        self.tokens += prompt + completion
        self.cost += self.spec.cost_of(prompt, completion)

    def stop_line(self, cap: str, hold: Hold) -> str:
        """How close the run came to ``cap``, e.g. ``spent 0.48 of max_cost 0.5 (the next request could cost 0.03)``."""
        spent, limit, worst = {
            "max_requests": (self.requests, self.spec.max_requests, 1),
            "max_tokens": (self.tokens, self.spec.max_tokens, hold.tokens),
            "max_cost": (self.cost, self.spec.max_cost, hold.cost),
        }[cap]
        line = f"spent {spent:.4g} of {cap} {limit:.4g}"
        if self.spec is not self.whole:
            line += f" (this worker's share of {cap}={getattr(self.whole, cap):.4g})"
        line += f"; {self.requests} replies paid, {self.tokens} tokens" + (f", cost {self.cost:.4g}" if self.spec.priced else "")
        if cap != "max_requests":
            line += f"; the next request could take up to {worst:.4g} more"
        return line
