"""Each build option is declared once, as an ``AttrPromptConfig`` field; the CLI flags and the build plan derive from it."""

from __future__ import annotations

import argparse
import pickle
from dataclasses import fields
from pathlib import Path

import datasets
import pytest

from attrprompt_builder import cli
from attrprompt_builder.client.backends import BackendSpec
from attrprompt_builder.dataset.config import AttrPromptConfig, option_fields
from attrprompt_builder.errors import ConfigError
from attrprompt_builder.generation.budget import BudgetSpec
from attrprompt_builder.generation.estimate import estimate
from attrprompt_builder.generation.plan import RetrySpec
from attrprompt_builder.recipe.presets import load_preset
from attrprompt_builder.version import __version__

BUILDER_CONFIG_FIELDS = {f.name for f in fields(datasets.BuilderConfig)}
# The subcommands whose arguments cli.py declares (discover and compare declare their own).
CLI_COMMANDS = ("generate", "presets", "show", "estimate", "card", "push", "train", "reproduce")


def subcommand(name: str) -> argparse.ArgumentParser:
    parser = cli.build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return commands.choices[name]


def spellings(action: argparse.Action) -> list[str]:
    return action.option_strings or [action.dest]  # a positional is spelled by its name


def test_every_config_field_is_declared_as_an_option_with_a_generate_flag():
    generate = {flag for action in subcommand("generate")._actions for flag in spellings(action)}
    for declared in fields(AttrPromptConfig):
        if declared.name in BUILDER_CONFIG_FIELDS:
            continue
        option = declared.metadata.get("option")
        assert option is not None, f"{declared.name}: declare it with _option(default, help, ...) in dataset/config.py"
        assert option.help.strip(), f"{declared.name}: no help text"
        assert option.spelling(declared.name)[0] in generate, f"{declared.name}: no flag of `attrprompt generate`"


@pytest.mark.parametrize("command", ["generate", "show", "estimate", "reproduce"])
def test_every_flag_is_a_config_field_or_listed_in_other_flags(command):
    options = cli.command_options(command)
    from_config = {flag for f in options for flag in f.metadata["option"].spelling(f.name)}
    other = {flag for flags, _ in cli.OTHER_FLAGS.get(command, ()) for flag in flags}
    assert not from_config & other, "a flag declared both as a config field and in OTHER_FLAGS"
    for action in subcommand(command)._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        for flag in spellings(action):
            assert flag in from_config | other, f"{command} {flag}: declare it as a config field or in cli.OTHER_FLAGS"


@pytest.mark.parametrize("command", CLI_COMMANDS)
def test_every_flag_has_help(command):
    for action in subcommand(command)._actions:
        assert action.help, f"{command} {spellings(action)[0]}: no help text"


def test_show_and_estimate_share_the_prompt_options_of_generate():
    shared = ["--samples-per-class", "-n", "--seed", "--sampling", "--prompting", "--max-new-tokens", "preset_or_recipe"]
    for command in ("show", "estimate"):
        flags = {flag for action in subcommand(command)._actions for flag in spellings(action)}
        assert set(shared) <= flags
    estimate_flags = {flag for action in subcommand("estimate")._actions for flag in spellings(action)}
    assert {"--price-in", "--price-out", "--refusal-rate", "--duplicate-rate"} <= estimate_flags


def test_generate_flags_become_config_keywords():
    argv = ["generate", "agnews", "-o", "X", "--max-attempts", "3", "--dedup-threshold", "off",
            "--endpoint", "A", "--endpoint", "B", "-n", "7", "--drop-cross-class-duplicates"]  # fmt: skip
    args = cli.build_parser().parse_args(argv)
    kwargs = cli.config_kwargs(args)
    assert (args.preset_or_recipe, args.output) == ("agnews", "X")
    assert kwargs.pop("max_attempts") == 3
    assert kwargs.pop("dedup_threshold") == "off"
    assert kwargs.pop("endpoint") == ["A", "B"]
    assert kwargs.pop("samples_per_class") == 7
    assert kwargs.pop("drop_cross_class_duplicates") is True
    # the recipe argument goes to make_builder; every other option arrives with its field's default
    defaults = {f.name: f.default for f in option_fields() if f.name not in ("preset", "config")}
    assert kwargs == {name: value for name, value in defaults.items() if name in kwargs}
    assert set(kwargs) == set(defaults) - {"max_attempts", "dedup_threshold", "endpoint", "samples_per_class",
                                           "drop_cross_class_duplicates"}  # fmt: skip


def test_reproduce_forwards_every_build_option_of_generate_but_prompting():
    """Derived, not listed: an option added for generate (paper mode) reaches both of reproduce's builds."""
    generate = {f.name for f in cli.command_options("generate")}
    assert {f.name for f in cli.command_options("reproduce")} == generate - {"prompting"}
    argv = ["reproduce", "agnews", "--gold", "g", "-o", "X", "--max-requests", "40", "--dedup-threshold", "off",
            "--endpoint", "A", "-n", "7", "--ascii-squeeze"]  # fmt: skip
    kwargs = cli.config_kwargs(cli.build_parser().parse_args(argv), command="reproduce")
    assert set(kwargs) == generate - {"prompting", "preset", "config"}
    assert (kwargs["max_requests"], kwargs["dedup_threshold"], kwargs["endpoint"]) == (40, "off", ["A"])
    assert (kwargs["samples_per_class"], kwargs["ascii_squeeze"]) == (7, True)


@pytest.mark.parametrize(("text", "value"), [("0.9", 0.9), ("auto", "auto"), ("off", "off")])
def test_dedup_threshold_flag_takes_a_number_or_a_word(text, value):
    args = cli.build_parser().parse_args(["generate", "agnews", "-o", "X", "--dedup-threshold", text])
    assert cli.config_kwargs(args)["dedup_threshold"] == value


def test_parsed_flags_make_a_valid_config():
    argv = ["generate", "agnews", "-o", "X", "--endpoint", "http://a:1", "--endpoint", "http://b:1",
            "--max-draws-per-class", "9", "--request-timeout", "12.5", "--max-errors", "4"]  # fmt: skip
    config = AttrPromptConfig(name="agnews", **cli.config_kwargs(cli.build_parser().parse_args(argv)))
    plan = config.plan(run_id="r", journal_path="j.sqlite")
    assert plan.backend.endpoints == ("http://a:1", "http://b:1") and plan.backend.request_timeout == 12.5
    assert (plan.max_draws("world"), plan.max_errors) == (9, 4)


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--max-attempts", "0"], "error: --max-attempts: got 0; use a whole number between 1 and 100"),
        (["--dedup-threshold", "most"], "error: --dedup-threshold: got 'most'; use a number in (0, 1], 'auto' or 'off'"),
        (["--request-timeout", "-1"], "error: --request-timeout: got -1.0; use a number >= 0"),
    ],
)
def test_a_bad_flag_value_is_one_line_in_cli_words(argv, expected, tmp_path, capsys):
    base = ["generate", "agnews", "-o", str(tmp_path / "out"), "--endpoint", "http://127.0.0.1:9",
            "--cache-dir", str(tmp_path / "cache")]  # fmt: skip
    assert cli.main([*base, *argv]) == 1
    assert capsys.readouterr().err.strip() == expected


def test_estimate_rates_that_leave_nothing_are_one_line(capsys):
    assert cli.main(["estimate", "agnews", "--refusal-rate", "0.6", "--duplicate-rate", "0.5"]) == 1
    assert capsys.readouterr().err.startswith("error: --refusal-rate + --duplicate-rate: got 0.6 + 0.5; ")


def test_version(capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.strip() == f"attrprompt {__version__}"


# -- the plan is built from the config in one place ----------------------------------------------
def test_plan_groups_options_and_pickles():
    config = AttrPromptConfig(
        name="agnews", endpoint="http://x", samples_per_class=4, max_requests=5, max_cost=2.0, price_in=1.0,
        max_attempts=3, dedup_threshold=None, drop_cross_class_duplicates=True,
    )  # fmt: skip
    plan = config.plan(run_id="r", journal_path=Path("j.sqlite"))
    assert plan.budget == BudgetSpec(max_requests=5, max_cost=2.0, price_in=1.0)
    assert plan.retry == RetrySpec(max_attempts=3)
    assert plan.retry_policy.max_attempts == 3
    assert (plan.max_errors, plan.max_draws("world")) == (100, 3 * 4 + 20)  # defaults that scale with the build
    assert plan.dedup.threshold is None and not plan.decides_classes_in_order and plan.make_dedup_filter() is None
    assert (plan.max_requests, plan.max_cost, plan.priced) == (5, 2.0, True)
    assert plan.journal_path == "j.sqlite"
    assert pickle.loads(pickle.dumps(plan)) == plan


@pytest.mark.parametrize("spec", [BudgetSpec, RetrySpec])
def test_spec_fields_are_config_fields(spec):
    """The plan fills these specs by field name, so a field here must be a config option of the same name."""
    assert {f.name for f in fields(spec)} <= {f.name for f in option_fields()}


def test_one_cost_formula_for_builds_and_estimates():
    recipe = load_preset("agnews")
    result = estimate(recipe, samples_per_class=3, price_in=0.5, price_out=1.5)
    budget = BudgetSpec(price_in=0.5, price_out=1.5)
    assert result.cost == budget.cost_of(result.prompt_tokens, result.completion_tokens)
    assert estimate(recipe, samples_per_class=3).cost is None


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"backend": "providers"}, "model: got None; pass model= (a Hub model id)"),
        ({"endpoint": "localhost:1"}, "endpoint: got 'localhost:1'; use a base URL"),
        ({"endpoint": "http://x:1 "}, "endpoint: got 'http://x:1 '; use a base URL"),  # refused like ' http://x:1'
        ({"endpoint": "http://x", "backend": "providers", "model": "m"}, "backend='providers' does not use an endpoint"),
        ({"backend": "cloud"}, "backend: got 'cloud'; use one of auto, endpoint, providers, transformers"),
    ],
)
def test_config_and_discovery_resolve_backends_alike(kwargs, message):
    with pytest.raises(ConfigError) as direct:
        BackendSpec.resolve(**kwargs)
    with pytest.raises(ConfigError) as via_config:
        AttrPromptConfig(**kwargs)
    assert message in str(direct.value) and str(direct.value) == str(via_config.value)


def test_generate_journal_path_is_unchanged(tmp_path):
    builder = datasets.load_dataset_builder("attrprompt", "agnews", endpoint="http://x", cache_dir=str(tmp_path))
    assert builder.journal_path == tmp_path / "attrprompt_journal" / "journal.sqlite"  # one for every recipe
    moved = datasets.load_dataset_builder("attrprompt", "agnews", endpoint="http://x", journal_dir=str(tmp_path / "j"))
    assert moved.journal_path.parent == tmp_path / "j"


def test_readme_options_table_names_every_option():
    """README's table is documentation of the fields above; it must not fall behind them."""
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Options", 1)[1].split("\n## ", 1)[0]
    missing = [f.name for f in option_fields() if f"`{f.name}`" not in section]
    assert not missing, f"README.md's Options table does not mention {missing}"
