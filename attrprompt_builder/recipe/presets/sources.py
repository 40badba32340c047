"""The per-dataset table behind the presets: ``sources.yml`` beside this module, loaded and validated.

How each AttrPrompt paper dataset becomes a preset (its folder, dimensions and prompt wording) is data;
``regenerate.py`` gets it from here as ``PresetSpec`` values. A malformed entry is one ``RecipeError``
line naming the preset and the field.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml

from attrprompt_builder.errors import RecipeError
from attrprompt_builder.recipe.model import invalid_yaml

__all__ = ["COMMON_DEVIATIONS_KEY", "LABEL_MAP", "PER_CLASS", "PresetSpec", "SHARED", "SOURCES_FILE", "load_sources"]

SOURCES_FILE = Path(__file__).resolve().with_name("sources.yml")
SHARED, PER_CLASS, LABEL_MAP = "shared", "per_class", "label_map"
_KINDS = (SHARED, PER_CLASS, LABEL_MAP)
_LABEL_TEXTS = ("spaced", "original")
# Top-level keys starting with "x-" are shared data, not presets; this one is appended to every preset's
# paper deviations (what paper mode does differently from the reference code for every dataset).
COMMON_DEVIATIONS_KEY = "x-paper-deviations"


@dataclass(frozen=True)
class PresetSpec:
    """How one paper dataset becomes a preset: one entry of sources.yml (its header explains each field)."""

    folder: str
    pretty_name: str
    summary: str
    domain: str
    dimensions: tuple[tuple[str, str], ...]  # (attribute name, SHARED | PER_CLASS | LABEL_MAP), prompt order
    intro: str
    requirements: tuple[str, ...]
    simple: str
    exclusion: str | None = None
    label_text: str = "spaced"
    multi_label: bool = False
    note: str = ""
    per_label: tuple[str, ...] = ()  # multi-label: per_class dimensions drawn once per label of the sample
    paper: Any = None  # the recipe's `paper:` section (recipe/validation.py checks it), common deviations appended


def _require(where: str, value: Any, *, valid: bool, fix: str) -> None:
    if not valid:
        raise RecipeError(f"{where}: {value!r:.80} is not valid; use {fix}")


def _field_value(where: str, key: str, value: Any) -> Any:
    """``value`` of field ``key`` as PresetSpec holds it; a RecipeError naming the field if it is malformed."""
    if key == "dimensions":
        _require(where, value, valid=isinstance(value, dict) and bool(value), fix="a mapping of attribute name -> kind")
        for dimension, kind in value.items():
            _require(f"{where}.{dimension}", kind, valid=kind in _KINDS, fix=" | ".join(_KINDS))
        return tuple(value.items())
    if key == "requirements":
        _require(where, value, valid=isinstance(value, list) and bool(value), fix="a list of prompt lines")
        for number, line in enumerate(value, start=1):
            is_line = isinstance(line, str) and bool(line.strip())
            _require(f"{where}[{number}]", line, valid=is_line, fix="a non-empty string")
        return tuple(value)
    if key == "per_label":
        _require(where, value, valid=isinstance(value, list), fix="a list of dimension names")
        return tuple(value)
    if key == "paper":
        _require(where, value, valid=isinstance(value, dict), fix="a mapping (the recipe's paper: section)")
        return value
    if key == "multi_label":
        _require(where, value, valid=isinstance(value, bool), fix="true or false")
    elif key == "label_text":
        _require(where, value, valid=value in _LABEL_TEXTS, fix=" or ".join(_LABEL_TEXTS))
    else:
        _require(where, value, valid=isinstance(value, str) and bool(value.strip()), fix="a non-empty string")
    return value


@cache
def load_sources(path: Path = SOURCES_FILE) -> Mapping[str, PresetSpec]:
    """The per-dataset table, validated; each problem is one RecipeError line naming the preset and field."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise RecipeError(f"{path}: cannot read the preset sources ({err.strerror}); restore the file") from err
    except yaml.YAMLError as err:
        raise invalid_yaml(path, err) from err
    _require(str(path), data, valid=isinstance(data, dict), fix="a mapping of preset name -> fields")
    fields = {field.name: field.default is dataclasses.MISSING for field in dataclasses.fields(PresetSpec)}
    specs: dict[str, PresetSpec] = {}
    common = data.get(COMMON_DEVIATIONS_KEY) or []
    _require(f"{path}: {COMMON_DEVIATIONS_KEY}", common, valid=isinstance(common, list), fix="a list of sentences")
    for name, entry in data.items():
        if name.startswith("x-"):
            continue
        where = f"{path}: {name}"
        _require(where, entry, valid=isinstance(entry, dict), fix="a mapping of field -> value")
        unknown = [key for key in entry if key not in fields]
        missing = [key for key, required in fields.items() if required and key not in entry]
        if unknown:
            raise RecipeError(f"{where}.{unknown[0]}: unknown field; use one of: {', '.join(fields)}")
        if missing:
            raise RecipeError(f"{where}.{missing[0]}: missing; add it (the file's header describes each field)")
        spec = PresetSpec(**{key: _field_value(f"{where}.{key}", key, value) for key, value in entry.items()})
        if spec.paper is not None:
            paper = {**spec.paper, "deviations": [*(spec.paper.get("deviations") or []), *common]}
            spec = dataclasses.replace(spec, paper=paper)
        specs[name] = spec
    return MappingProxyType(specs)
