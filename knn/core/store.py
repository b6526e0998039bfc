"""The examples' storage: a growable matrix of normalised embeddings, ids -> rows, nearest(q, k).

A preallocated float32 matrix that doubles when full (adding is amortised O(D)), with parallel
arrays of class indices and example ids and a list of images. Removing an example moves the last
row into its place, O(D), so rows are not in insertion order: ids increase with insertion and
every listing sorts by id. Not thread-safe: the classifier's lock guards it.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

INITIAL_ROWS = 64


class EmbeddingStore:
    """Rows of (normalised embedding, class index, example id, image)."""

    def __init__(self) -> None:
        self._next_id = 0
        self.clear()

    def clear(self) -> None:
        """Remove every row; an empty store accepts embeddings of any size again. Ids are never reused."""
        self._dim: int | None = None
        self._n = 0
        self._emb = np.zeros((0, 0), dtype=np.float32)
        self._cls = np.zeros(0, dtype=np.int32)
        self._ids = np.zeros(0, dtype=np.int64)
        self._images: list[bytes | None] = []
        self._row_of: dict[int, int] = {}

    def __len__(self) -> int:
        return self._n

    @property
    def dim(self) -> int | None:
        """Embedding size; None while empty."""
        return self._dim if self._n else None

    # ---- writing ---------------------------------------------------------------------------

    def append(self, rows: np.ndarray, classes: np.ndarray, images: Sequence[bytes | None]) -> list[int]:
        """Store normalised float32 rows [n, D] with their class indices; returns the new ids."""
        if self._n == 0:
            self._dim = rows.shape[1]
            if self._emb.shape[1] != self._dim:
                self._emb = np.zeros((0, self._dim), dtype=np.float32)
        start, stop = self._n, self._n + len(rows)
        self._grow(stop)
        ids = np.arange(self._next_id, self._next_id + len(rows), dtype=np.int64)
        self._emb[start:stop] = rows
        self._cls[start:stop] = classes
        self._ids[start:stop] = ids
        self._images.extend(images)
        for offset, example_id in enumerate(ids.tolist()):
            self._row_of[example_id] = start + offset
        self._next_id += len(rows)
        self._n = stop
        return ids.tolist()

    def _grow(self, needed: int) -> None:
        """Make room for `needed` rows, doubling the capacity (amortised O(1) rows copied per add)."""
        capacity = self._emb.shape[0]
        if needed <= capacity:
            return
        new_capacity = max(INITIAL_ROWS, capacity)
        while new_capacity < needed:
            new_capacity *= 2
        emb = np.empty((new_capacity, self._dim), dtype=np.float32)
        cls = np.empty(new_capacity, dtype=np.int32)
        ids = np.empty(new_capacity, dtype=np.int64)
        emb[: self._n] = self._emb[: self._n]
        cls[: self._n] = self._cls[: self._n]
        ids[: self._n] = self._ids[: self._n]
        self._emb, self._cls, self._ids = emb, cls, ids

    def delete_rows(self, rows: np.ndarray) -> np.ndarray:
        """Delete rows by moving the last live row into each hole (O(D) per row); returns the
        deleted rows' class indices."""
        removed = self._cls[rows].copy()
        for row in sorted(np.asarray(rows).tolist(), reverse=True):  # descending: a moved row is never a later target
            last = self._n - 1
            del self._row_of[int(self._ids[row])]
            if row != last:
                self._emb[row] = self._emb[last]
                self._cls[row] = self._cls[last]
                self._ids[row] = self._ids[last]
                self._images[row] = self._images[last]
                self._row_of[int(self._ids[row])] = row
            self._images.pop()
            self._n = last
        if self._n == 0:
            self.clear()
        return removed

    def drop_class(self, index: int) -> None:
        """Delete the rows of class `index`; later classes move up one place."""
        self.delete_rows(self.rows_of_class(index))
        live = self._cls[: self._n]
        live[live > index] -= 1

    # ---- reading ---------------------------------------------------------------------------

    def row_of(self, example_id: object) -> int | None:
        return self._row_of.get(example_id) if isinstance(example_id, (int, np.integer)) else None

    def rows_of_class(self, index: int) -> np.ndarray:
        return np.flatnonzero(self._cls[: self._n] == index)

    def order(self) -> np.ndarray:
        """Live rows sorted by example id, i.e. in insertion order."""
        return np.argsort(self._ids[: self._n], kind="stable")

    def classes_at(self, rows: np.ndarray) -> np.ndarray:
        return self._cls[rows]

    def ids_at(self, rows: np.ndarray) -> np.ndarray:
        return self._ids[rows]

    def image_at(self, row: int) -> bytes | None:
        return self._images[row]

    def embeddings_at(self, rows: np.ndarray) -> np.ndarray:
        """A copy of these rows' embeddings."""
        return self._emb[rows]

    def nearest(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-k rows for normalised [M, D] queries, most similar first, equal similarities in id
        order (so listings do not depend on row order). Returns (sims [M, k] float32, rows [M, k])."""
        n = self._n
        k = min(k, n)
        if len(queries) == 1:  # the video loop's case: matrix-vector product, 1-D selection
            sims1 = self._emb[:n] @ queries[0]
            part1 = np.argpartition(sims1, n - k)[n - k :] if k < n else np.arange(n)
            top1 = sims1[part1]
            order1 = np.lexsort((self._ids[part1], -top1))
            return top1[order1][None, :], part1[order1][None, :]
        sims = queries @ self._emb[:n].T
        if k < n:
            part = np.argpartition(sims, n - k, axis=1)[:, n - k :]
            top = np.take_along_axis(sims, part, axis=1)
        else:
            part = np.broadcast_to(np.arange(n), sims.shape)
            top = sims
        order = np.lexsort((self._ids[part], -top), axis=1)
        return np.take_along_axis(top, order, axis=1), np.take_along_axis(part, order, axis=1)

    def copy(self) -> "EmbeddingStore":
        """An independent copy (ids kept)."""
        other = EmbeddingStore()
        other._next_id, other._dim, other._n = self._next_id, self._dim, self._n
        other._emb, other._cls, other._ids = self._emb.copy(), self._cls.copy(), self._ids.copy()
        other._images = list(self._images)
        other._row_of = dict(self._row_of)
        return other

    @property
    def capacity(self) -> int:
        return self._emb.shape[0]
