"""How well a classifier does, outside the estimator (as scikit-learn keeps its model selection):
leave-one-out over the stored examples, and few-shot accuracy on held-out photos.

Few-shot splits take the examples from the first half of each class's files and the queries from
the second half (`few_shot_split`), because neighboring frames of a recording are near-duplicates.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

import numpy as np

from .centroids import group_sums, space_from_sums
from .neighbors import Neighbors, nearest_others
from .voting import decide, name_rank, vote

if TYPE_CHECKING:
    from .classifier import ClassifierState, KNNClassifier

__all__ = [
    "Evaluation",
    "METHODS",
    "METHOD_LABELS",
    "SPLITS",
    "arc_split",
    "few_shot_accuracy",
    "few_shot_split",
    "evaluate_neighbors",
    "group_winners",
    "leave_groups_out",
    "leave_one_out",
    "tfjs_predict",
    "split_accuracy",
]

T = TypeVar("T")


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


def leave_one_out(classifier: KNNClassifier) -> Evaluation:
    """Classify every stored example by all the others (the classifier's k and rule).

    Works on a copy (`classifier.state()`, ~10 ms for 10k examples), so a video thread keeps
    predicting meanwhile. With the k nearest examples' vote on the vectors as stored, the k nearest
    others of each example come from one chunked pass (knn.core.neighbors: its own embedding
    against every vector, its own vectors left out, the others' best vector standing for them);
    any other rule is `leave_groups_out` with one example per group. `unknown_threshold` is
    ignored: this measures which class is chosen.
    """
    state = classifier.state()
    if state.plain_rule:
        return evaluate_neighbors(state, nearest_others(state, state.k))
    return leave_groups_out(state)


def leave_groups_out(state: ClassifierState, groups: Sequence[int] | np.ndarray | None = None) -> Evaluation:
    """Classify each group of examples by all the other examples, under the state's rule.

    Everything the rule derives from the examples (class centroids, the mean a centred project
    subtracts) is derived again without the group, so nothing of a left-out example helps classify
    it. Leave out a Record burst or an upload batch as one group: its frames are near-duplicates.

    Args:
        state: the examples and the rule (`KNNClassifier.state()`).
        groups: [N] a group key per example; None puts each example in its own group. Examples of
            a group that leaves no other example are counted as wrong (no class can be chosen).

    Cost: one pass over the other examples' vectors per group, O(groups × R × D).
    """
    (winner,) = group_winners(state, groups, [(state.vote, state.centroid_weight)])
    return _evaluation(state, winner)


def group_winners(
    state: ClassifierState,
    groups: Sequence[int] | np.ndarray | None,
    votes: Sequence[tuple[str, float]],
    progress: Callable[[float], None] | None = None,
) -> np.ndarray:
    """[len(votes), N]: the class each example gets, its group left out, under each vote rule
    (`(vote, centroid_weight)`, knn.core.voting) with the state's k and centring; -1 where its
    group leaves no other example. The similarities are computed once for all the rules.

    `progress(fraction)` is called after each group.
    """
    truth = np.asarray(state.labels, np.int64)
    n, n_classes = len(truth), len(state.classes)
    keys = np.arange(n) if groups is None else np.asarray(groups)
    if keys.shape != (n,):
        raise ValueError(f"groups must give one key per example ({n}), got shape {keys.shape}")
    counts = state.vector_counts()
    owner = np.repeat(np.arange(n), counts)
    own = state.own_embeddings()
    rank = name_rank(list(state.classes))
    # Each example's mean vector and the classes' sums of them, once: a group's space subtracts its own.
    sums, _ = group_sums(state.embeddings, owner, n)
    example_means = sums / np.maximum(counts, 1)[:, None]
    class_sums, class_counts = group_sums(example_means, truth, n_classes)
    winners = np.full((len(votes), n), -1, np.int64)
    unique = np.unique(keys) if n >= 2 else np.zeros(0, keys.dtype)
    for done, key in enumerate(unique, 1):
        out = keys == key
        kept = np.flatnonzero(~out)
        if len(kept):
            kept_rows = ~out[owner]
            rows = state.embeddings[kept_rows]
            out_sums, out_counts = group_sums(example_means[out], truth[out], n_classes)
            space = space_from_sums(class_sums - out_sums, class_counts - out_counts, rows, state.centred)
            placed = space.place(own[out])
            sims = space.similarities(placed @ rows.T, placed)
            starts = np.concatenate([[0], np.cumsum(counts[kept])[:-1]]).astype(np.int64)
            per_example = np.maximum.reduceat(sims, starts, axis=1) if (counts[kept] > 1).any() else sims
            order = top_k(per_example, min(state.k, len(kept)))
            ex_sims, ex_cls = np.take_along_axis(per_example, order, axis=1), truth[kept][order]
            to_centroids = placed @ space.centroids.T
            c_order = top_k(to_centroids, min(state.k, len(space.centroids)))
            cen_sims, cen_cls = np.take_along_axis(to_centroids, c_order, axis=1), space.centroid_classes[c_order]
            for row, (vote_rule, weight) in enumerate(votes):
                _, winners[row, out] = decide(vote_rule, ex_sims, ex_cls, cen_sims, cen_cls, n_classes, rank, weight)
        if progress is not None:
            progress(done / len(unique))
    return winners


def top_k(values: np.ndarray, k: int) -> np.ndarray:
    """[M, k] the columns of each row's k largest values, largest first, equal ones the earlier
    column first: ``np.argsort(-values, kind="stable")[:, :k]`` without sorting whole rows."""
    width = values.shape[1]
    if k >= width:
        return np.argsort(-values, axis=1, kind="stable")[:, :k]
    part = np.sort(np.argpartition(-values, k - 1, axis=1)[:, :k], axis=1)  # the k largest, by column
    chosen = np.take_along_axis(values, part, axis=1)
    order: np.ndarray = np.take_along_axis(part, np.argsort(-chosen, axis=1, kind="stable"), axis=1)
    tied = (values >= chosen.min(axis=1, keepdims=True)).sum(axis=1) > k  # a tie at the k-th: the columns decide
    if tied.any():
        order[tied] = np.argsort(-values[tied], axis=1, kind="stable")[:, :k]
    return order


def _evaluation(state: ClassifierState, winner: np.ndarray) -> Evaluation:
    """The Evaluation of each example's class `winner` [N] (-1: none chosen, counted as wrong)."""
    classes, truth = list(state.classes), np.asarray(state.labels, np.int64)
    n, n_classes = len(truth), len(classes)
    confusion = np.zeros((n_classes, n_classes), dtype=np.int64)
    decided = winner >= 0
    np.add.at(confusion, (truth[decided], winner[decided]), 1)
    totals = np.bincount(truth, minlength=n_classes)
    correct = np.diag(confusion)
    per_class = {name: (float(correct[i] / totals[i]) if totals[i] else math.nan) for i, name in enumerate(classes)}
    accuracy = float(correct.sum() / n) if n >= 2 else math.nan
    return Evaluation(classes, accuracy, per_class, confusion, int(n))


def evaluate_neighbors(state: ClassifierState, neighbors: Neighbors) -> Evaluation:
    """Leave-one-out from each example's nearest others (at least the state's k of them, or all
    N - 1): the k nearest vote as they would for a query."""
    classes, truth = list(state.classes), np.asarray(state.labels, np.int64)
    n, n_classes = len(truth), len(classes)
    k = min(state.k, n - 1)
    confusion = np.zeros((n_classes, n_classes), dtype=np.int64)
    if n >= 2:
        if neighbors.width < k:
            raise ValueError(f"leave-one-out with k={k} needs {k} neighbors per example, got {neighbors.width}")
        index, sims = neighbors.index[:, :k], neighbors.sims[:, :k]
        _, winner = vote(sims, truth[index], n_classes, name_rank(classes))
        np.add.at(confusion, (truth, winner), 1)
    correct = np.diag(confusion)
    totals = confusion.sum(axis=1)
    per_class = {name: (float(correct[i] / totals[i]) if totals[i] else math.nan) for i, name in enumerate(classes)}
    accuracy = float(correct.sum() / n) if n >= 2 else math.nan
    return Evaluation(classes, accuracy, per_class, confusion, int(n))


def few_shot_split(files: Sequence[T], shots: int, max_queries: int | None = None) -> tuple[list[T], list[T]]:
    """Examples from the first half of a class's files, queries from the second half.

    Neighboring frames are near-duplicates, so examples are spread evenly over the first half and
    queries (optionally thinned evenly to `max_queries`) never come from it.
    """
    files = list(files)
    half = len(files) // 2
    if shots < 1 or shots > half:
        raise ValueError(f"{shots} examples per class needs at least {2 * shots} images, found {len(files)}")
    return _spread(files[:half], shots), _thin(files[half:], max_queries)


def arc_split(files: Sequence[T], shots: int, max_queries: int | None = None) -> tuple[list[T], list[T]]:
    """For a turntable's frames in order (COIL-20: 72 frames, 5° apart): examples from one sixth of
    the circle (a 60° arc at the start), queries from the half of the circle opposite that arc.
    The object is then always seen from sides no example showed."""
    files = list(files)
    n = len(files)
    arc = max(1, n // 6)
    if shots < 1 or shots > arc:
        raise ValueError(
            f"{shots} examples per class from a sixth of the turntable needs {6 * shots} frames, found {n}"
        )
    centre = (arc - 1) / 2 + n / 2  # opposite the arc's centre
    first = round(centre - n / 4)
    opposite = [files[(first + i) % n] for i in range(n // 2)]
    return _spread(files[:arc], shots), _thin(opposite, max_queries)


SPLITS = {"halves": few_shot_split, "arc": arc_split}
"""How a class's files become examples and queries: `evaluate --split`."""


def _spread(files: list[T], count: int) -> list[T]:
    step = len(files) / count
    return [files[int(i * step)] for i in range(count)]


def _thin(files: list[T], most: int | None) -> list[T]:
    return files if most is None or len(files) <= most else _spread(files, most)


METHODS = ("ours", "tfjs", "nearest")
METHOD_LABELS = {
    "ours": "ours (k=3, similarity-weighted)",
    "tfjs": "TF.js knn-classifier rule (k=3, one vote each, ties to first class)",
    "nearest": "plain nearest neighbor (k=1)",
}


def tfjs_predict(examples: np.ndarray, labels: np.ndarray, queries: np.ndarray, k: int = 3) -> np.ndarray:
    """The TF.js knn-classifier's decision: cosine top-k, one vote per neighbor, argmax to the first.

    `labels` are class indices in the order the classes were added, which is what TF.js' argmax
    favours on a tie.
    """
    e = examples / np.linalg.norm(examples, axis=1, keepdims=True)
    q = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    sims = q @ e.T
    k = min(k, len(e))
    nearest = np.argsort(-sims, axis=1, kind="stable")[:, :k]
    n_classes = int(labels.max()) + 1
    votes = np.zeros((len(q), n_classes))
    np.add.at(votes, (np.repeat(np.arange(len(q)), k), labels[nearest].reshape(-1)), 1)
    winners: np.ndarray = votes.argmax(axis=1)  # first maximum: the earliest class wins ties
    return winners


def split_accuracy(
    examples: dict[str, list[np.ndarray]],
    queries: dict[str, np.ndarray],
    method: str = "ours",
    k: int = 3,
) -> tuple[float, int]:
    """(accuracy, number of queries) of one rule for examples and queries already split per class.

    Args:
        examples: class -> one array per example, its vectors [V, D] (V > 1 with augmentation;
            the TF.js rule and every example's own embedding is its first vector).
        queries: class -> query embeddings [Q, D].
        method: "ours" (k similarity-weighted), "nearest" (k=1) or "tfjs" (the TF.js rule).
    """
    from .classifier import KNNClassifier

    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    names = list(examples)
    truth = np.concatenate([[c] * len(queries[name]) for c, name in enumerate(names)]).astype(np.int64)
    stacked = np.concatenate([queries[name] for name in names])
    if method == "tfjs":
        own = np.stack([vectors[0] for name in names for vectors in examples[name]])
        labels = np.asarray([c for c, name in enumerate(names) for _ in examples[name]])
        guess = tfjs_predict(own, labels, stacked, k)
    else:
        n = sum(len(examples[name]) for name in names)
        clf = KNNClassifier(k=k if method == "ours" else 1, max_examples_per_class=n, max_examples=max(n, 1))
        flat = [v for name in names for v in examples[name]]
        clf.add_many(
            np.concatenate(flat), [name for name in names for _ in examples[name]], vectors=[len(v) for v in flat]
        )
        guess = np.asarray([_class_index(names, p.label) for p in clf.predict_many(stacked)])
    return float(np.mean(guess == truth)), len(truth)


def few_shot_accuracy(
    embedded: dict[str, np.ndarray],
    shots: int,
    method: str = "ours",
    k: int = 3,
    max_queries: int | None = None,
) -> tuple[float, int]:
    """(accuracy, number of queries) with `shots` examples per class; `embedded` maps each class to
    its embeddings [n, D] in file order."""
    from .classifier import KNNClassifier

    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    ex_rows, ex_labels, q_rows, q_labels = [], [], [], []
    for c, rows in enumerate(embedded.values()):
        ex_idx, q_idx = few_shot_split(range(len(rows)), shots, max_queries)
        ex_rows.append(rows[ex_idx])
        ex_labels += [c] * len(ex_idx)
        q_rows.append(rows[q_idx])
        q_labels += [c] * len(q_idx)
    examples, queries = np.concatenate(ex_rows), np.concatenate(q_rows)
    truth = np.asarray(q_labels)
    if method == "tfjs":
        guess = tfjs_predict(examples, np.asarray(ex_labels), queries, k)
    else:
        names = list(embedded)
        clf = KNNClassifier(k=k if method == "ours" else 1, max_examples_per_class=len(ex_labels))
        clf.add_many(examples, [names[c] for c in ex_labels])
        guess = np.asarray([_class_index(names, p.label) for p in clf.predict_many(queries)])
    return float(np.mean(guess == truth)), len(truth)


def _class_index(names: list[str], label: str | None) -> int:
    """A prediction's class index; -1 (never the truth) for an unknown one."""
    return -1 if label is None else names.index(label)
