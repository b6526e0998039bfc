"""The examples' storage: a growable matrix of normalised embeddings, ids -> rows, nearest(q, k).

An example is one image the user added and one or more stored vectors: its own embedding, and
with augmentation those of its mirror and crops too (knn.core.images.augmented_views). An example
is as similar to a query as its most similar vector, and the k nearest *examples* vote.

A preallocated float32 matrix that doubles when full (adding is amortised O(D) per vector), with
parallel arrays of class indices and example ids per row, and one image per example. Removing an
example moves the last rows into its rows' places, O(D) per vector, so rows are in no particular
order: ids increase with insertion and every listing sorts by id. Each class's sum of example
means is kept as examples come and go (knn.core.centroids), O(V × D) per example. Not
thread-safe: the classifier's lock guards it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .centroids import Space

INITIAL_ROWS = 64


class EmbeddingStore:
    """Rows of (normalised embedding, class index, example id); one image per example."""

    def __init__(self) -> None:
        self._next_id = 0
        self.clear()

    def clear(self) -> None:
        """Remove every example; an empty store accepts embeddings of any size again. Ids are never reused."""
        self._dim: int | None = None
        self._n = 0  # rows in use
        self._emb = np.zeros((0, 0), dtype=np.float32)
        self._cls = np.zeros(0, dtype=np.int32)
        self._ids = np.zeros(0, dtype=np.int64)
        self._rows_of: dict[int, list[int]] = {}  # example id -> its rows, its own embedding first
        self._images: dict[int, bytes | None] = {}
        self._most_vectors = 1
        self._class_sums = np.zeros((0, 0), np.float64)  # [classes, D]: each class's sum of example means
        self._class_counts = np.zeros(0, np.int64)  # [classes]: examples per class

    def _tally(self, example_rows: list[int], index: int, sign: int) -> None:
        """Add (+1) or take away (-1) one example's mean from class `index`'s sum."""
        if index >= len(self._class_counts):
            grow, dim = index + 1 - len(self._class_counts), self._emb.shape[1]
            self._class_sums = np.vstack([self._class_sums.reshape(-1, dim), np.zeros((grow, dim))])
            self._class_counts = np.concatenate([self._class_counts, np.zeros(grow, np.int64)])
        self._class_counts[index] += sign
        if self._class_counts[index] == 0:
            self._class_sums[index] = 0.0  # no residue of rounding in an empty class
        else:
            self._class_sums[index] += sign * self._emb[example_rows].mean(axis=0, dtype=np.float64)

    def __len__(self) -> int:
        """Examples stored."""
        return len(self._rows_of)

    @property
    def vectors(self) -> int:
        """Vectors stored (rows in use): what each query is compared with."""
        return self._n

    @property
    def dim(self) -> int | None:
        """Embedding size; None while empty."""
        return self._dim if self._n else None

    # ---- writing ---------------------------------------------------------------------------

    def append(
        self,
        rows: np.ndarray,
        classes: np.ndarray,
        images: Sequence[bytes | None],
        vectors: Sequence[int] | None = None,
    ) -> list[int]:
        """Store examples; returns their new ids.

        Args:
            rows: normalised float32 [R, D], each example's vectors one after the other.
            classes: the class index of each of the N examples.
            images: each example's JPEG or None.
            vectors: how many of `rows` each example has (all 1 when omitted); they sum to R.
        """
        counts = [1] * len(classes) if vectors is None else [int(v) for v in vectors]
        if self._n == 0:
            self._dim = rows.shape[1]
            if self._emb.shape[1] != self._dim:
                self._emb = np.zeros((0, self._dim), dtype=np.float32)
        start, stop = self._n, self._n + len(rows)
        self._grow(stop)
        ids = list(range(self._next_id, self._next_id + len(counts)))
        owners = np.repeat(np.asarray(ids, np.int64), counts)
        self._emb[start:stop] = rows
        self._cls[start:stop] = np.repeat(np.asarray(classes, np.int32), counts)
        self._ids[start:stop] = owners
        row = start
        for example_id, count, image, index in zip(ids, counts, images, np.asarray(classes).tolist(), strict=True):
            self._rows_of[example_id] = list(range(row, row + count))
            self._images[example_id] = image
            self._tally(self._rows_of[example_id], int(index), +1)
            row += count
        self._next_id += len(ids)
        self._n = stop
        self._most_vectors = max(self._most_vectors, *counts) if counts else self._most_vectors
        return ids

    def _grow(self, needed: int) -> None:
        """Make room for `needed` rows, doubling the capacity (amortised O(1) rows copied per add)."""
        capacity = self._emb.shape[0]
        if needed <= capacity:
            return
        new_capacity = max(INITIAL_ROWS, capacity)
        while new_capacity < needed:
            new_capacity *= 2
        emb = np.empty((new_capacity, self._emb.shape[1]), dtype=np.float32)  # append set the width
        cls = np.empty(new_capacity, dtype=np.int32)
        ids = np.empty(new_capacity, dtype=np.int64)
        emb[: self._n] = self._emb[: self._n]
        cls[: self._n] = self._cls[: self._n]
        ids[: self._n] = self._ids[: self._n]
        self._emb, self._cls, self._ids = emb, cls, ids

    def delete(self, example_ids: Sequence[int]) -> list[int]:
        """Delete examples with all their vectors; returns their class indices."""
        removed = []
        for example_id in example_ids:
            rows = self._rows_of.pop(example_id)
            self._images.pop(example_id)
            removed.append(int(self._cls[rows[0]]))
            self._tally(rows, removed[-1], -1)
            for row in sorted(rows, reverse=True):  # descending: a moved row is never a later target
                self._move_last_into(row)
        if not self._rows_of:
            self.clear()
        elif self._most_vectors > 1 and all(len(r) == 1 for r in self._rows_of.values()):
            self._most_vectors = 1
        return removed

    def _move_last_into(self, row: int) -> None:
        last = self._n - 1
        if row != last:
            self._emb[row] = self._emb[last]
            self._cls[row] = self._cls[last]
            moved = int(self._ids[last])
            self._ids[row] = moved
            rows = self._rows_of[moved]
            rows[rows.index(last)] = row
        self._n = last

    def relabel(self, example_id: int, index: int) -> int:
        """Move an example (all its vectors) to class `index`; returns the class it had."""
        rows = self._rows_of[example_id]
        old = int(self._cls[rows[0]])
        self._tally(rows, old, -1)
        self._tally(rows, index, +1)
        self._cls[rows] = index
        return old

    def drop_class(self, index: int) -> None:
        """Delete the examples of class `index`; later classes move up one place."""
        self.delete(self.examples_of_class(index))
        live = self._cls[: self._n]
        live[live > index] -= 1
        if index < len(self._class_counts):
            self._class_sums = np.delete(self._class_sums, index, axis=0)
            self._class_counts = np.delete(self._class_counts, index)

    # ---- reading ---------------------------------------------------------------------------

    def has(self, example_id: int) -> bool:
        return example_id in self._rows_of

    def class_of(self, example_id: int) -> int:
        return int(self._cls[self._rows_of[example_id][0]])

    def image_of(self, example_id: int) -> bytes | None:
        return self._images[example_id]

    def examples_of_class(self, index: int | None = None) -> list[int]:
        """Example ids in insertion order, all or those of one class."""
        if index is None:
            return sorted(self._rows_of)
        own_rows = np.flatnonzero(self._cls[: self._n] == index)
        return sorted({int(i) for i in self._ids[own_rows].tolist()})

    def vectors_of(self, example_id: int) -> np.ndarray:
        """A copy of the example's vectors [V, D], its own embedding first."""
        return self._emb[self._rows_of[example_id]]

    def classes_at(self, rows: np.ndarray) -> np.ndarray:
        classes: np.ndarray = self._cls[rows]
        return classes

    def ids_at(self, rows: np.ndarray) -> np.ndarray:
        ids: np.ndarray = self._ids[rows]
        return ids

    def rows_in_order(self) -> tuple[np.ndarray, np.ndarray]:
        """(rows, vectors per example): every example's rows, examples in insertion order."""
        order = self.examples_of_class()
        counts = np.fromiter((len(self._rows_of[i]) for i in order), np.int64, len(order))
        rows = np.fromiter((r for i in order for r in self._rows_of[i]), np.int64, int(counts.sum()))
        return rows, counts

    def arrays_in_order(self) -> tuple[np.ndarray, np.ndarray, tuple[bytes | None, ...], np.ndarray]:
        """Copies in insertion order: (every vector [R, D], class index [N], image per example,
        vectors per example [N])."""
        ids = self.examples_of_class()
        rows, counts = self.rows_in_order()
        embeddings = self._emb[rows] if len(rows) else np.zeros((0, self._dim or 0), np.float32)
        classes = np.fromiter((self.class_of(i) for i in ids), np.int64, len(ids))
        return embeddings, classes, tuple(self._images[i] for i in ids), counts

    def nearest(self, queries: np.ndarray, k: int, space: Space | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The k nearest examples for normalised [M, D] queries, most similar first, equal
        similarities in id order (so listings do not depend on row order). An example is as
        similar as its most similar vector. Returns (sims [M, k] float32, rows [M, k]): each
        example's most similar row, through which its class and id are looked up.

        With a centred project's `space` (derived from this store's rows in their current order),
        the queries come placed (`Space.place`) and the similarities are centred ones."""
        n = self._n
        emb = self._emb[:n]
        examples = len(self._rows_of)
        k = min(k, examples)
        # Each example has at most `_most_vectors` rows, so this many nearest rows hold k examples.
        wide = min(n, k * self._most_vectors)
        if len(queries) == 1:  # the video loop's case: matrix-vector product, 1-D selection
            sims1 = emb @ queries[0]
            if space is not None:
                sims1 = space.similarities(sims1[None, :], queries)[0]
            part1 = np.argpartition(sims1, n - wide)[n - wide :] if wide < n else np.arange(n)
            top1 = sims1[part1]
            order1 = np.lexsort((self._ids[part1], -top1))
            sims, rows = top1[order1][None, :], part1[order1][None, :]
        else:
            all_sims = queries @ emb.T
            if space is not None:
                all_sims = space.similarities(all_sims, queries)
            if wide < n:
                part = np.argpartition(all_sims, n - wide, axis=1)[:, n - wide :]
                top = np.take_along_axis(all_sims, part, axis=1)
            else:
                part = np.broadcast_to(np.arange(n), all_sims.shape)
                top = all_sims
            order = np.lexsort((self._ids[part], -top), axis=1)
            sims, rows = np.take_along_axis(top, order, axis=1), np.take_along_axis(part, order, axis=1)
        if wide == k:
            return sims, rows
        return _first_per_example(sims, rows, self._ids, k)

    def rows(self) -> np.ndarray:
        """The vectors in use [R, D], in row order (not insertion order): a view, valid until the
        next change."""
        return self._emb[: self._n]

    def class_sums(self) -> tuple[np.ndarray, np.ndarray]:
        """(each class's sum of example means [C, D] float64, its number of examples [C]) for the
        classes up to the last that ever had an example here (later classes have none)."""
        return self._class_sums, self._class_counts

    def copy(self) -> EmbeddingStore:
        """An independent copy (ids kept)."""
        other = EmbeddingStore()
        other._next_id, other._dim, other._n = self._next_id, self._dim, self._n
        other._emb, other._cls, other._ids = self._emb.copy(), self._cls.copy(), self._ids.copy()
        other._rows_of = {i: list(r) for i, r in self._rows_of.items()}
        other._images = dict(self._images)
        other._most_vectors = self._most_vectors
        other._class_sums, other._class_counts = self._class_sums.copy(), self._class_counts.copy()
        return other

    @property
    def capacity(self) -> int:
        return self._emb.shape[0]


def _first_per_example(sims: np.ndarray, rows: np.ndarray, ids: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per query, the first `k` rows of distinct examples (rows come most similar first)."""
    out_sims = np.empty((len(sims), k), sims.dtype)
    out_rows = np.empty((len(rows), k), rows.dtype)
    for q, (sims_q, rows_q) in enumerate(zip(sims, rows, strict=True)):
        _, first = np.unique(ids[rows_q], return_index=True)
        keep = np.sort(first)[:k]
        out_sims[q], out_rows[q] = sims_q[keep], rows_q[keep]
    return out_sims, out_rows
