"""How the k nearest examples decide: similarity-weighted votes, the tie rules, the unknown rule.

One place for the rules: `KNNClassifier` uses them per query, leave-one-out per block of rows, and
the exported Keras head (knn.model.export) mirrors them with the same constants.

Each neighbor votes with its cosine similarity; a similarity below `MIN_WEIGHT` (an unrelated or
opposite example) counts as `MIN_WEIGHT`, so the votes never sum to 0 and, when all k neighbors
are unrelated, fall back to counts. The winner has the most vote; ties (within `TIE_TOLERANCE`)
go to the larger summed raw similarity, then to the larger single best similarity, and only
between classes indistinguishable on all three to the alphabetically first name: never to the
class that was made first, which is what the TF.js knn-classifier does. Only classes present
among the neighbors can win.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

TIE_TOLERANCE = 1e-6
"""Sums of float32 similarities that differ by less than this are ties."""
MIN_WEIGHT = 1e-3
"""The least vote of a neighbor; far above TIE_TOLERANCE so that counts never look tied."""


def name_rank(classes: Sequence[str]) -> np.ndarray:
    """Each class's position in alphabetical order: the last tie-breaker, independent of class order."""
    rank = np.empty(len(classes), dtype=np.int64)
    rank[np.argsort(np.array(list(classes), dtype=object), kind="stable")] = np.arange(len(classes))
    return rank


def is_unknown(best_similarity: float, threshold: float | None) -> bool:
    """The unknown rule: the best match is less similar than the threshold (None: never unknown)."""
    return threshold is not None and best_similarity < threshold


def vote(sims: np.ndarray, cls: np.ndarray, n_classes: int, rank: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Votes and decisions for [M, k] neighbor similarities and class indices.

    Returns:
        (confidences [M, C] float64 rows summing to 1, winner [M] class indices)
    """
    m, k = sims.shape
    flat = (np.arange(m)[:, None] * n_classes + cls).reshape(-1)  # index into the [M, C] tables
    flat_sims = sims.reshape(-1).astype(np.float64)
    votes = np.bincount(flat, np.maximum(flat_sims, MIN_WEIGHT), m * n_classes).reshape(m, n_classes)
    raw = np.bincount(flat, flat_sims, m * n_classes).reshape(m, n_classes)
    best = np.full(m * n_classes, -np.inf)
    np.maximum.at(best, flat, flat_sims)
    best = best.reshape(m, n_classes)
    candidates = np.isfinite(best)  # classes with at least one neighbor
    for key in (votes, raw, best):
        top = np.where(candidates, key, -np.inf).max(axis=1, keepdims=True)
        candidates &= key >= top - TIE_TOLERANCE
    winner = np.where(candidates, rank[None, :], n_classes).argmin(axis=1)
    return votes / votes.sum(axis=1, keepdims=True), winner


def vote_one(sims: list[float], cls: list[int], n_classes: int, rank: list[int]) -> tuple[list[float], int]:
    """`vote` for one query's neighbors in plain Python: k is small, so this is ~10x faster than a
    dozen NumPy calls on 3-element arrays. The same rules, in the same order of summation."""
    votes: dict[int, float] = {}
    raw: dict[int, float] = {}
    best: dict[int, float] = {}
    for sim, c in zip(sims, cls, strict=True):
        votes[c] = votes.get(c, 0.0) + max(sim, MIN_WEIGHT)
        raw[c] = raw.get(c, 0.0) + sim
        best[c] = max(best.get(c, -math.inf), sim)
    candidates = list(votes)
    for key in (votes, raw, best):
        top = max(key[c] for c in candidates)
        candidates = [c for c in candidates if key[c] >= top - TIE_TOLERANCE]
    total = sum(votes.values())
    confidences = [0.0] * n_classes
    for c, weight in votes.items():
        confidences[c] = weight / total
    return confidences, min(candidates, key=rank.__getitem__)
