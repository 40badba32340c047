"""The dataset card (README.md) of a generated dataset: Hub metadata, provenance and measurements.

``build_card`` measures the dataset with ``measures`` and renders ``cards/dataset_card.md`` through
``huggingface_hub.DatasetCard.from_template``; ``write_card`` does it for a folder written by
``attrprompt generate``. Nothing from the generation record reaches the card unfiltered: the
endpoint is reduced to its host and token-like strings are redacted.
"""

from __future__ import annotations

import importlib.resources
import re
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from huggingface_hub import DatasetCard, DatasetCardData

from attrprompt_builder.card import measures
from attrprompt_builder.card.judge_stats import judge_summary
from attrprompt_builder.card.measures import INGF_N, MISSING, format_measure
from attrprompt_builder.card.quality import quality_checks
from attrprompt_builder.dataset import folder as layout
from attrprompt_builder.dataset.schema import CITATION, find_label_column
from attrprompt_builder.filters.dedup.vectors import VectorStore
from attrprompt_builder.generation.stats import BuildStats
from attrprompt_builder.recipe.model import Recipe
from attrprompt_builder.redaction import display_name, host_only, redact

if TYPE_CHECKING:
    import datasets

__all__ = [
    "build_card",
    "card_data",
    "redact",
    "size_category",
    "write_card",
]

_VALUE_SEPARATOR = "; "  # attribute values often contain commas (style descriptions)
_EXAMPLE_CHARS = 200
_COLLAPSE_OVER = 12  # lists longer than this go inside <details>
# The Hub's size_categories, bucket k holding rows < 10 ** (k + 3).
_SIZE_NAMES = (
    "n<1K",
    "1K<n<10K",
    "10K<n<100K",
    "100K<n<1M",
    "1M<n<10M",
    "10M<n<100M",
    "100M<n<1B",
    "1B<n<10B",
    "10B<n<100B",
    "100B<n<1T",
)
# (key, row title) in display order: a key of the generation record not listed here is never shown.
_GENERATION_FIELDS = (
    ("model", "Model"),
    ("backend", "Backend"),
    ("endpoint_host", "Endpoint host"),
    ("temperature", "Temperature"),
    ("top_p", "top_p"),
    ("max_new_tokens", "max_new_tokens"),
    ("seed", "Seed"),
    ("samples_per_class", "Samples per class"),
    ("sampling", "Attribute sampling"),
    ("prompting", "Prompting"),
    ("fidelity", "Fidelity (default, or paper: the reference code's behaviour)"),
    ("paper_loop", "Paper mode's loop"),
    ("cleaning", "Reply cleaning"),
    ("refusal_filter", "Refusal filter"),
    ("dedup_threshold", "Dedup threshold (cosine)"),
    ("embedder", "Dedup embedder"),
    ("label_check", "Label check"),
    ("date", "Date"),
    ("package_version", "attrprompt-builder version"),
    ("price_in", "Price per 1k prompt tokens"),
    ("price_out", "Price per 1k completion tokens"),
)
_MARKDOWN_ESCAPES = (("\\", "\\\\"), ("|", "\\|"), ("<", "&lt;"), (">", "&gt;"), ("`", "\\`"))
_KIND_TEXT = {
    "shared": "shared by all classes",
    "per_class": "one list per class",
    "label_map": "each value fixes the sample's label set",
}
_ENDPOINT_KEYS = ("endpoint_host", "endpoint", "endpoint_url", "base_url")


def size_category(rows: int) -> str:
    """The Hub's ``size_categories`` bucket for a row count."""
    return next((name for k, name in enumerate(_SIZE_NAMES) if rows < 10 ** (k + 3)), "n>1T")


def _md(value: Any) -> str:
    """A value made safe for one Markdown table cell or list item (generated text included)."""
    text = " ".join(str(value).split())
    for raw, escaped in _MARKDOWN_ESCAPES:
        text = text.replace(raw, escaped)
    return text


def _share(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f}%" if whole else MISSING


def _fence(text: str) -> str:
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    return "`" * max(3, longest + 1)


def card_data(dataset: datasets.Dataset, recipe: Recipe, *, download_size: int | None = None) -> DatasetCardData:
    """Hub metadata, with the ``configs`` and ``dataset_info`` blocks ``push_to_hub`` writes."""
    from datasets import DatasetInfo, SplitDict, SplitInfo
    from datasets.info import DatasetInfosDict
    from datasets.utils.metadata import MetadataConfigs

    data = DatasetCardData(
        # The Hub lists license ids in lower case (apache-2.0, cc-by-4.0); SPDX ids are upper case.
        license=recipe.license.lower(),
        language=[recipe.language],
        annotations_creators=["machine-generated"],
        language_creators=["machine-generated"],
        multilinguality="monolingual",
        size_categories=[size_category(len(dataset))],
        source_datasets=["original"],
        task_categories=["text-classification"],
        task_ids=["multi-label-classification" if recipe.multi_label else "multi-class-classification"],
        pretty_name=recipe.pretty_name or recipe.name,
        tags=["synthetic", "attrprompt", "llm-generated"],
    )
    splits = SplitDict()
    splits.add(SplitInfo(name="train", num_bytes=dataset.data.nbytes, num_examples=len(dataset)))
    info = DatasetInfo(
        features=dataset.features, splits=splits, dataset_size=dataset.data.nbytes, download_size=download_size or 0
    )
    DatasetInfosDict({"default": info}).to_dataset_card_data(data)
    data_files = [{"split": "train", "path": layout.DATA_FILES_PATTERN}]
    MetadataConfigs({"default": {"data_files": data_files}}).to_dataset_card_data(data)
    return data


def _templates(recipe: Recipe, generation: dict[str, Any]) -> list[tuple[str, str]]:
    """The templates the build rendered: the reference code's wording in paper mode."""
    if generation.get("fidelity") == "paper" and recipe.paper is not None:
        return [(f"{kind} (paper)", recipe.paper.prompts[kind]) for kind in ("attributed", "simple")]
    return [("attributed", recipe.attributed_template), ("simple", recipe.simple_template)]


def _generation_rows(generation: dict[str, Any], recipe: Recipe) -> list[tuple[str, str]]:
    shown = dict(generation)
    endpoint = next((shown[key] for key in _ENDPOINT_KEYS if shown.get(key)), None)
    shown["endpoint_host"] = host_only(str(endpoint)) if endpoint else None
    for key in ("temperature", "top_p", "max_new_tokens"):
        if shown.get(key) is None:
            shown[key] = f"{getattr(recipe.generation, key)} (recipe default)"
    for key in ("model", "embedder"):
        if shown.get(key):
            shown[key] = display_name(shown[key])
    return [(title, _md(redact(str(shown[key])))) for key, title in _GENERATION_FIELDS if shown.get(key) is not None]


def _value_list(values: Iterable[str]) -> str:
    return _VALUE_SEPARATOR.join(_md(value) for value in values)


def _counted(counts: dict[str, int]) -> str:
    return _VALUE_SEPARATOR.join(f"{_md(value)} ({count})" for value, count in counts.items())


def _dimensions(recipe: Recipe, present: list[str]) -> list[dict[str, Any]]:
    result = []
    for attribute in recipe.attributes:
        if attribute.kind == "shared":
            groups = [("all classes", recipe.values_for(attribute.name, recipe.label_names[0]))]
        else:
            groups = [(label, recipe.values_for(attribute.name, label)) for label in recipe.label_names]
        size = sum(len(values) for _, values in groups)
        result.append(
            {
                "name": _md(attribute.name),
                "kind": _KIND_TEXT[attribute.kind],
                "used": attribute.name in present,
                "size": size,
                "collapsed": size > _COLLAPSE_OVER,
                "groups": [{"label": _md(label), "value_list": _value_list(values)} for label, values in groups],
            }
        )
    return result


def _value_counts(dataset: datasets.Dataset, recipe: Recipe) -> list[dict[str, Any]]:
    result = []
    for dimension, counts in measures.attribute_value_counts(dataset, recipe).items():
        attribute = recipe.attribute(dimension)
        never = [v for v in attribute.values or () if v not in counts] if attribute.kind == "shared" else []
        result.append(
            {
                "name": _md(dimension),
                "distinct": len(counts),
                "collapsed": len(counts) > _COLLAPSE_OVER,
                "rows": [(_md(value), count, _share(count, len(dataset))) for value, count in counts.items()],
                "never_drawn": _value_list(never),
            }
        )
    return result


def _class_coverage(dimension: str, items: list[measures.ClassCoverage], plot: str | None) -> dict[str, Any]:
    classes = []
    for item in items:
        covered = len(item.counts) - len(item.never_drawn)
        classes.append(
            {
                "label": _md(item.label),
                "covered": covered,
                "total": len(item.counts),
                "share": _share(covered, len(item.counts)),
                "never_drawn": _value_list(item.never_drawn),
                "counts": _counted(item.counts),
                "unexpected": _counted(item.unexpected),
            }
        )
    return {"name": _md(dimension), "classes": classes, "plot": plot}


def _combination(combos: measures.CombinationCoverage) -> dict[str, Any] | None:
    if not combos.possible:
        return None
    rows = [(_md(label), seen, total, _share(seen, total)) for label, (seen, total) in combos.per_class.items()]
    return {"seen": combos.seen, "possible": combos.possible, "share": f"{100 * combos.share:.4g}%", "rows": rows}


def _similarity(
    texts: list[str], rows: list[tuple[str, ...]], embedder: measures.EmbedderLike, vectors: VectorStore | None
) -> dict[str, Any]:
    stats = measures.average_pairwise_similarity(texts, rows, embedder, cache=vectors)
    return {
        "embedder": _md(display_name(getattr(embedder, "name", type(embedder).__name__))),
        "rows": stats.n,
        "total": len(texts),
        "subsampled": stats.n < len(texts),
        "max_rows": measures.APS_MAX_ROWS,
        "overall": format_measure(stats.overall),
        "within": format_measure(stats.within),
        "across": format_measure(stats.across),
        "per_class": [(_md(label), format_measure(value)) for label, value in stats.per_class.items()],
    }


def _diversity(
    texts: list[str], rows: list[tuple[str, ...]], embedder: measures.EmbedderLike | None, vectors: VectorStore | None
) -> dict[str, Any]:
    return {
        "vocabulary": measures.vocabulary_size(texts),
        "distinct_1": format_measure(measures.distinct_n(texts, 1), 4),
        "distinct_2": format_measure(measures.distinct_n(texts, 2), 4),
        "ingf": format_measure(measures.ingf(texts, INGF_N)),
        "ingf_n": INGF_N,
        "aps": _similarity(texts, rows, embedder, vectors) if embedder is not None and len(texts) >= 2 else None,
    }


def _build(stats: BuildStats | None, generation: dict[str, Any]) -> dict[str, Any] | None:
    if stats is None:
        return None
    embedder = generation.get("embedder")
    priced = stats.cost or generation.get("price_in") is not None or generation.get("price_out") is not None
    return {
        "sent": stats.sent,
        "reused": stats.reused,
        "kept": stats.kept,
        "cross_class_flags": stats.cross_class_flags,
        "refusals": stats.dropped.get("refusal", 0),
        "duplicates": sum(stats.dropped.get(r, 0) for r in ("near_duplicate", "exact_duplicate", "cross_class_duplicate")),
        "dropped": [(_md(reason), count) for reason, count in stats.dropped.most_common()],
        "retries": [(_md(cause), count) for cause, count in stats.retries.most_common()],
        "failures": [(_md(cause), count) for cause, count in stats.failures.most_common()],
        "dedup_threshold": generation.get("dedup_threshold"),
        "dedup_embedder": _md(display_name(embedder)) if embedder else None,
        "dedup_examples": [
            {
                "label": _md(example.get("label", "")),
                "similarity": format_measure(example.get("similarity")),
                "kept": _md(str(example.get("kept", ""))[:_EXAMPLE_CHARS]),
                "dropped": _md(str(example.get("dropped", ""))[:_EXAMPLE_CHARS]),
            }
            for example in stats.dedup_examples
        ],
        "dedup_by_value": [
            (_md(dimension), _counted(dict(counts.most_common())))
            for dimension, counts in stats.dedup_removed_by_value.items()
            if counts
        ],
        "per_class": [(_md(label), s.kept, s.attempts, sum(s.dropped.values())) for label, s in stats.per_class.items()],
        "prompt_tokens": stats.prompt_tokens,
        "completion_tokens": stats.completion_tokens,
        "total_tokens": stats.total_tokens,
        "wall_time": f"{stats.wall_time_s:.0f} s",
        "cost": f"{stats.cost:.4f}" if priced else None,
        "judge": judge_summary(stats, priced=bool(priced), escape=_md),
    }


def _load_template() -> str:
    try:
        resource = importlib.resources.files("attrprompt_builder.cards") / "dataset_card.md"
    except ModuleNotFoundError:  # a source checkout that is not installed: cards/ sits beside the package
        resource = Path(__file__).resolve().parents[2] / "cards" / "dataset_card.md"
    return resource.read_text(encoding="utf-8")


def build_card(
    dataset: datasets.Dataset,
    recipe: Recipe,
    *,
    generation: dict[str, Any],
    stats: BuildStats | None,
    embedder: measures.EmbedderLike | None = None,
    vectors: VectorStore | None = None,
    plots_dir: Path | None = None,
    recipe_link: str | None = None,
    download_size: int | None = None,
) -> DatasetCard:
    """Measure ``dataset`` and render its card.

    ``plots_dir`` is the folder the card will be saved in: PNGs go there, linked by file name.
    ``recipe_link`` links a recipe file there instead of inlining the recipe. Without an
    ``embedder`` the card says that APS was not computed; ``vectors`` holds texts' vectors already
    computed (the build's), so only texts it lacks are embedded.
    """
    texts = [str(text or "") for text in measures.column(dataset, "text")]
    rows = measures.row_labels(dataset)
    label_column = find_label_column(dataset.features)
    assert label_column is not None  # row_labels raised otherwise
    label_counts = measures.label_distribution(rows, recipe.label_names)
    lengths = measures.word_counts(texts)
    lengths_by_class: dict[str, list[int]] = {label: [] for label in recipe.label_names}
    for labels, length in zip(rows, lengths, strict=True):
        for label in labels:
            lengths_by_class.setdefault(label, []).append(length)
    present = measures.attribute_dimensions(dataset, recipe)
    coverage = {
        dimension: measures.class_value_coverage(dataset, recipe, dimension, rows=rows)
        for dimension in present
        if recipe.attribute(dimension).class_dependent
    }
    figures = {}
    if plots_dir is not None:
        from attrprompt_builder.card.plots import write_plots

        figures = write_plots(plots_dir, label_counts=label_counts, lengths_by_class=lengths_by_class, coverage=coverage)
    figure_paths = {key: figure.path for key, figure in figures.items()}
    recipe_yaml = recipe.to_yaml().rstrip("\n")
    context: dict[str, Any] = {
        "pretty_name": _md(recipe.pretty_name or recipe.name),
        "name": recipe.name,
        "domain": _md(recipe.domain),
        "description": recipe.description,
        "language": recipe.language,
        "license": recipe.license,
        "source": recipe.source,
        "num_rows": len(dataset),
        "num_classes": len(recipe.labels),
        "multi_label": recipe.multi_label,
        "model": _md(display_name(generation.get("model", "an unnamed model"))),
        "prompting": generation.get("prompting") or ("attributed" if present else "simple"),
        "dimension_names": ", ".join(_md(dimension) for dimension in present),
        "generation_rows": _generation_rows(generation, recipe),
        "templates": [(kind, text, _fence(text)) for kind, text in _templates(recipe, generation)],
        "paper_deviations": [_md(line) for line in generation.get("paper_deviations") or ()],
        "recipe_link": recipe_link,
        "recipe_yaml": None if recipe_link else recipe_yaml,
        "recipe_fence": _fence(recipe_yaml),
        "columns": [(_md(name), _md(repr(feature))) for name, feature in dataset.features.items()],
        "label_column": label_column.name,
        "dimensions": _dimensions(recipe, present),
        "labels": [(_md(label), count, _share(count, len(dataset))) for label, count in label_counts.items()],
        "labels_per_row": sorted(Counter(len(labels) for labels in rows).items()) if recipe.multi_label else None,
        "length": measures.summarize_word_counts(lengths),
        "length_rows": [(_md(label), measures.summarize_word_counts(v)) for label, v in lengths_by_class.items()],
        "value_counts": _value_counts(dataset, recipe),
        "class_coverage": [
            _class_coverage(dimension, items, figure_paths.get(f"coverage:{dimension}")) for dimension, items in coverage.items()
        ],
        "combination": _combination(measures.combination_coverage(dataset, recipe, rows=rows)),
        "diversity": _diversity(texts, rows, embedder, vectors),
        "build": _build(stats, generation),
        "quality": quality_checks(
            dataset, recipe, texts=texts, rows=rows, label_check=generation.get("label_check"), plots_dir=plots_dir
        ),
        "figures": figure_paths,
        "citation_bibtex": CITATION,
    }
    data = card_data(dataset, recipe, download_size=download_size)
    return DatasetCard.from_template(data, template_str=_load_template(), **context)


def write_card(folder: Path, *, embedder: measures.EmbedderLike | None = None) -> Path:
    """Read a folder written by ``attrprompt generate``; write its card and PNGs; return the card path."""
    folder = Path(folder)
    shards = layout.require_data_files(folder, field="folder")
    recipe = layout.read_recipe(folder, field="folder")
    record = layout.read_generation(folder, field="folder")
    # The vectors the build computed; those the card computes are kept too, for the next card or compare.
    vectors = layout.vector_store(folder, create=True) if embedder is not None else None
    try:
        card = build_card(
            layout.read_rows(shards),
            recipe,
            generation=record.generation,
            stats=record.stats,
            embedder=embedder,
            vectors=vectors,
            plots_dir=folder,
            recipe_link=layout.RECIPE_FILE,
            download_size=sum(shard.stat().st_size for shard in shards),
        )
    finally:
        if vectors is not None:
            vectors.close()
    path = folder / layout.CARD_FILE
    card.save(path)
    return path
