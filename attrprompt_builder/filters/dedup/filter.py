"""Near-duplicate filtering: keep the first of each group of near-identical texts, say why.

Two texts are near-duplicates when the cosine similarity of their embeddings is **at or above**
the threshold (``>=``). A row is dropped only when an earlier row that was *kept* matches it, so
chains stay explicit: with A~B, B~C and A!~C, B goes and A and C stay. Exact copies inside a
group (the same text once lower-cased, with whitespace collapsed and punctuation stripped at both
ends) are caught by a hash and never embedded.

``NearDuplicateFilter`` works on texts and group names, streaming (the build feeds it each batch of
replies); ``dataset.deduplicate.deduplicate`` applies it to a whole ``datasets.Dataset``.
"""

from __future__ import annotations

import hashlib
import string
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from attrprompt_builder.errors import ConfigError
from attrprompt_builder.filters.dedup.embedders import Embedder, load_embedder
from attrprompt_builder.filters.dedup.index import (
    DEFAULT_EXACT_LIMIT,
    DEFAULT_NPROBE,
    GroupedIndex,
)
from attrprompt_builder.filters.dedup.keep_first import (
    CROSS,
    REASONS,
    Verdicts,
    decide_batch,
)
from attrprompt_builder.filters.dedup.vectors import VectorStore, cached_encode, text_hash

__all__ = [
    "DedupDecision",
    "DedupStats",
    "MINILM_THRESHOLD",
    "NGRAM_THRESHOLD",
    "NearDuplicateFilter",
    "default_threshold",
]

# Measured by bench/dedup_threshold.py (real English paragraphs with 1-3 light edits planted; chosen
# on one half, reported on the other; its docstring has the table). Held-out precision/recall:
# MiniLM at 0.88: 0.988 / 0.986; ngram at 0.90: 1.000 / 1.000, with no template look-alike dropped.
MINILM_THRESHOLD = 0.88
NGRAM_THRESHOLD = 0.90
_DEFAULT_THRESHOLDS = {"transformer": MINILM_THRESHOLD, "ngram": NGRAM_THRESHOLD}
_MAX_EXAMPLES = 10
_END_PUNCTUATION = string.punctuation + " \u2018\u2019\u201c\u201d\u00ab\u00bb\u2026\u2013\u2014"


def default_threshold(embedder: Embedder) -> float:
    """The measured default for the embedder's kind (MiniLM's for every transformer encoder)."""
    kind = getattr(embedder, "kind", None)
    if kind in _DEFAULT_THRESHOLDS:
        return _DEFAULT_THRESHOLDS[kind]
    raise ConfigError(
        f"threshold: no default for the embedder {getattr(embedder, 'name', embedder)!r} of kind {kind!r}; "
        "pass threshold= (a cosine similarity in (0, 1])"
    )


@dataclass(frozen=True)
class DedupDecision:
    """What the filter decided for one text.

    Dropped rows: ``reason`` is "exact_duplicate", "near_duplicate" or "cross_class_duplicate",
    and ``match_group``/``match_index`` name the kept row that matched (its position among the
    kept rows of that group) with their ``similarity``. Kept rows: ``similarity`` is the highest
    similarity to an earlier kept row of the same group (0.0 for the first), and when a kept row
    of another group is a near-duplicate, ``cross_group_match`` names that group (with
    ``match_group``/``match_index``/``similarity`` describing that match).
    """

    keep: bool
    reason: str | None = None
    match_group: str | None = None
    match_index: int | None = None
    similarity: float = 0.0
    cross_group_match: str | None = None


@dataclass
class DedupStats:
    """Counts for the dataset card: what was removed where, and a few pairs to show."""

    embedder: str = ""
    threshold: float = 0.0
    checked: int = 0
    kept: int = 0
    removed: Counter = field(default_factory=Counter)  # reason -> rows
    removed_per_group: dict[str, Counter] = field(default_factory=dict)  # group -> reason -> rows
    removed_by_value: dict[str, Counter] = field(default_factory=dict)  # column -> value -> rows
    cross_group_flags: Counter = field(default_factory=Counter)  # group of a kept, flagged row -> rows
    near_examples: list[dict[str, Any]] = field(default_factory=list)
    exact_examples: list[dict[str, Any]] = field(default_factory=list)

    @property
    def examples(self) -> list[dict[str, Any]]:
        """Up to 10 dropped pairs ``{"group", "kept_text", "dropped_text", "similarity"}``, near ones first."""
        return (self.near_examples + self.exact_examples)[:_MAX_EXAMPLES]

    @property
    def total_removed(self) -> int:
        return sum(self.removed.values())

    def to_dict(self) -> dict[str, Any]:
        return {
            "embedder": self.embedder,
            "threshold": self.threshold,
            "checked": self.checked,
            "kept": self.kept,
            "removed": dict(self.removed),
            "removed_per_group": {group: dict(counts) for group, counts in self.removed_per_group.items()},
            "removed_by_value": {column: dict(counts) for column, counts in self.removed_by_value.items()},
            "cross_group_flags": dict(self.cross_group_flags),
            "examples": self.examples,
        }


@dataclass
class _Group:
    name: str
    gid: int
    exact: dict[bytes, int] = field(default_factory=dict)  # text key -> position of the kept row
    texts: list[str] | None = field(default_factory=list)  # kept texts, only while examples are wanted
    kept: int = 0


class NearDuplicateFilter:
    """Streaming near-duplicate filter with one FAISS index per group and a cross-group view.

    ``check`` decides a batch in order: each text is compared with the kept rows of its group
    (earlier batches and earlier in this batch); duplicates never enter an index. A near-duplicate
    of a kept row of *another* group is flagged (``cross_group_match``) and kept, unless
    ``drop_cross_group``. One ``encode`` call per batch, for the texts that have no vector yet:
    ``prefetch`` embeds the texts of coming batches in one call (sorted by length over all of
    them), and ``cache`` (a ``VectorStore``) keeps every vector computed and supplies those it
    holds. Not thread-safe.
    """

    def __init__(
        self,
        *,
        embedder: str | Embedder | None = None,
        precision: str = "auto",
        cache: VectorStore | None = None,
        threshold: float | None = None,
        cross_group: bool = True,
        drop_cross_group: bool = False,
        exact_limit: int = DEFAULT_EXACT_LIMIT,
        nprobe: int = DEFAULT_NPROBE,
    ) -> None:
        self.embedder = load_embedder(embedder, precision=precision)
        self.cache = cache
        self._prefetched: dict[bytes, np.ndarray] = {}
        self.threshold = default_threshold(self.embedder) if threshold is None else float(threshold)
        if not 0.0 < self.threshold <= 1.0:
            raise ConfigError(f"threshold: got {threshold!r}; use a cosine similarity in (0, 1], e.g. {MINILM_THRESHOLD}")
        self.cross_group = cross_group or drop_cross_group
        self.drop_cross_group = drop_cross_group
        self._index = GroupedIndex(self.embedder.dim, cross_group=self.cross_group, exact_limit=exact_limit, nprobe=nprobe)
        self._groups: dict[str, _Group] = {}
        self._by_gid: list[_Group] = []
        self.stats = DedupStats(embedder=self.embedder.name, threshold=self.threshold)

    @property
    def approximate_groups(self) -> list[str]:
        """Groups whose index grew past ``exact_limit`` and now searches inverted lists (IVF)."""
        return [group.name for group in self._by_gid if self._index.approximate(group.gid)]

    def check(self, texts: list[str], groups: list[str]) -> list[DedupDecision]:
        if len(texts) != len(groups):
            raise ConfigError(f"groups: got {len(groups)} groups for {len(texts)} texts; pass one group per text")
        for position, text in enumerate(texts):
            if not isinstance(text, str):
                raise ConfigError(f"texts[{position}]: expected a string, got {type(text).__name__}; drop or fill it first")
        owners = [self._group(str(name)) for name in groups]
        gids = np.array([group.gid for group in owners], dtype=np.int32)
        keys = [_text_key(text) for text in texts]
        exact_pos = np.array([group.exact.get(key, -1) for key, group in zip(keys, owners)], dtype=np.int64)
        first_of: dict[tuple[int, bytes], int] = {}
        key_first = np.array(
            [first_of.setdefault((group.gid, key), i) for i, (key, group) in enumerate(zip(keys, owners))], np.int64
        )
        vectors = self._encode(texts, np.flatnonzero(exact_pos < 0).tolist())
        lookup = self._index.lookup(vectors, gids, threshold=self.threshold)
        verdicts = decide_batch(
            vectors @ vectors.T, gids=gids, lookup=lookup, exact_pos=exact_pos, key_first=key_first,
            kept_before=np.array([group.kept for group in self._by_gid], dtype=np.int64), threshold=self.threshold,
            cross_group=self.cross_group, drop_cross_group=self.drop_cross_group,
        )  # fmt: skip
        kept_rows = np.flatnonzero(verdicts.keep)
        self._keep(texts, keys, owners, kept_rows.tolist(), verdicts.positions)
        decisions = self._decisions(verdicts)
        self._count(texts, owners, decisions, verdicts)
        self._index.add(
            vectors[kept_rows], gids=gids[kept_rows], positions=verdicts.positions[kept_rows], lookup=lookup, rows=kept_rows
        )
        return decisions

    def prefetch(self, texts: list[str], groups: list[str]) -> None:
        """Embed, in one call, what the next ``check`` calls on these texts will need.

        Batches of one encoder call are cut from texts sorted by token length, so one call over a
        large window pads far less than one per ``check`` batch. Exact copies (in their group) of an
        already kept row are left out; copies of a text of the window are not, since whether they
        need a vector depends on that text being kept, which ``check`` decides later (and a second
        encoder call for a few texts costs more than embedding them now).
        """
        wanted: list[str] = []
        for text, name in zip(texts, groups):
            group = self._groups.get(str(name))
            if group is None or _text_key(text) not in group.exact:
                wanted.append(text)
        vectors = cached_encode(self.embedder, wanted, store=self.cache)
        self._prefetched = dict(zip(map(text_hash, wanted), vectors))

    # -- batch stages ---------------------------------------------------------------------

    def _group(self, name: str) -> _Group:
        group = self._groups.get(name)
        if group is None:
            group = _Group(name, self._index.add_group())
            if not self._wants_examples():
                group.texts = None
            self._groups[name] = group
            self._by_gid.append(group)
        return group

    def _encode(self, texts: list[str], rows: list[int]) -> np.ndarray:
        dim = self.embedder.dim
        vectors = np.zeros((len(texts), dim), dtype=np.float32)
        if not rows:
            return vectors
        ready = [self._prefetched.get(text_hash(texts[i])) for i in rows]
        rest = [i for i, vector in zip(rows, ready) if vector is None]
        if rest:
            vectors[rest] = cached_encode(self.embedder, [texts[i] for i in rest], store=self.cache)
        done = [(i, vector) for i, vector in zip(rows, ready) if vector is not None]
        if done:
            vectors[[i for i, _ in done]] = np.stack([vector for _, vector in done])
        encoded = vectors[rows]
        norms = np.linalg.norm(encoded, axis=1)
        if np.any((norms > 0) & (np.abs(norms - 1.0) > 1e-3)):
            raise ConfigError(f"embedder: {self.embedder.name!r} returned rows that are not unit vectors; L2-normalise them")
        return vectors

    @staticmethod
    def _keep(texts: list[str], keys: list[bytes], owners: list[_Group], kept_rows: list[int], positions: np.ndarray) -> None:
        for i, position in zip(kept_rows, positions[kept_rows].tolist()):
            group = owners[i]
            group.exact[keys[i]] = position
            if group.texts is not None:
                group.texts.append(texts[i])
            group.kept += 1

    def _decisions(self, verdicts: Verdicts) -> list[DedupDecision]:
        names = [group.name for group in self._by_gid]
        decisions = []
        columns = (verdicts.keep, verdicts.reason, verdicts.match_gid, verdicts.match_pos, verdicts.similarity, verdicts.flagged)
        for keep, reason, gid, position, similarity, flagged in zip(*(column.tolist() for column in columns)):
            if keep and not flagged:
                decisions.append(DedupDecision(True, similarity=similarity))
                continue
            other = names[gid] if flagged or reason == CROSS else None
            decisions.append(DedupDecision(keep, REASONS[reason], names[gid], position, similarity, other))
        return decisions

    # -- stats ----------------------------------------------------------------------------

    def _count(self, texts: list[str], owners: list[_Group], decisions: list[DedupDecision], verdicts: Verdicts) -> None:
        stats = self.stats
        stats.checked += len(decisions)
        stats.kept += int(verdicts.keep.sum())
        for i in np.flatnonzero(verdicts.flagged).tolist():
            stats.cross_group_flags[owners[i].name] += 1
        for i in np.flatnonzero(~verdicts.keep).tolist():
            decision, group = decisions[i], owners[i]
            stats.removed[decision.reason] += 1
            stats.removed_per_group.setdefault(group.name, Counter())[decision.reason] += 1
            examples = stats.exact_examples if decision.reason == "exact_duplicate" else stats.near_examples
            matched = self._groups[decision.match_group]
            if len(examples) < _MAX_EXAMPLES and matched.texts is not None:
                examples.append(
                    {
                        "group": group.name,
                        "kept_text": matched.texts[decision.match_index],
                        "dropped_text": texts[i],
                        "similarity": round(decision.similarity, 4),
                    }
                )
                if not self._wants_examples():
                    for each in self._by_gid:
                        each.texts = None  # every example slot is filled: stop holding kept texts

    def _wants_examples(self) -> bool:
        return len(self.stats.near_examples) < _MAX_EXAMPLES or len(self.stats.exact_examples) < _MAX_EXAMPLES


def _text_key(text: str) -> bytes:
    """Exact-duplicate key: lower-cased, whitespace collapsed, punctuation stripped at both ends."""
    if text.isascii() and text.isprintable() and "  " not in text:
        # ASCII without control characters or double spaces: only single spaces separate words
        # (the usual case), so split/join would change nothing but the ends, which strip handles.
        normal = text.lower().strip(_END_PUNCTUATION)
    else:
        normal = " ".join(text.lower().split()).strip(_END_PUNCTUATION)
    return hashlib.blake2b(normal.encode("utf-8"), digest_size=16).digest()
