"""What the card says about the LLM judge of a build: its requests, tokens and cost, and what it decided."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from attrprompt_builder.generation.stats import BuildStats

__all__ = ["judge_summary"]


def judge_summary(stats: BuildStats, *, priced: bool, escape: Callable[[Any], str]) -> dict[str, Any] | None:
    """The judge's part of the card's generation statistics (names through ``escape``, the card's Markdown
    escaping), or None when the build had no judge."""
    if not (stats.judge_sent or stats.judge_reused):
        return None
    return {
        "sent": stats.judge_sent,
        "reused": stats.judge_reused,
        "prompt_tokens": stats.judge_prompt_tokens,
        "completion_tokens": stats.judge_completion_tokens,
        "tokens": stats.judge_tokens,
        "cost": f"{stats.judge_cost:.4f}" if priced else None,
        "response_format": stats.judge_response_format or "(answers from the journal)",
        "mismatches": stats.dropped.get("label_mismatch", 0),
        "unchecked": stats.dropped.get("label_unchecked", 0),
        "flagged": stats.label_flags,
        "adherence": [
            (escape(dimension), answers.get("yes", 0), answers.total(), answers.get("unclear", 0))
            for dimension, answers in sorted(stats.adherence.items())
        ],
    }
