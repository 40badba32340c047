"""Render a recipe's prompt template for one attribute draw."""

from __future__ import annotations

import re

from attrprompt_builder.generation.sampling import AttributeDraw
from attrprompt_builder.recipe.model import Recipe, template_environment

__all__ = ["PROMPTING_MODES", "PromptRenderer"]

PROMPTING_MODES = ("attributed", "simple")


# Exactly two full stops: a value's own (a catch-all like "Others technique for X.") followed by the
# template's. An ellipsis ("...") is left alone.
_DOUBLE_STOP = re.compile(r"(?<!\.)\.\.(?!\.)")


def _normalise_class_name(text: str) -> str:
    return re.sub(r"[\s_\-]+", " ", text).strip().lower()


class PromptRenderer:
    """Turns an ``AttributeDraw`` into the user message sent to the LLM.

    ``prompting="attributed"`` uses the recipe's attributed template (the AttrPrompt method);
    ``prompting="simple"`` the class-conditional baseline (SimPrompt), which sees no attribute.
    Templates are compiled once per renderer, not per row.
    """

    def __init__(self, recipe: Recipe, *, prompting: str = "attributed", paper: bool = False) -> None:
        if prompting not in PROMPTING_MODES:
            raise ValueError(f"unknown prompting mode {prompting!r}")
        self.recipe = recipe
        self.prompting = prompting
        # Paper mode sends the reference code's wording (recipe.paper), its punctuation untouched.
        self.paper = paper
        if paper:
            if recipe.paper is None:
                raise ValueError(f"recipe {recipe.name!r} has no paper section")
            source = recipe.paper.prompts[prompting]
        else:
            source = recipe.attributed_template if prompting == "attributed" else recipe.simple_template
        self._template = template_environment().from_string(source)
        # Per (class, label set): the same few lists are asked for on every row of a build.
        self._similar: dict[tuple[str, tuple[str, ...]], list[str]] = {}

    def similar_classes(self, draw: AttributeDraw) -> list[str]:
        similar = self.recipe.similar.get(draw.label, ())
        if self.paper:  # the reference used the released list as it is (stackexchange's names its own class)
            return list(similar)
        cached = self._similar.get((draw.label, draw.labels))
        if cached is None:
            # A sample must not be told to avoid one of its own labels.
            own = {_normalise_class_name(name) for name in draw.labels}
            own |= {_normalise_class_name(self.recipe.label_text[name]) for name in draw.labels}
            cached = self._similar[draw.label, draw.labels] = [name for name in similar if _normalise_class_name(name) not in own]
        return list(cached)

    def render(self, draw: AttributeDraw) -> str:
        recipe = self.recipe
        context: dict[str, object] = {
            "label": draw.label,
            "label_text": recipe.label_text[draw.label],
            "labels": list(draw.labels),
            "labels_text": [recipe.label_text[name] for name in draw.labels],
            "domain": recipe.domain,
        }
        if self.prompting == "attributed":
            context["similar_classes"] = self.similar_classes(draw)
            context.update(draw.values)
            context.update({name: list(values) for name, values in draw.lists.items()})
        text = self._template.render(**context).strip()
        return text if self.paper or ".." not in text else _DOUBLE_STOP.sub(".", text)

    def messages(self, draw: AttributeDraw) -> tuple[dict[str, str], ...]:
        return ({"role": "user", "content": self.render(draw)},)
