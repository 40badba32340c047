"""The card's "Quality checks": what the rows say against what was asked, in numbers.

- the label check (when the build ran one): mismatch rate per class from the ``label_check``
  column, and a requested-vs-assigned confusion table for small single-label sets;
- attribute adherence per dimension and value (``verify/adherence.py``): word ranges read from each
  row's prompt, requested places found in the text;
- the places the texts name (``verify/bias.py``), overall and per class, with a plot.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

from attrprompt_builder.card import measures
from attrprompt_builder.dataset.schema import LABEL_CHECK_COLUMN
from attrprompt_builder.recipe.model import Recipe
from attrprompt_builder.verify import adherence
from attrprompt_builder.verify.bias import PlacesMentioned, mentioned_places, places_mentioned
from attrprompt_builder.verify.label_check import METHOD
from attrprompt_builder.verify.places import COVERAGE

if TYPE_CHECKING:
    import datasets

__all__ = ["MAX_CONFUSION_CLASSES", "label_check_summary", "places_summary", "quality_checks"]

MAX_CONFUSION_CLASSES = 12


def _pct(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f}%" if whole else "-"


def label_check_summary(given: list[tuple[str, ...]], assigned: list[tuple[str, ...]], class_names: list[str]) -> dict[str, Any]:
    """Mismatch rate per class and, for small single-label sets, the requested x assigned counts."""
    rows: Counter[str] = Counter()
    flagged: Counter[str] = Counter()
    for labels, verdict in zip(given, assigned):
        for name in labels:
            rows[name] += 1
            flagged[name] += int(set(verdict) != set(labels))
    total_flagged = sum(set(v) != set(g) for g, v in zip(given, assigned))
    summary: dict[str, Any] = {
        "rows": len(given),
        "flagged": total_flagged,
        "share": _pct(total_flagged, len(given)),
        "per_class": [(name, flagged[name], rows[name], _pct(flagged[name], rows[name])) for name in class_names if rows[name]],
        "confusion": None,
    }
    single = all(len(labels) == 1 for labels in given) and all(len(v) == 1 for v in assigned)
    if single and len(class_names) <= MAX_CONFUSION_CLASSES:
        counts = Counter((g[0], v[0]) for g, v in zip(given, assigned))
        summary["confusion"] = {
            "names": list(class_names),
            "rows": [(name, [counts[(name, other)] for other in class_names]) for name in class_names],
        }
    return summary


def places_summary(overall: PlacesMentioned, per_class: dict[str, PlacesMentioned]) -> dict[str, Any]:
    return {
        "coverage": COVERAGE,
        "texts": overall.texts,
        "with_place": overall.with_place,
        "with_place_share": _pct(overall.with_place, overall.texts),
        "top": [(name, count, _pct(count, overall.texts)) for name, count in overall.top()],
        "continents": [(name, f"{100 * share:.1f}%") for name, share in overall.continent_shares().items()],
        "per_class": [
            (
                label,
                _pct(counts.with_place, counts.texts),
                ", ".join(f"{name} ({count})" for name, count in counts.top(3)) or "-",
                ", ".join(f"{name} {100 * share:.0f}%" for name, share in list(counts.continent_shares().items())[:3]) or "-",
            )
            for label, counts in per_class.items()
        ],
    }


def quality_checks(
    dataset: datasets.Dataset,
    recipe: Recipe,
    *,
    texts: list[str],
    rows: list[tuple[str, ...]],
    label_check: str | None,
    plots_dir: Path | None,
) -> dict[str, Any]:
    """The template context of the "Quality checks" section."""
    section: dict[str, Any] = {"label_check": None, "length": None, "places_adherence": None}
    if LABEL_CHECK_COLUMN in dataset.column_names:
        assigned = [tuple(v or ()) for v in measures.column(dataset, LABEL_CHECK_COLUMN)]
        section["label_check"] = {
            "method": METHOD if label_check != "judge" else "an LLM judge",
            **label_check_summary(rows, assigned, list(recipe.label_names)),
        }
    found = mentioned_places(texts)
    prompts = [str(p or "") for p in measures.column(dataset, "prompt")] if "prompt" in dataset.column_names else []
    present = measures.attribute_dimensions(dataset, recipe)
    length_dimension = next((name for name in present if name.lower().startswith("length")), None)
    if length_dimension is not None and prompts:
        values = measures.column(dataset, length_dimension)
        kept = [(t, p, v) for t, p, v in zip(texts, prompts, values) if v is not None]
        result = adherence.length_adherence(*map(list, zip(*kept)), dimension=length_dimension) if kept else None
        if result is not None:
            n, within, below, above = result.totals()
            section["length"] = {
                "dimension": length_dimension,
                "total": (n, _pct(within, n), _pct(below, n), _pct(above, n)),
                "rows": [
                    (value, result.ranges[value], c[0], _pct(c[1], c[0]), _pct(c[2], c[0]), _pct(c[3], c[0]))
                    for value, c in sorted(result.by_value.items(), key=lambda item: _numeric(item[0]))
                ],
            }
    place_dimension = adherence.place_dimension(present)
    if place_dimension is not None:
        values = measures.column(dataset, place_dimension)
        kept_rows = [i for i, v in enumerate(values) if v is not None]
        if kept_rows:
            result_places = adherence.place_adherence(
                [texts[i] for i in kept_rows],
                [values[i] for i in kept_rows],
                dimension=place_dimension,
                mentioned=[found[i] for i in kept_rows],
            )
            n, named = result_places.totals()
            section["places_adherence"] = {
                "dimension": place_dimension,
                "total": (n, _pct(named, n)),
                "rows": [
                    (value, c[0], _pct(c[1], c[0]), result_places.method[value])
                    for value, c in sorted(result_places.by_value.items(), key=lambda item: -item[1][0])
                ],
            }
    overall, per_class = places_mentioned(texts, [" + ".join(labels) for labels in rows], found=found)
    section["places"] = places_summary(overall, per_class)
    section["places_figure"] = None
    if plots_dir is not None and overall.with_place:
        from attrprompt_builder.card.plots import load_pyplot, places_figure

        plt = load_pyplot()
        if plt is not None:
            shares = {"all": overall.continent_shares(), **{k: v.continent_shares() for k, v in per_class.items()}}
            section["places_figure"] = places_figure(plt, overall.top(), shares, plots_dir)
    return section


def _numeric(value: str) -> tuple[float, str]:
    try:
        return float(value), value
    except ValueError:
        return float("inf"), value
