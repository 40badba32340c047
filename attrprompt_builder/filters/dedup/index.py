"""A growing cosine-similarity index: exact while small, inverted lists (IVF) beyond a size limit.

Vectors are unit rows, so cosine similarity is the inner product (``METRIC_INNER_PRODUCT``). Ids
are the order of ``add``: the n-th vector added has id n, whichever index holds it. Every score
returned is exact: the IVF scans bfloat16 copies and the best few of each query are scored again
against the float32 rows, so a similarity threshold means the same thing on both index kinds.

Why this shape (bench/dedup.py, 100k hashed-ngram vectors, one core): scanning inverted lists is
memory-bound (a float32 row is 1 KB), so 2-byte codes scan faster (bf16 ~1.7x, fp16 ~1.5x; the
int8 "direct" codecs returned wrong inner products in FAISS 1.15); centroids are compared in 64
principal components, 4x cheaper than in 256 dimensions; a query searches its nearest list plus
the lists whose centroid is nearly as close (``_PROBE_GAP``), where a fixed number of lists either
misses boundary cases or scans lists in vain; centroids come from two-level k-means (sqrt(lists)
coarse cells, then lists inside each), several times cheaper to train than one k-means over all
lists; rows are added to the list their search already found, without a second quantizer pass.
HNSW was slower: it needed efSearch=128 (~4k queries/s) to find 99.8% of the matches.
"""

from __future__ import annotations

import math
import os
import threading
from dataclasses import dataclass

import faiss
import numpy as np

__all__ = [
    "DEFAULT_EXACT_LIMIT",
    "DEFAULT_NPROBE",
    "GroupedIndex",
    "GrowingIndex",
    "Lookup",
    "OwnedIndex",
    "configure_faiss",
]

#: Up to this many vectors an index stays exact (IndexFlatIP). Past it an exact search costs more
#: than an IVF search (at 4k rows: ~15 us a query against ~7 us), and the flat stage costs 0.04 s.
DEFAULT_EXACT_LIMIT = 4096
#: Lists always searched per query; lists whose centroid is nearly as close are searched too.
DEFAULT_NPROBE = 1
# A list is searched too when its centroid is within _PROBE_GAP / sqrt(centroid dimensions) of
# the nearest one (up to _MAX_PROBES lists): two near-duplicates differ by a short vector, whose
# projection on a centroid is about its length / sqrt(dimensions). Centroids are compared in the
# top _QUANTIZER_DIM principal components (projected queries normalised). Recall of the filter's
# drops against exact search: ngram 100k rows 0.997 (0.998 with 256-d centroids, at ~25% less
# speed); MiniLM 8k rows 0.998; planted copies in random 48/96/384-d vectors 0.996-1.0.
_PROBE_GAP = 0.7
_MAX_PROBES = 6
_QUANTIZER_DIM = 64
_BUILD_LENGTH = 16  # vectors per list right after a (re)build
_MAX_LISTS = 8192  # 8192 x 64 per query for the quantizer: past this it costs more than it saves
_TWO_LEVEL_FROM = 256  # lists; below it one k-means is cheap enough
_TRAINING_POINTS_PER_LIST = 32
_KMEANS_ITERATIONS = 10
_RESCORED = 2  # extra candidates fetched, so near-ties keep the exact best first
# bf16 keeps 8 significant bits (a component is off by < 2**-8 of itself), so a unit query's
# score against a unit row is off by < 0.004: candidates within twice that of the k-th are rescored.
_CODE_SLACK = 0.008
_ASSIGN_CHUNK = 16_384

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
    if _threads is not None and getattr(_thread_state, "threads", None) != _threads:
        faiss.omp_set_num_threads(_threads)
        _thread_state.threads = _threads


class GrowingIndex:
    """Unit vectors of one kind (a class, or the whole dataset), searchable by inner product."""

    def __init__(self, dim: int, *, exact_limit: int = DEFAULT_EXACT_LIMIT, nprobe: int = DEFAULT_NPROBE) -> None:
        configure_faiss()
        self.dim = dim
        self.exact_limit = exact_limit
        self.nprobe = max(1, nprobe)
        self._exact = faiss.IndexFlatIP(dim)  # every vector in float32: searched while small, then rescores
        self._ivf: faiss.IndexIVFScalarQuantizer | None = None
        self._quantizer: faiss.Index | None = None

    @property
    def ntotal(self) -> int:
        return int(self._exact.ntotal)

    @property
    def approximate(self) -> bool:
        return self._ivf is not None

    def add(self, vectors: np.ndarray, *, cells: np.ndarray | None = None) -> None:
        """Append rows; ``cells`` (from ``search_with_cells`` since the last add) skips re-assigning them."""
        if len(vectors) == 0:
            return
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        _apply_threads()
        start = self.ntotal
        self._exact.add(vectors)
        if self._ivf is None:
            if self.ntotal > self.exact_limit:
                self._rebuild()
            return
        if cells is None or len(cells) != len(vectors) or np.any(cells < 0):
            cells = self._assign(vectors)
        self._add_to_lists(vectors, np.arange(start, self.ntotal, dtype=np.int64), cells)
        if self._outgrown():
            self._rebuild()

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` (similarities, ids) per query, best first; missing slots are ``(-inf, -1)``."""
        scores, ids, _ = self.search_with_cells(queries, k)
        return scores, ids

    def search_with_cells(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``search`` plus each query's nearest list (-1 while exact), for a later ``add(cells=)``."""
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        _apply_threads()
        count = len(queries)
        cells = np.full(count, -1, dtype=np.int64)
        if self.ntotal == 0 or count == 0:
            return np.full((count, k), -np.inf, dtype=np.float32), np.full((count, k), -1, np.int64), cells
        if self._ivf is None:
            scores, ids = self._exact.search(queries, k)
            return scores, ids, cells
        assert self._quantizer is not None  # _rebuild sets it together with _ivf
        probes = min(max(self.nprobe, _MAX_PROBES), self._ivf.nlist)
        centroid_sims, lists = self._quantizer.search(queries, probes)
        cells = lists[:, 0].copy()
        # Lists clearly farther than the nearest rarely hold a near-duplicate: skip them (-1).
        far = centroid_sims < centroid_sims[:, :1] - _PROBE_GAP / math.sqrt(min(self.dim, _QUANTIZER_DIM))
        far[:, : self.nprobe] = False
        lists[far] = -1
        self._ivf.nprobe = probes
        fetched = min(k + _RESCORED, self.ntotal)
        # faiss's stub declares the raw SWIG search_preassigned(n, x, k, ...) -> None before the numpy wrapper's overloads.
        approximate: np.ndarray
        approximate, ids = self._ivf.search_preassigned(queries, fetched, lists, centroid_sims)  # type: ignore[call-arg, func-returns-value, misc, arg-type]
        # Score exactly the top k and any candidate that bf16 rounding could have ranked below them.
        last = min(k, fetched) - 1
        wanted = (ids >= 0) & (approximate >= approximate[:, last : last + 1] - _CODE_SLACK)
        rescored = np.ascontiguousarray(np.where(wanted, ids, -1))
        scores = np.empty(ids.shape, dtype=np.float32)
        # IndexFlat.compute_distance_subset (swigfaiss) is missing from faiss's stub.
        self._exact.compute_distance_subset(  # type: ignore[attr-defined]
            count, faiss.swig_ptr(queries), fetched, faiss.swig_ptr(scores), faiss.swig_ptr(rescored)
        )
        order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
        scores, ids = np.take_along_axis(scores, order, axis=1), np.take_along_axis(ids, order, axis=1)
        if fetched < k:
            pad = ((0, 0), (0, k - fetched))
            scores, ids = np.pad(scores, pad, constant_values=-np.inf), np.pad(ids, pad, constant_values=-1)
        return scores.astype(np.float32, copy=False), ids, cells

    def vectors(self) -> np.ndarray:
        """Every stored vector, in id order."""
        return self._stored().copy()

    def _stored(self) -> np.ndarray:
        return faiss.rev_swig_ptr(self._exact.get_xb(), self.ntotal * self.dim).reshape(self.ntotal, self.dim)

    def _outgrown(self) -> bool:
        """Whether lists average max(32, 4 * sqrt(lists)) vectors. A search costs lists x 64 for the
        quantizer plus (probed lists) x length x dim for the scan, so lists should grow with about
        sqrt(vectors), and a rebuild (vectors x lists x 64, plus training) must pay for itself.
        With the defaults: 256 lists from 4k vectors, 1024 from 16k, 8192 (the cap) from 131k."""
        assert self._ivf is not None  # only called once the lists exist
        lists = self._ivf.nlist
        return lists < _MAX_LISTS and self.ntotal >= max(2 * _BUILD_LENGTH, 4 * math.sqrt(lists)) * lists

    def _assign(self, vectors: np.ndarray) -> np.ndarray:
        assert self._quantizer is not None  # only called once the lists exist
        cells = np.empty(len(vectors), dtype=np.int64)
        for start in range(0, len(vectors), _ASSIGN_CHUNK):
            _, nearest = self._quantizer.search(vectors[start : start + _ASSIGN_CHUNK], 1)
            cells[start : start + _ASSIGN_CHUNK] = nearest[:, 0]
        return cells

    def _add_to_lists(self, vectors: np.ndarray, ids: np.ndarray, cells: np.ndarray) -> None:
        assert self._ivf is not None  # only called once the lists exist
        cells = np.ascontiguousarray(cells, dtype=np.int64)
        self._ivf.add_core(len(vectors), faiss.swig_ptr(vectors), faiss.swig_ptr(ids), faiss.swig_ptr(cells))

    def _rebuild(self) -> None:
        """Move every vector into fresh inverted lists sized for the current count."""
        count = self.ntotal
        lists = min(_MAX_LISTS, 2 ** int(math.log2(max(1.0, count / _BUILD_LENGTH))))
        # An evenly spaced sample: deterministic, and spread over the whole history.
        stored = self._stored()
        sample = stored[np.linspace(0, count - 1, min(count, _TRAINING_POINTS_PER_LIST * lists)).astype(np.int64)]
        self._quantizer = _quantizer(sample, lists)
        index = faiss.IndexIVFScalarQuantizer(
            self._quantizer, self.dim, self._quantizer.ntotal, faiss.ScalarQuantizer.QT_bf16, faiss.METRIC_INNER_PRODUCT, False
        )
        index.train(sample[:1])  # the quantizer is full already, and bf16 codes need no training
        self._ivf = index
        self._add_to_lists(stored, np.arange(count, dtype=np.int64), self._assign(stored))


def _quantizer(sample: np.ndarray, lists: int) -> faiss.Index:
    """Unit centroids of ~``lists`` cells, compared by inner product; past ``_QUANTIZER_DIM``
    dimensions, in the sample's top principal components (the query projected and normalised)."""
    dim = sample.shape[1]
    if dim <= _QUANTIZER_DIM:
        flat = faiss.IndexFlatIP(dim)
        flat.add(_train_centroids(sample, lists))
        return flat
    pca = faiss.PCAMatrix(dim, _QUANTIZER_DIM)
    pca.train(sample)
    projected = pca.apply(sample)
    faiss.normalize_L2(projected)
    flat = faiss.IndexFlatIP(_QUANTIZER_DIM)
    flat.add(_train_centroids(projected, lists))
    quantizer = faiss.IndexPreTransform(faiss.NormalizationTransform(_QUANTIZER_DIM, 2.0), flat)
    quantizer.prepend_transform(pca)
    return quantizer


def _train_centroids(points: np.ndarray, lists: int) -> np.ndarray:
    """Unit centroids for about ``lists`` lists: one k-means, or coarse cells split in proportion."""
    if lists < _TWO_LEVEL_FROM:
        return _kmeans(points, lists)
    coarse = _kmeans(points, round(math.sqrt(lists)))
    nearest = faiss.IndexFlatIP(points.shape[1])
    nearest.add(coarse)
    _, cell = nearest.search(points, 1)
    cell = cell[:, 0]
    sizes = np.bincount(cell, minlength=len(coarse))
    quotas = np.diff(np.concatenate([[0], np.cumsum(sizes) * lists // len(points)]))
    parts = [_kmeans(points[cell == c], int(quota)) for c, quota in enumerate(quotas.tolist()) if quota > 0]
    return np.ascontiguousarray(np.concatenate(parts), dtype=np.float32)


def _kmeans(points: np.ndarray, k: int) -> np.ndarray:
    if k >= len(points):
        return np.ascontiguousarray(points, dtype=np.float32)
    kmeans = faiss.Kmeans(
        points.shape[1], k, niter=_KMEANS_ITERATIONS, spherical=True, seed=1234,
        min_points_per_centroid=1, max_points_per_centroid=256,
    )  # fmt: skip
    kmeans.train(np.ascontiguousarray(points, dtype=np.float32))
    assert kmeans.centroids is not None  # train() sets them
    return kmeans.centroids


@dataclass
class Lookup:
    """What ``GroupedIndex.lookup`` found for each row of a batch.

    ``near_*``: the best row of the row's own group (``(-inf, -1)`` if none); ``foreign_*``: the
    best row of another group at or above the threshold (``(-inf, -1, -1)`` if none); ``cells``
    and ``view_cells``: where each row would go, handed back to ``GroupedIndex.add``.
    """

    near_sim: np.ndarray
    near_pos: np.ndarray
    foreign_sim: np.ndarray
    foreign_gid: np.ndarray
    foreign_pos: np.ndarray
    cells: np.ndarray
    view_cells: np.ndarray


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

    def add(self, vectors: np.ndarray, *, owners: np.ndarray, positions: np.ndarray, cells: np.ndarray | None = None) -> None:
        count = len(vectors)
        if self._size + count > len(self._owner):
            capacity = max(1024, 2 * (self._size + count))
            self._owner = np.resize(self._owner, capacity)
            self._position = np.resize(self._position, capacity)
        self._owner[self._size : self._size + count] = owners
        self._position[self._size : self._size + count] = positions
        self._size += count
        self._index.add(vectors, cells=cells)

    def best_foreign(
        self, queries: np.ndarray, *, owners: np.ndarray, threshold: float, k: int = 8
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Per query, the most similar of its top ``k`` owned by another group, if >= threshold.

        Returns (similarity, owner, position, cell); rows without such a match get (-inf, -1, -1).
        When all top ``k`` belong to the query's own group and reach the threshold, the query is
        a near-duplicate inside its group and is dropped anyway, so nothing is lost by not
        looking further.
        """
        count = len(queries)
        sims = np.full(count, -np.inf, dtype=np.float32)
        found_owner = np.full(count, -1, dtype=np.int32)
        found_position = np.full(count, -1, dtype=np.int64)
        if count == 0 or self.ntotal == 0:
            return sims, found_owner, found_position, np.full(count, -1, dtype=np.int64)
        scores, ids, cells = self._index.search_with_cells(queries, min(k, self.ntotal))
        valid = ids >= 0
        owner_of = np.where(valid, self._owner[np.where(valid, ids, 0)], -1)
        foreign = valid & (owner_of != owners[:, None]) & (scores >= threshold)
        rows = np.flatnonzero(foreign.any(axis=1))
        first = foreign[rows].argmax(axis=1)
        sims[rows] = scores[rows, first]
        found_owner[rows] = owner_of[rows, first]
        found_position[rows] = self._position[ids[rows, first]]
        return sims, found_owner, found_position, cells


class GroupedIndex:
    """One ``GrowingIndex`` per group, plus (``cross_group``) an ``OwnedIndex`` over all of them.

    Groups are numbered 0, 1, ... in order of appearance; a row's id inside its group is its
    position among that group's rows. The cross-group view opens when a second group appears.
    """

    def __init__(
        self, dim: int, *, cross_group: bool, exact_limit: int = DEFAULT_EXACT_LIMIT, nprobe: int = DEFAULT_NPROBE
    ) -> None:
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

    def lookup(self, vectors: np.ndarray, gids: np.ndarray, *, threshold: float) -> Lookup:
        """Per row: its nearest row in its own group, and a near-duplicate in another group if any."""
        count = len(gids)
        near_sim = np.full(count, -np.inf, dtype=np.float32)
        near_pos = np.full(count, -1, dtype=np.int64)
        cells = np.full(count, -1, dtype=np.int64)
        for gid in np.unique(gids).tolist():
            rows = np.flatnonzero(gids == gid)
            if self._groups[gid].ntotal:
                scores, ids, cells[rows] = self._groups[gid].search_with_cells(vectors[rows], 1)
                near_sim[rows], near_pos[rows] = scores[:, 0], ids[:, 0]
        if self._view is None:
            foreign = (np.full(count, -np.inf, np.float32), np.full(count, -1, np.int32), np.full(count, -1, np.int64))
            view_cells = np.full(count, -1, dtype=np.int64)
        else:
            foreign_sim, foreign_gid, foreign_pos, view_cells = self._view.best_foreign(vectors, owners=gids, threshold=threshold)
            foreign = (foreign_sim, foreign_gid, foreign_pos)
        return Lookup(near_sim, near_pos, *foreign, cells, view_cells)

    def add(
        self,
        vectors: np.ndarray,
        *,
        gids: np.ndarray,
        positions: np.ndarray,
        lookup: Lookup | None = None,
        rows: np.ndarray | None = None,
    ) -> None:
        """Rows in order; ``positions`` must continue each group's numbering (0, 1, ...).

        ``lookup``/``rows``: the lookup of the batch these vectors are ``rows`` of, so each index
        reuses the lists its search already chose.
        """
        cells = lookup.cells[rows] if lookup is not None else None
        view_cells = lookup.view_cells[rows] if lookup is not None else None
        for gid in np.unique(gids).tolist():
            mine = gids == gid
            self._groups[gid].add(vectors[mine], cells=cells[mine] if cells is not None else None)
        if self._view is not None:
            self._view.add(vectors, owners=gids, positions=positions, cells=view_cells)
