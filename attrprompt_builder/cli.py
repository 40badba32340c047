"""The ``attrprompt`` command line.

Every user mistake and every expected failure ends as one ``error: ...`` line on stderr and a
non-zero exit status, never a traceback (``ATTRPROMPT_DEBUG=1`` shows it).
"""

from __future__ import annotations

import argparse
import os
import sys
import typing
from collections.abc import Sequence
from dataclasses import Field
from pathlib import Path
from typing import Any

from attrprompt_builder.cli_words import in_cli_words
from attrprompt_builder.dataset.config import check_options, field_types, option_fields
from attrprompt_builder.dataset.options import Option
from attrprompt_builder.errors import AttrPromptError, ConfigError, RecipeError
from attrprompt_builder.reproduce.command import REPRODUCE_FLAGS
from attrprompt_builder.version import __version__

__all__ = ["OTHER_FLAGS", "build_parser", "command_options", "config_kwargs", "main"]


_Flag = tuple[tuple[str, ...], dict[str, Any]]  # add_argument's flags and keywords

# How a build runs, for both commands that build.
_RUN_FLAGS: tuple[_Flag, ...] = (
    (("--token",), {"help": "token for the endpoint (sent only when given)"}),
    (("--cache-dir",), {"help": "datasets cache folder"}),
    (("--num-proc",), {"type": int, "help": "worker processes of the build (datasets' num_proc)"}),
)
_OVERWRITE = "write into a non-empty folder that attrprompt did not write"

# `--paper` is shorthand for `--fidelity paper` (the config field `fidelity` declares the option).
_PAPER: _Flag = (
    ("--paper",),
    {
        "action": "store_const",
        "dest": "fidelity",
        "const": "paper",
        "default": argparse.SUPPRESS,
        "help": "shorthand for --fidelity paper: the AttrPrompt paper's code exactly",
    },
)


# Flags that are not build options (those come from AttrPromptConfig's fields): where the output
# goes, how the build runs, and what `show` and `estimate` print. tests/test_options.py fails on a
# flag that is in neither place.
OTHER_FLAGS: dict[str, tuple[_Flag, ...]] = {
    "generate": (
        _RUN_FLAGS[0],
        (("--output", "-o"), {"required": True, "help": "folder to write (data/*.parquet, README.md, recipe.yaml)"}),
        (("--overwrite",), {"action": "store_true", "help": _OVERWRITE}),
        *_RUN_FLAGS[1:],
        _PAPER,
    ),
    "show": (
        (("-k", "--count"), {"dest": "count", "type": int, "default": 5, "help": "how many prompts (default 5)"}),
        (("--label",), {"help": "only this class"}),
        _PAPER,
    ),
    "estimate": (
        (("--refusal-rate",), {"type": float, "default": 0.02, "help": "expected share of refused replies (default 0.02)"}),
        (("--duplicate-rate",), {"type": float, "default": 0.02, "help": "expected share of near-duplicates (default 0.02)"}),
        (
            ("--mismatch-rate",),
            {"type": float, "default": 0.05, "help": "expected share of judged replies about another class (default 0.05)"},
        ),
        _PAPER,
    ),
    "reproduce": (*REPRODUCE_FLAGS, (("--overwrite",), {"action": "store_true", "help": _OVERWRITE}), *_RUN_FLAGS, _PAPER),
}

# Build options reproduce sets itself: it generates with both prompting modes.
_REPRODUCE_SETS = frozenset({"prompting"})


def command_options(command: str) -> tuple[Field, ...]:
    """The config fields ``command`` takes as flags; ``reproduce`` takes generate's, but those it sets itself."""
    if command == "reproduce":
        return tuple(f for f in command_options("generate") if f.name not in _REPRODUCE_SETS)
    return tuple(f for f in option_fields() if command in f.metadata["option"].commands)


def _is_positional(flags: tuple[str, ...]) -> bool:
    return not flags[0].startswith("-")


def _argument(declared: Field, option: Option) -> dict[str, Any]:
    """argparse keywords for a config field: the type from its annotation, the default from the field."""
    text = option.help.replace("%", "%%")
    if _is_positional(option.spelling(declared.name)):
        return {"help": text}
    default = declared.default
    if default is not None and default is not False:
        text += f" (default: {default})"
    kwargs: dict[str, Any] = {"dest": declared.name, "default": default, "help": text}
    if option.choices is not None:
        kwargs["choices"] = option.choices
    if option.metavar is not None:
        kwargs["metavar"] = option.metavar
    types = field_types(declared.name)
    if option.const is not None:  # the flag alone means ``const``; with a value, that value
        kwargs.update(nargs="?", const=option.const, type=str)
    elif bool in types:
        kwargs["action"] = argparse.BooleanOptionalAction if default else "store_true"
    elif any(typing.get_origin(t) is list for t in types):
        kwargs["action"] = "append"  # repeat the flag for several values
    elif option.parse is None:  # else the text is parsed later, into a one-line error naming the flag
        kwargs["type"] = next(t for t in (int, float, str) if t in types)
    return kwargs


def _add_options(parser: argparse.ArgumentParser, command: str) -> None:
    """``command``'s flags: the config fields it shows, then its entries in ``OTHER_FLAGS``."""
    added: set[tuple[str, ...]] = set()
    actions: list[argparse.Action] = []
    for declared in command_options(command):
        option = declared.metadata["option"]
        flags = option.spelling(declared.name)
        if flags not in added:  # preset and config share one argument
            added.add(flags)
            actions.append(parser.add_argument(*flags, **_argument(declared, option)))
    for flags, kwargs in OTHER_FLAGS.get(command, ()):
        actions.append(parser.add_argument(*flags, **kwargs))


def config_kwargs(args: argparse.Namespace, *, command: str = "generate") -> dict[str, Any]:
    """The build options of parsed ``command`` arguments, as ``load_dataset`` keywords.

    The recipe argument is left out: ``make_builder`` decides whether it is a preset or a file.
    """
    kwargs: dict[str, Any] = {}
    for declared in command_options(command):
        option = declared.metadata["option"]
        if _is_positional(option.spelling(declared.name)):
            continue
        value = getattr(args, declared.name)
        kwargs[declared.name] = option.parse(value) if option.parse is not None and isinstance(value, str) else value
    return kwargs


def _cmd_generate(args: argparse.Namespace) -> int:
    from attrprompt_builder.pipeline import generate_folder

    folder = generate_folder(
        args.preset_or_recipe,
        args.output,
        num_proc=args.num_proc,
        cache_dir=args.cache_dir,
        token=args.token,
        overwrite=args.overwrite,
        **config_kwargs(args),
    )
    summary = _build_summary(folder) if isinstance(folder, Path) else ""  # an uploaded folder is not read back
    print(f"wrote {folder}{summary} (load it with datasets.load_dataset({str(folder)!r}))")
    return 0


def _build_summary(folder: Path) -> str:
    """What the build did, as its progress bar showed it (the bar clears its line when done)."""
    from attrprompt_builder.dataset.folder import read_generation

    stats = read_generation(folder, field="output").stats
    if stats is None:
        return ""
    summary = (
        f": {stats.kept} rows kept; {stats.sent} replies received, {stats.reused} reused from the journal, "
        f"{stats.total_tokens} tokens"
    )
    if stats.judge_sent or stats.judge_reused:
        mismatched = stats.dropped.get("label_mismatch", 0) + stats.label_flags
        summary += (
            f"; judge: {stats.judge_sent} answers received, {stats.judge_reused} reused, {stats.judge_tokens} tokens, "
            f"{mismatched} rows about another class"
        )
    return summary


def _cmd_presets(args: argparse.Namespace) -> int:
    from attrprompt_builder.recipe.presets import PRESET_NAMES, load_preset

    print(f"{'preset':<15}{'classes':>8}{'dimensions':>12}  kind         domain")
    for name in PRESET_NAMES:
        recipe = load_preset(name)
        kind = "multi-label" if recipe.multi_label else "multi-class"
        print(f"{name:<15}{len(recipe.labels):>8}{len(recipe.attributes):>12}  {kind:<12} {recipe.domain}")
    return 0


def _load(preset_or_recipe: str):
    from attrprompt_builder.recipe.model import load_recipe
    from attrprompt_builder.recipe.presets import is_preset, load_preset

    return load_preset(preset_or_recipe) if is_preset(preset_or_recipe) else load_recipe(Path(preset_or_recipe))


def _cmd_show(args: argparse.Namespace) -> int:
    from attrprompt_builder.generation.prompts import PromptRenderer
    from attrprompt_builder.generation.sampling import AttributeSampler, class_quotas

    if args.count < 1:
        raise ConfigError(f"count: got {args.count}; use a whole number >= 1")
    recipe = _load(args.preset_or_recipe)
    labels = [args.label] if args.label else recipe.label_names
    unknown = [label for label in labels if label not in recipe.label_names]
    if unknown:
        raise AttrPromptError(f"--label: got {unknown[0]!r}; use one of {', '.join(recipe.label_names)}")
    paper = args.fidelity == "paper"
    if paper and recipe.paper is None:
        raise ConfigError(f"fidelity: got 'paper'; recipe {recipe.name!r} has no `paper:` section (use a preset)")
    quotas = class_quotas(recipe, 1, paper=paper, prompting=args.prompting)
    if not any(quotas[label] for label in labels):
        raise ConfigError(
            f"--label: {labels[0]!r} draws nothing in paper mode: each subtopic is drawn by its first label; pick another"
        )
    labels = [label for label in labels if quotas[label]]  # paper arxiv: the classes that own subtopics
    sampler = AttributeSampler(recipe, seed=args.seed, strategy=args.sampling, paper=paper, prompting=args.prompting)
    renderer = PromptRenderer(recipe, prompting=args.prompting, paper=paper)
    for k in range(args.count):
        label = labels[k % len(labels)]
        draw = sampler.draw(label, k // len(labels))
        print(f"--- {label} #{draw.index} " + "-" * 40)
        print(renderer.render(draw))
    return 0


def _cmd_estimate(args: argparse.Namespace) -> int:
    from attrprompt_builder.generation.estimate import estimate, format_estimate
    from attrprompt_builder.verify.judge import JudgeSpec

    check_options(vars(args))  # generate's bounds: an estimate of a build that generate would refuse is no use
    recipe = _load(args.preset_or_recipe)
    result = estimate(
        recipe,
        samples_per_class=args.samples_per_class,
        seed=args.seed,
        sampling=args.sampling,
        prompting=args.prompting,
        paper=args.fidelity == "paper",
        max_new_tokens=args.max_new_tokens,
        refusal_rate=args.refusal_rate,
        duplicate_rate=args.duplicate_rate,
        price_in=args.price_in,
        price_out=args.price_out,
        judge=JudgeSpec.resolve(label_check=args.label_check, adherence_sample=args.adherence_sample),
        mismatch_rate=args.mismatch_rate,
    )
    print(format_estimate(result))
    return 0


def _cmd_card(args: argparse.Namespace) -> int:
    from attrprompt_builder.pipeline import rewrite_card

    path = rewrite_card(args.folder, embedder=args.embedder)
    print(f"wrote {path}")
    return 0


def _cmd_push(args: argparse.Namespace) -> int:
    from attrprompt_builder.dataset.publish import publish

    url = publish(
        args.folder, args.repo_id, private=args.private, token=args.token, revision=args.revision, commit_message=args.message
    )
    print(f"published {url}")
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from attrprompt_builder.train.classifier import format_metrics, train_classifier

    metrics = train_classifier(args.folder, model=args.model, eval_data=args.eval, epochs=args.epochs, output_dir=args.output)
    print(format_metrics(metrics))
    return 0


def _cmd_reproduce(args: argparse.Namespace) -> int:
    from attrprompt_builder.reproduce.command import run_reproduce

    return run_reproduce(args, config_kwargs(args, command="reproduce"))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="attrprompt", description="Synthetic classification data with attributed prompts.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    generate = sub.add_parser("generate", help="generate a dataset folder from a preset or recipe")
    _add_options(generate, "generate")
    generate.set_defaults(func=_cmd_generate)
    sub.add_parser("presets", help="list the packaged presets").set_defaults(func=_cmd_presets)
    show = sub.add_parser("show", help="print rendered prompts; sends nothing")
    _add_options(show, "show")
    show.set_defaults(func=_cmd_show)
    est = sub.add_parser("estimate", help="predict requests, tokens and cost before sending anything")
    _add_options(est, "estimate")
    est.set_defaults(func=_cmd_estimate)
    reproduce = sub.add_parser(
        "reproduce", help="the paper's comparison: AttrPrompt and SimPrompt data, a classifier on each, one table"
    )
    _add_options(reproduce, "reproduce")
    reproduce.set_defaults(func=_cmd_reproduce)
    card = sub.add_parser("card", help="(re)write README.md for a generated folder")
    card.add_argument("folder", help="a folder written by `attrprompt generate`")
    card.add_argument(
        "--embedder",
        default=None,
        help="embedder for pairwise similarity: model folder/Hub id, 'ngram', or 'none' (default: the build's)",
    )
    card.set_defaults(func=_cmd_card)
    push = sub.add_parser("push", help="publish a generated folder to the Hugging Face Hub")
    push.add_argument("folder", help="a folder written by `attrprompt generate`")
    push.add_argument("repo_id", help="the dataset repository, e.g. user/agnews-synthetic")
    push.add_argument("--private", action="store_true", help="create the repository as private")
    push.add_argument("--token", default=None, help="a Hub token with write access (default: HF_TOKEN)")
    push.add_argument("--revision", default=None, help="branch to push to (default: main)")
    push.add_argument("--message", default=None, help="commit message")
    push.set_defaults(func=_cmd_push)
    train = sub.add_parser("train", help="fine-tune a classifier on a generated folder and evaluate it")
    train.add_argument("folder", help="a folder written by `attrprompt generate`")
    train.add_argument("--model", required=True, help="encoder Hub id or local folder")
    train.add_argument("--eval", default=None, help="evaluation folder or Hub dataset (default: 10%% held out)")
    train.add_argument("--epochs", type=float, default=3.0, help="training epochs (default 3)")
    train.add_argument(
        "--output", default=None, help="folder for the fine-tuned model and metrics.json (default: the model is not saved)"
    )
    train.set_defaults(func=_cmd_train)
    _add_lazy(sub, "discover", "ask an LLM for a recipe's dimensions and values (the paper's 4 steps)", "discover.command")
    _add_lazy(sub, "compare", "compare generated dataset folders side by side", "compare")
    _add_lazy(sub, "audit", "check any labelled text dataset: label errors, near-duplicates, places, lengths", "quality_audit")
    for name, command in sub.choices.items():
        # Errors name a keyword (max_attempts); a CLI user typed a flag (--max-attempts).
        command.set_defaults(flag_words=_flag_words(command) | _KEYWORD_ALIASES.get(name, {}))
    return parser


# Keywords of the Python API that a subcommand's flag sets under another name.
_KEYWORD_ALIASES = {
    "generate": {"output_dir": "--output"},
    "reproduce": {
        "output_dir": "--output",
        "eval_data": "--gold",
        "training.model": "--classifier",
        "training.epochs": "--epochs",
        "training.learning_rate": "--learning-rate",
        "training.max_length": "--max-length",
        "training.batch_size": "--train-batch-size",
    },
}


def _flag_words(parser: argparse.ArgumentParser) -> dict[str, str]:
    """Each option's keyword (its dest) and the flag a user types for it, the long spelling first."""
    return {
        action.dest: next((f for f in action.option_strings if f.startswith("--")), action.option_strings[0])
        for action in parser._actions
        if action.option_strings and not isinstance(action, argparse._HelpAction)
    }


def _add_lazy(sub: argparse._SubParsersAction, name: str, help_text: str, module: str) -> None:
    """A subcommand whose arguments and runner live in ``attrprompt_builder.<module>``."""
    from importlib import import_module

    implementation = import_module(f"attrprompt_builder.{module}")
    parser = sub.add_parser(name, help=help_text)
    getattr(implementation, f"add_{name}_arguments")(parser)
    parser.set_defaults(func=getattr(implementation, f"run_{name}"))


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        status = args.func(args)
        sys.stdout.flush()  # a reader that left early (`| head -1`) shows here, not at interpreter exit
        return status
    except BrokenPipeError:
        _silence_stdout()
        return 141  # what a shell reports for a writer stopped by SIGPIPE; the reader has what it wanted
    except KeyboardInterrupt:
        return 130  # the engine already printed how to resume
    except AttrPromptError as err:
        if os.environ.get("ATTRPROMPT_DEBUG"):
            raise
        message = str(err)
        if not isinstance(err, RecipeError):  # a recipe's field names are not flags
            message = in_cli_words(message, getattr(args, "flag_words", {}))
        print(f"error: {message}", file=sys.stderr)
        return 1


def _silence_stdout() -> None:
    # Python flushes stdout again at exit and would report the closed pipe there.
    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (OSError, ValueError):  # stdout is not a file descriptor (captured in tests)
        pass


if __name__ == "__main__":
    sys.exit(main())
