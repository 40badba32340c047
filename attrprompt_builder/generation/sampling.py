"""Deterministic attribute draws: sample ``i`` of class ``c`` gets the same values for a given seed.

Every draw is a pure function of (seed, class, sample index, dimension), computed from a keyed hash,
so no generator state is shared between samples: concurrency, sharding and ``num_proc`` cannot
change what a sample draws, and adding a dimension to a recipe leaves the other dimensions' draws
unchanged.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from attrprompt_builder.recipe.model import Recipe

__all__ = ["AttributeDraw", "AttributeSampler", "SAMPLING_STRATEGIES", "class_quotas", "request_seed"]

SAMPLING_STRATEGIES = ("uniform", "balanced")


def _hash64(*parts: object) -> int:
    payload = "\x1f".join(map(str, parts)).encode("utf-8")
    return int.from_bytes(hashlib.blake2b(payload, digest_size=8).digest(), "big")


def request_seed(seed: int, label: str, index: int) -> int:
    """The per-request generation seed for sample ``index`` of ``label``.

    Kept below 2**31 because OpenAI-compatible servers validate ``seed`` as a signed 32-bit int.
    """
    return _hash64("request", seed, label, index) % (2**31)


def class_quotas(recipe: Recipe, samples_per_class: int, *, paper: bool, prompting: str) -> dict[str, int]:
    """Rows to keep per class: ``samples_per_class`` each, except where paper mode loops over a label_map
    dimension's values (arxiv's subtopics, the reference's loop): then ``samples_per_class`` per value, kept by
    the class that owns it (its first label), so a class may keep many rows or none."""
    iterate = recipe.paper.iterate if paper and recipe.paper is not None and prompting == "attributed" else None
    if iterate is None:
        return dict.fromkeys(recipe.label_names, samples_per_class)
    return {label: samples_per_class * len(recipe.owned_values(iterate, label)) for label in recipe.label_names}


@lru_cache(maxsize=4096)
def _permutation(seed: int, label: str, dimension: str, cycle: int, size: int) -> tuple[int, ...]:
    rng = np.random.default_rng(_hash64("cycle", seed, label, dimension, cycle))
    return tuple(int(i) for i in rng.permutation(size))


@dataclass(frozen=True)
class AttributeDraw:
    """What one sample drew: a value per dimension, and the labels the sample carries.

    A ``per_label`` dimension drew one value per label: ``lists`` holds them in prompt order and
    ``values`` their ``"; "``-joined text (the row's column). ``labels`` is in prompt order too (paper mode
    shuffles it, as the reference did); rows list labels in the recipe's order.
    """

    label: str
    index: int
    values: dict[str, str]
    labels: tuple[str, ...]
    lists: dict[str, tuple[str, ...]] = field(default_factory=dict)


class AttributeSampler:
    """Draws attribute values for (class, index) pairs of one recipe.

    ``strategy="uniform"`` is the paper's independent uniform draw. ``strategy="balanced"`` walks
    each dimension's values in a fresh seeded permutation every ``len(values)`` samples, so the first
    ``len(values)`` samples of a class cover every value exactly once.
    """

    def __init__(
        self, recipe: Recipe, *, seed: int, strategy: str = "uniform", paper: bool = False, prompting: str = "attributed"
    ) -> None:
        if strategy not in SAMPLING_STRATEGIES:
            raise ValueError(f"unknown sampling strategy {strategy!r}")
        self.recipe = recipe
        self.seed = seed
        self.strategy = strategy
        # Paper mode: the reference's loop (arxiv: each class walks the subtopics it owns) and its shuffles.
        settings = recipe.paper if paper else None
        self.iterate = settings.iterate if settings is not None and prompting == "attributed" else None
        self.extra_labels = settings.simple_extra_labels if settings is not None and prompting == "simple" else None
        self.shuffle = settings is not None

    def _index(self, label: str, dimension: str, index: int, size: int) -> int:
        if self.strategy == "balanced":
            cycle, position = divmod(index, size)
            return _permutation(self.seed, label, dimension, cycle, size)[position]
        return _hash64("draw", self.seed, label, dimension, index) % size

    def _shuffled(self, items: tuple[str, ...], *key: object) -> tuple[str, ...]:
        if not self.shuffle or len(items) < 2:
            return items
        order = np.random.default_rng(_hash64("shuffle", self.seed, *key)).permutation(len(items))
        return tuple(items[int(i)] for i in order)

    def draw(self, label: str, index: int) -> AttributeDraw:
        values: dict[str, str] = {}
        labels: tuple[str, ...] = (label,)
        for attribute in self.recipe.attributes:
            if attribute.label_map is None:
                continue
            if attribute.name == self.iterate:  # the reference loops over the values, not the classes
                owned = self.recipe.owned_values(attribute.name, label)
                value = owned[index % len(owned)]
            else:
                choices = self.recipe.values_for(attribute.name, label)
                value = choices[self._index(label, attribute.name, index, len(choices))]
            values[attribute.name] = value
            labels = self._shuffled(attribute.label_map[value], label, index, "labels")
        if self.extra_labels is not None:
            labels = self._with_extra_labels(label, index)
        lists: dict[str, tuple[str, ...]] = {}
        for attribute in self.recipe.attributes:
            name = attribute.name
            if attribute.label_map is not None:
                continue
            if attribute.per_label:
                drawn = []
                for of in labels:
                    choices = self.recipe.values_for(name, of)
                    drawn.append(choices[self._index(label, f"{name}/{of}", index, len(choices))])
                lists[name] = self._shuffled(tuple(drawn), label, index, name)
                values[name] = "; ".join(lists[name])
            else:
                choices = self.recipe.values_for(name, label)
                values[name] = choices[self._index(label, name, index, len(choices))]
        values = {name: values[name] for name in self.recipe.attribute_names}  # the recipe's order
        return AttributeDraw(label=label, index=index, values=values, labels=labels, lists=lists)

    def _with_extra_labels(self, label: str, index: int) -> tuple[str, ...]:
        """The reference's multi-label SimPrompt: min(max_labels, Zipf(a)) - 1 other classes, chosen at random."""
        assert self.extra_labels is not None
        rng = np.random.default_rng(_hash64("extra", self.seed, label, index))
        count = min(int(self.extra_labels["max_labels"]), int(rng.zipf(self.extra_labels["zipf"]))) - 1
        others = [name for name in self.recipe.label_names if name != label]
        picked = [others[int(i)] for i in rng.permutation(len(others))[:count]]
        return (label, *picked)
