"""Budget caps are hard: a run never spends more than max_tokens / max_cost / max_requests, whatever the
concurrency, because a request goes out only when the worst case of everything in flight still fits.

Spend is what the loopback TGI server reports in each reply's usage, counted by the real client.
"""

from __future__ import annotations

import re

import datasets
import pytest

from attrprompt_builder.client.types import ChatReply, ChatRequest, SamplingParams
from attrprompt_builder.errors import BudgetExceededError
from attrprompt_builder.generation.budget import PROMPT_OVERHEAD, BudgetSpec, Spending
from attrprompt_builder.pipeline import build_dataset, make_builder

NO_DEDUP = {"dedup_threshold": None}
CHAT = "/v1/chat/completions"


def stopped_build(url: str, tmp_path, **kwargs):
    builder = make_builder("agnews", endpoint=url, journal_dir=str(tmp_path), **{**NO_DEDUP, **kwargs})
    with pytest.raises(BudgetExceededError) as caught:
        build_dataset(builder)
    return builder.stats, str(caught.value)


def next_request_worst_case(message: str) -> float:
    return float(re.search(r"the next request could take up to ([\d.e+-]+) more", message).group(1))


def test_max_tokens_is_never_exceeded_at_full_concurrency(tgi, tmp_path):
    stats, message = stopped_build(
        tgi.url, tmp_path, samples_per_class=25, max_tokens=3000, max_new_tokens=64, max_concurrency=16
    )
    assert stats.total_tokens <= 3000
    assert f"spent {stats.total_tokens} of max_tokens 3000" in message and "\n" not in message
    # it stopped because the next request might not fit, not earlier
    assert stats.total_tokens + next_request_worst_case(message) > 3000
    assert tgi.served == stats.sent  # nothing was paid at the server that the run did not count


def test_max_cost_is_never_exceeded_at_full_concurrency(tgi, tmp_path):
    stats, message = stopped_build(
        tgi.url, tmp_path, samples_per_class=25, max_cost=0.5, price_in=0.5, price_out=1.0, max_new_tokens=64,
        max_concurrency=16,
    )  # fmt: skip
    assert 0 < stats.cost <= 0.5
    assert f"spent {stats.cost:.4g} of max_cost 0.5" in message
    assert stats.cost + next_request_worst_case(message) > 0.5
    assert tgi.served == stats.sent


def test_a_cap_below_one_requests_worst_case_sends_nothing(tgi, tmp_path):
    stats, message = stopped_build(tgi.url, tmp_path, samples_per_class=2, max_tokens=500)  # max_new_tokens 512
    assert tgi.count(CHAT) == 0 and stats.sent == 0
    assert "spent 0 of max_tokens 500" in message and "lower max_new_tokens" in message


def test_max_requests_holds_across_num_proc_workers(tgi, tmp_path):
    """Each of two workers may spend its classes' share, so together they stay under the cap."""
    builder = make_builder("sst2", endpoint=tgi.url, samples_per_class=20, max_requests=10, journal_dir=str(tmp_path), **NO_DEDUP)
    # datasets re-raises a worker's error without its cause, so only the wrapper reaches this process
    with pytest.raises((BudgetExceededError, datasets.exceptions.DatasetGenerationError)):
        build_dataset(builder, num_proc=2)
    assert tgi.served == 10


# -- the accounting itself ---------------------------------------------------------------------------
def request(text: str) -> ChatRequest:
    return ChatRequest(messages=({"role": "user", "content": text},), params=SamplingParams(max_new_tokens=100), seed=0)


def test_the_prompt_estimate_is_bytes_plus_overhead_and_learns_a_longer_template():
    spending = Spending(BudgetSpec(max_tokens=10_000))
    hold = spending.worst_case(request("héllo"))  # 6 UTF-8 bytes
    assert (hold.prompt_tokens, hold.tokens) == (6 + PROMPT_OVERHEAD, 6 + PROMPT_OVERHEAD + 100)
    spending.hold(hold)
    spending.settle(hold, ChatReply("x", prompt_tokens=hold.prompt_tokens + 30, completion_tokens=5))
    assert spending.worst_case(request("héllo")).prompt_tokens == hold.prompt_tokens + 30
    assert spending.tokens == hold.prompt_tokens + 35 and not spending.holding


def test_a_reply_without_usage_is_charged_its_worst_case():
    spending = Spending(BudgetSpec(max_tokens=10_000))
    hold = spending.worst_case(request("abc"))
    spending.hold(hold)
    spending.settle(hold, ChatReply("x"))
    assert spending.tokens == hold.tokens


def test_in_flight_worst_cases_count_against_the_cap():
    spending = Spending(BudgetSpec(max_tokens=3 * (3 + PROMPT_OVERHEAD + 100)))
    holds = [spending.worst_case(request("abc")) for _ in range(4)]
    for hold in holds[:3]:
        assert spending.over(hold) is None
        spending.hold(hold)
    assert spending.over(holds[3]) == "max_tokens"
    spending.settle(holds[0], None)  # a request that failed for good costs nothing
    assert spending.over(holds[3]) is None
