"""The ``attrprompt`` command line.

Every user mistake and every expected failure ends as one ``error: ...`` line on stderr and a
non-zero exit status, never a traceback (``ATTRPROMPT_DEBUG=1`` shows it).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from attrprompt_builder.errors import AttrPromptError

__all__ = ["main"]


def _add_generation_options(parser: argparse.ArgumentParser, *, for_generate: bool) -> None:
    parser.add_argument("preset_or_recipe", help="a preset name (see `attrprompt presets`) or a recipe YAML path")
    parser.add_argument("--samples-per-class", "-n", type=int, default=10, help="kept rows per class (default 10)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sampling", choices=["uniform", "balanced"], default="uniform")
    parser.add_argument("--prompting", choices=["attributed", "simple"], default="attributed")
    parser.add_argument("--max-new-tokens", type=int, default=None, help="default: the recipe's")
    if not for_generate:
        return
    parser.add_argument("--endpoint", action="append", help="base URL of a TGI/vLLM/OpenAI-compatible server; repeat for replicas")
    parser.add_argument("--model", default=None, help="served model name, Hub id (providers) or local folder (transformers)")
    parser.add_argument("--backend", choices=["auto", "endpoint", "providers", "transformers"], default="auto")
    parser.add_argument("--provider", default=None, help="HF Inference Providers provider, e.g. 'auto'")
    parser.add_argument("--token", default=None, help="token for the endpoint (sent only when given)")
    parser.add_argument("--output", "-o", required=True, help="folder to write (data/*.parquet, README.md, recipe.yaml)")
    parser.add_argument("--max-concurrency", type=int, default=16, help="requests in flight per endpoint (default 16)")
    parser.add_argument("--temperature", type=float, default=None, help="default: the recipe's (1.0)")
    parser.add_argument("--top-p", type=float, default=None, help="default: the recipe's (1.0)")
    parser.add_argument("--dedup-threshold", default="auto", help="cosine threshold, 'auto' (default) or 'off'")
    parser.add_argument("--embedder", default=None, help="dedup embedder: model folder/Hub id, or 'ngram'")
    parser.add_argument(
        "--drop-cross-class-duplicates", action="store_true",
        help="drop a reply that near-duplicates another class's row (the earlier class keeps it) instead of flagging it",
    )
    parser.add_argument("--ascii-squeeze", action="store_true", help="the paper's ASCII-only cleaning")
    parser.add_argument("--max-requests", type=int, default=None)
    parser.add_argument("--max-tokens", type=int, default=None)
    parser.add_argument("--max-cost", type=float, default=None)
    parser.add_argument("--price-in", type=float, default=None, help="price per 1k input tokens")
    parser.add_argument("--price-out", type=float, default=None, help="price per 1k output tokens")
    parser.add_argument("--journal-dir", default=None)
    parser.add_argument("--cache-dir", default=None, help="datasets cache folder")
    parser.add_argument("--num-proc", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=8, help="batch size of the transformers backend")
    parser.add_argument("--license", default=None, help="override the recipe's license in the card")


def _threshold(value: str) -> float | str | None:
    if value in ("auto", "off"):
        return value
    try:
        return float(value)
    except ValueError:
        raise AttrPromptError(f"--dedup-threshold: got {value!r}; use a number in (0, 1], 'auto' or 'off'") from None


def _cmd_generate(args: argparse.Namespace) -> int:
    from attrprompt_builder.pipeline import generate_folder

    endpoint = args.endpoint[0] if args.endpoint and len(args.endpoint) == 1 else args.endpoint
    folder = generate_folder(
        args.preset_or_recipe,
        args.output,
        num_proc=args.num_proc,
        cache_dir=args.cache_dir,
        token=args.token,
        endpoint=endpoint,
        model=args.model,
        backend=args.backend,
        provider=args.provider,
        samples_per_class=args.samples_per_class,
        seed=args.seed,
        max_concurrency=args.max_concurrency,
        temperature=args.temperature,
        top_p=args.top_p,
        max_new_tokens=args.max_new_tokens,
        sampling=args.sampling,
        prompting=args.prompting,
        dedup_threshold=_threshold(args.dedup_threshold),
        embedder=args.embedder,
        drop_cross_class_duplicates=args.drop_cross_class_duplicates,
        ascii_squeeze=args.ascii_squeeze,
        max_requests=args.max_requests,
        max_tokens=args.max_tokens,
        max_cost=args.max_cost,
        price_in=args.price_in,
        price_out=args.price_out,
        journal_dir=args.journal_dir,
        batch_size=args.batch_size,
        license=args.license,
    )
    print(f"wrote {folder} (load it with datasets.load_dataset({str(folder)!r}))")
    return 0


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
    from attrprompt_builder.generation.sampling import AttributeSampler

    recipe = _load(args.preset_or_recipe)
    labels = [args.label] if args.label else recipe.label_names
    unknown = [label for label in labels if label not in recipe.label_names]
    if unknown:
        raise AttrPromptError(f"--label: got {unknown[0]!r}; use one of {', '.join(recipe.label_names)}")
    sampler = AttributeSampler(recipe, seed=args.seed, strategy=args.sampling)
    renderer = PromptRenderer(recipe, prompting=args.prompting)
    for k in range(args.n):
        label = labels[k % len(labels)]
        draw = sampler.draw(label, k // len(labels))
        print(f"--- {label} #{draw.index} " + "-" * 40)
        print(renderer.render(draw))
    return 0


def _cmd_estimate(args: argparse.Namespace) -> int:
    from attrprompt_builder.generation.estimate import estimate, format_estimate

    recipe = _load(args.preset_or_recipe)
    result = estimate(
        recipe,
        samples_per_class=args.samples_per_class,
        seed=args.seed,
        sampling=args.sampling,
        prompting=args.prompting,
        max_new_tokens=args.max_new_tokens,
        refusal_rate=args.refusal_rate,
        duplicate_rate=args.duplicate_rate,
        price_in=args.price_in,
        price_out=args.price_out,
    )
    print(format_estimate(result))
    return 0


def _cmd_card(args: argparse.Namespace) -> int:
    from attrprompt_builder.card.render import write_card
    from attrprompt_builder.pipeline import card_embedder

    path = write_card(Path(args.folder), embedder=card_embedder(args.embedder))
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

    metrics = train_classifier(
        args.folder, model=args.model, eval_data=args.eval, epochs=args.epochs, output_dir=args.output
    )
    print(format_metrics(metrics))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="attrprompt", description="Synthetic classification data with attributed prompts.")
    sub = parser.add_subparsers(dest="command", required=True)
    generate = sub.add_parser("generate", help="generate a dataset folder from a preset or recipe")
    _add_generation_options(generate, for_generate=True)
    generate.set_defaults(func=_cmd_generate)
    sub.add_parser("presets", help="list the packaged presets").set_defaults(func=_cmd_presets)
    show = sub.add_parser("show", help="print rendered prompts; sends nothing")
    _add_generation_options(show, for_generate=False)
    show.add_argument("-k", "--count", dest="n", type=int, default=5, help="how many prompts (default 5)")
    show.add_argument("--label", default=None, help="only this class")
    show.set_defaults(func=_cmd_show)
    est = sub.add_parser("estimate", help="predict requests, tokens and cost before sending anything")
    _add_generation_options(est, for_generate=False)
    est.add_argument("--price-in", type=float, default=None, help="price per 1k input tokens")
    est.add_argument("--price-out", type=float, default=None, help="price per 1k output tokens")
    est.add_argument("--refusal-rate", type=float, default=0.02, help="expected share of refused replies (default 0.02)")
    est.add_argument("--duplicate-rate", type=float, default=0.02, help="expected share of near-duplicates (default 0.02)")
    est.set_defaults(func=_cmd_estimate)
    card = sub.add_parser("card", help="(re)write README.md for a generated folder")
    card.add_argument("folder")
    card.add_argument("--embedder", default=None, help="embedder for the diversity metrics")
    card.set_defaults(func=_cmd_card)
    push = sub.add_parser("push", help="publish a generated folder to the Hugging Face Hub")
    push.add_argument("folder")
    push.add_argument("repo_id")
    push.add_argument("--private", action="store_true")
    push.add_argument("--token", default=None, help="a Hub token with write access (default: HF_TOKEN)")
    push.add_argument("--revision", default=None, help="branch to push to (default: main)")
    push.add_argument("--message", default=None, help="commit message")
    push.set_defaults(func=_cmd_push)
    train = sub.add_parser("train", help="fine-tune a classifier on a generated folder and evaluate it")
    train.add_argument("folder")
    train.add_argument("--model", required=True, help="encoder Hub id or local folder")
    train.add_argument("--eval", default=None, help="evaluation folder or Hub dataset (default: 10%% held out)")
    train.add_argument("--epochs", type=float, default=3.0)
    train.add_argument("--output", default=None)
    train.set_defaults(func=_cmd_train)
    _add_lazy(sub, "discover", "ask an LLM for a recipe's dimensions and values (the paper's 4 steps)", "discover.steps")
    _add_lazy(sub, "compare", "compare generated dataset folders side by side", "compare")
    return parser


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
        return args.func(args)
    except KeyboardInterrupt:
        return 130  # the engine already printed how to resume
    except AttrPromptError as err:
        if os.environ.get("ATTRPROMPT_DEBUG"):
            raise
        print(f"error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
