"""Rebuild the packaged presets from the AttrPrompt paper's released attribute files.

``python -m attrprompt_builder.recipe.presets.regenerate [--source PATH] [--out DIR] [--check]``

The paper's files are LLM output: numbered or bulleted lines, stray quotes, blank lines, a few
repeated values, files for classes that are not in ``label.txt``. This script turns them into one
validated recipe YAML per dataset, deterministically, so the committed presets can be checked
against their source (``--check``) instead of being trusted. What differs between datasets (folders,
dimensions, prompt wording) is data: ``sources.yml``, read by ``sources.py``.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from attrprompt_builder.errors import AttrPromptError, ConfigError, RecipeError
from attrprompt_builder.recipe.model import Recipe, dump_yaml, parse_recipe
from attrprompt_builder.recipe.presets.sources import (
    PER_CLASS,
    SHARED,
    PresetSpec,
    load_sources,
)

__all__ = [
    "DEFAULT_OUT",
    "DEFAULT_SOURCE",
    "PRESETS",
    "PresetBuild",
    "build_preset",
    "clean_value",
    "main",
    "preset_yaml",
]

# The paper's files sit in ``shared/`` beside the repository: found from a source checkout, or from
# the repository root as the working directory when the package is installed elsewhere.
_CANDIDATES = (Path(__file__).resolve().parents[3], Path.cwd().resolve().parent)
DEFAULT_SOURCE = next(
    (root / "shared" / "attrprompt-paper" for root in _CANDIDATES if (root / "shared" / "attrprompt-paper").is_dir()),
    _CANDIDATES[0] / "shared" / "attrprompt-paper",
)
DEFAULT_OUT = Path(__file__).resolve().parent
PAPER_REPO = "yueyu1030/AttrPrompt"
PAPER_COMMIT = "3a05ffdcced6cacfd338e89ea8d0cd64ff449fa7"
MODEL_FOLDER = Path("attrprompt") / "gpt-3.5-turbo"
CATCH_ALL = "Others {{ dimension }} for {{ label_text }}."
# A released similar-class list naming more than this share of the label set is broken (arxiv has five
# naming about 97 of its 98 classes); the default mode drops it. Paper mode has no exclusion line for arxiv.
BROKEN_SIMILAR_SHARE = 0.5
LICENSE_NOTE = (
    "License `other`: the attribute values are Apache-2.0 (from the paper, see `source`); the text you "
    "generate with this preset follows the terms of the model you run."
)
SOURCE_NOTE = (
    'Yue Yu et al., "Large Language Model as Attributed Training Data Generator: A Tale of Diversity '
    'and Bias", NeurIPS 2023 Datasets and Benchmarks (arXiv:2306.15895). Attribute values from '
    f"https://github.com/{PAPER_REPO} at commit {PAPER_COMMIT}, datasets/{{folder}}/, Apache-2.0; "
    "values cleaned by attrprompt-builder's presets/regenerate.py."
)
HEADER = (
    "# GENERATED FILE: do not edit by hand.\n"
    "# Regenerate with `python -m attrprompt_builder.recipe.presets.regenerate` (checks: `--check`).\n"
    f"# Attribute values: AttrPrompt paper, {PAPER_REPO}@{PAPER_COMMIT}, Apache-2.0;\n"
    "# see NOTICE and LICENSE in this folder.\n"
)

# A list marker the paper's LLM put before a value: "1.", "1)", "(1)", "-", "*", "•". A digit run
# must be followed by "." or ")" and no further digit, so "3D printing" and "3.5mm jack" survive.
_LIST_MARKER = re.compile(r"^(?:\(?\d+[.)](?!\d)|[-*\u2022]+)\s*")


def clean_value(line: str) -> str:
    """One raw line of the paper's files as an attribute value ("" for a line with no value).

    Markers and wrapping quotes are peeled repeatedly ("- 1. 'x'" -> "x"). Quotes are removed only
    when they wrap the whole value, so a value that merely starts with a quoted title
    (``"Abbey Road" by The Beatles``) keeps both of its quotes.
    """
    value = line.strip()
    while True:
        previous = value
        value = _LIST_MARKER.sub("", value, count=1).strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'" and value[0] not in value[1:-1]:
            value = value[1:-1].strip()
        if value == previous:
            return value


PRESETS: Mapping[str, PresetSpec]  # sources.yml, read on first use (see __getattr__)


def __getattr__(name: str) -> Any:
    # Lazy, so a broken sources.yml reaches main() as its one-line error instead of an import traceback.
    if name == "PRESETS":
        return load_sources()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@dataclass(frozen=True)
class PresetBuild:
    """A built preset and what the build had to say about its source files."""

    recipe: Recipe
    notes: tuple[str, ...]  # ignored files, empty lists, dropped duplicates
    dropped_duplicates: int

    def summary(self) -> str:
        """One line: classes, and per dimension how many values it holds."""
        parts = []
        for attribute in self.recipe.attributes:
            if attribute.kind == SHARED:
                parts.append(f"{attribute.name} ({len(attribute.values or ())})")
            elif attribute.kind == PER_CLASS:
                total = sum(len(values) for values in (attribute.per_class or {}).values())
                parts.append(f"{attribute.name} (per class, {total} + catch-all)")
            else:
                parts.append(f"{attribute.name} (label map, {len(attribute.label_map or {})})")
        similar = f"similar lists for {len(self.recipe.similar)} classes" if self.recipe.similar else "no similar lists"
        return (
            f"{self.recipe.name}: {len(self.recipe.labels)} classes; {len(self.recipe.attributes)} dimensions: "
            f"{', '.join(parts)}; {similar}; {self.dropped_duplicates} duplicates dropped"
        )


class _SourceReader:
    """Reads one dataset folder, remembering every file it read so unread ones can be reported."""

    def __init__(self, root: Path, name: str) -> None:
        self.root = root
        self.name = name
        self.read: set[Path] = set()
        self.notes: list[str] = []
        self.dropped = 0

    def text(self, path: Path) -> str:
        try:
            content = path.read_text(encoding="utf-8")
        except FileNotFoundError as err:
            raise RecipeError(
                f"{self.name}: missing source file {path}; the AttrPrompt data under --source is incomplete"
            ) from err
        self.read.add(path)
        return content

    def labels(self) -> list[tuple[str, str]]:
        """(name, original line) per class; the paper's loader lower-cased and joined words with "_"."""
        lines = [line.strip() for line in self.text(self.root / "label.txt").splitlines()]
        return [(line.lower().replace(" ", "_"), line) for line in lines if line]

    def value_list(self, path: Path, *, clean: bool = True) -> tuple[str, ...]:
        """The non-blank values of a file, first occurrence kept (the validator rejects repeats)."""
        values: dict[str, None] = {}
        for line in self.text(path).splitlines():
            value = clean_value(line) if clean else line.strip()
            if value in values:
                self.dropped += 1
                self.notes.append(f"{self.name}: dropped repeated value {value[:60]!r} in {self.rel(path)}")
            elif value:
                values[value] = None
        return tuple(values)

    def shared(self, folder: Path) -> tuple[str, ...]:
        # Class-independent files hold plain lines ("30", "Europe"), never list markers.
        return self.value_list(folder / f"{folder.name}.txt", clean=False)

    def per_class(self, folder: Path, labels: list[str]) -> dict[str, tuple[str, ...]]:
        return {label: self.value_list(folder / f"{label}.jsonl") for label in labels}

    def label_map(self, folder: Path, labels: list[str]) -> dict[str, list[str]]:
        path = folder / f"{folder.name}.json"
        try:
            raw = json.loads(self.text(path))
        except json.JSONDecodeError as err:
            raise RecipeError(f"{self.name}: {self.rel(path)} is not valid JSON ({err.msg})") from err
        label_map: dict[str, list[str]] = {}
        for key, entry in raw.items():
            value = clean_value(key)
            implied = entry.get("lbl") if isinstance(entry, dict) else None
            if not value or not isinstance(implied, list) or value in label_map:
                raise RecipeError(f"{self.name}: {self.rel(path)}: entry {key!r} is blank, repeated or has no `lbl` list")
            unknown = [label for label in implied if label not in labels]
            if unknown:
                raise RecipeError(f"{self.name}: {self.rel(path)}: subtopic {key!r} names unknown label {unknown[0]!r}")
            label_map[value] = sorted(set(implied), key=labels.index)
        return label_map

    def rel(self, path: Path) -> str:
        return str(path.relative_to(self.root))

    def note_unread(self, folders: list[Path]) -> None:
        for folder in folders:
            for path in sorted(folder.iterdir()):
                if path in self.read:
                    continue
                why = "class not in label.txt" if path.suffix == ".jsonl" else f"the paper read {folder.name}.txt"
                self.notes.append(f"{self.name}: ignored {self.rel(path)} ({why})")


def _dimension_folder(base: Path, name: str) -> Path:
    """The paper generated from the filtered values where a ``<name>_filter`` folder exists."""
    filtered = base / f"{name}_filter"
    return filtered if filtered.is_dir() else base / name


def _attributed_template(spec: PresetSpec) -> str:
    lines = [spec.intro, *(f"{i}. {text}" for i, text in enumerate(spec.requirements, start=1))]
    template = "\n".join(lines)
    if spec.exclusion:
        # Conditional: a class may have no similar classes left once the sample's own labels are removed.
        number = len(spec.requirements) + 1
        template += f"\n{{%- if similar_classes %}}\n{number}. {spec.exclusion}\n{{%- endif %}}"
    return template


def build_preset(name: str, *, source: Path) -> PresetBuild:
    """Read the paper's files for preset ``name`` and validate them into a recipe."""
    spec = load_sources()[name]
    root = source / "datasets" / spec.folder
    if not root.is_dir():
        raise ConfigError(
            f"--source: {source} has no datasets/{spec.folder} folder; point --source at the AttrPrompt "
            "data (the folder holding datasets/)"
        )
    reader = _SourceReader(root, name)
    base = root / MODEL_FOLDER
    labels = reader.labels()
    names = [label for label, _ in labels]
    attributes: list[dict[str, Any]] = []
    used_folders: list[Path] = []
    for dim, kind in spec.dimensions:
        folder = _dimension_folder(base, dim)
        used_folders.append(folder)
        item: dict[str, Any] = {"name": dim}
        if kind == SHARED:
            item["values"] = list(reader.shared(folder))
        elif kind == PER_CLASS:
            item["per_class"] = {k: list(v) for k, v in reader.per_class(folder, names).items()}
            item["catch_all"] = CATCH_ALL
            if dim in spec.per_label:
                item["per_label"] = True
        else:
            item["label_map"] = reader.label_map(folder, names)
        attributes.append(item)
    similar: dict[str, list[str]] = {}
    if spec.exclusion and not (base / "similar").is_dir():
        reader.notes.append(
            f"{name}: the paper released no similar/ lists, so prompts have no exclusion line; "
            f"`attrprompt discover --similar-only --preset {name}` makes them with your LLM"
        )
    elif spec.exclusion:
        used_folders.append(base / "similar")
        for label, values in reader.per_class(base / "similar", names).items():
            if len(values) > len(names) * BROKEN_SIMILAR_SHARE:
                # Such a list is the label set itself, not the few classes easily confused with this one: it
                # would exclude nearly every topic and make a prompt of thousands of characters.
                reader.notes.append(
                    f"{name}: dropped similar/{label}.jsonl: it names {len(values)} of the {len(names)} classes, "
                    "not the few confusable ones; prompts of this class have no exclusion line"
                )
            elif values:
                similar[label] = list(values)
            else:
                reader.notes.append(f"{name}: similar/{label}.jsonl is empty; {label} has no similar classes")
    reader.note_unread(used_folders)
    unused = sorted(p.name for p in base.iterdir() if p.is_dir() and p not in used_folders)
    reader.notes.extend(f"{name}: ignored folder {folder}/ (not a dimension of this preset)" for folder in unused)
    dims = ", ".join(dim for dim, _ in spec.dimensions)
    summary = (
        f"AttrPrompt preset for {spec.summary}, {len(names)} classes: attributed prompts drawing {dims} from the "
        "values gpt-3.5-turbo produced for the AttrPrompt paper."
    )
    data: dict[str, Any] = {
        "name": name,
        "pretty_name": spec.pretty_name,
        "description": " ".join(part for part in (summary, spec.note, LICENSE_NOTE) if part),
        "domain": spec.domain,
        "language": "en",
        "license": "other",
        "multi_label": spec.multi_label,
        "labels": [
            {"name": label, "text": line if spec.label_text == "original" else label.replace("_", " ")} for label, line in labels
        ],
        "attributes": attributes,
        "similar": similar,
        "prompts": {"attributed": _attributed_template(spec), "simple": spec.simple},
        "generation": {"temperature": 1.0, "top_p": 1.0, "max_new_tokens": 512},
        "source": SOURCE_NOTE.format(folder=spec.folder),
    }
    if spec.paper is not None:
        data["paper"] = spec.paper
    recipe = parse_recipe(data, origin=f"preset {name}")
    return PresetBuild(recipe=recipe, notes=tuple(reader.notes), dropped_duplicates=reader.dropped)


def preset_yaml(recipe: Recipe) -> str:
    """The committed file: the generated-file header, then the recipe in canonical form."""
    return HEADER + dump_yaml(recipe.to_dict())


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m attrprompt_builder.recipe.presets.regenerate",
        description="Rebuild the preset YAML files from the AttrPrompt paper's attribute files.",
    )
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE, help="folder holding datasets/ (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where the YAML files go (default: %(default)s)")
    parser.add_argument("--check", action="store_true", help="compare with the files in --out instead of writing")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Build every preset; write them, or with ``--check`` report which files differ. Returns the exit code."""
    args = _parse_args(argv)
    try:
        if not (args.source / "datasets").is_dir():
            raise ConfigError(
                f"--source: {args.source} has no datasets/ folder; point --source at the AttrPrompt data "
                "(the folder holding datasets/ and LICENSE)"
            )
        stale: list[str] = []
        for name in sorted(load_sources()):
            build = build_preset(name, source=args.source)
            for note in build.notes:
                print(note)
            print(build.summary())
            path = args.out / f"{name}.yaml"
            text = preset_yaml(build.recipe)
            if args.check:
                current = path.read_text(encoding="utf-8") if path.is_file() else None
                if current != text:
                    stale.append(f"{path.name} ({'missing' if current is None else 'differs'})")
            else:
                args.out.mkdir(parents=True, exist_ok=True)
                path.write_text(text, encoding="utf-8", newline="\n")
    except AttrPromptError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if stale:
        print(
            f"presets out of date in {args.out}: {', '.join(stale)}; run python -m attrprompt_builder.recipe.presets.regenerate",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
