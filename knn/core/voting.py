"""How a project decides: the vote rules, their tie rules, the unknown rule.

One place for the rules: `KNNClassifier` uses them per query, leave-one-out per block of rows, and
the exported Keras head (knn.model.export) mirrors them with the same constants. A project's
`vote` is one of `VOTES`:

- ``"examples"``: the k nearest examples vote (below);
- ``"centroids"``: the nearest class centroid wins; the k nearest centroids share the confidence
  the same way (knn.core.centroids);
- ``"blend"``: the k nearest examples share 1 - w of the vote as they share all of it above, and
  the class of the nearest centroid gets the other w (the project's `centroid_weight`). With k=3
  and w around 0.3, unanimous neighbors decide and the centroid settles a split vote. Ties go to
  the larger best single similarity (of a neighbor or the winning centroid), then to the name.

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

VOTES = ("examples", "centroids", "blend")
"""The vote rules a project may use (`KNNClassifier.vote`)."""
LEGACY_VOTE = "examples"
"""The rule of every project saved before the setting existed: its files read back with it."""
DEFAULT_CENTROID_WEIGHT = 0.3
"""The blend's share of the vote that goes to the nearest centroid's class (chosen on grocery's
train files: docs/accuracy.md)."""
DEFAULT_VOTE = "blend"
"""The rule a new project gets (docs/accuracy.md, issue 31: it beats the k nearest examples' vote on
every development set, most on grocery's look-alike classes). Saved projects keep their own."""
DEFAULT_CENTRED = True
"""Whether a new project compares vectors centred on its examples' mean (docs/accuracy.md)."""

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


def blend(
    ex_conf: np.ndarray,
    ex_best: np.ndarray,
    cen_winner: np.ndarray,
    cen_sim: np.ndarray,
    weight: float,
    rank: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """The blended vote from the k nearest examples' [M, C] confidences and best similarities
    (-inf for a class without a neighbor) and the nearest centroid's class [M] and similarity [M].

    Returns:
        (confidences [M, C] rows summing to 1, winner [M]): the most confident class, ties to the
        larger best similarity (of a neighbor or the winning centroid), then to the
        alphabetically first name.
    """
    m, n_classes = ex_conf.shape
    rows = np.arange(m)
    confidences = (1.0 - weight) * ex_conf
    confidences[rows, cen_winner] += weight
    best = ex_best.copy()
    best[rows, cen_winner] = np.maximum(best[rows, cen_winner], cen_sim)
    candidates = confidences > 0
    for key in (confidences, best):
        top = np.where(candidates, key, -np.inf).max(axis=1, keepdims=True)
        candidates &= key >= top - TIE_TOLERANCE
    return confidences, np.where(candidates, rank[None, :], n_classes).argmin(axis=1)


def class_best(sims: np.ndarray, cls: np.ndarray, n_classes: int) -> np.ndarray:
    """[M, C] the best similarity of each class among [M, k] neighbors (-inf where it has none)."""
    m = len(sims)
    best = np.full(m * n_classes, -np.inf)
    np.maximum.at(best, (np.arange(m)[:, None] * n_classes + cls).reshape(-1), sims.reshape(-1).astype(np.float64))
    return best.reshape(m, n_classes)


def decide(
    vote_rule: str,
    ex_sims: np.ndarray,
    ex_cls: np.ndarray,
    cen_sims: np.ndarray | None,
    cen_cls: np.ndarray | None,
    n_classes: int,
    rank: np.ndarray,
    weight: float = DEFAULT_CENTROID_WEIGHT,
) -> tuple[np.ndarray, np.ndarray]:
    """(confidences [M, C], winner [M]) of a rule of `VOTES`.

    Args:
        ex_sims, ex_cls: [M, k] the k nearest examples' similarities and class indices.
        cen_sims, cen_cls: [M, k'] the k' nearest class centroids' similarities and class
            indices, most similar first (unused by ``"examples"``).
    """
    if vote_rule == "examples":
        return vote(ex_sims, ex_cls, n_classes, rank)
    if cen_sims is None or cen_cls is None:
        raise ValueError(f"the {vote_rule!r} vote needs the nearest class centroids")
    cen_conf, cen_winner = vote(cen_sims, cen_cls, n_classes, rank)
    if vote_rule == "centroids":
        return cen_conf, cen_winner
    if vote_rule != "blend":
        raise ValueError(f"vote must be one of {VOTES}, got {vote_rule!r}")
    ex_conf, _ = vote(ex_sims, ex_cls, n_classes, rank)
    cen_sim = class_best(cen_sims, cen_cls, n_classes)[np.arange(len(cen_winner)), cen_winner]
    return blend(ex_conf, class_best(ex_sims, ex_cls, n_classes), cen_winner, cen_sim, weight, rank)


def decide_one(
    vote_rule: str,
    ex_sims: list[float],
    ex_cls: list[int],
    cen_sims: list[float] | None,
    cen_cls: list[int] | None,
    n_classes: int,
    rank: list[int],
    weight: float = DEFAULT_CENTROID_WEIGHT,
) -> tuple[list[float], int]:
    """`decide` for one query in plain Python (the video loop's case): the same rules and order."""
    if vote_rule == "examples":
        return vote_one(ex_sims, ex_cls, n_classes, rank)
    if cen_sims is None or cen_cls is None:
        raise ValueError(f"the {vote_rule!r} vote needs the nearest class centroids")
    cen_conf, cen_winner = vote_one(cen_sims, cen_cls, n_classes, rank)
    if vote_rule == "centroids":
        return cen_conf, cen_winner
    if vote_rule != "blend":
        raise ValueError(f"vote must be one of {VOTES}, got {vote_rule!r}")
    ex_conf, _ = vote_one(ex_sims, ex_cls, n_classes, rank)
    best: dict[int, float] = {}
    for sim, c in zip(ex_sims, ex_cls, strict=True):
        best[c] = max(best.get(c, -math.inf), sim)
    won = max(sim for sim, c in zip(cen_sims, cen_cls, strict=True) if c == cen_winner)
    best[cen_winner] = max(best.get(cen_winner, -math.inf), won)
    confidences = [(1.0 - weight) * a for a in ex_conf]
    confidences[cen_winner] += weight
    candidates = [c for c in best if confidences[c] > 0]
    for key in (confidences, best):
        top = max(key[c] for c in candidates)
        candidates = [c for c in candidates if key[c] >= top - TIE_TOLERANCE]
    return confidences, min(candidates, key=rank.__getitem__)
