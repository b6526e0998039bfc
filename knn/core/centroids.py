"""Centroids: the examples' mean (what a centred project subtracts before comparing) and each
class's centroid (what the centroid vote compares a query with), from the user's examples only.

An example's mean vector (its own embedding, its mirror, its crops: each example weighs the same
whatever its number of vectors) is summed per class as examples come and go
(knn.core.store), so after an Add the centroids cost O(C × D) and a frame stays one matrix
product (plus one with the C <= 100 centroids). The class centroid is the class's mean example,
the examples' mean the mean of all examples, and a centred project compares every vector x
(stored vector, centroid, query) as ``unit(x - mean)``. The stored vectors are not rewritten:
a stored unit vector e is compared through ``(e · q' - mean · q') / |e - mean|``, whose
denominators are one matrix-vector product per change (`Space.inv_norm`).

Centring starts once two classes have examples: with one, the mean is that class's own, every
answer is that class anyway, and a first example would be 0-similar to everything. A vector that
centring leaves at (nearly) zero length has no direction: it is 0-similar to everything.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

ZERO_NORM = 1e-6
"""A centred vector shorter than this (an example equal to the mean) has no direction and is left at 0."""


def unit_rows(x: np.ndarray) -> np.ndarray:
    """Rows scaled to length 1, float32; rows shorter than `ZERO_NORM` become 0."""
    x = np.asarray(x, np.float64)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    out: np.ndarray = np.divide(x, norms, out=np.zeros_like(x), where=norms >= ZERO_NORM)
    return out.astype(np.float32)


def group_sums(rows: np.ndarray, group: np.ndarray, n_groups: int) -> tuple[np.ndarray, np.ndarray]:
    """(the sum of each group's rows [G, D] float64, each group's row count [G]); `group[r]` is row
    r's group in 0..G-1. One sort and one `reduceat` (np.add.at would be ~100× slower)."""
    order = np.argsort(group, kind="stable")
    counts = np.bincount(group, minlength=n_groups)
    sums = np.zeros((n_groups, rows.shape[1]), np.float64)
    present = np.flatnonzero(counts)
    if len(present):
        starts = np.concatenate([[0], np.cumsum(counts[present])[:-1]])
        sums[present] = np.add.reduceat(rows[order].astype(np.float64), starts, axis=0)
    return sums, counts


@dataclass(frozen=True)
class Space:
    """How a rule compares: the mean a centred project subtracts, and the class centroids.

    Attributes:
        mean: [D] float32, the examples' mean; None when the project is not centred.
        inv_norm: [R] float32, 1 / |e - mean| of each stored vector e in the order given (0 where
            it has no direction); None when not centred.
        centroids: [C', D] float32 unit rows, one per class that has examples, as compared.
        centroid_classes: [C'] int64, the class index of each centroid, ascending.
    """

    mean: np.ndarray | None
    inv_norm: np.ndarray | None
    centroids: np.ndarray
    centroid_classes: np.ndarray

    def place(self, queries: np.ndarray) -> np.ndarray:
        """Normalised queries [M, D] -> as compared (centred and re-normalised when centred)."""
        return queries if self.mean is None else unit_rows(queries - self.mean)

    def similarities(self, raw: np.ndarray, placed: np.ndarray) -> np.ndarray:
        """[M, R] similarities of placed queries to the stored vectors, from their raw products
        ``placed @ vectors.T`` (returned as they are when not centred)."""
        if self.mean is None or self.inv_norm is None:
            return raw
        centred: np.ndarray = (raw - (placed @ self.mean)[:, None]) * self.inv_norm[None, :]
        return centred


def space_from_sums(class_sums: np.ndarray, class_counts: np.ndarray, rows: np.ndarray | None, centred: bool) -> Space:
    """The `Space` from each class's sum of example means [C, D] and number of examples [C], and
    (when centred) the stored unit vectors [R, D] whose `inv_norm` is wanted."""
    present = np.flatnonzero(np.asarray(class_counts) > 0)
    means = class_sums[present] / np.asarray(class_counts)[present, None]
    mean = inv_norm = None
    if centred and len(present) >= 2:  # one class's mean is its own: centring would leave its answers at 0
        mean64 = class_sums[present].sum(axis=0) / float(np.sum(class_counts))
        mean = mean64.astype(np.float32)
        means = means - mean64
        if rows is not None:
            # |e - mean|² = |e|² - 2 e·mean + |mean|², with |e| = 1 for a stored vector.
            squared = 1.0 - 2.0 * (rows @ mean).astype(np.float64) + float(mean64 @ mean64)
            norms = np.sqrt(np.maximum(squared, 0.0))
            inv_norm = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms >= ZERO_NORM).astype(np.float32)
    return Space(mean, inv_norm, unit_rows(means), present.astype(np.int64))


def build_space(rows: np.ndarray, owner: np.ndarray, example_class: np.ndarray, centred: bool) -> Space:
    """The `Space` of stored vectors from scratch (leave-one-out, export).

    Args:
        rows: [R, D] unit vectors, in any order.
        owner: [R] the example index (0..N-1) each row belongs to.
        example_class: [N] each example's class index.
        centred: subtract the examples' mean.
    """
    example_class = np.asarray(example_class, np.int64)
    n = len(example_class)
    sums, counts = group_sums(rows, np.asarray(owner, np.int64), n)
    example_means = sums / np.maximum(counts, 1)[:, None]
    n_classes = int(example_class.max()) + 1 if n else 0
    class_sums, class_counts = group_sums(example_means, example_class, n_classes)
    return space_from_sums(class_sums, class_counts, rows, centred)


def centred_rows(rows: np.ndarray, space: Space) -> np.ndarray:
    """Stored unit vectors as a centred space compares them: ``unit(e - mean)`` (the export's)."""
    return rows if space.mean is None else unit_rows(rows - space.mean)
