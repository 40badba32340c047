"""The recipe's Jinja templates: the one sandboxed environment, and rendering each template once at load.

A template can be valid Jinja and still fail only when rendered (``{{ product.name }}`` on a string,
``{{ 1/0 }}``, an attribute the sandbox forbids); rendering each label's first draw at load turns that into
one line naming the template, instead of a failure in the middle of ``show``, ``estimate`` or a paid build.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from jinja2 import StrictUndefined, Template, UndefinedError
from jinja2.sandbox import SandboxedEnvironment, SecurityError

from attrprompt_builder.errors import RecipeError, one_line

__all__ = ["check_rendering", "template_environment"]

Fields = dict[str, Any]
#: ``RecipeParser.fail``: (field path, problem, fix) -> the error to raise.
Fail = Callable[[str, str, str], RecipeError]


def template_environment() -> SandboxedEnvironment:
    """The one Jinja environment recipes are parsed and rendered with."""
    return SandboxedEnvironment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=False)


def check_rendering(
    labels: list[Fields],
    attributes: list[Fields],
    similar: dict[str, tuple[str, ...]],
    *,
    attributed: str,
    simple: str,
    domain: str,
    fail: Fail,
    prefix: str = "prompts",
) -> None:
    """Render every template for each label's first draw, in the sandbox builds use.

    What only fails at render time (``{{ product.name }}`` on a string value, ``{{ 1/0 }}``, an attribute
    the sandbox forbids) then fails at load, in one line, and not in the middle of ``show``, ``estimate``
    or a paid build.
    """
    env = template_environment()
    attributed_at, simple_at = f"{prefix}.attributed", f"{prefix}.simple"
    templates = {attributed_at: env.from_string(attributed), simple_at: env.from_string(simple)}
    catch_alls = {
        f"attributes[{i}] ({a['name']}).catch_all": (a["name"], env.from_string(a["catch_all"]))
        for i, a in enumerate(attributes)
        if a.get("catch_all")
    }
    text_of = {label["name"]: label["text"] for label in labels}
    for label, text in text_of.items():
        for where, (dimension, template) in catch_alls.items():
            _render(template, where, label, {"label": label, "label_text": text, "dimension": dimension}, fail)
        values, implied = {}, [label]
        for attribute in attributes:
            if "label_map" in attribute:
                values[attribute["name"]] = next(v for v, of in attribute["label_map"].items() if label in of)
                implied = list(attribute["label_map"][values[attribute["name"]]])
            else:
                choices = attribute["values"] if "values" in attribute else attribute["per_class"][label]
                values[attribute["name"]] = [choices[0]] if attribute.get("per_label") else choices[0]
        context = {
            "label": label,
            "label_text": text,
            "labels": implied,
            "labels_text": [text_of[name] for name in implied],
            "domain": domain,
        }
        _render(templates[simple_at], simple_at, label, context, fail)
        attributed_context = {**context, "similar_classes": list(similar.get(label, ())), **values}
        _render(templates[attributed_at], attributed_at, label, attributed_context, fail)


def _render(template: Template, where: str, label: str, context: Fields, fail: Fail) -> None:
    try:
        template.render(**context)
    except SecurityError as err:
        raise fail(
            where,
            f"the template breaks the sandbox for label {label!r} ({one_line(err)})",
            "use only the recipe's variables, Jinja filters and tests",
        ) from err
    except UndefinedError as err:
        raise fail(
            where,
            f"the template fails for label {label!r} ({one_line(err)})",
            "every variable is plain text (labels, labels_text and similar_classes are lists): write e.g. {{ label_text }}",
        ) from err
    except Exception as err:  # whatever a user's template raises (1/0, 'a' + 1...) is a mistake in the recipe
        raise fail(
            where, f"the template fails for label {label!r} ({type(err).__name__}: {one_line(err)})", "fix the template"
        ) from err
