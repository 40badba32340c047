"""The one way this stage gets sentence vectors: through the vector store, so each text is embedded once."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from attrprompt_builder.filters.dedup.embedders import Embedder
from attrprompt_builder.filters.dedup.vectors import VectorStore, vectors_for

__all__ = ["text_vectors"]


def text_vectors(
    texts: Sequence[str],
    *,
    embedder: str | Path | Embedder | None = None,
    precision: str = "auto",
    cache: VectorStore | str | Path | None = None,
    progress: str | None = None,
) -> np.ndarray:
    """L2-normalised float32 vectors of ``texts`` (shape ``(len(texts), dim)``) from the dedup embedder.

    ``cache``: the vectors a build or a generated folder already holds (``filters.dedup.vectors``),
    which also receives the ones computed here; ``progress``: the bar's title (None: no bar).
    """
    return vectors_for([text or "" for text in texts], embedder=embedder, precision=precision, cache=cache, progress=progress)
