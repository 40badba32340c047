"""A stand-in for the embedding *model* in dedup tests: each text's unit vector is chosen.

With it a test knows every similarity exactly; the filter, FAISS and ``deduplicate`` stay real.
"""

from __future__ import annotations

import math

import numpy as np

from attrprompt_builder.filters.dedup.filter import DedupDecision, NearDuplicateFilter

__all__ = ["VectorsByText", "at_angle", "run"]


class VectorsByText:
    """Test double for the embedding model: each text's unit vector is given."""

    kind = "test"
    name = "vectors-by-text"

    def __init__(self, vectors: dict[str, list[float]]) -> None:
        self.vectors = {text: np.asarray(v, np.float32) / np.linalg.norm(v) for text, v in vectors.items()}
        self.dim = len(next(iter(vectors.values())))
        self.calls: list[int] = []

    def encode(self, texts: list[str]) -> np.ndarray:
        self.calls.append(len(texts))
        return np.stack([self.vectors[text] for text in texts]).astype(np.float32)


def at_angle(degrees: float) -> list[float]:
    """A unit vector in a plane: cos(angle between two of them) is their similarity."""
    return [math.cos(math.radians(degrees)), math.sin(math.radians(degrees)), 0.0]


def run(dedup: NearDuplicateFilter, texts: list[str], *, batch: int, groups: list[str] | None = None) -> list[DedupDecision]:
    groups = groups or ["g"] * len(texts)
    out: list[DedupDecision] = []
    for start in range(0, len(texts), batch):
        out += dedup.check(texts[start : start + batch], groups[start : start + batch])
    return out
