"""The keep-first rule for one batch of ``NearDuplicateFilter.check``, decided with numpy.

A row's fate depends on earlier rows of the same batch only when one of them is a near-duplicate
of it (or has the same normalised text); every other row is decided from the index lookup alone,
for the whole batch at once. The few rows left are walked in order, exactly as the rule reads:
dropped only by an earlier *kept* row, so with A~B, B~C and A!~C, B goes and C stays.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from attrprompt_builder.filters.dedup.index import Lookup

__all__ = ["CROSS", "EXACT", "KEEP", "NEAR", "REASONS", "Verdicts", "decide_batch"]

KEEP, EXACT, NEAR, CROSS = 0, 1, 2, 3
REASONS: tuple[str | None, ...] = (None, "exact_duplicate", "near_duplicate", "cross_class_duplicate")


@dataclass
class Verdicts:
    """Per row of a batch. ``match_gid``/``match_pos`` name the matched kept row (-1: none);
    ``flagged``: kept, with a near-duplicate in another group; ``positions``: a kept row's place
    among its group's kept rows (-1 for dropped rows)."""

    keep: np.ndarray
    reason: np.ndarray
    match_gid: np.ndarray
    match_pos: np.ndarray
    similarity: np.ndarray
    flagged: np.ndarray
    positions: np.ndarray


def decide_batch(
    similarity: np.ndarray,
    *,
    gids: np.ndarray,
    lookup: Lookup,
    exact_pos: np.ndarray,
    key_first: np.ndarray,
    kept_before: np.ndarray,
    threshold: float,
    cross_group: bool,
    drop_cross_group: bool,
) -> Verdicts:
    """Decide every row of a batch.

    ``similarity``: the batch's (n, n) inner products; ``exact_pos``: the kept row of an earlier
    batch with the same normalised text in the row's group (-1: none); ``key_first``: the first
    row of this batch with the same group and normalised text (the row itself if none earlier);
    ``kept_before``: per group id, the kept rows it had before this batch.
    """
    count = len(gids)
    rows = np.arange(count)
    near_sim = lookup.near_sim.astype(np.float64)
    foreign_sim = lookup.foreign_sim.astype(np.float64)
    exact = exact_pos >= 0
    earlier = np.tril(similarity >= threshold, k=-1)
    walked = ~exact & (earlier.any(axis=1) | (key_first < rows))

    near = near_sim >= threshold
    foreign = ~near & (lookup.foreign_gid >= 0)
    reason = np.where(exact, EXACT, np.where(near, NEAR, np.where(foreign & drop_cross_group, CROSS, KEEP))).astype(np.int8)
    match_gid = np.where(exact | near, gids, np.where(foreign, lookup.foreign_gid, -1)).astype(np.int64)
    match_pos = np.where(exact, exact_pos, np.where(near, lookup.near_pos, np.where(foreign, lookup.foreign_pos, -1)))
    sims = np.where(exact, 1.0, np.where(near, near_sim, np.where(foreign, foreign_sim, np.maximum(near_sim, 0.0))))
    match_row = np.full(count, -1, dtype=np.int64)  # a match inside this batch: its position is known last
    keep = reason == KEEP

    if walked.any():
        _walk(
            np.flatnonzero(walked).tolist(), similarity, earlier, gids, key_first, keep, reason, match_gid, match_pos,
            match_row, sims, near_sim, foreign_sim, lookup, threshold=threshold, cross_group=cross_group,
            drop_cross_group=drop_cross_group,
        )  # fmt: skip

    positions = np.full(count, -1, dtype=np.int64)
    for gid in np.unique(gids[keep]).tolist():
        mine = keep & (gids == gid)
        positions[mine] = kept_before[gid] + np.arange(int(mine.sum()))
    inside = match_row >= 0
    match_pos[inside] = positions[match_row[inside]]
    flagged = keep & (match_gid >= 0)

    # A kept row's similarity is its best earlier kept row of its group, this batch included.
    plain = keep & ~flagged
    if int(keep.sum()) >= 2 and plain.any():
        same = (gids[:, None] == gids[None, :]) & keep[None, :] & np.tri(count, k=-1, dtype=bool)
        in_batch = np.where(same, similarity, -np.inf).max(axis=1).astype(np.float64)
        better = plain & (in_batch > near_sim)
        sims[better] = np.maximum(in_batch[better], 0.0)
    return Verdicts(keep, reason, match_gid, match_pos, sims, flagged, positions)


def _walk(
    walked: list[int],
    similarity: np.ndarray,
    earlier: np.ndarray,
    gids: np.ndarray,
    key_first: np.ndarray,
    keep: np.ndarray,
    reason: np.ndarray,
    match_gid: np.ndarray,
    match_pos: np.ndarray,
    match_row: np.ndarray,
    sims: np.ndarray,
    near_sim: np.ndarray,
    foreign_sim: np.ndarray,
    lookup: Lookup,
    *,
    threshold: float,
    cross_group: bool,
    drop_cross_group: bool,
) -> None:
    """The rows with an earlier near-duplicate or copy in the batch, in order, as the rule reads."""
    pending = set(walked)
    # first row of a normalised text -> the row of it that was kept
    key_owner = {first: first for first in set(key_first[walked].tolist()) if first not in pending and keep[first]}
    for i in walked:
        gid = int(gids[i])
        owner = key_owner.get(int(key_first[i]))
        if owner is not None:
            keep[i], reason[i], match_gid[i], match_row[i], sims[i] = False, EXACT, gid, owner, 1.0
            continue
        best, best_pos, best_row = float(near_sim[i]), int(lookup.near_pos[i]), -1
        cross, cross_gid = float(foreign_sim[i]), int(lookup.foreign_gid[i])
        cross_pos, cross_row = int(lookup.foreign_pos[i]), -1
        for j in np.flatnonzero(earlier[i]).tolist():
            if not keep[j]:
                continue
            score = float(similarity[i, j])
            if gids[j] == gid:
                if score > best:
                    best, best_row = score, j
            elif cross_group and score > cross:
                cross, cross_gid, cross_row = score, int(gids[j]), j
        if best >= threshold:
            keep[i], reason[i], match_gid[i], sims[i] = False, NEAR, gid, best
            match_pos[i], match_row[i] = best_pos, best_row
        elif cross_gid < 0 or cross < threshold:
            keep[i], reason[i], match_gid[i], match_pos[i], sims[i] = True, KEEP, -1, -1, max(best, 0.0)
        else:
            keep[i], reason[i] = not drop_cross_group, CROSS if drop_cross_group else KEEP
            match_gid[i], match_pos[i], match_row[i], sims[i] = cross_gid, cross_pos, cross_row, cross
        if keep[i]:
            key_owner.setdefault(int(key_first[i]), i)
