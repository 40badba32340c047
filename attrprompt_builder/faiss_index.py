"""A growing cosine-similarity index: exact while small, inverted lists (IVF) beyond a size limit.

Vectors are unit rows, so cosine similarity is the inner product (``METRIC_INNER_PRODUCT``); both
index kinds compute exact inner products for the rows they compare, so a similarity threshold
means the same thing on both. Ids are the order of ``add``: the n-th vector added has id n,
whichever index holds it.

Why IVF and not HNSW: on 100k hashed-ngram vectors (bench/dedup.py's texts, one core), HNSW
(M=32, efConstruction=64) added ~8k vectors/s and needed efSearch=128 (~4k queries/s) to find
99.8% of the matches at the threshold; IVF with 1024 lists adds ~180k/s and, probing 4 lists, found
99.7% of them at ~20k queries/s: near-duplicates sit in the same or a neighbouring cell.
"""

from __future__ import annotations

import math
import os
import threading

import faiss
import numpy as np

__all__ = [
    "DEFAULT_EXACT_LIMIT",
    "DEFAULT_NPROBE",
    "GroupedIndex",
    "GrowingIndex",
    "OwnedIndex",
    "configure_faiss",
]

#: Up to this many vectors an index stays exact (IndexFlatIP): exact search needs no tuning, and
#: batched through BLAS it costs about what the IVF costs below this size (bench/dedup.py).
DEFAULT_EXACT_LIMIT = 20_000
#: Lists searched per query: 4 of 1024 found 99.7% of exact search's matches at the threshold on
#: hashed-ngram vectors (nearly random directions, the hard case), 8 found 99.9% at 2/3 the speed.
DEFAULT_NPROBE = 4
_MAX_LISTS = 1024  # k-means on 20k+ points into 1024 lists takes about a second; more lists cost more
_VECTORS_PER_LIST = 16  # fewer lists while the index is small
_TRAINING_POINTS_PER_LIST = 64
_REBUILD_GROWTH = 4  # below _MAX_LISTS, retrain with more lists each time the index grows 4x

_threads: int | None = None  # the process-wide choice; OpenMP applies it per calling thread
_thread_state = threading.local()


def configure_faiss(*, threads: int | None = None) -> None:
    """Choose FAISS's thread count (first call, or an explicit ``threads``) and its BLAS cut-over.

    FAISS's OpenMP threads spin after each parallel region and would steal the cores that the
    encoder (torch) and the generation loop use between searches; the filter's searches are small
    and sequential, so one thread is the default (``ATTRPROMPT_FAISS_THREADS`` overrides). One
    thread also keeps k-means training deterministic. OpenMP keeps the setting per thread and the
    builder searches from an executor thread, so every index call re-applies it where it runs.
    FAISS 1.15's default BLAS cut-over (``distance_compute_blas_threshold`` = 128000) keeps
    batches of a few hundred queries on its per-query loop; through BLAS, 256 queries over 20k
    flat rows ran 6x faster here, so the cut-over is set back to 20 queries.
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

    def __init__(self, dim: int, *, exact_limit: int = DEFAULT_EXACT_LIMIT, nprobe: int = DEFAULT_NPROBE) -> None:
        configure_faiss()
        self.dim = dim
        self.exact_limit = exact_limit
        self.nprobe = nprobe
        self._index: faiss.Index = faiss.IndexFlatIP(dim)
        self._built_at = 0  # vectors the current IVF was trained with

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
        self._index.add(np.ascontiguousarray(vectors, dtype=np.float32))
        if not self.approximate:
            if self.ntotal > self.exact_limit:
                self._rebuild()
        elif self.ntotal >= _REBUILD_GROWTH * self._built_at and self._index.nlist < _MAX_LISTS:
            self._rebuild()

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` (similarities, ids) per query, best first; missing slots are ``(-inf, -1)``."""
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        _apply_threads()
        if self.ntotal == 0 or len(queries) == 0:
            return (np.full((len(queries), k), -np.inf, dtype=np.float32), np.full((len(queries), k), -1, np.int64))
        return self._index.search(queries, k)

    def vectors(self) -> np.ndarray:
        """Every stored vector, in id order."""
        return self._index.reconstruct_n(0, self.ntotal)

    def _rebuild(self) -> None:
        """Move every vector into a freshly trained IVF sized for the current count."""
        stored = self.vectors()
        count = len(stored)
        lists = min(_MAX_LISTS, 2 ** int(math.log2(max(1.0, count / _VECTORS_PER_LIST))))
        quantizer = faiss.IndexFlatIP(self.dim)
        index = faiss.IndexIVFFlat(quantizer, self.dim, lists, faiss.METRIC_INNER_PRODUCT)
        index.cp.niter = 10
        index.cp.spherical = True  # centroids on the unit sphere, like the vectors
        index.cp.min_points_per_centroid = 8  # 16+ per list is plenty here; FAISS would warn below 39
        # An evenly spaced sample: deterministic, and spread over the whole history.
        sample = stored[np.linspace(0, count - 1, min(count, _TRAINING_POINTS_PER_LIST * lists)).astype(np.int64)]
        index.train(sample)
        index.add(stored)
        index.make_direct_map()  # lets the next rebuild read the vectors back
        index.nprobe = self.nprobe
        self._index = index
        self._built_at = count


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


class GroupedIndex:
    """One ``GrowingIndex`` per group, plus (``cross_group``) an ``OwnedIndex`` over all of them.

    Groups are numbered 0, 1, ... in order of appearance; a row's id inside its group is its
    position among that group's rows. The cross-group view opens when a second group appears.
    """

    def __init__(self, dim: int, *, cross_group: bool, exact_limit: int = DEFAULT_EXACT_LIMIT, nprobe: int = DEFAULT_NPROBE) -> None:
        self.dim = dim
        self.cross_group = cross_group
        self._options = {"exact_limit": exact_limit, "nprobe": nprobe}
        self._groups: list[GrowingIndex] = []
        self._view: OwnedIndex | None = None

    def add_group(self) -> int:
        self._groups.append(GrowingIndex(self.dim, **self._options))
        if self.cross_group and len(self._groups) == 2:
            self._view = OwnedIndex(self.dim, **self._options)
            first = self._groups[0]
            if first.ntotal:
                self._view.add(first.vectors(), owners=np.zeros(first.ntotal, np.int32), positions=np.arange(first.ntotal))
        return len(self._groups) - 1

    def approximate(self, gid: int) -> bool:
        return self._groups[gid].approximate

    def nearest_in_group(self, vectors: np.ndarray, gids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per row, the best (similarity, position) among its own group's rows; (-inf, -1) if none."""
        sims = np.full(len(gids), -np.inf, dtype=np.float32)
        positions = np.full(len(gids), -1, dtype=np.int64)
        for gid in np.unique(gids).tolist():
            rows = np.flatnonzero(gids == gid)
            if self._groups[gid].ntotal:
                scores, ids = self._groups[gid].search(vectors[rows], 1)
                sims[rows], positions[rows] = scores[:, 0], ids[:, 0]
        return sims, positions

    def nearest_foreign(self, vectors: np.ndarray, gids: np.ndarray, *, threshold: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``OwnedIndex.best_foreign`` over every group's rows; (-inf, -1, -1) without a view."""
        if self._view is None:
            count = len(gids)
            return np.full(count, -np.inf, np.float32), np.full(count, -1, np.int32), np.full(count, -1, np.int64)
        return self._view.best_foreign(vectors, owners=gids, threshold=threshold)

    def add(self, vectors: np.ndarray, *, gids: np.ndarray, positions: np.ndarray) -> None:
        """Rows in order; ``positions`` must continue each group's numbering (0, 1, ...)."""
        for gid in np.unique(gids).tolist():
            self._groups[gid].add(vectors[gids == gid])
        if self._view is not None:
            self._view.add(vectors, owners=gids, positions=positions)
