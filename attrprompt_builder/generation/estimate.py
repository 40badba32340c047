"""Predict what a build will send and cost, before sending anything, in time that does not grow with the build.

Requests: each reply is kept with probability ``1 - refusal_rate - duplicate_rate``, so a class needs
``samples_per_class / keep_rate`` requests on average (the mean of a negative binomial). The total is
rounded once: rounding each class up would add up to one request per class (``arxiv -n 2``: 294
predicted where 204 are expected). A build that sees replies being dropped also sends a few draws ahead
of a class's need (at most ``SPECULATIVE_DRAWS_PER_CLASS``); those replies are journaled for a later,
larger build and are not in the prediction.

Tokens: the first ``SAMPLE_DRAWS_PER_CLASS`` draws of each class (the exact draws the build makes
first) are rendered; their mean prompt and output size, times the expected requests, gives the totals.
A build of up to that many requests per class is therefore predicted from exactly its own prompts.
Output tokens come from each draw's ``length`` attribute (a request for L to L+50 words averages
L+25 words) or, without one, from ``max_new_tokens``. Words become tokens at 4/3 tokens per word,
the usual ratio for English with BPE tokenizers.

A judge (``verify.judge``): with a label check, each reply that passes screening and the near-duplicate
check is judged once, so a class needs ``samples_per_class / (1 - mismatch_rate)`` label questions, and
as many more generation requests as those redraws take. A question costs its own words plus the
reply it quotes (the mean output above) and ``JUDGE_ANSWER_TOKENS`` of answer (a JSON label or
"yes"; a plain answer from a server that refuses ``response_format`` may run longer). Adherence
questions: ``adherence_sample`` rows (at most the rows kept) times the dimensions the judge is asked
about (an upper bound: a row that drew a catch-all value is not asked about it). Judge questions are
priced like generation requests.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from attrprompt_builder.errors import ConfigError
from attrprompt_builder.generation.budget import BudgetSpec
from attrprompt_builder.generation.prompts import PromptRenderer
from attrprompt_builder.generation.sampling import AttributeDraw, AttributeSampler, class_quotas
from attrprompt_builder.recipe.model import Recipe
from attrprompt_builder.verify.judge import JudgeSpec, adherence_question, label_question

__all__ = ["Estimate", "JUDGE_ANSWER_TOKENS", "SAMPLE_DRAWS_PER_CLASS", "estimate", "format_estimate"]

TOKENS_PER_WORD = 4 / 3
# {"label": "sci_tech"} is about 8 tokens with BPE tokenizers; {"answer": "yes"} fewer.
JUDGE_ANSWER_TOKENS = 8
# Prompts of one class differ by a few dozen words at most, so 256 draws put the mean within about 1%;
# rendering them takes milliseconds, whatever -n is.
SAMPLE_DRAWS_PER_CLASS = 256


@dataclass(frozen=True)
class Estimate:
    rows: int
    requests: int
    prompt_tokens: int
    completion_tokens: int
    cost: float | None
    output_basis: str
    judge_requests: int = 0
    judge_prompt_tokens: int = 0
    judge_completion_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        """Generation and judge tokens together (``cost`` covers both)."""
        return self.prompt_tokens + self.completion_tokens + self.judge_tokens

    @property
    def judge_tokens(self) -> int:
        return self.judge_prompt_tokens + self.judge_completion_tokens


def _check_rates(refusal_rate: float, duplicate_rate: float, mismatch_rate: float) -> None:
    for name, rate in (("refusal_rate", refusal_rate), ("duplicate_rate", duplicate_rate), ("mismatch_rate", mismatch_rate)):
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 <= rate < 1:
            raise ConfigError(f"{name}: got {rate!r}; use an expected share in [0, 1), e.g. 0.02")
    if refusal_rate + duplicate_rate >= 1:
        raise ConfigError(
            f"refusal_rate + duplicate_rate: got {refusal_rate!r} + {duplicate_rate!r}; "
            "use shares that add up to less than 1, e.g. 0.02 each"
        )


def estimate(
    recipe: Recipe,
    *,
    samples_per_class: int,
    seed: int = 0,
    sampling: str = "uniform",
    prompting: str = "attributed",
    paper: bool = False,
    max_new_tokens: int | None = None,
    refusal_rate: float = 0.02,
    duplicate_rate: float = 0.02,
    price_in: float | None = None,
    price_out: float | None = None,
    judge: JudgeSpec | None = None,
    mismatch_rate: float = 0.05,
) -> Estimate:
    """The expected requests, tokens and cost of a build; the options are a build's (``AttrPromptConfig``
    checks them; ``attrprompt estimate`` does so with ``check_options``). ``judge``: the build's judge, if any;
    ``mismatch_rate``: the expected share of judged replies about another class."""
    _check_rates(refusal_rate, duplicate_rate, mismatch_rate)
    if paper and recipe.paper is None:
        raise ConfigError(f"fidelity: got 'paper'; recipe {recipe.name!r} has no `paper:` section (use a preset)")
    judge = judge or JudgeSpec()
    sampler = AttributeSampler(recipe, seed=seed, strategy=sampling, paper=paper, prompting=prompting)
    renderer = PromptRenderer(recipe, prompting=prompting, paper=paper)
    default_max_new = recipe.paper.max_new_tokens[prompting] if paper and recipe.paper else recipe.generation.max_new_tokens
    max_new = max_new_tokens or default_max_new
    quotas = class_quotas(recipe, samples_per_class, paper=paper, prompting=prompting)
    uses_length = "length" in recipe.attribute_names and prompting == "attributed"

    def output_tokens(draw: AttributeDraw) -> float:
        length = re.match(r"\d+", draw.values.get("length", "")) if uses_length else None
        return min(max_new, (int(length.group()) + 25) * TOKENS_PER_WORD) if length else max_new

    keep_share = 1.0 - refusal_rate - (0.0 if paper else duplicate_rate)  # paper mode has no dedup
    rows = sum(quotas.values())
    requests = judged = 0.0
    prompt_words = completion_tokens = reply_tokens = 0.0
    for label, quota in quotas.items():
        if not quota:
            continue
        judged_per_class = quota / (1.0 - mismatch_rate) if judge.label_check else 0.0
        requests_per_class = (judged_per_class or quota) / keep_share
        requests += requests_per_class
        judged += judged_per_class
        sampled = max(1, min(SAMPLE_DRAWS_PER_CLASS, math.ceil(requests_per_class)))
        draws = [sampler.draw(label, index) for index in range(sampled)]
        prompt_words += sum(len(renderer.render(draw).split()) for draw in draws) / sampled * requests_per_class
        completion_tokens += sum(output_tokens(draw) for draw in draws) / sampled * requests_per_class
        reply_tokens += sum(output_tokens(draw) for draw in draws) / sampled * quota / rows  # per kept row
    prompt_tokens = round(prompt_words * TOKENS_PER_WORD)
    questions = _judge_questions(recipe, judge, judged, rows=rows, prompting=prompting)
    judge_prompt = round(sum(count * (words * TOKENS_PER_WORD + reply_tokens) for count, words in questions))
    judge_requests = round(sum(count for count, _ in questions))
    prices = BudgetSpec(price_in=price_in, price_out=price_out)
    cost = None
    if prices.priced:
        cost = prices.cost_of(prompt_tokens, round(completion_tokens))
        cost += prices.cost_of(judge_prompt, judge_requests * JUDGE_ANSWER_TOKENS)
    basis = "length attribute (L..L+50 words)" if uses_length else f"max_new_tokens={max_new} (upper bound)"
    return Estimate(
        rows=rows,
        requests=round(requests),
        prompt_tokens=prompt_tokens,
        completion_tokens=round(completion_tokens),
        cost=cost,
        output_basis=basis,
        judge_requests=judge_requests,
        judge_prompt_tokens=judge_prompt,
        judge_completion_tokens=judge_requests * JUDGE_ANSWER_TOKENS,
    )


def _judge_questions(recipe: Recipe, judge: JudgeSpec, judged: float, *, rows: int, prompting: str) -> list[tuple[float, int]]:
    """(expected questions, words of the question without the text it quotes), per kind of question."""
    questions: list[tuple[float, int]] = []
    if judge.label_check:
        words = len(label_question(recipe, "")[0][-1]["content"].split())
        questions.append((judged, words))
    asked = min(judge.adherence_sample, rows)
    for dimension in judge.dimensions(recipe, prompting=prompting) if asked else ():
        messages = adherence_question(recipe, "", dimension=dimension, value="")[0]
        questions.append((float(asked), len(messages[-1]["content"].split())))
    return questions


def format_estimate(result: Estimate) -> str:
    counts = {
        "rows to keep": result.rows,
        "requests (expected)": result.requests,
        "prompt tokens": result.prompt_tokens,
        "output tokens": result.completion_tokens,
    }
    if result.judge_requests:
        counts.update({"judge requests": result.judge_requests, "judge tokens": result.judge_tokens})
    counts["total tokens"] = result.total_tokens
    width = max(12, *(len(f"{count:,}") for count in counts.values()))
    lines = [f"{name:<20}{count:>{width},}" for name, count in counts.items()]
    lines[3] += f"   from {result.output_basis}"
    if result.cost is not None:
        lines.append(f"{'cost':<20}{result.cost:>{width},.4f}   at the given prices per 1k tokens")
    else:
        lines.append(f"{'cost':<20}(pass --price-in/--price-out per 1k tokens)")
    return "\n".join(lines)
