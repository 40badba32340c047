"""The one way this stage gets sentence vectors, so the source (embedder, a folder's vector cache) changes here only."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from attrprompt_builder.filters.dedup.embedders import Embedder, load_embedder

__all__ = ["text_vectors"]

_BATCH = 256  # rows per encode call: progress moves and memory stays flat on large datasets


def text_vectors(
    texts: Sequence[str], *, embedder: str | Path | Embedder | None = None, progress: object | None = None
) -> np.ndarray:
    """L2-normalised float32 vectors of ``texts`` (shape ``(len(texts), dim)``) from the dedup embedder.

    ``embedder`` is what ``load_embedder`` takes (None: MiniLM); ``progress`` is a tqdm bar advanced
    by the number of texts encoded.
    """
    model = load_embedder(embedder)
    parts = []
    for start in range(0, len(texts), _BATCH):
        batch = [text or "" for text in texts[start : start + _BATCH]]
        parts.append(model.encode(batch))
        if progress is not None:
            progress.update(len(batch))  # type: ignore[attr-defined]
    if not parts:
        return np.zeros((0, model.dim), dtype=np.float32)
    return np.ascontiguousarray(np.concatenate(parts), dtype=np.float32)
