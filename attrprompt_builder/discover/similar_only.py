"""``attrprompt discover --similar-only``: the similar-class lists a recipe lacks, made with your LLM.

The paper released no similar-class lists for nyt, so its prompts lack the reference's fifth line ("The news
must be relevant to X and irrelevant to: ..."). This runs discovery's step 2 alone, for the classes without a
list, and writes the recipe (a preset, or a recipe file) with the lists merged in: a file for a person to review
before generating from it, in either mode.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from attrprompt_builder.client.backends import BackendSpec
from attrprompt_builder.discover.asker import Asker, run_questions
from attrprompt_builder.discover.report import DiscoveryReport, DiscoveryResult
from attrprompt_builder.discover.steps import Steps, check_options, journal_path_for, new_report
from attrprompt_builder.errors import ConfigError
from attrprompt_builder.recipe.model import Recipe, dump_yaml, parse_recipe

__all__ = ["SIMILAR_PER_CLASS", "discover_similar"]

# How many similar classes the paper asked for (gen_train_data/README.md: --attribute=similar --n_attribute=5).
SIMILAR_PER_CLASS = 5


def discover_similar(
    recipe: Recipe,
    *,
    endpoint: str | list[str] | None = None,
    model: str | None = None,
    backend: str = "auto",
    provider: str | None = None,
    token: str | None = None,
    similar_per_class: int = SIMILAR_PER_CLASS,
    seed: int = 0,
    journal_dir: str | Path | None = None,
    max_concurrency: int = 8,
) -> DiscoveryResult:
    """Ask the LLM for the similar classes of every class of ``recipe`` that has none; return the merged recipe."""
    missing = [label for label in recipe.label_names if label not in recipe.similar]
    if not missing:
        raise ConfigError(
            f"--similar-only: recipe {recipe.name!r} already has a similar-class list for every class; "
            "edit them in the recipe file, or remove those you want made again"
        )
    options = {
        "values_per_dimension": 1,
        "similar_per_class": similar_per_class,
        "max_dimensions": 1,
        "max_filtered_per_class": 0,
        "seed": seed,
        "max_concurrency": max_concurrency,
    }
    check_options(options)
    spec = BackendSpec.resolve(backend=backend, endpoint=endpoint, model=model, provider=provider)
    report = new_report(spec)
    texts = dict(recipe.label_text)

    async def step_2(asker: Asker, progress: Any) -> None:
        steps = Steps(asker, recipe.label_names, recipe.domain, options, report, texts=texts)
        steps.record_similar(await asker.ask_all(steps.similar_questions(missing)), missing)

    run_questions(
        step_2,
        spec=spec,
        token=token,
        journal_path=journal_path_for(journal_dir, recipe.label_names, recipe.domain),
        seed=seed,
        max_concurrency=max_concurrency,
        report=report,
        desc="Discovery step 2 (similar classes)",
    )
    data = _merged(recipe, report, texts)
    text = _commented(data, report, recipe, missing, seed=seed)
    merged = parse_recipe(yaml.safe_load(text), origin="<recipe with discovered similar classes>")
    return DiscoveryResult(recipe=merged, yaml_text=text, report=report)


def _merged(recipe: Recipe, report: DiscoveryReport, texts: dict[str, str]) -> dict[str, Any]:
    data = recipe.to_dict()
    data["name"] = f"{recipe.name}_similar"  # not the preset's name: this recipe holds what your model wrote
    found = {label: [texts[other] for other in others] for label, others in report.similar.items() if others}
    data["similar"] = {label: list(recipe.similar.get(label) or found.get(label, [])) for label in recipe.label_names}
    data["similar"] = {label: values for label, values in data["similar"].items() if values}
    paper = data.get("paper")
    if paper is not None:
        made = (
            f"Similar-class lists made by {report.model} with `attrprompt discover --similar-only` on {report.date}; "
            "the paper's came from gpt-3.5-turbo (and for this dataset were never released)."
        )
        paper["deviations"] = [made, *paper.get("deviations", [])]
    return data


def _commented(data: dict[str, Any], report: DiscoveryReport, recipe: Recipe, missing: list[str], *, seed: int) -> str:
    by = f"{report.model} at {report.host}" if report.host else report.model
    empty = [label for label in missing if label not in data["similar"]]
    lines = [
        f"Recipe {recipe.name!r} with similar-class lists made by `attrprompt discover --similar-only` on {report.date}",
        f"with {by} (seed {seed}), for the {len(missing)} classes that had none.",
        "REVIEW the `similar:` lists before generating: the model wrote them and no person checked them. Each names",
        "the classes most easily confused with its class (label texts; names matching no label were dropped).",
        "Generate with: attrprompt generate <this file> [--paper] --endpoint URL --output FOLDER",
    ]
    if empty:
        lines.append(f"No usable answer for: {', '.join(empty)} (their prompts have no exclusion line).")
    for label, invented in report.invented.items():
        lines.append(f"Dropped for {label}, naming no label: {'; '.join(invented)}")
    header = "".join(f"# {' '.join(line.split())}\n" for line in lines)
    return header + dump_yaml(data)
