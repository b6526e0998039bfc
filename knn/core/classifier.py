"""K-nearest-neighbor classifier over image embeddings (NumPy only).

Why not the TF.js `knn-classifier` rules: it gives each of k=3 neighbors one vote and answers the
class that was added first on a tie, so with one example per class almost every query is a
three-way tie and the first class wins. Here each neighbor votes with its cosine similarity and
ties are broken by similarity, never by class order (knn.core.voting). A project may instead let
the class centroids vote, or blend the two, and may compare vectors centred on its examples' mean
(knn.core.centroids); these settings travel with the project.

Embeddings are L2-normalised on the way in, so cosine similarity is one matrix product per query
(knn.core.store). One `threading.RLock` guards all state: a video thread predicts while the page
thread adds and removes.

Examples:

```python
clf = KNNClassifier(k=3, unknown_threshold=0.5)
clf.add(embedder.embed_one(rock_frame), "rock")
clf.add(embedder.embed_one(paper_frame), "paper")
pred = clf.predict(embedder.embed_one(frame))
pred.label, pred.confidences, pred.similarity, pred.neighbors
```
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar, cast, overload

import numpy as np

from .centroids import Space, build_space, space_from_sums
from .classes import ClassList
from .inputs import (
    ClassifierError,
    as_batch,
    as_examples,
    as_single,
    check_cap,
    check_example_id,
    check_flag,
    check_k,
    check_threshold,
    check_vote,
    check_weight,
    is_whole_number,
    normalise,
)
from .limits import MAX_CLASSES, MAX_EXAMPLES, MAX_EXAMPLES_PER_CLASS, MAX_STORED_VALUES
from .names import normalise_name
from .store import EmbeddingStore
from .voting import DEFAULT_CENTROID_WEIGHT, LEGACY_VOTE, decide, decide_one, is_unknown

__all__ = ["ClassifierError", "ClassifierState", "Example", "KNNClassifier", "Neighbor", "Prediction"]

T = TypeVar("T")

CHUNK_FLOATS = 1 << 24
"""Queries per matrix product are chosen so that the [chunk, N] similarities stay near 16 M floats."""


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
    """A stored example: its id, class, JPEG image (or None) and how many vectors it holds
    (1, or more with augmentation: its mirror's and crops' embeddings)."""

    example_id: int
    label: str
    image: bytes | None
    vectors: int = 1


@dataclass(frozen=True)
class ClassifierState:
    """Everything a classifier holds, as plain arrays (what a project file stores).

    Attributes:
        classes: class names in order.
        embeddings: float32 [R, D], L2-normalised: each example's vectors (its own embedding
            first), examples in insertion order.
        labels: int [N] indices into `classes`, one per example.
        images: N JPEG bytes or None.
        k, unknown_threshold, max_examples_per_class: the settings.
        dim: embedding size, None when there are no examples.
        vectors: int [N], how many of `embeddings` each example has (they sum to R); all 1
            without augmentation.
        ids: int [N], the examples' ids in the classifier (None in a state read from a file).
        vote, centroid_weight, centred: the rule (`KNNClassifier`); a state made without them
            has the rule every project had before they existed.
    """

    classes: tuple[str, ...]
    embeddings: np.ndarray
    labels: np.ndarray
    images: tuple[bytes | None, ...]
    k: int
    unknown_threshold: float | None
    max_examples_per_class: int
    dim: int | None
    vectors: np.ndarray | None = None
    ids: np.ndarray | None = None
    vote: str = LEGACY_VOTE
    centroid_weight: float = DEFAULT_CENTROID_WEIGHT
    centred: bool = False

    def vector_counts(self) -> np.ndarray:
        return np.ones(len(self.labels), np.int64) if self.vectors is None else np.asarray(self.vectors, np.int64)

    def check(self) -> None:
        """Refuse (ClassifierError) a state whose parts do not agree."""
        labels, counts = np.asarray(self.labels), self.vector_counts()
        if (
            labels.ndim != 1
            or len(labels) != len(self.images)
            or len(counts) != len(labels)
            or int(counts.sum()) != len(self.embeddings)
        ):
            raise ClassifierError("the numbers of embeddings, labels and images differ")
        if len(labels) and (labels.dtype.kind not in "iu" or labels.min() < 0 or labels.max() >= len(self.classes)):
            raise ClassifierError("an example refers to a class that does not exist")

    def own_embeddings(self) -> np.ndarray:
        """Each example's own embedding [N, D] (the first of its vectors); `embeddings` itself, not
        a copy, when every example has one vector."""
        counts = self.vector_counts()
        if len(counts) == len(self.embeddings):
            return self.embeddings
        return (
            self.embeddings[np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)]
            if len(counts)
            else self.embeddings[:0]
        )

    @property
    def plain_rule(self) -> bool:
        """Whether the rule is the k nearest examples on the stored vectors as they are."""
        return self.vote == "examples" and not self.centred

    def space(self) -> Space:
        """The vectors as this state's rule compares them, and its class centroids."""
        counts = self.vector_counts()
        owner = np.repeat(np.arange(len(counts)), counts)
        return build_space(self.embeddings, owner, np.asarray(self.labels, np.int64), self.centred)


class Setting(Generic[T]):
    """A validated attribute: `check` runs on every assignment (of any value) and returns the value to keep."""

    def __init__(self, check: Callable[[object], T]) -> None:
        self.check = check

    def __set_name__(self, owner: type, name: str) -> None:
        self.attr = "_" + name

    @overload
    def __get__(self, obj: None, owner: type | None = None) -> Setting[T]: ...
    @overload
    def __get__(self, obj: KNNClassifier, owner: type | None = None) -> T: ...
    def __get__(self, obj: KNNClassifier | None, owner: type | None = None) -> Setting[T] | T:
        return self if obj is None else cast(T, getattr(obj, self.attr))

    def __set__(self, obj: KNNClassifier, value: object) -> None:
        setattr(obj, self.attr, self.check(value))
        if hasattr(obj, "version"):  # a setting changes what the classifier answers (none yet in __init__)
            obj.version += 1


class KNNClassifier:
    """K-nearest-neighbor classifier with similarity-weighted votes.

    A query is compared with every stored example by cosine similarity; each of the k most similar
    examples votes for its class with its similarity, and confidences are the votes normalised to
    sum to 1 (see knn.core.voting for the tie rules and the other vote rules).

    Args:
        k: number of neighbors that vote (clipped to the number of stored examples); with the
            centroid vote, the number of nearest class centroids that share the confidence.
        unknown_threshold: when the best cosine similarity is below this, `predict` answers
            unknown (label None). None never answers unknown.
        max_examples_per_class: adding beyond this raises `ClassifierError`.
        max_examples, max_classes, max_values: examples of all classes together, classes, and
            embedding values stored (all vectors); adding beyond raises `ClassifierError`. They
            bound memory and the time of every prediction (each query is compared with every
            vector); the defaults are knn.core.limits', which a project file and a browser
            session share.
        vote: ``"examples"`` (the k nearest examples vote), ``"centroids"`` (the nearest class
            centroid wins) or ``"blend"`` (the nearest centroid's class gets `centroid_weight` of
            the vote, the k nearest examples share the rest), knn.core.voting.
        centroid_weight: the blend's share of the vote for the nearest centroid's class, 0..1.
        centred: compare vectors after subtracting the mean of the stored examples
            (knn.core.centroids); similarities, and so `unknown_threshold`, are then centred ones.

    Attributes:
        k, unknown_threshold, max_examples_per_class, vote, centroid_weight, centred: settable,
            validated.
        dim: embedding size, set by the first add (None while empty).
        classes: class names in order (a copy); classes may hold no examples.
    """

    k = Setting(check_k)
    unknown_threshold = Setting(check_threshold)
    # Lowering the cap below a class's count keeps the examples; it only refuses further adds.
    max_examples_per_class = Setting(check_cap)
    vote = Setting(check_vote)
    centroid_weight = Setting(check_weight)
    centred = Setting(check_flag)

    def __init__(
        self,
        k: int = 3,
        unknown_threshold: float | None = None,
        max_examples_per_class: int = MAX_EXAMPLES_PER_CLASS,
        max_examples: int = MAX_EXAMPLES,
        max_classes: int = MAX_CLASSES,
        max_values: int = MAX_STORED_VALUES,
        *,
        vote: str = LEGACY_VOTE,
        centroid_weight: float = DEFAULT_CENTROID_WEIGHT,
        centred: bool = False,
    ) -> None:
        self._lock = threading.RLock()
        self.k, self.unknown_threshold, self.max_examples_per_class = k, unknown_threshold, max_examples_per_class
        self.vote, self.centroid_weight, self.centred = vote, centroid_weight, centred
        self._space: tuple[int, Space] | None = None  # (version it was derived at, space)
        self.max_examples, self.max_values = check_cap(max_examples), check_cap(max_values)
        self._classes = ClassList(limit=check_cap(max_classes))
        self._store = EmbeddingStore()
        self.version = 0  # counts changes to examples, classes and settings: caches compare it

    @property
    def dim(self) -> int | None:
        return self._store.dim

    @property
    def classes(self) -> list[str]:
        with self._lock:
            return list(self._classes.names)

    def has_class(self, label: object) -> bool:
        """Whether a class of this name (as normalised) exists."""
        with self._lock:
            return label in self._classes

    def counts(self) -> dict[str, int]:
        """Number of examples per class, in class order."""
        with self._lock:
            return dict(zip(self._classes.names, self._classes.counts, strict=True))

    def __len__(self) -> int:
        return len(self._store)

    def __repr__(self) -> str:
        rule = f"vote={self.vote!r}, centroid_weight={self.centroid_weight}, centred={self.centred}, "
        return (
            f"KNNClassifier(k={self.k}, unknown_threshold={self.unknown_threshold}, {rule}"
            f"classes={len(self._classes)}, examples={len(self._store)}, dim={self.dim})"
        )

    # ---- classes -------------------------------------------------------------------------------

    def add_class(self, label: str) -> str:
        """Create an empty class at the end of the class order; returns its normalised name.

        Raises:
            ClassifierError: the name is empty, not a valid name, already used, or the classes
                are at their limit.
        """
        with self._lock:
            self.version += 1
            return self._classes.add(label)

    def rename_class(self, old: str, new: str) -> str:
        """Rename a class, keeping its place and its examples; returns the new normalised name."""
        with self._lock:
            self.version += 1
            return self._classes.rename(old, new)

    def remove_class(self, label: str) -> None:
        """Remove a class and all its examples."""
        with self._lock:
            self._store.drop_class(self._classes.remove(label))
            self.version += 1

    def clear_class(self, label: str) -> None:
        """Remove all examples of a class, keeping the (now empty) class."""
        with self._lock:
            index = self._classes.index(label)
            self._store.delete(self._store.examples_of_class(index))
            self._classes.counts[index] = 0
            self.version += 1

    def clear(self) -> None:
        """Remove every example and every class (settings are kept)."""
        with self._lock:
            self._classes = ClassList(limit=self._classes.limit)
            self._store.clear()
            self.version += 1

    # ---- examples ------------------------------------------------------------------------------

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
        return self.add_many(as_single(embedding), [label], [image])[0]

    def add_many(
        self,
        embeddings: np.ndarray,
        labels: Sequence[str],
        images: Sequence[bytes | None] | None = None,
        vectors: Sequence[int] | None = None,
    ) -> list[int]:
        """Store a batch of examples, all or none.

        Args:
            embeddings: [R, D] array: one row per example, or with `vectors` each example's
                vectors one after the other (its own embedding first, then its augmented views').
            labels: N class names; missing classes are created in order of first appearance.
            images: N JPEG bytes or None, or None for no images.
            vectors: how many rows each example has (they sum to R); all 1 when omitted.

        Returns:
            The N new example ids, in order.
        """
        batch, labels, images, counts = as_examples(embeddings, labels, images, vectors)
        labels = [normalise_name(label) for label in labels]
        with self._lock:
            rows = normalise(batch, self._store.dim)
            if len(rows) == 0:
                return []
            self._check_room(labels, len(rows) * rows.shape[1])  # before any change: a refused batch leaves no trace
            for label in dict.fromkeys(labels):
                if label not in self._classes:
                    self._classes.add(label)
            indices = np.fromiter((self._classes.index(label) for label in labels), np.int32, len(labels))
            ids = self._store.append(rows, indices, images, counts)
            for index in indices.tolist():
                self._classes.counts[index] += 1
            self.version += 1
            return ids

    def _check_room(self, labels: list[str], values: int) -> None:
        stored = self._store.vectors * (self._store.dim or 0)
        if stored + values > self.max_values:
            raise ClassifierError(
                f"this would store {stored + values:,} embedding values; one classifier holds at most "
                f"{self.max_values:,} (each frame is compared with all of them): remove some examples, "
                "or add them without augmentation"
            )
        total = len(self._store) + len(labels)
        if total > self.max_examples:
            raise ClassifierError(
                f"this would make {total:,} examples; one classifier holds at most {self.max_examples:,} "
                "(all classes together): remove some examples first"
            )
        self._classes.check_room(labels, self.max_examples_per_class)

    def remove(self, example_id: int) -> None:
        """Remove one example, all its vectors with it (its class stays, possibly empty).

        Raises:
            ClassifierError: the id is not a whole number (a bool is not an id), or no example has it.
        """
        example_id = check_example_id(example_id)
        with self._lock:
            if not self._store.has(example_id):
                raise ClassifierError(f"there is no example with id {example_id!r}")
            (index,) = self._store.delete([example_id])
            self._classes.counts[index] -= 1
            self.version += 1

    def move(self, example_id: int, label: str) -> None:
        """Move one example (all its vectors) to another class, created if need be.

        Raises:
            ClassifierError: the id is not a whole number, no such example, or the class is at its cap.
        """
        example_id = check_example_id(example_id)
        with self._lock:
            if not self._store.has(example_id):
                raise ClassifierError(f"there is no example with id {example_id!r}")
            name = normalise_name(label)
            if name in self._classes and self._store.class_of(example_id) == self._classes.index(name):
                return
            self._classes.check_room([name], self.max_examples_per_class)  # a move adds no example
            if name not in self._classes:
                self._classes.add(name)
            index = self._classes.index(name)
            old = self._store.relabel(example_id, index)
            self._classes.counts[old] -= 1
            self._classes.counts[index] += 1
            self.version += 1

    def label_of(self, example_id: object) -> str | None:
        """The class of a stored example; None when no example has this id (or it is no id: a bool)."""
        if not is_whole_number(example_id):
            return None
        key = int(example_id)
        with self._lock:
            return self._classes.names[self._store.class_of(key)] if self._store.has(key) else None

    def examples(self, label: str | None = None) -> list[Example]:
        """Stored examples in insertion order, all or those of one class."""
        with self._lock:
            store = self._store
            ids = store.examples_of_class(None if label is None else self._classes.index(label))
            names = self._classes.names
            return [Example(i, names[store.class_of(i)], store.image_of(i), len(store.vectors_of(i))) for i in ids]

    def embeddings(self) -> tuple[np.ndarray, list[str], list[int]]:
        """A copy of each example's own embedding in insertion order: (float32 [N, D] normalised,
        labels, ids). `state()` has every vector."""
        with self._lock:
            state, ids = self.state(), self._store.examples_of_class()
        return state.own_embeddings(), [state.classes[i] for i in state.labels.tolist()], ids

    # ---- prediction ----------------------------------------------------------------------------

    @property
    def plain_rule(self) -> bool:
        """Whether the rule is the k nearest examples on the stored vectors as they are."""
        return self.vote == "examples" and not self.centred

    def _space_now(self) -> Space:
        """The rule's space, derived once per change (under the lock): O(C × D) from the store's
        running class sums, plus one matrix-vector product over the vectors when centred."""
        if self._space is None or self._space[0] != self.version:
            sums, counts = self._store.class_sums()
            rows = self._store.rows() if self.centred else None
            self._space = (self.version, space_from_sums(sums, counts, rows, self.centred))
        return self._space[1]

    def _neighbors(self, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]:
        """(example sims [M, k], example rows [M, k], centroid sims [M, k'], centroid classes
        [M, k']) for normalised queries; the centroids' are None when the rule does not use them."""
        # The lock is held through the matrix product on purpose: rows are moved in place by
        # remove(), and copying the store per frame would cost as much as the product itself.
        # The product is short (~1 ms at 10k × 1024) and releases the GIL.
        if self.plain_rule:
            sims, rows = self._store.nearest(queries, self.k)
            return sims, rows, None, None
        space = self._space_now()
        placed = space.place(queries)
        sims, rows = self._store.nearest(placed, self.k, space if self.centred else None)
        if self.vote == "examples":
            return sims, rows, None, None
        to_centroids = placed @ space.centroids.T
        # Most similar first; equal ones in class order, so which of them makes the cut is fixed.
        order = np.argsort(-to_centroids, axis=1, kind="stable")[:, : min(self.k, len(space.centroids))]
        return sims, rows, np.take_along_axis(to_centroids, order, axis=1), space.centroid_classes[order]

    def _predict_locked(self, queries: np.ndarray) -> list[Prediction]:
        classes = list(self._classes.names)
        if len(self._store) == 0:
            empty = dict.fromkeys(classes, 0.0)
            return [Prediction(None, dict(empty), math.nan, (), False) for _ in range(len(queries))]
        sims, rows, cen_sims, cen_cls = self._neighbors(queries)
        return _predictions(
            sims.tolist(),
            self._store.classes_at(rows).tolist(),
            self._store.ids_at(rows).tolist(),
            classes,
            self._classes.rank(),
            self.unknown_threshold,
            (self.vote, self.centroid_weight),
            None if cen_sims is None or cen_cls is None else (cen_sims.tolist(), cen_cls.tolist()),
        )

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
        query = as_single(embedding)
        with self._lock:
            return self._predict_locked(normalise(query, self._store.dim))[0]

    def predict_many(self, embeddings: np.ndarray) -> list[Prediction]:
        """Classify a batch [M, D]; one matrix product per chunk of queries."""
        batch = as_batch(embeddings, "predict_many")
        with self._lock:
            return [p for chunk in self._chunks(batch) for p in self._predict_locked(chunk)]

    def predict_proba(self, embeddings: np.ndarray) -> np.ndarray:
        """Confidences for a batch [M, D] as an [M, C] array in class order (scikit-learn style).

        Rows sum to 1 (all 0 when there are no examples). `unknown_threshold` does not apply.
        """
        batch = as_batch(embeddings, "predict_proba")
        with self._lock:
            n_classes, rank = len(self._classes), np.asarray(self._classes.rank())
            parts = [np.zeros((0, n_classes))]
            for chunk in self._chunks(batch):
                if len(self._store) == 0:
                    parts.append(np.zeros((len(chunk), n_classes)))
                    continue
                sims, rows, cen_sims, cen_cls = self._neighbors(chunk)
                parts.append(
                    decide(
                        self.vote,
                        sims,
                        self._store.classes_at(rows),
                        cen_sims,
                        cen_cls,
                        n_classes,
                        rank,
                        self.centroid_weight,
                    )[0]
                )
            return np.concatenate(parts)

    def _chunks(self, batch: np.ndarray) -> Iterator[np.ndarray]:
        """The batch normalised, in chunks whose [chunk, N] similarities stay near `CHUNK_FLOATS`."""
        queries = normalise(batch, self._store.dim)
        step = max(1, min(4096, CHUNK_FLOATS // max(self._store.vectors, 1)))
        return (queries[start : start + step] for start in range(0, len(queries), step))

    # ---- state ---------------------------------------------------------------------------------

    def state(self) -> ClassifierState:
        """A consistent copy of everything, taken under the lock (for saving and evaluating)."""
        with self._lock:
            embeddings, labels, images, vectors = self._store.arrays_in_order()
            ids = np.asarray(self._store.examples_of_class(), np.int64)
            return ClassifierState(
                tuple(self._classes.names),
                embeddings,
                labels,
                images,
                self.k,
                self.unknown_threshold,
                self.max_examples_per_class,
                self._store.dim,
                vectors,
                ids,
                self.vote,
                self.centroid_weight,
                self.centred,
            )

    @classmethod
    def from_state(cls, state: ClassifierState) -> KNNClassifier:
        """Build a new classifier from a `ClassifierState` (ids are renumbered 0..N-1).

        Raises:
            ClassifierError: the state is inconsistent (unknown label index, bad names, ...).
        """
        state.check()
        clf = cls(
            state.k,
            state.unknown_threshold,
            state.max_examples_per_class,
            vote=state.vote,
            centroid_weight=state.centroid_weight,
            centred=state.centred,
        )
        for name in state.classes:
            clf.add_class(name)
        if len(state.labels):
            clf.add_many(
                state.embeddings,
                [state.classes[i] for i in state.labels.tolist()],
                state.images,
                state.vector_counts().tolist(),
            )
        return clf

    def copy(self) -> KNNClassifier:
        """An independent copy (example ids are kept)."""
        with self._lock:
            other = KNNClassifier(
                self.k,
                self.unknown_threshold,
                self.max_examples_per_class,
                self.max_examples,
                self._classes.limit,
                self.max_values,
                vote=self.vote,
                centroid_weight=self.centroid_weight,
                centred=self.centred,
            )
            other._classes = self._classes.copy()
            other._store = self._store.copy()
            other.version = self.version
            return other


def _predictions(
    sims: list[list[float]],
    classes_of: list[list[int]],
    ids: list[list[int]],
    classes: list[str],
    rank: list[int],
    threshold: float | None,
    rule: tuple[str, float] = (LEGACY_VOTE, DEFAULT_CENTROID_WEIGHT),
    centroids: tuple[list[list[float]], list[list[int]]] | None = None,
) -> list[Prediction]:
    """One `Prediction` per query from its k neighbors' similarities, class indices and ids (and
    with a centroid rule its nearest centroids' similarities and classes)."""
    out = []
    vote_rule, weight = rule
    cen_sims, cen_cls = centroids if centroids is not None else ([None] * len(sims), [None] * len(sims))
    for sims_i, cls_i, ids_i, cs_i, cc_i in zip(sims, classes_of, ids, cen_sims, cen_cls, strict=True):
        confidences, winner = decide_one(vote_rule, sims_i, cls_i, cs_i, cc_i, len(classes), rank, weight)
        unknown = is_unknown(sims_i[0], threshold)
        neighbors = tuple(Neighbor(e, classes[c], s) for e, c, s in zip(ids_i, cls_i, sims_i, strict=True))
        out.append(
            Prediction(
                None if unknown else classes[winner],
                dict(zip(classes, confidences, strict=True)),
                sims_i[0],
                neighbors,
                unknown,
            )
        )
    return out
