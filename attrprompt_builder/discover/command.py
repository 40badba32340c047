"""``attrprompt discover``: its flags, reading ``--labels``, and the run that writes the recipe file."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from attrprompt_builder.dataset.folder import require_writable_folder
from attrprompt_builder.discover.report import DiscoveryResult
from attrprompt_builder.discover.steps import discover_recipe
from attrprompt_builder.errors import ConfigError

__all__ = ["add_discover_arguments", "read_labels", "run_discover"]


def read_labels(value: str) -> list[str]:
    """``--labels``: a file with one label per line (blank lines skipped), or a comma-separated list."""
    path = Path(value).expanduser()
    if path.is_file():
        return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if "," in value:
        return [part.strip() for part in value.split(",") if part.strip()]
    if "/" in value or "\\" in value or path.suffix or path.exists():  # meant as a file
        raise ConfigError(
            f"--labels: {value!r} is neither a file nor a comma-separated list; pass a file with one label per line "
            "or e.g. world,sports,business"
        )
    raise ConfigError(
        f"--labels: got one label, {value!r}; a classification task needs at least two: pass them comma-separated "
        "(e.g. world,sports,business) or a file with one label per line"
    )


def add_discover_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--labels", help="file with one label per line, or a comma-separated list (required)")
    parser.add_argument("--domain", help="what one sample is, e.g. 'news articles' (required)")
    parser.add_argument(
        "--similar-only",
        action="store_true",
        help="only step 2: make the similar-class lists that --preset lacks (nyt's were never released) and write "
        "the preset with them merged in, for review",
    )
    parser.add_argument("--preset", help="with --similar-only: a preset name or recipe file, instead of --labels/--domain")
    parser.add_argument("--endpoint", action="append", help="base URL of a TGI/vLLM/OpenAI-compatible server")
    parser.add_argument("--model", default=None, help="served model name, Hub id (providers) or local folder")
    parser.add_argument(
        "--backend",
        choices=["auto", "endpoint", "providers", "transformers"],
        default="auto",
        help="where the model runs; auto: endpoint if --endpoint, providers if --provider, else transformers",
    )
    parser.add_argument("--provider", default=None, help="HF Inference Providers provider, e.g. 'auto'")
    parser.add_argument("--token", default=None, help="token for the endpoint (sent only when given)")
    parser.add_argument("--values-per-dimension", type=int, default=10, help="values to ask for per dimension (default 10)")
    parser.add_argument(
        "--similar-per-class",
        type=int,
        default=None,
        help="most similar classes to ask for per class (default 3; with --similar-only 5, as the paper)",
    )
    parser.add_argument("--max-dimensions", type=int, default=5, help="attribute dimensions to ask for (default 5)")
    parser.add_argument("--max-filtered-per-class", type=int, default=5, help="the paper's cap (default 5)")
    parser.add_argument("--seed", type=int, default=0, help="seed of every question (default 0)")
    parser.add_argument("--max-concurrency", type=int, default=8, help="questions in flight (default 8)")
    parser.add_argument(
        "--journal-dir", default=None, help="folder of the journal of paid replies (default: beside the datasets cache)"
    )
    parser.add_argument("--name", default=None, help="recipe name (default: from the domain)")
    parser.add_argument("--output", "-o", required=True, help="recipe YAML file to write")
    parser.add_argument("--force", action="store_true", help="replace an existing, different output file")


def _check_output(args: argparse.Namespace) -> None:
    """Where the answers go must be writable before the first question is paid for."""
    output = Path(args.output).expanduser()
    if output.is_dir():
        raise ConfigError(f"--output: {str(output)!r} is a folder; pass the recipe file to write, e.g. recipe.yaml")
    require_writable_folder(output.parent, field="--output")
    if args.journal_dir:
        require_writable_folder(Path(args.journal_dir).expanduser(), field="--journal-dir")


def _write(result: DiscoveryResult, args: argparse.Namespace) -> Path:
    try:
        return result.write(args.output, overwrite=args.force)
    except OSError as err:  # the answers are in the journal: a rerun to a writable path pays nothing
        raise ConfigError(f"--output: cannot write {args.output!r} ({err.strerror or err}); pass a path you can write") from err


def _run_similar_only(args: argparse.Namespace, endpoint: str | list[str] | None) -> int:
    from attrprompt_builder.discover.similar_only import SIMILAR_PER_CLASS, discover_similar
    from attrprompt_builder.recipe.model import load_recipe
    from attrprompt_builder.recipe.presets import is_preset, load_preset

    if args.labels or args.domain:
        raise ConfigError("--similar-only: takes the labels and domain from --preset; drop --labels and --domain")
    if not args.preset:
        raise ConfigError("--similar-only: needs --preset, a preset name (e.g. nyt) or a recipe file")
    recipe = load_preset(args.preset) if is_preset(args.preset) else load_recipe(Path(args.preset).expanduser())
    _check_output(args)
    result = discover_similar(
        recipe,
        endpoint=endpoint,
        model=args.model,
        backend=args.backend,
        provider=args.provider,
        token=args.token,
        similar_per_class=args.similar_per_class or SIMILAR_PER_CLASS,
        seed=args.seed,
        journal_dir=args.journal_dir,
        max_concurrency=args.max_concurrency,
    )
    path = _write(result, args)
    report = result.report
    for problem in report.unusable:
        print(f"warning: {problem}", file=sys.stderr)
    made = sum(1 for label in report.similar if report.similar[label])
    print(
        f"similar classes for {made} of {len(report.similar)} classes; "
        f"{report.sent} requests sent, {report.reused} replies reused from the journal"
    )
    print(f"wrote {path}; review the similar: lists, then: attrprompt generate {path} [--paper] --endpoint URL --output FOLDER")
    return 0


def run_discover(args: argparse.Namespace) -> int:
    endpoint = args.endpoint[0] if args.endpoint and len(args.endpoint) == 1 else args.endpoint
    if args.similar_only:
        return _run_similar_only(args, endpoint)
    if args.preset:
        raise ConfigError("--preset: only with --similar-only; for a new recipe pass --labels and --domain")
    if not args.labels or not args.domain:
        missing = "--labels" if not args.labels else "--domain"
        raise ConfigError(f"{missing}: required; pass --labels FILE_OR_LIST and --domain 'what one sample is'")
    labels = read_labels(args.labels)
    _check_output(args)
    result = discover_recipe(
        labels,
        domain=args.domain,
        endpoint=endpoint,
        model=args.model,
        backend=args.backend,
        provider=args.provider,
        token=args.token,
        values_per_dimension=args.values_per_dimension,
        similar_per_class=args.similar_per_class or 3,
        max_dimensions=args.max_dimensions,
        max_filtered_per_class=args.max_filtered_per_class,
        seed=args.seed,
        journal_dir=args.journal_dir,
        max_concurrency=args.max_concurrency,
        name=args.name,
    )
    path = _write(result, args)
    report = result.report
    for problem in report.unusable:
        print(f"warning: {problem}", file=sys.stderr)
    dropped = sum(len(v) for by_label in report.dropped.values() for v in by_label.values())
    print(
        f"dimensions: {', '.join(result.recipe.attribute_names)}; {dropped} values dropped by the filter; "
        f"{report.sent} requests sent, {report.reused} replies reused from the journal"
    )
    print(f"wrote {path}; review it, then: attrprompt generate {path} --endpoint URL --output FOLDER")
    return 0
