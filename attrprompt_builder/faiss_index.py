"""A growing cosine-similarity index: exact while small, HNSW once it passes a size limit.

Vectors are unit rows, so cosine similarity is the inner product (``METRIC_INNER_PRODUCT``) and
a similarity threshold means the same thing on both index kinds. Ids are the order of ``add``:
the n-th vector added has id n, whichever index holds it.
"""

from __future__ import annotations

import os
import threading

import faiss
import numpy as np

__all__ = [
    "DEFAULT_EF_CONSTRUCTION",
    "DEFAULT_EF_SEARCH",
    "DEFAULT_EXACT_LIMIT",
    "DEFAULT_HNSW_M",
    "GrowingIndex",
    "configure_faiss",
]

#: Up to this many vectors an index stays exact (IndexFlatIP); one flat search over 20k rows costs
#: about what an HNSW search costs, and exact search needs no tuning. See bench/dedup.py.
DEFAULT_EXACT_LIMIT = 20_000
DEFAULT_HNSW_M = 32
DEFAULT_EF_CONSTRUCTION = 64
#: Measured by bench/dedup.py: recall of the near-duplicate decision vs exact search >= 0.99.
DEFAULT_EF_SEARCH = 128

_threads: int | None = None  # the process-wide choice; OpenMP applies it per calling thread
_thread_state = threading.local()


def configure_faiss(*, threads: int | None = None) -> None:
    """Choose FAISS's thread count (first call, or an explicit ``threads``) and its BLAS cut-over.

    FAISS's OpenMP threads spin after each parallel region and would steal the cores that the
    encoder (torch) and the generation loop use between searches; the filter's searches are small
    and sequential, so one thread is the default (``ATTRPROMPT_FAISS_THREADS`` overrides). One
    thread also keeps HNSW construction deterministic. OpenMP keeps the setting per thread and the
    builder searches from an executor thread, so every index call re-applies it where it runs.
    Batched flat searches are several times faster through BLAS than through FAISS's per-query
    loop, which it otherwise uses below 128k queries per call.
    """
    global _threads
    if threads is None and _threads is not None:
        return
    if threads is None:
        threads = int(os.environ.get("ATTRPROMPT_FAISS_THREADS", "1") or 1)
    _threads = max(1, threads)
    faiss.cvar.distance_compute_blas_threshold = 20
    _apply_threads()


def _apply_threads() -> None:
    if getattr(_thread_state, "threads", None) != _threads:
        faiss.omp_set_num_threads(_threads)
        _thread_state.threads = _threads


class GrowingIndex:
    """Unit vectors of one kind (a class, or the whole dataset), searchable by inner product."""

    def __init__(
        self,
        dim: int,
        *,
        exact_limit: int = DEFAULT_EXACT_LIMIT,
        hnsw_m: int = DEFAULT_HNSW_M,
        ef_construction: int = DEFAULT_EF_CONSTRUCTION,
        ef_search: int = DEFAULT_EF_SEARCH,
    ) -> None:
        configure_faiss()
        self.dim = dim
        self.exact_limit = exact_limit
        self.hnsw_m = hnsw_m
        self.ef_construction = ef_construction
        self.ef_search = ef_search
        self._index: faiss.Index = faiss.IndexFlatIP(dim)

    @property
    def ntotal(self) -> int:
        return int(self._index.ntotal)

    @property
    def approximate(self) -> bool:
        return not isinstance(self._index, faiss.IndexFlat)

    def add(self, vectors: np.ndarray) -> None:
        if len(vectors) == 0:
            return
        _apply_threads()
        if not self.approximate and self.ntotal + len(vectors) > self.exact_limit:
            self._switch_to_hnsw()
        self._index.add(np.ascontiguousarray(vectors, dtype=np.float32))

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` (similarities, ids) per query, best first; missing slots are ``(-inf, -1)``."""
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        _apply_threads()
        if self.ntotal == 0 or len(queries) == 0:
            return (np.full((len(queries), k), -np.inf, dtype=np.float32), np.full((len(queries), k), -1, np.int64))
        if self.approximate and k > self.ef_search:
            params = faiss.SearchParametersHNSW()
            params.efSearch = k
            return self._index.search(queries, k, params=params)
        return self._index.search(queries, k)

    def vectors(self) -> np.ndarray:
        """Every stored vector, in id order."""
        return self._index.reconstruct_n(0, self.ntotal)

    def _switch_to_hnsw(self) -> None:
        stored = self.vectors()
        hnsw = faiss.IndexHNSWFlat(self.dim, self.hnsw_m, faiss.METRIC_INNER_PRODUCT)
        hnsw.hnsw.efConstruction = self.ef_construction
        hnsw.hnsw.efSearch = self.ef_search
        hnsw.add(stored)
        self._index = hnsw


class OwnedIndex:
    """Vectors of every group in one index, each tagged with its group and its position there.

    It answers "is there a near-duplicate in *another* group" with one search for all groups,
    where asking each group's own index would cost one search per group.
    """

    def __init__(self, dim: int, **index_options: int) -> None:
        self._index = GrowingIndex(dim, **index_options)
        self._owner = np.zeros(0, dtype=np.int32)
        self._position = np.zeros(0, dtype=np.int64)
        self._size = 0

    @property
    def ntotal(self) -> int:
        return self._index.ntotal

    def add(self, vectors: np.ndarray, *, owners: np.ndarray, positions: np.ndarray) -> None:
        count = len(vectors)
        if self._size + count > len(self._owner):
            capacity = max(1024, 2 * (self._size + count))
            self._owner = np.resize(self._owner, capacity)
            self._position = np.resize(self._position, capacity)
        self._owner[self._size : self._size + count] = owners
        self._position[self._size : self._size + count] = positions
        self._size += count
        self._index.add(vectors)

    def best_foreign(
        self, queries: np.ndarray, *, owners: np.ndarray, threshold: float, k: int = 8
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per query, the most similar of its top ``k`` owned by another group, if >= threshold.

        Returns (similarity, owner, position); rows without such a match get (-inf, -1, -1). When
        all top ``k`` belong to the query's own group and reach the threshold, the query is a
        near-duplicate inside its group and is dropped anyway, so nothing is lost by not looking
        further.
        """
        count = len(queries)
        sims = np.full(count, -np.inf, dtype=np.float32)
        found_owner = np.full(count, -1, dtype=np.int32)
        found_position = np.full(count, -1, dtype=np.int64)
        if count == 0 or self.ntotal == 0:
            return sims, found_owner, found_position
        scores, ids = self._index.search(queries, min(k, self.ntotal))
        valid = ids >= 0
        owner_of = np.where(valid, self._owner[np.where(valid, ids, 0)], -1)
        foreign = valid & (owner_of != owners[:, None]) & (scores >= threshold)
        rows = np.flatnonzero(foreign.any(axis=1))
        first = foreign[rows].argmax(axis=1)
        sims[rows] = scores[rows, first]
        found_owner[rows] = owner_of[rows, first]
        found_position[rows] = self._position[ids[rows, first]]
        return sims, found_owner, found_position
