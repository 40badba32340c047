"""Validation of recipe data: every problem is one ``RecipeError`` line naming the field and the fix.

The parser returns plain, validated fields, which ``model.parse_recipe`` turns into the dataclasses:
the model imports this module and never the other way round. A field the data leaves out is left
out here too, so its default is the one the dataclass declares.
"""

from __future__ import annotations

import re
from typing import Any

from jinja2 import TemplateSyntaxError, meta

from attrprompt_builder.errors import RecipeError
from attrprompt_builder.recipe.templates import check_rendering, template_environment

__all__ = [
    "ATTRIBUTED_VARIABLES",
    "Fields",
    "RESERVED_NAMES",
    "RecipeParser",
    "SIMPLE_VARIABLES",
    "default_label_text",
    "template_environment",
]

#: Keyword arguments of a ``model`` dataclass (``Recipe``, ``Label``, ``Attribute``, ``GenerationDefaults``).
Fields = dict[str, Any]

# Column names the builder writes itself; attributes may not shadow them.
RESERVED_NAMES = frozenset({"text", "label", "labels", "prompt", "label_text", "labels_text", "domain", "similar_classes"})

# Variables a template may use besides the attribute names.
SIMPLE_VARIABLES = frozenset({"label", "label_text", "labels", "labels_text", "domain"})
ATTRIBUTED_VARIABLES = SIMPLE_VARIABLES | {"similar_classes"}
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_IDENTIFIER_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_TOP_LEVEL_FIELDS = frozenset(
    {
        "name",
        "pretty_name",
        "description",
        "domain",
        "language",
        "license",
        "multi_label",
        "labels",
        "attributes",
        "similar",
        "prompts",
        "generation",
        "source",
        "paper",
    }
)


def default_label_text(name: str) -> str:
    return name.replace("_", " ")


def _reads_as(text: str) -> str:
    """How a label text reads to the model: case, underscores, dashes and spacing do not tell classes apart."""
    return " ".join(re.sub(r"[_-]", " ", text).split()).casefold()


class RecipeParser:
    """Checks recipe data section by section; ``parse`` gives the keyword arguments of ``Recipe``."""

    def __init__(self, origin: str) -> None:
        self.origin = origin

    def fail(self, field_path: str, problem: str, fix: str) -> RecipeError:
        return RecipeError(f"{self.origin}: {field_path}: {problem}; {fix}")

    # -- scalar helpers -------------------------------------------------------------------------
    def require(self, data: dict, key: str, fix: str) -> Any:
        if key not in data or data[key] is None:
            raise self.fail(key, "missing required field", fix)
        return data[key]

    def string(self, value: Any, field_path: str, *, allow_empty: bool = False) -> str:
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise self.fail(field_path, f"expected a string, got {type(value).__name__} {value!r}", "write a string")
        text = str(value).strip() if not isinstance(value, str) else value.strip()
        if not text and not allow_empty:
            raise self.fail(field_path, "is empty", "write a non-empty value or remove the entry")
        return text

    def value_list(self, value: Any, field_path: str) -> tuple[str, ...]:
        if not isinstance(value, list):
            raise self.fail(field_path, f"expected a list of values, got {type(value).__name__}", "write a YAML list")
        if not value:
            raise self.fail(field_path, "empty value list", "give at least one value or remove the dimension")
        values = tuple(self.string(item, f"{field_path}[{i}]") for i, item in enumerate(value))
        seen: set[str] = set()
        for i, item in enumerate(values):
            if item in seen:
                raise self.fail(f"{field_path}[{i}]", f"duplicate value {item!r}", "remove the repeated value")
            seen.add(item)
        return values

    # -- sections -------------------------------------------------------------------------------
    def parse(self, data: Any) -> Fields:
        if not isinstance(data, dict):
            raise RecipeError(f"{self.origin}: expected a YAML mapping at the top level; see the README's recipe format")
        unknown = sorted(set(data) - _TOP_LEVEL_FIELDS)
        if unknown:
            raise self.fail(
                unknown[0], "unknown field", f"use one of: {', '.join(sorted(_TOP_LEVEL_FIELDS))} (check the spelling)"
            )
        name = self.string(self.require(data, "name", "add `name: my_task`"), "name")
        if not _NAME_RE.match(name):
            raise self.fail("name", f"{name!r} is not a valid name", "use letters, digits, '_', '-' or '.'")
        domain = self.string(self.require(data, "domain", "add `domain: news` (what one sample is)"), "domain")
        license_ = self.string(
            self.require(data, "license", "add `license:` (an SPDX id, or `other` with a note in `description`)"),
            "license",
        )
        multi_label = data.get("multi_label", False)
        if not isinstance(multi_label, bool):
            raise self.fail("multi_label", f"expected true or false, got {multi_label!r}", "write true or false")
        labels = self.parse_labels(self.require(data, "labels", "add `labels:` with the class names"))
        label_names = [label["name"] for label in labels]
        attributes = self.parse_attributes(data.get("attributes") or [], label_names, multi_label)
        similar = self.parse_similar(data.get("similar") or {}, label_names)
        attributed, simple = self.parse_prompts(
            self.require(data, "prompts", "add `prompts:` with `attributed:` and `simple:` templates"), attributes
        )
        generation = self.parse_generation(data.get("generation") or {})
        optional: Fields = {key: self.string(data[key], key) for key in ("pretty_name", "description", "source") if data.get(key)}
        if "language" in data:
            optional["language"] = self.string(data["language"], "language")
        check_rendering(labels, attributes, similar, attributed=attributed, simple=simple, domain=domain, fail=self.fail)
        if data.get("paper") is not None:
            from attrprompt_builder.recipe.paper_section import parse_paper  # it uses this module's names

            optional["paper"] = parse_paper(self, data["paper"], attributes)
            paper_prompts = optional["paper"]["prompts"]
            check_rendering(labels, attributes, similar, domain=domain, fail=self.fail, prefix="paper.prompts", **paper_prompts)
        return {
            "name": name,
            "domain": domain,
            "license": license_,
            "labels": labels,
            "attributes": attributes,
            "attributed_template": attributed,
            "simple_template": simple,
            "similar": similar,
            "generation": generation,
            "multi_label": multi_label,
            "origin": self.origin,
            **optional,
        }

    def parse_labels(self, raw: Any) -> list[Fields]:
        if not isinstance(raw, list) or not raw:
            raise self.fail("labels", "expected a non-empty list", "list the class names, one per line")
        labels: list[Fields] = []
        seen: set[str] = set()
        by_case: dict[str, str] = {}  # casefolded name -> the label
        by_reading: dict[str, str] = {}  # how the text reads -> the label
        for i, item in enumerate(raw):
            where = f"labels[{i}]"
            if isinstance(item, dict):
                unknown = sorted(set(item) - {"name", "text"})
                if unknown:
                    raise self.fail(f"{where}.{unknown[0]}", "unknown field", "use `name` and optionally `text`")
                name = self.string(self.require_in(item, "name", where), f"{where}.name")
                text = self.string(item["text"], f"{where}.text") if item.get("text") else default_label_text(name)
            else:
                name = self.string(item, where)
                text = default_label_text(name)
            if name in seen:
                raise self.fail(where, f"duplicate label {name!r}", "list each label once")
            if name.casefold() in by_case:
                other = by_case[name.casefold()]
                raise self.fail(where, f"label {name!r} differs from label {other!r} only in case", "merge them or rename one")
            # Prompts name a class by its text: two classes that read alike would ask for the same thing.
            if _reads_as(text) in by_reading:
                other = by_reading[_reads_as(text)]
                raise self.fail(
                    where,
                    f"label {name!r} reads {text!r} in prompts, as label {other!r} does",
                    "give one of them a distinct `text:`, or merge the two labels",
                )
            seen.add(name)
            by_case[name.casefold()] = name
            by_reading[_reads_as(text)] = name
            labels.append({"name": name, "text": text})
        return labels

    def require_in(self, data: dict, key: str, where: str) -> Any:
        if data.get(key) is None:
            raise self.fail(f"{where}.{key}", "missing required field", f"add `{key}:`")
        return data[key]

    def known_label(self, name: Any, field_path: str, label_names: list[str]) -> str:
        name = self.string(name, field_path)
        if name not in label_names:
            shown = ", ".join(label_names[:8]) + (", ..." if len(label_names) > 8 else "")
            raise self.fail(field_path, f"unknown label {name!r}", f"use one of the recipe's labels ({shown})")
        return name

    def parse_attributes(self, raw: Any, label_names: list[str], multi_label: bool) -> list[Fields]:
        if not isinstance(raw, list):
            raise self.fail("attributes", "expected a list of dimensions", "write `attributes:` as a YAML list")
        attributes: list[Fields] = []
        names: set[str] = set()
        for i, item in enumerate(raw):
            where = f"attributes[{i}]"
            if not isinstance(item, dict):
                raise self.fail(where, "expected a mapping with `name` and `values`", "see the README's recipe format")
            unknown = sorted(set(item) - {"name", "values", "per_class", "label_map", "catch_all", "per_label"})
            if unknown:
                raise self.fail(
                    f"{where}.{unknown[0]}", "unknown field", "use name, values, per_class, label_map, catch_all or per_label"
                )
            name = self.string(self.require_in(item, "name", where), f"{where}.name")
            if not _IDENTIFIER_RE.match(name):
                raise self.fail(f"{where}.name", f"{name!r} is not a valid name", "use letters, digits and '_'")
            if name in RESERVED_NAMES:
                raise self.fail(f"{where}.name", f"{name!r} is reserved for a dataset column", "rename the dimension")
            if name in names:
                raise self.fail(f"{where}.name", f"duplicate dimension {name!r}", "give each dimension a unique name")
            names.add(name)
            where = f"attributes[{i}] ({name})"
            given = [key for key in ("values", "per_class", "label_map") if key in item]
            if len(given) != 1:
                raise self.fail(
                    where,
                    "needs exactly one of `values` (shared), `per_class` (map label -> values) or `label_map`",
                    "keep one of them",
                )
            catch_all = item.get("catch_all")
            if catch_all is not None:
                catch_all = self.string(catch_all, f"{where}.catch_all")
                self.check_template(catch_all, f"{where}.catch_all", {"label", "label_text", "dimension"})
            kind = given[0]
            if "per_label" in item and kind != "per_class":
                raise self.fail(f"{where}.per_label", "only a per_class dimension is drawn per label", "remove it")
            if kind == "values":
                attributes.append(
                    {"name": name, "values": self.value_list(item["values"], f"{where}.values"), "catch_all": catch_all}
                )
            elif kind == "per_class":
                per_class = self.parse_per_class(item["per_class"], where, label_names)
                attribute: Fields = {"name": name, "per_class": per_class, "catch_all": catch_all}
                per_label = item.get("per_label", False)
                if per_label not in (True, False) or (per_label and not multi_label):
                    raise self.fail(
                        f"{where}.per_label",
                        f"got {per_label!r}; one value per label needs a multi-label recipe",
                        "write true in a multi-label recipe, or remove it",
                    )
                if per_label:
                    attribute["per_label"] = True
                attributes.append(attribute)
            else:
                if not multi_label:
                    raise self.fail(
                        f"{where}.label_map",
                        "only multi-label recipes map values to labels",
                        "set `multi_label: true` or use `per_class`",
                    )
                if catch_all is not None:
                    raise self.fail(
                        f"{where}.catch_all", "a label_map dimension cannot have a catch-all value", "remove `catch_all`"
                    )
                attributes.append({"name": name, "label_map": self.parse_label_map(item["label_map"], where, label_names)})
        label_maps = [a for a in attributes if "label_map" in a]
        if multi_label and len(label_maps) != 1:
            raise self.fail(
                "attributes",
                f"a multi-label recipe needs exactly one `label_map` dimension, found {len(label_maps)}",
                "add one dimension whose values map to the labels they imply",
            )
        return attributes

    def parse_per_class(self, raw: Any, where: str, label_names: list[str]) -> dict[str, tuple[str, ...]]:
        if not isinstance(raw, dict):
            raise self.fail(f"{where}.per_class", "expected a mapping label -> list of values", "write `label: [values]`")
        per_class: dict[str, tuple[str, ...]] = {}
        for key, values in raw.items():
            label = self.known_label(key, f"{where}.per_class", label_names)
            per_class[label] = self.value_list(values, f"{where}.per_class.{label}")
        missing = [label for label in label_names if label not in per_class]
        if missing:
            raise self.fail(f"{where}.per_class", f"no values for label {missing[0]!r}", "give every label a list of values")
        return per_class

    def parse_label_map(self, raw: Any, where: str, label_names: list[str]) -> dict[str, tuple[str, ...]]:
        if not isinstance(raw, dict) or not raw:
            raise self.fail(
                f"{where}.label_map", "expected a non-empty mapping value -> list of labels", "write `value: [label, ...]`"
            )
        label_map: dict[str, tuple[str, ...]] = {}
        for value, implied in raw.items():
            value = self.string(value, f"{where}.label_map")
            if not isinstance(implied, list) or not implied:
                raise self.fail(
                    f"{where}.label_map.{value}", "expected a non-empty list of labels", "list the labels this value implies"
                )
            names = [self.known_label(x, f"{where}.label_map.{value}", label_names) for x in implied]
            label_map[value] = tuple(sorted(set(names), key=label_names.index))
        covered = {label for implied in label_map.values() for label in implied}
        missing = [label for label in label_names if label not in covered]
        if missing:
            raise self.fail(
                f"{where}.label_map", f"no value implies label {missing[0]!r}", "map at least one value to every label"
            )
        return label_map

    def parse_similar(self, raw: Any, label_names: list[str]) -> dict[str, tuple[str, ...]]:
        if not isinstance(raw, dict):
            raise self.fail("similar", "expected a mapping label -> list of similar classes", "write `label: [classes]`")
        similar: dict[str, tuple[str, ...]] = {}
        for key, values in raw.items():
            label = self.known_label(key, "similar", label_names)
            similar[label] = self.value_list(values, f"similar.{label}")
        return similar

    def check_template(self, source: str, where: str, allowed: frozenset[str] | set[str]) -> set[str]:
        try:
            parsed = template_environment().parse(source)
        except TemplateSyntaxError as err:
            raise self.fail(where, f"template syntax error at line {err.lineno}: {err.message}", "fix the Jinja syntax") from err
        used = meta.find_undeclared_variables(parsed)
        unknown = sorted(used - set(allowed))
        if unknown:
            raise self.fail(
                where,
                f"template uses undefined variable {unknown[0]!r}",
                f"use one of: {', '.join(sorted(allowed))}, or define the attribute",
            )
        return used

    def parse_prompts(self, raw: Any, attributes: list[Fields]) -> tuple[str, str]:
        if not isinstance(raw, dict):
            raise self.fail("prompts", "expected a mapping with `attributed` and `simple`", "see the README's recipe format")
        unknown = sorted(set(raw) - {"attributed", "simple"})
        if unknown:
            raise self.fail(f"prompts.{unknown[0]}", "unknown template", "use `attributed` and `simple`")
        attributed = self.string(self.require_in(raw, "attributed", "prompts"), "prompts.attributed")
        simple = self.string(self.require_in(raw, "simple", "prompts"), "prompts.simple")
        names = [a["name"] for a in attributes]
        used = self.check_template(attributed, "prompts.attributed", ATTRIBUTED_VARIABLES | set(names))
        for name in names:
            if name not in used:
                raise self.fail(
                    "prompts.attributed",
                    f"dimension {name!r} is never used",
                    f"reference {{{{ {name} }}}} in the template or remove the dimension",
                )
        self.check_template(simple, "prompts.simple", SIMPLE_VARIABLES)
        return attributed, simple

    def parse_generation(self, raw: Any) -> Fields:
        if not isinstance(raw, dict):
            raise self.fail("generation", "expected a mapping", "write `temperature:`, `top_p:`, `max_new_tokens:`")
        unknown = sorted(set(raw) - {"temperature", "top_p", "max_new_tokens"})
        if unknown:
            raise self.fail(f"generation.{unknown[0]}", "unknown field", "use temperature, top_p or max_new_tokens")
        given: Fields = {}
        if "temperature" in raw:
            temperature = raw["temperature"]
            if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not 0 <= temperature <= 5:
                raise self.fail("generation.temperature", f"{temperature!r} is not a number in [0, 5]", "use e.g. 1.0")
            given["temperature"] = float(temperature)
        if "top_p" in raw:
            top_p = raw["top_p"]
            if isinstance(top_p, bool) or not isinstance(top_p, (int, float)) or not 0 < top_p <= 1:
                raise self.fail("generation.top_p", f"{top_p!r} is not a number in (0, 1]", "use e.g. 1.0")
            given["top_p"] = float(top_p)
        if "max_new_tokens" in raw:
            max_new_tokens = raw["max_new_tokens"]
            if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) or max_new_tokens < 1:
                raise self.fail("generation.max_new_tokens", f"{max_new_tokens!r} is not a positive integer", "use e.g. 512")
            given["max_new_tokens"] = max_new_tokens
        return given
