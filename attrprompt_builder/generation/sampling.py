"""Deterministic attribute draws: sample ``i`` of class ``c`` gets the same values for a given seed.

Every draw is a pure function of (seed, class, sample index, dimension), computed from a keyed hash,
so no generator state is shared between samples: concurrency, sharding and ``num_proc`` cannot
change what a sample draws, and adding a dimension to a recipe leaves the other dimensions' draws
unchanged.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from attrprompt_builder.recipe.model import Recipe

__all__ = ["AttributeDraw", "AttributeSampler", "SAMPLING_STRATEGIES", "request_seed"]

SAMPLING_STRATEGIES = ("uniform", "balanced")


def _hash64(*parts: object) -> int:
    payload = "\x1f".join(map(str, parts)).encode("utf-8")
    return int.from_bytes(hashlib.blake2b(payload, digest_size=8).digest(), "big")


def request_seed(seed: int, label: str, index: int) -> int:
    """The per-request generation seed for sample ``index`` of ``label``.

    Kept below 2**31 because OpenAI-compatible servers validate ``seed`` as a signed 32-bit int.
    """
    return _hash64("request", seed, label, index) % (2**31)


@lru_cache(maxsize=4096)
def _permutation(seed: int, label: str, dimension: str, cycle: int, size: int) -> tuple[int, ...]:
    rng = np.random.default_rng(_hash64("cycle", seed, label, dimension, cycle))
    return tuple(int(i) for i in rng.permutation(size))


@dataclass(frozen=True)
class AttributeDraw:
    """What one sample drew: a value per dimension, and the labels the sample carries."""

    label: str
    index: int
    values: dict[str, str]
    labels: tuple[str, ...]


class AttributeSampler:
    """Draws attribute values for (class, index) pairs of one recipe.

    ``strategy="uniform"`` is the paper's independent uniform draw. ``strategy="balanced"`` walks
    each dimension's values in a fresh seeded permutation every ``len(values)`` samples, so the first
    ``len(values)`` samples of a class cover every value exactly once.
    """

    def __init__(self, recipe: Recipe, *, seed: int, strategy: str = "uniform") -> None:
        if strategy not in SAMPLING_STRATEGIES:
            raise ValueError(f"unknown sampling strategy {strategy!r}")
        self.recipe = recipe
        self.seed = seed
        self.strategy = strategy

    def _index(self, label: str, dimension: str, index: int, size: int) -> int:
        if self.strategy == "balanced":
            cycle, position = divmod(index, size)
            return _permutation(self.seed, label, dimension, cycle, size)[position]
        return _hash64("draw", self.seed, label, dimension, index) % size

    def draw(self, label: str, index: int) -> AttributeDraw:
        values: dict[str, str] = {}
        labels: tuple[str, ...] = (label,)
        for attribute in self.recipe.attributes:
            choices = self.recipe.values_for(attribute.name, label)
            value = choices[self._index(label, attribute.name, index, len(choices))]
            values[attribute.name] = value
            if attribute.label_map is not None:
                labels = attribute.label_map[value]
        return AttributeDraw(label=label, index=index, values=values, labels=labels)
