"""Centroids: the examples' own mean (what a centred project subtracts before comparing) and each
class's centroid (what the centroid vote compares a query with), derived from the stored vectors.

Both come from the user's examples only, never from camera frames or another data set, and are
derived once per change of the examples (`Space`), so a frame still costs one matrix product
(plus one of C centroids, C <= 100) and, when centred, one subtraction.

Every example weighs the same whatever its number of vectors: an example's vectors (its own
embedding, its mirror, its crops) are averaged first. A vector that centring leaves at (nearly)
zero length has no direction: it stays zero, so it is 0-similar to everything.
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
    out = np.divide(x, norms, out=np.zeros_like(x), where=norms >= ZERO_NORM)
    return out.astype(np.float32)


def example_means(rows: np.ndarray, owner: np.ndarray, n_examples: int) -> np.ndarray:
    """Each example's mean vector [N, D] from its rows (`owner[r]`: the example index of row r)."""
    sums = np.zeros((n_examples, rows.shape[1]), np.float64)
    np.add.at(sums, owner, rows)
    counts = np.bincount(owner, minlength=n_examples).astype(np.float64)
    return sums / np.maximum(counts, 1.0)[:, None]


@dataclass(frozen=True)
class Space:
    """The stored vectors as a rule compares them, and the class centroids among them.

    Attributes:
        mean: [D] the examples' mean, subtracted from every vector and query before comparing
            (then re-normalised); None when the project is not centred.
        vectors: [R, D] float32, the stored rows in the order given, as compared.
        centroids: [C', D] float32 unit rows, one per class that has examples.
        centroid_classes: [C'] int64, the class index of each centroid, ascending.
    """

    mean: np.ndarray | None
    vectors: np.ndarray
    centroids: np.ndarray
    centroid_classes: np.ndarray

    def place(self, queries: np.ndarray) -> np.ndarray:
        """Normalised queries [M, D] -> as compared (centred and re-normalised when centred)."""
        return queries if self.mean is None else unit_rows(queries - self.mean)


def build_space(rows: np.ndarray, owner: np.ndarray, example_class: np.ndarray, centred: bool) -> Space:
    """The `Space` of stored vectors.

    Args:
        rows: [R, D] normalised vectors, in any order.
        owner: [R] the example index (0..N-1) each row belongs to.
        example_class: [N] each example's class index.
        centred: subtract the examples' mean.
    """
    example_class = np.asarray(example_class, np.int64)
    owner = np.asarray(owner, np.int64)
    n = len(example_class)
    mean = None
    vectors = np.asarray(rows, np.float32)
    if centred and n:
        mean = example_means(vectors, owner, n).mean(axis=0).astype(np.float32)
        vectors = unit_rows(vectors - mean)
    means = example_means(vectors, owner, n)
    classes, inverse = np.unique(example_class, return_inverse=True)
    sums = np.zeros((len(classes), vectors.shape[1]), np.float64)
    np.add.at(sums, inverse, means)
    return Space(mean, vectors, unit_rows(sums), classes.astype(np.int64))
