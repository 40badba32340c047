"""Every command and flag of 0.1.0 still exists: the CLI is derived from the config now, and must not lose any."""

from __future__ import annotations

import argparse

import pytest

from attrprompt_builder import cli

SHARED = {"preset_or_recipe", "--samples-per-class", "-n", "--seed", "--sampling", "--prompting", "--max-new-tokens"}
# Read off cli.py of release 0.1.0 (commit fc93036).
FLAGS_0_1_0 = {
    "generate": SHARED
    | {
        "--endpoint", "--model", "--backend", "--provider", "--token", "--output", "-o", "--max-concurrency",
        "--temperature", "--top-p", "--dedup-threshold", "--embedder", "--drop-cross-class-duplicates",
        "--ascii-squeeze", "--max-requests", "--max-tokens", "--max-cost", "--price-in", "--price-out",
        "--journal-dir", "--cache-dir", "--num-proc", "--batch-size", "--license",
    },
    "presets": set(),
    "show": SHARED | {"-k", "--count", "--label"},
    "estimate": SHARED | {"--price-in", "--price-out", "--refusal-rate", "--duplicate-rate"},
    "card": {"folder", "--embedder"},
    "push": {"folder", "repo_id", "--private", "--token", "--revision", "--message"},
    "train": {"folder", "--model", "--eval", "--epochs", "--output"},
    "discover": {
        "--labels", "--domain", "--endpoint", "--model", "--backend", "--provider", "--token", "--output", "-o",
        "--max-concurrency", "--journal-dir", "--seed", "--name", "--force", "--max-dimensions",
        "--values-per-dimension", "--similar-per-class", "--max-filtered-per-class",
    },
    "compare": {"folders", "--embedder", "--plot", "--terms"},
}  # fmt: skip


def subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = cli.build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


@pytest.mark.parametrize("command", sorted(FLAGS_0_1_0))
def test_every_0_1_0_flag_still_exists(command):
    parsers = subcommands()
    assert command in parsers, f"subcommand {command!r} disappeared"
    present = {flag for action in parsers[command]._actions for flag in (action.option_strings or [action.dest])}
    assert FLAGS_0_1_0[command] <= present, f"{command}: lost {sorted(FLAGS_0_1_0[command] - present)}"
