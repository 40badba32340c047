"""Recipes: the YAML description of a generation task, validated on load.

A recipe names the labels, the attribute dimensions (class-independent, per class, or, for
multi-label tasks, one dimension whose values fix the label set), the similar classes, the two
prompt templates (attributed and simple) and the sampling defaults. Every validation failure is a
single ``RecipeError`` line: ``<file>: <field>: <problem>; <fix>``. The checks live in
``validation``, which hands back plain fields; the loaders here build the dataclasses from them.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import yaml
from jinja2 import meta

from attrprompt_builder.errors import RecipeError
from attrprompt_builder.recipe.validation import (
    RESERVED_NAMES,
    RecipeParser,
    default_label_text,
    template_environment,
)

__all__ = [
    "Attribute",
    "FIDELITIES",
    "GenerationDefaults",
    "Label",
    "PaperSettings",
    "RESERVED_NAMES",
    "Recipe",
    "default_label_text",
    "dump_yaml",
    "invalid_yaml",
    "load_recipe",
    "parse_recipe",
    "template_environment",
]


@dataclass(frozen=True)
class Label:
    """A class: ``name`` is the ClassLabel name, ``text`` is how prompts refer to it."""

    name: str
    text: str


@dataclass(frozen=True)
class Attribute:
    """One attribute dimension.

    Exactly one of ``values`` (class-independent), ``per_class`` (class-dependent) or
    ``label_map`` (multi-label: value -> the labels it implies) is set.
    """

    name: str
    values: tuple[str, ...] | None = None
    per_class: dict[str, tuple[str, ...]] | None = None
    label_map: dict[str, tuple[str, ...]] | None = None
    catch_all: str | None = None
    per_label: bool = False  # multi-label: one value per label of the sample, from each label's list

    @property
    def kind(self) -> str:
        if self.label_map is not None:
            return "label_map"
        return "per_class" if self.per_class is not None else "shared"

    @property
    def class_dependent(self) -> bool:
        return self.kind != "shared"


@dataclass(frozen=True)
class GenerationDefaults:
    """Sampling defaults of a recipe (the paper's: temperature 1.0, top_p 1.0)."""

    temperature: float = 1.0
    top_p: float = 1.0
    max_new_tokens: int = 512


FIDELITIES = ("default", "paper")


@dataclass(frozen=True)
class PaperSettings:
    """How the AttrPrompt paper's code generated this task: what ``fidelity="paper"`` reproduces.

    ``prompts``, ``max_new_tokens`` and ``refusals`` are keyed by prompting mode ("attributed", "simple");
    ``refusals`` are case-sensitive substrings of the raw reply. ``iterate`` names the label_map dimension
    whose values the reference loops over (arxiv: subtopics) instead of the classes.
    ``simple_extra_labels`` is the reference's multi-label SimPrompt: min(max_labels, Zipf(zipf)) - 1 other
    classes join each sample. ``deviations`` are what paper mode still does differently, with the reason.
    """

    prompts: dict[str, str]
    max_new_tokens: dict[str, int]
    refusals: dict[str, tuple[str, ...]]
    iterate: str | None = None
    simple_extra_labels: dict[str, float] | None = None
    deviations: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "prompts": dict(self.prompts),
            "max_new_tokens": dict(self.max_new_tokens),
            "refusals": {mode: list(phrases) for mode, phrases in self.refusals.items()},
        }
        if self.iterate:
            data["iterate"] = self.iterate
        if self.simple_extra_labels:
            data["simple_extra_labels"] = dict(self.simple_extra_labels)
        if self.deviations:
            data["deviations"] = list(self.deviations)
        return data


@dataclass(frozen=True)
class Recipe:
    name: str
    domain: str
    license: str
    labels: tuple[Label, ...]
    attributes: tuple[Attribute, ...]
    attributed_template: str
    simple_template: str
    similar: dict[str, tuple[str, ...]] = field(default_factory=dict)
    generation: GenerationDefaults = GenerationDefaults()
    multi_label: bool = False
    language: str = "en"
    pretty_name: str | None = None
    description: str | None = None
    source: str | None = None
    paper: PaperSettings | None = None
    origin: str = "<recipe>"

    @cached_property
    def label_names(self) -> list[str]:
        return [label.name for label in self.labels]

    @cached_property
    def label_text(self) -> dict[str, str]:
        return {label.name: label.text for label in self.labels}

    @cached_property
    def attribute_names(self) -> list[str]:
        return [attribute.name for attribute in self.attributes]

    def attribute(self, name: str) -> Attribute:
        for attribute in self.attributes:
            if attribute.name == name:
                return attribute
        raise KeyError(name)

    @cached_property
    def _catch_alls(self) -> dict[tuple[str, str], str]:
        env = template_environment()
        return {
            (attribute.name, label.name): env.from_string(attribute.catch_all).render(
                label=label.name, label_text=label.text, dimension=attribute.name
            )
            for attribute in self.attributes
            if attribute.catch_all
            for label in self.labels
        }

    def catch_all_for(self, attribute: str, label: str) -> str | None:
        """The catch-all value of ``attribute`` for ``label`` ("Others ... for <class>."), if the recipe has one."""
        return self._catch_alls.get((attribute, label))

    @cached_property
    def _value_lists(self) -> dict[tuple[str, str], tuple[str, ...]]:
        lists: dict[tuple[str, str], tuple[str, ...]] = {}
        for attribute in self.attributes:
            for label in self.labels:
                if attribute.kind == "shared":
                    values = attribute.values or ()
                elif attribute.kind == "per_class":
                    values = (attribute.per_class or {}).get(label.name, ())
                else:
                    values = tuple(v for v, implied in (attribute.label_map or {}).items() if label.name in implied)
                extra = self.catch_all_for(attribute.name, label.name)
                if extra is not None and extra not in values:
                    values = (*values, extra)
                lists[(attribute.name, label.name)] = values
        return lists

    def values_for(self, attribute: str, label: str) -> tuple[str, ...]:
        """The values a sample of ``label`` draws ``attribute`` from (catch-all included)."""
        return self._value_lists[(attribute, label)]

    @cached_property
    def _owned_values(self) -> dict[tuple[str, str], tuple[str, ...]]:
        owned: dict[tuple[str, str], list[str]] = {}
        for attribute in self.attributes:
            for value, implied in (attribute.label_map or {}).items():
                owned.setdefault((attribute.name, implied[0]), []).append(value)
        return {key: tuple(values) for key, values in owned.items()}

    def owned_values(self, attribute: str, label: str) -> tuple[str, ...]:
        """The values of label_map dimension ``attribute`` whose first label is ``label``: every value has one
        owner, so looping over each class's owned values visits every value once (the paper's arxiv loop)."""
        return self._owned_values.get((attribute, label), ())

    def paper_deviations(self) -> list[str]:
        """What paper mode does differently from the reference code: the recipe's list, and the classes whose
        prompts lack the reference's exclusion line because the recipe has no similar-class list for them."""
        if self.paper is None:
            return []
        deviations = list(self.paper.deviations)
        used = meta.find_undeclared_variables(template_environment().parse(self.paper.prompts["attributed"]))
        missing = [label for label in self.label_names if label not in self.similar]
        if "similar_classes" in used and missing:
            shown = ", ".join(missing[:5]) + (", ..." if len(missing) > 5 else "")
            deviations.insert(
                0,
                f"{len(missing)} of {len(self.labels)} classes ({shown}) have no similar-class list, so their prompts "
                "lack the reference's 'relevant to X and irrelevant to: ...' line; `attrprompt discover --similar-only` "
                "makes the lists with your LLM.",
            )
        return deviations

    def to_dict(self) -> dict[str, Any]:
        """The recipe as plain data; ``parse_recipe(recipe.to_dict())`` gives an equal recipe."""
        data: dict[str, Any] = {"name": self.name}
        if self.pretty_name:
            data["pretty_name"] = self.pretty_name
        if self.description:
            data["description"] = self.description
        data.update(domain=self.domain, language=self.language, license=self.license)
        if self.multi_label:
            data["multi_label"] = True
        data["labels"] = [
            label.name if label.text == default_label_text(label.name) else {"name": label.name, "text": label.text}
            for label in self.labels
        ]
        attributes = []
        for attribute in self.attributes:
            item: dict[str, Any] = {"name": attribute.name}
            if attribute.kind == "shared":
                item["values"] = list(attribute.values or ())
            elif attribute.kind == "per_class":
                item["per_class"] = {k: list(v) for k, v in (attribute.per_class or {}).items()}
            else:
                item["label_map"] = {k: list(v) for k, v in (attribute.label_map or {}).items()}
            if attribute.catch_all:
                item["catch_all"] = attribute.catch_all
            if attribute.per_label:
                item["per_label"] = True
            attributes.append(item)
        data["attributes"] = attributes
        if self.similar:
            data["similar"] = {k: list(v) for k, v in self.similar.items()}
        data["prompts"] = {"attributed": self.attributed_template, "simple": self.simple_template}
        data["generation"] = {
            "temperature": self.generation.temperature,
            "top_p": self.generation.top_p,
            "max_new_tokens": self.generation.max_new_tokens,
        }
        if self.source:
            data["source"] = self.source
        if self.paper is not None:
            data["paper"] = self.paper.to_dict()
        return data

    def to_yaml(self) -> str:
        return dump_yaml(self.to_dict())

    @cached_property
    def fingerprint(self) -> str:
        """Hash of everything that shapes prompts and labels (not where the recipe was read from)."""
        canonical = json.dumps(self.to_dict(), sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]


class _LiteralDumper(yaml.SafeDumper):
    """Writes multi-line strings (prompt templates) as readable ``|`` blocks."""


def _str_representer(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_LiteralDumper.add_representer(str, _str_representer)


def dump_yaml(data: Any) -> str:
    return yaml.dump(data, Dumper=_LiteralDumper, sort_keys=False, allow_unicode=True, width=4096)


def load_recipe(path: str | Path) -> Recipe:
    """Read and validate a recipe YAML file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as err:
        raise RecipeError(f"{path}: file not found; pass a preset name or the path of a recipe YAML file") from err
    except OSError as err:
        raise RecipeError(f"{path}: cannot read the recipe ({err.strerror}); check the path and permissions") from err
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # a SafeLoader that refuses repeated keys
    except yaml.YAMLError as err:
        raise invalid_yaml(path, err) from err
    return parse_recipe(data, origin=str(path))


class _DuplicateKeyError(yaml.constructor.ConstructorError):
    """A mapping names the same key twice."""


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's safe loader, except that a key given twice in one mapping is an error.

    Plain PyYAML keeps the last value silently, so a second ``labels:`` further down a long recipe would
    replace the first without a word.
    """

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *base` merges, and explicit keys may override it
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                repeated = key in seen
                seen.add(key)
            except TypeError:  # an unhashable key: construct_mapping below says so
                continue
            if repeated:
                raise _DuplicateKeyError(None, None, f"key {key!r} appears twice in one mapping", key_node.start_mark)
        return super().construct_mapping(node, deep=deep)


def invalid_yaml(path: str | Path, err: yaml.YAMLError) -> RecipeError:
    """One line saying where the YAML of ``path`` breaks, without PyYAML's multi-line context."""
    mark = getattr(err, "problem_mark", None)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    problem = getattr(err, "problem", None) or "invalid YAML"
    fix = "fix the syntax"
    if isinstance(err, _DuplicateKeyError):
        fix = "keep one of them (the second would silently replace the first)"
    return RecipeError(f"{path}: invalid YAML{where}: {problem}; {fix}")


def parse_recipe(data: Any, *, origin: str = "<recipe>") -> Recipe:
    """Validate plain data (as loaded from YAML) into a ``Recipe``."""
    fields = RecipeParser(origin).parse(data)
    fields["labels"] = tuple(Label(**label) for label in fields["labels"])
    fields["attributes"] = tuple(Attribute(**attribute) for attribute in fields["attributes"])
    fields["generation"] = GenerationDefaults(**fields["generation"])
    if fields.get("paper") is not None:
        fields["paper"] = PaperSettings(**fields["paper"])
    return Recipe(**fields)
