"""``attrprompt estimate``: generate's validation, a time that does not grow with -n, and requests a real build sends."""

from __future__ import annotations

import time

import datasets
import pytest

from attrprompt_builder import cli
from attrprompt_builder.generation.estimate import SAMPLE_DRAWS_PER_CLASS, TOKENS_PER_WORD, estimate
from attrprompt_builder.generation.prompts import PromptRenderer
from attrprompt_builder.generation.sampling import AttributeSampler
from attrprompt_builder.recipe.presets import load_preset


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["-n", "-3"], "error: --samples-per-class: got -3; use a whole number >= 1"),
        (["--price-in", "-1"], "error: --price-in: got -1.0; use a number >= 0"),
        (["--price-out", "-0.5"], "error: --price-out: got -0.5; use a number >= 0"),
        (["--max-new-tokens", "0"], "error: --max-new-tokens: got 0; use a whole number >= 1"),
        (["--seed", "-1"], "error: --seed: got -1; use a whole number >= 0"),
    ],
)
def test_estimate_refuses_what_generate_refuses_with_the_same_line(argv, expected, tmp_path, capsys):
    assert cli.main(["estimate", "agnews", *argv]) == 1
    assert capsys.readouterr().err.strip() == expected
    generate = ["generate", "agnews", "-o", str(tmp_path / "out"), "--endpoint", "http://127.0.0.1:9",
                "--cache-dir", str(tmp_path / "cache")]  # fmt: skip
    assert cli.main([*generate, *argv]) == 1
    assert capsys.readouterr().err.strip() == expected
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--refusal-rate", "1"], "error: --refusal-rate: got 1.0; use an expected share in [0, 1)"),
        (["--refusal-rate", "-0.5", "--duplicate-rate", "0.5"], "error: --refusal-rate: got -0.5; use an expected share"),
        (["--duplicate-rate", "nan"], "error: --duplicate-rate: got nan; use an expected share"),
        (["--refusal-rate", "0.6", "--duplicate-rate", "0.5"], "error: --refusal-rate + --duplicate-rate: got 0.6 + 0.5; "),
    ],
)
def test_rates_outside_zero_to_one_are_one_line(argv, expected, capsys):
    assert cli.main(["estimate", "agnews", *argv]) == 1
    err = capsys.readouterr().err
    assert err.startswith(expected) and err.count("\n") == 1


def test_a_million_rows_take_well_under_a_second_and_a_billion_too(capsys):
    recipe = load_preset("agnews")
    started = time.perf_counter()
    result = estimate(recipe, samples_per_class=1_000_000)
    assert time.perf_counter() - started < 1.0  # was 78 s: every prompt was rendered
    assert result.requests == round(4 * 1_000_000 / 0.96)
    started = time.perf_counter()
    assert cli.main(["estimate", "agnews", "-n", "1000000000", "--price-in", "0.15", "--price-out", "0.6"]) == 0
    assert time.perf_counter() - started < 2.0  # never ended before
    assert "4,166,666,667" in capsys.readouterr().out


def exact_prompt_tokens(preset: str, n: int) -> int:
    """What the build's own prompts add up to, rendered one by one."""
    recipe = load_preset(preset)
    sampler, renderer = AttributeSampler(recipe, seed=0), PromptRenderer(recipe)
    words = sum(len(renderer.render(sampler.draw(label, i)).split()) for label in recipe.label_names for i in range(n))
    return round(words * TOKENS_PER_WORD)


def test_small_builds_are_predicted_from_exactly_their_own_prompts():
    n = SAMPLE_DRAWS_PER_CLASS // 2
    result = estimate(load_preset("agnews"), samples_per_class=n, refusal_rate=0, duplicate_rate=0)
    assert result.prompt_tokens == exact_prompt_tokens("agnews", n)


def test_large_builds_are_predicted_from_a_sample_within_two_percent():
    n = 8 * SAMPLE_DRAWS_PER_CLASS
    result = estimate(load_preset("agnews"), samples_per_class=n, refusal_rate=0, duplicate_rate=0)
    exact = exact_prompt_tokens("agnews", n)
    assert abs(result.prompt_tokens - exact) <= 0.02 * exact


def test_expected_requests_are_rounded_once_not_per_class():
    arxiv = load_preset("arxiv")
    assert len(arxiv.labels) == 98
    assert estimate(arxiv, samples_per_class=2).requests == 204  # 196 / 0.96; per-class rounding up said 294
    assert estimate(arxiv, samples_per_class=2, refusal_rate=0, duplicate_rate=0).requests == 196


def test_the_prediction_matches_the_requests_a_real_build_sends(tgi, tmp_path):
    """arxiv -n 2 against the loopback server (which refuses nothing): 196 requests sent."""
    ds = datasets.load_dataset(
        "attrprompt", "arxiv", endpoint=tgi.url, samples_per_class=2, dedup_threshold=None, split="train",
        cache_dir=str(tmp_path / "cache"),
    )  # fmt: skip
    sent = tgi.count("/v1/chat/completions")
    assert (ds.num_rows, sent) == (196, 196)
    arxiv = load_preset("arxiv")
    assert estimate(arxiv, samples_per_class=2, refusal_rate=0, duplicate_rate=0).requests == sent
    # With the default allowance for drops (2% refusals + 2% duplicates) the prediction may exceed what a
    # build that drops nothing sends by that allowance, 1 / 0.96 - 1 = 4.2%, and by no more.
    assert sent <= estimate(arxiv, samples_per_class=2).requests <= sent / 0.96 + 1
