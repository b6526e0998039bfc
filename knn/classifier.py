"""K-nearest-neighbour classifier over image embeddings (NumPy only).

Why not the TF.js `knn-classifier` rules: it takes k=3 neighbours, gives each one vote and, on a tie,
answers the class that was added first. With one example per class every class gets at most one
vote, so almost every query is a three-way tie and the first class wins. On a 71-class set of real
webcam photos that scored 25.8% where plain nearest neighbour scored 67.4%. Here each of the k
nearest examples votes with its cosine similarity, and ties are broken by similarity, never by the
order in which classes were made.

Design:

- Embeddings are L2-normalised on the way in, so cosine similarity is one matrix product per query
  (a batch of queries is one product too).
- The store is a preallocated float32 matrix that doubles when full (add is amortised O(D)), with
  parallel arrays of class indices and example ids. Removing an example moves the last row into its
  place, O(D), so rows are not in insertion order; example ids increase with insertion and every
  listing is sorted by id.
- One `threading.RLock` guards all state: a video thread predicts while the page thread adds and
  removes.

Examples:

```python
clf = KNNClassifier(k=3, unknown_threshold=0.5)
clf.add(embedder.embed(rock_frame)[0], "rock")
clf.add(embedder.embed(paper_frame)[0], "paper")
pred = clf.predict(embedder.embed(frame)[0])
pred.label, pred.confidences, pred.similarity, pred.neighbors
```
"""
from __future__ import annotations

import math
import threading
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = [
    "ClassifierError",
    "ClassifierState",
    "Evaluation",
    "Example",
    "KNNClassifier",
    "Neighbor",
    "Prediction",
]

_INITIAL_ROWS = 64
_TIE_TOLERANCE = 1e-6  # sums of float32 similarities that differ by less than this are ties
_MIN_WEIGHT = 1e-3  # least vote of a neighbour; far above _TIE_TOLERANCE so counts never look tied
_EVAL_BLOCK = 4096  # leave-one-out rows per matrix product: bounds memory to 4096 × N floats


class ClassifierError(ValueError):
    """A request the classifier refuses; the message is meant for the user."""


@dataclass(frozen=True)
class Neighbor:
    """One stored example near a query."""

    example_id: int
    label: str
    similarity: float


@dataclass(frozen=True)
class Prediction:
    """The answer for one query embedding.

    Attributes:
        label: the predicted class; None when unknown or when there are no examples.
        confidences: one entry per class in class order, summing to 1 (all 0 without examples).
        similarity: cosine similarity of the best match (nan without examples).
        neighbors: the k nearest examples, most similar first.
        unknown: True when the best similarity is below `unknown_threshold`.
    """

    label: str | None
    confidences: dict[str, float]
    similarity: float
    neighbors: tuple[Neighbor, ...]
    unknown: bool


@dataclass(frozen=True)
class Example:
    """A stored example: its id, class and JPEG image (or None)."""

    example_id: int
    label: str
    image: bytes | None


@dataclass(frozen=True)
class Evaluation:
    """Leave-one-out results: each example is classified by all the others.

    Attributes:
        classes: class order of `per_class` and of the confusion matrix.
        accuracy: fraction right; nan with fewer than 2 examples.
        per_class: accuracy per class; nan for a class with no examples.
        confusion: [C, C] int counts, rows = true class, columns = predicted class.
        n: number of examples evaluated.
    """

    classes: list[str]
    accuracy: float
    per_class: dict[str, float]
    confusion: np.ndarray
    n: int


@dataclass(frozen=True)
class ClassifierState:
    """Everything a classifier holds, as plain arrays (what a project file stores).

    Attributes:
        classes: class names in order.
        embeddings: float32 [N, D], L2-normalised, in insertion order.
        labels: int [N] indices into `classes`.
        images: N JPEG bytes or None.
        k, unknown_threshold, max_examples_per_class: the settings.
        dim: embedding size, None when there are no examples.
    """

    classes: tuple[str, ...]
    embeddings: np.ndarray
    labels: np.ndarray
    images: tuple[bytes | None, ...]
    k: int
    unknown_threshold: float | None
    max_examples_per_class: int
    dim: int | None


def _check_k(k: object) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ClassifierError(f"k must be a whole number of at least 1, got {k!r}")
    return int(k)


def _check_threshold(threshold: object) -> float | None:
    if threshold is None:
        return None
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float, np.floating, np.integer)):
        raise ClassifierError(f"unknown_threshold must be a number or None, got {threshold!r}")
    value = float(threshold)
    if not -1.0 <= value <= 1.0:  # also refuses nan
        raise ClassifierError(f"unknown_threshold is a cosine similarity, so it must lie in -1..1, got {value}")
    return value


def _check_cap(cap: object) -> int:
    if isinstance(cap, bool) or not isinstance(cap, (int, np.integer)) or cap < 1:
        raise ClassifierError(f"max_examples_per_class must be a whole number of at least 1, got {cap!r}")
    return int(cap)


def _check_name(label: object) -> str:
    if not isinstance(label, str):
        raise ClassifierError(f"a class name must be text, got {type(label).__name__}")
    if not label.strip():
        raise ClassifierError("a class name cannot be empty")
    if any(unicodedata.category(ch) == "Cc" for ch in label):
        # Also keeps names exact in a project file: NumPy's fixed-width strings drop trailing NULs.
        raise ClassifierError(f"a class name cannot contain control characters (newlines, tabs, ...): {label!r}")
    return label


def _check_image(image: object) -> bytes | None:
    if image is None:
        return None
    if not isinstance(image, (bytes, bytearray, memoryview)):
        raise ClassifierError(f"an example's image must be JPEG bytes or None, got {type(image).__name__}")
    return bytes(image) or None


def _normalise(embeddings: np.ndarray, dim: int | None) -> np.ndarray:
    """Validate a [N, D] batch and return it L2-normalised as float32."""
    if embeddings.dtype.kind not in "fiu" or embeddings.dtype == np.bool_:
        raise ClassifierError(f"embeddings must be numbers, got dtype {embeddings.dtype}")
    if embeddings.shape[1] == 0:
        raise ClassifierError("an embedding cannot be empty")
    if dim is not None and embeddings.shape[1] != dim:
        raise ClassifierError(
            f"this embedding has {embeddings.shape[1]} values but the classifier holds {dim}-value "
            "embeddings; it was probably made by a different backbone"
        )
    values = embeddings.astype(np.float64, copy=False)
    squares = np.einsum("ij,ij->i", values, values)[:, None]
    if not (np.isfinite(squares).all() and (squares > 0).all()):  # rare: find out what is wrong
        if not np.isfinite(values).all():
            raise ClassifierError("an embedding contains NaN or infinite values")
        if not values.any(axis=1).all():
            raise ClassifierError("an embedding is all zeros, so it has no direction to compare")
        values = values / np.abs(values).max(axis=1, keepdims=True)  # huge or tiny values: rescale first
        squares = np.einsum("ij,ij->i", values, values)[:, None]
    norms = np.sqrt(squares)
    # Rows already of unit length are kept as they are, so normalising is idempotent: a store
    # saved and loaded again (or re-added from embeddings()) is bit-for-bit the same.
    norms[np.abs(norms - 1.0) <= 1e-6] = 1.0
    return (values / norms).astype(np.float32)


def _as_batch(embeddings: object, what: str) -> np.ndarray:
    array = np.asarray(embeddings)
    if array.ndim != 2:
        raise ClassifierError(
            f"{what} expects a 2-D array [n_samples, n_features], got shape {array.shape}; "
            "use predict() for a single embedding or reshape(1, -1)"
        )
    return array


def _as_single(embedding: object) -> np.ndarray:
    array = np.asarray(embedding)
    if array.ndim == 2 and array.shape[0] == 1:
        array = array[0]
    if array.ndim != 1:
        raise ClassifierError(
            f"expected one embedding (a 1-D array), got shape {array.shape}; use predict_many() for a batch"
        )
    return array[None, :]


def _vote(sims: np.ndarray, cls: np.ndarray, n_classes: int, name_rank: np.ndarray):
    """Weighted votes and decisions for [M, k] neighbour similarities and class indices.

    Each neighbour votes with its similarity. Similarities below `_MIN_WEIGHT` (an unrelated or
    opposite example) count as a token `_MIN_WEIGHT`, so the weights never sum to 0 and, when all
    k neighbours are unrelated, the votes fall back to counts. The winner is the class with the
    most vote; ties (within `_TIE_TOLERANCE`) go to the larger summed raw similarity, then to the
    larger single best similarity, and only between classes that are indistinguishable on all three
    to the alphabetically first name -- never to the class that was made first. Only classes
    present among the neighbours can win.

    Returns:
        (confidences [M, C] float64 rows summing to 1, winner [M] class indices)
    """
    m, k = sims.shape
    flat = (np.arange(m)[:, None] * n_classes + cls).reshape(-1)  # index into the [M, C] tables
    flat_sims = sims.reshape(-1).astype(np.float64)
    votes = np.bincount(flat, np.maximum(flat_sims, _MIN_WEIGHT), m * n_classes).reshape(m, n_classes)
    raw = np.bincount(flat, flat_sims, m * n_classes).reshape(m, n_classes)
    best = np.full(m * n_classes, -np.inf)
    np.maximum.at(best, flat, flat_sims)
    best = best.reshape(m, n_classes)
    candidates = np.isfinite(best)  # classes with at least one neighbour
    for key in (votes, raw, best):
        top = np.where(candidates, key, -np.inf).max(axis=1, keepdims=True)
        candidates &= key >= top - _TIE_TOLERANCE
    winner = np.where(candidates, name_rank[None, :], n_classes).argmin(axis=1)
    return votes / votes.sum(axis=1, keepdims=True), winner


def _vote_one(sims: list[float], cls: list[int], n_classes: int, name_rank: list[int]) -> tuple[list[float], int]:
    """`_vote` for one query's neighbours, in plain Python: k is small, so this is ~10x faster than
    a dozen NumPy calls on 3-element arrays. The same rules, in the same order of summation."""
    votes: dict[int, float] = {}
    raw: dict[int, float] = {}
    best: dict[int, float] = {}
    for sim, c in zip(sims, cls):
        votes[c] = votes.get(c, 0.0) + max(sim, _MIN_WEIGHT)
        raw[c] = raw.get(c, 0.0) + sim
        best[c] = max(best.get(c, -math.inf), sim)
    candidates = list(votes)
    for key in (votes, raw, best):
        top = max(key[c] for c in candidates)
        candidates = [c for c in candidates if key[c] >= top - _TIE_TOLERANCE]
    total = sum(votes.values())
    confidences = [0.0] * n_classes
    for c, vote in votes.items():
        confidences[c] = vote / total
    return confidences, min(candidates, key=name_rank.__getitem__)


class KNNClassifier:
    """K-nearest-neighbour classifier with similarity-weighted votes.

    A query is compared with every stored example by cosine similarity; each of the k most similar
    examples votes for its class with its similarity, and confidences are the votes normalised to
    sum to 1. Ties are broken by the summed similarity, then by the single best similarity, and
    only for classes indistinguishable on both by the alphabetical order of their names: never by
    the order in which classes were created.

    Args:
        k: number of neighbours that vote (clipped to the number of stored examples).
        unknown_threshold: when the best cosine similarity is below this, `predict` answers
            unknown (label None). None never answers unknown.
        max_examples_per_class: adding beyond this raises `ClassifierError`; it bounds memory and
            keeps predict fast (10,000 examples of 1,024 values are 41 MB, scanned per frame).

    Attributes:
        k, unknown_threshold, max_examples_per_class: settable, validated.
        dim: embedding size, set by the first add (None while empty).
        classes: class names in order (a copy); classes may hold no examples.
    """

    def __init__(self, k: int = 3, unknown_threshold: float | None = None, max_examples_per_class: int = 1000):
        self._lock = threading.RLock()
        self._k = _check_k(k)
        self._threshold = _check_threshold(unknown_threshold)
        self._cap = _check_cap(max_examples_per_class)
        self._classes: list[str] = []
        self._class_index: dict[str, int] = {}
        self._counts: list[int] = []
        self._next_id = 0
        self._rank: np.ndarray | None = None  # cached by _name_rank, reset when names change
        self._reset_store()

    def _reset_store(self) -> None:
        self._dim: int | None = None
        self._n = 0
        self._emb = np.zeros((0, 0), dtype=np.float32)
        self._cls = np.zeros(0, dtype=np.int32)
        self._ids = np.zeros(0, dtype=np.int64)
        self._images: list[bytes | None] = []
        self._row_of: dict[int, int] = {}

    # ----------------------------------------------------------------- settings
    @property
    def k(self) -> int:
        return self._k

    @k.setter
    def k(self, value: int) -> None:
        self._k = _check_k(value)

    @property
    def unknown_threshold(self) -> float | None:
        return self._threshold

    @unknown_threshold.setter
    def unknown_threshold(self, value: float | None) -> None:
        self._threshold = _check_threshold(value)

    @property
    def max_examples_per_class(self) -> int:
        return self._cap

    @max_examples_per_class.setter
    def max_examples_per_class(self, value: int) -> None:
        # Lowering it below a class's count keeps the examples; it only refuses further adds.
        self._cap = _check_cap(value)

    @property
    def dim(self) -> int | None:
        return self._dim

    @property
    def classes(self) -> list[str]:
        with self._lock:
            return list(self._classes)

    # ----------------------------------------------------------------- classes
    def _index(self, label: str) -> int:
        try:
            return self._class_index[label]
        except (KeyError, TypeError):
            raise ClassifierError(f"there is no class named {label!r}") from None

    def add_class(self, label: str) -> None:
        """Create an empty class at the end of the class order.

        Raises:
            ClassifierError: the name is empty or already used.
        """
        label = _check_name(label)
        with self._lock:
            if label in self._class_index:
                raise ClassifierError(f"a class named {label!r} already exists")
            self._class_index[label] = len(self._classes)
            self._classes.append(label)
            self._rank = None
            self._counts.append(0)

    def rename_class(self, old: str, new: str) -> None:
        """Rename a class, keeping its place and its examples."""
        new = _check_name(new)
        with self._lock:
            index = self._index(old)
            if new == old:
                return
            if new in self._class_index:
                raise ClassifierError(f"a class named {new!r} already exists")
            del self._class_index[old]
            self._class_index[new] = index
            self._classes[index] = new
            self._rank = None

    def remove_class(self, label: str) -> None:
        """Remove a class and all its examples."""
        with self._lock:
            index = self._index(label)
            self._delete_rows(np.flatnonzero(self._cls[: self._n] == index))
            del self._classes[index]
            self._rank = None
            del self._counts[index]
            self._class_index = {name: i for i, name in enumerate(self._classes)}
            # Later classes move up one place.
            live = self._cls[: self._n]
            live[live > index] -= 1

    def clear_class(self, label: str) -> None:
        """Remove all examples of a class, keeping the (now empty) class."""
        with self._lock:
            index = self._index(label)
            self._delete_rows(np.flatnonzero(self._cls[: self._n] == index))

    def clear(self) -> None:
        """Remove every example and every class (settings are kept)."""
        with self._lock:
            self._classes, self._class_index, self._counts = [], {}, []
            self._rank = None
            self._reset_store()

    def counts(self) -> dict[str, int]:
        """Number of examples per class, in class order."""
        with self._lock:
            return dict(zip(self._classes, self._counts))

    def __len__(self) -> int:
        return self._n

    def __repr__(self) -> str:
        return (
            f"KNNClassifier(k={self._k}, unknown_threshold={self._threshold}, "
            f"classes={len(self._classes)}, examples={self._n}, dim={self._dim})"
        )

    # ----------------------------------------------------------------- examples
    def _grow(self, needed: int) -> None:
        """Make room for `needed` rows, doubling the capacity (amortised O(1) rows copied per add)."""
        capacity = self._emb.shape[0]
        if needed <= capacity:
            return
        new_capacity = max(_INITIAL_ROWS, capacity)
        while new_capacity < needed:
            new_capacity *= 2
        emb = np.empty((new_capacity, self._dim), dtype=np.float32)
        cls = np.empty(new_capacity, dtype=np.int32)
        ids = np.empty(new_capacity, dtype=np.int64)
        emb[: self._n] = self._emb[: self._n]
        cls[: self._n] = self._cls[: self._n]
        ids[: self._n] = self._ids[: self._n]
        self._emb, self._cls, self._ids = emb, cls, ids

    def add(self, embedding: np.ndarray, label: str, image: bytes | None = None) -> int:
        """Store one example; the class is created (at the end) if it does not exist.

        Args:
            embedding: 1-D array of D numbers (the first add fixes D).
            label: class name.
            image: the example's JPEG bytes (see `images.encode_jpeg`) or None.

        Returns:
            The new example's id (ids are never reused within one classifier).

        Raises:
            ClassifierError: wrong size, NaN/inf/all-zero embedding, empty class name, or the class
                already holds `max_examples_per_class` examples.
        """
        return self.add_many(_as_single(embedding), [label], [image])[0]

    def add_many(
        self,
        embeddings: np.ndarray,
        labels: Sequence[str],
        images: Sequence[bytes | None] | None = None,
    ) -> list[int]:
        """Store a batch of examples, all or none.

        Args:
            embeddings: [N, D] array.
            labels: N class names; missing classes are created in order of first appearance.
            images: N JPEG bytes or None, or None for no images.

        Returns:
            The N new example ids, in order.
        """
        batch = _as_batch(embeddings, "add_many")
        labels = [labels] if isinstance(labels, str) else list(labels)
        images = [None] * len(labels) if images is None else list(images)
        if not (len(batch) == len(labels) == len(images)):
            raise ClassifierError(
                f"got {len(batch)} embeddings, {len(labels)} labels and {len(images)} images; "
                "the numbers must match"
            )
        labels = [_check_name(label) for label in labels]
        images = [_check_image(image) for image in images]
        with self._lock:
            dim = self._dim if self._n else None
            rows = _normalise(batch, dim)
            if len(rows) == 0:
                return []
            # Check every cap before changing anything, so a failed batch leaves no trace.
            new_classes = list(dict.fromkeys(label for label in labels if label not in self._class_index))
            wanted: dict[str, int] = {}
            for label in labels:
                wanted[label] = wanted.get(label, 0) + 1
            for label, extra in wanted.items():
                have = self._counts[self._class_index[label]] if label in self._class_index else 0
                if have + extra > self._cap:
                    raise ClassifierError(
                        f"class {label!r} has {have:,} examples and the limit is {self._cap:,} per class; "
                        "remove some examples first (or raise max_examples_per_class)"
                    )
            for label in new_classes:
                self.add_class(label)
            if self._n == 0:
                self._dim = rows.shape[1]
                if self._emb.shape[1] != self._dim:
                    self._emb = np.zeros((0, self._dim), dtype=np.float32)
            start, stop = self._n, self._n + len(rows)
            self._grow(stop)
            indices = np.fromiter((self._class_index[label] for label in labels), np.int32, len(labels))
            ids = np.arange(self._next_id, self._next_id + len(rows), dtype=np.int64)
            self._emb[start:stop] = rows
            self._cls[start:stop] = indices
            self._ids[start:stop] = ids
            self._images.extend(images)
            for offset, example_id in enumerate(ids.tolist()):
                self._row_of[example_id] = start + offset
            for index in indices.tolist():
                self._counts[index] += 1
            self._next_id += len(rows)
            self._n = stop
            return ids.tolist()

    def remove(self, example_id: int) -> None:
        """Remove one example by id (its class stays, possibly empty).

        Raises:
            ClassifierError: no example has this id.
        """
        with self._lock:
            row = self._row_of.get(example_id) if isinstance(example_id, (int, np.integer)) else None
            if row is None:
                raise ClassifierError(f"there is no example with id {example_id!r}")
            self._delete_rows(np.array([row]))

    def _delete_rows(self, rows: np.ndarray) -> None:
        """Delete rows by moving the last live row into each hole (O(D) per row)."""
        for row in sorted(rows.tolist(), reverse=True):  # descending: a moved row is never a later target
            last = self._n - 1
            del self._row_of[int(self._ids[row])]
            self._counts[int(self._cls[row])] -= 1
            if row != last:
                self._emb[row] = self._emb[last]
                self._cls[row] = self._cls[last]
                self._ids[row] = self._ids[last]
                self._images[row] = self._images[last]
                self._row_of[int(self._ids[row])] = row
            self._images.pop()
            self._n = last
        if self._n == 0:  # an empty store accepts any embedding size again
            self._reset_store()

    def _order(self) -> np.ndarray:
        """Live rows sorted by example id, i.e. in insertion order."""
        return np.argsort(self._ids[: self._n], kind="stable")

    def examples(self, label: str | None = None) -> list[Example]:
        """Stored examples in insertion order, all or those of one class."""
        with self._lock:
            order = self._order()
            if label is not None:
                index = self._index(label)
                order = order[self._cls[order] == index]
            return [
                Example(int(self._ids[row]), self._classes[self._cls[row]], self._images[row])
                for row in order.tolist()
            ]

    def embeddings(self) -> tuple[np.ndarray, list[str], list[int]]:
        """A copy of the store in insertion order: (float32 [N, D] normalised, labels, ids)."""
        with self._lock:
            order = self._order()
            labels = [self._classes[i] for i in self._cls[order].tolist()]
            return self._emb[order].copy(), labels, self._ids[order].tolist()

    # ----------------------------------------------------------------- prediction
    def _check_query(self, batch: np.ndarray) -> np.ndarray:
        return _normalise(batch, self._dim if self._n else None)

    def _name_rank(self) -> np.ndarray:
        """Each class's position in alphabetical order: the last tie-breaker, independent of class order."""
        if self._rank is not None:
            return self._rank
        rank = np.empty(len(self._classes), dtype=np.int64)
        rank[np.argsort(np.array(self._classes, dtype=object), kind="stable")] = np.arange(len(self._classes))
        self._rank = rank
        return rank

    def _nearest(self, queries: np.ndarray):
        """Top-k rows of the store for normalised [M, D] queries, most similar first.

        Must be called with the lock held. Returns (sims [M, k] float32, rows [M, k]).
        """
        n = self._n
        k = min(self._k, n)
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
        # Most similar first; equal similarities in id order so listings don't depend on row order.
        order = np.lexsort((self._ids[part], -top), axis=1)
        return np.take_along_axis(top, order, axis=1), np.take_along_axis(part, order, axis=1)

    def _predict_locked(self, queries: np.ndarray) -> list[Prediction]:
        classes = list(self._classes)
        if self._n == 0:
            empty = dict.fromkeys(classes, 0.0)
            return [Prediction(None, dict(empty), math.nan, (), False) for _ in range(len(queries))]
        # The lock is held through the matrix product on purpose: rows are moved in place by
        # remove(), so an unlocked view could be read mid-move, and copying the store per frame
        # would cost as much as the product itself. The product is short (~1 ms at 10k × 1024),
        # NumPy releases the GIL during it, and the page thread's adds and removes are human-paced,
        # so at worst an add waits for one frame's prediction.
        sims, rows = self._nearest(queries)
        all_sims, all_cls, all_ids = sims.tolist(), self._cls[rows].tolist(), self._ids[rows].tolist()
        rank = self._name_rank().tolist()
        predictions = []
        for sims_i, cls_i, ids_i in zip(all_sims, all_cls, all_ids):
            confidences, winner = _vote_one(sims_i, cls_i, len(classes), rank)
            best = sims_i[0]
            unknown = self._threshold is not None and best < self._threshold
            neighbors = tuple(Neighbor(e, classes[c], s) for e, c, s in zip(ids_i, cls_i, sims_i))
            predictions.append(
                Prediction(
                    None if unknown else classes[winner], dict(zip(classes, confidences)), best, neighbors, unknown
                )
            )
        return predictions

    def predict(self, embedding: np.ndarray) -> Prediction:
        """Classify one embedding.

        Args:
            embedding: 1-D array of D numbers (or shape [1, D]).

        Returns:
            A `Prediction`: label (None when unknown or empty), per-class confidences summing to 1,
            the best similarity and the k nearest examples.

        Raises:
            ClassifierError: wrong size, NaN/inf or all-zero embedding.
        """
        query = _as_single(embedding)
        with self._lock:
            return self._predict_locked(self._check_query(query))[0]

    def predict_many(self, embeddings: np.ndarray) -> list[Prediction]:
        """Classify a batch [M, D]; one matrix product per chunk of queries."""
        batch = _as_batch(embeddings, "predict_many")
        with self._lock:
            queries = self._check_query(batch)
            out: list[Prediction] = []
            step = self._chunk_rows()
            for start in range(0, len(queries), step):
                out.extend(self._predict_locked(queries[start : start + step]))
            return out

    def predict_proba(self, embeddings: np.ndarray) -> np.ndarray:
        """Confidences for a batch [M, D] as an [M, C] array in class order (scikit-learn style).

        Rows sum to 1 (all 0 when there are no examples). `unknown_threshold` does not apply.
        """
        batch = _as_batch(embeddings, "predict_proba")
        with self._lock:
            queries = self._check_query(batch)
            n_classes = len(self._classes)
            if self._n == 0:
                return np.zeros((len(queries), n_classes))
            rank = self._name_rank()
            step = self._chunk_rows()
            parts = []
            for start in range(0, len(queries), step):
                sims, rows = self._nearest(queries[start : start + step])
                parts.append(_vote(sims, self._cls[rows], n_classes, rank)[0])
            return np.concatenate(parts) if parts else np.zeros((0, n_classes))

    def _chunk_rows(self) -> int:
        # Queries per product: keeps the [chunk, N] similarity matrix near 16 M floats (64 MB).
        return max(1, min(_EVAL_BLOCK, (1 << 24) // max(self._n, 1)))

    def evaluate(self) -> Evaluation:
        """Leave-one-out evaluation: classify every example by all the others.

        One matrix product over all examples (in blocks of rows for large stores) with the
        diagonal masked, then the same voting as `predict`. `unknown_threshold` is ignored: this
        measures which class is chosen.
        """
        with self._lock:
            # Work on a snapshot: at 10k examples the N × N product takes seconds, and the video
            # thread must keep predicting meanwhile. Copying 41 MB takes ~10 ms.
            classes = list(self._classes)
            n, k = self._n, min(self._k, self._n - 1)
            emb, truth, ids = self._emb[:n].copy(), self._cls[:n].copy(), self._ids[:n].copy()
            rank, step = self._name_rank(), self._chunk_rows()
        n_classes = len(classes)
        confusion = np.zeros((n_classes, n_classes), dtype=np.int64)
        if n >= 2:
            for start in range(0, n, step):
                stop = min(n, start + step)
                sims = emb[start:stop] @ emb.T
                sims[np.arange(stop - start), np.arange(start, stop)] = -np.inf  # not its own neighbour
                part = np.argpartition(sims, n - k, axis=1)[:, n - k :]
                top = np.take_along_axis(sims, part, axis=1)
                order = np.lexsort((ids[part], -top), axis=1)
                top = np.take_along_axis(top, order, axis=1)
                part = np.take_along_axis(part, order, axis=1)
                _, winner = _vote(top, truth[part], n_classes, rank)
                np.add.at(confusion, (truth[start:stop], winner), 1)
        correct = np.diag(confusion)
        totals = confusion.sum(axis=1)
        per_class = {
            name: (float(correct[i] / totals[i]) if totals[i] else math.nan) for i, name in enumerate(classes)
        }
        accuracy = float(correct.sum() / n) if n >= 2 else math.nan
        return Evaluation(classes, accuracy, per_class, confusion, int(n))

    # ----------------------------------------------------------------- state
    def state(self) -> ClassifierState:
        """A consistent copy of everything, taken under the lock (for saving)."""
        with self._lock:
            order = self._order()
            dim = self._dim if self._n else None
            return ClassifierState(
                classes=tuple(self._classes),
                embeddings=self._emb[order].copy() if self._n else np.zeros((0, dim or 0), np.float32),
                labels=self._cls[order].astype(np.int64),
                images=tuple(self._images[row] for row in order.tolist()),
                k=self._k,
                unknown_threshold=self._threshold,
                max_examples_per_class=self._cap,
                dim=dim,
            )

    @classmethod
    def from_state(cls, state: ClassifierState) -> "KNNClassifier":
        """Build a new classifier from a `ClassifierState` (ids are renumbered 0..N-1).

        Raises:
            ClassifierError: the state is inconsistent (unknown label index, bad names, ...).
        """
        clf = cls(state.k, state.unknown_threshold, state.max_examples_per_class)
        for name in state.classes:
            clf.add_class(name)
        labels = np.asarray(state.labels)
        if labels.ndim != 1 or len(labels) != len(state.embeddings) or len(labels) != len(state.images):
            raise ClassifierError("the numbers of embeddings, labels and images differ")
        if len(labels) == 0:
            return clf
        if labels.dtype.kind not in "iu" or labels.min() < 0 or labels.max() >= len(state.classes):
            raise ClassifierError("an example refers to a class that does not exist")
        clf.add_many(state.embeddings, [state.classes[i] for i in labels.tolist()], state.images)
        return clf

    def copy(self) -> "KNNClassifier":
        """An independent copy (example ids are kept)."""
        with self._lock:
            other = KNNClassifier(self._k, self._threshold, self._cap)
            other._classes = list(self._classes)
            other._class_index = dict(self._class_index)
            other._counts = list(self._counts)
            other._next_id = self._next_id
            other._dim, other._n = self._dim, self._n
            other._emb, other._cls, other._ids = self._emb.copy(), self._cls.copy(), self._ids.copy()
            other._images = list(self._images)
            other._row_of = dict(self._row_of)
            return other
