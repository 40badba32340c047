"""The ``paper:`` section of a recipe: how the AttrPrompt paper's code generated the task, which
``fidelity="paper"`` reproduces (the presets get theirs from ``presets/sources.yml``). Checked like the rest
of a recipe: each problem is one ``RecipeError`` line naming the field and the fix.
"""

from __future__ import annotations

from typing import Any

from attrprompt_builder.recipe.validation import ATTRIBUTED_VARIABLES, SIMPLE_VARIABLES, Fields, RecipeParser

__all__ = ["PAPER_FIELDS", "parse_paper"]

_MODES = ("attributed", "simple")
PAPER_FIELDS = ("prompts", "max_new_tokens", "refusals", "iterate", "simple_extra_labels", "deviations")


def parse_paper(parser: RecipeParser, raw: Any, attributes: list[Fields]) -> Fields:
    """The ``paper:`` section: how the AttrPrompt paper's code generated this task (``fidelity="paper"``)."""
    if not isinstance(raw, dict):
        raise parser.fail("paper", "expected a mapping", f"use the fields {', '.join(PAPER_FIELDS)}")
    unknown = sorted(set(raw) - set(PAPER_FIELDS))
    if unknown:
        raise parser.fail(f"paper.{unknown[0]}", "unknown field", f"use one of: {', '.join(PAPER_FIELDS)}")

    def per_mode(key: str) -> dict:
        value = parser.require_in(raw, key, "paper")
        if not isinstance(value, dict) or sorted(value) != sorted(_MODES):
            raise parser.fail(f"paper.{key}", f"got {value!r:.80}", "give one entry for `attributed` and one for `simple`")
        return value

    names = {a["name"] for a in attributes}
    prompts = {}
    for mode, source in per_mode("prompts").items():
        prompts[mode] = parser.string(source, f"paper.prompts.{mode}")
        allowed = ATTRIBUTED_VARIABLES | names if mode == "attributed" else SIMPLE_VARIABLES
        parser.check_template(prompts[mode], f"paper.prompts.{mode}", allowed)
    max_new_tokens = {}
    for mode, value in per_mode("max_new_tokens").items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise parser.fail(f"paper.max_new_tokens.{mode}", f"{value!r} is not a positive integer", "use e.g. 512")
        max_new_tokens[mode] = value
    refusals = {}
    for mode, phrases in per_mode("refusals").items():
        if not isinstance(phrases, list):
            raise parser.fail(f"paper.refusals.{mode}", f"got {phrases!r:.80}", "write a list of substrings ([] for none)")
        refusals[mode] = tuple(parser.string(p, f"paper.refusals.{mode}[{i}]") for i, p in enumerate(phrases))
    fields: Fields = {"prompts": prompts, "max_new_tokens": max_new_tokens, "refusals": refusals}
    iterate = raw.get("iterate")
    if iterate is not None:
        maps = [a["name"] for a in attributes if "label_map" in a]
        if iterate not in maps:
            raise parser.fail("paper.iterate", f"{iterate!r} is not a label_map dimension", f"use one of: {maps or 'none'}")
        fields["iterate"] = iterate
    extra = raw.get("simple_extra_labels")
    if extra is not None:
        valid = isinstance(extra, dict) and sorted(extra) == ["max_labels", "zipf"]
        valid = valid and isinstance(extra["max_labels"], int) and extra["max_labels"] >= 1
        valid = valid and isinstance(extra["zipf"], (int, float)) and extra["zipf"] > 1
        if not valid:
            raise parser.fail("paper.simple_extra_labels", f"got {extra!r:.80}", "write {zipf: 2.5, max_labels: 4}")
        fields["simple_extra_labels"] = {"zipf": float(extra["zipf"]), "max_labels": int(extra["max_labels"])}
    deviations = raw.get("deviations") or []
    if not isinstance(deviations, list):
        raise parser.fail("paper.deviations", f"got {deviations!r:.80}", "write a list of sentences")
    fields["deviations"] = tuple(parser.string(d, f"paper.deviations[{i}]") for i, d in enumerate(deviations))
    return fields
