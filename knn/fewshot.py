"""Few-shot accuracy on a folder of labelled photos: ours beside the TF.js classifier's rule.

Examples come from the first half of each class's files and queries from the second half
(`knn.folders.few_shot_split`), because neighbouring frames of a recording are near-duplicates.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from .classifier import KNNClassifier
from .folders import class_folders, few_shot_split
from .images import read_image

METHODS = ("ours", "tfjs", "nearest")
METHOD_LABELS = {
    "ours": "ours (k=3, similarity-weighted)",
    "tfjs": "TF.js knn-classifier rule (k=3, one vote each, ties to first class)",
    "nearest": "plain nearest neighbour (k=1)",
}


def embed_folder(
    embedder, root: str | Path, progress: Callable[[Iterable], Iterable] | None = None
) -> dict[str, np.ndarray]:
    """Embed every image of a one-subfolder-per-class folder: class -> float32 [n, D], file order."""
    folders = class_folders(root)
    files = [(name, path) for name, paths in folders.items() for path in paths]
    wrap = progress or (lambda it: it)
    out: dict[str, list[np.ndarray]] = {name: [] for name in folders}
    for name, path in wrap(files):
        out[name].append(embedder.embed(read_image(path))[0])
    return {name: np.stack(rows) for name, rows in out.items()}


def tfjs_predict(examples: np.ndarray, labels: np.ndarray, queries: np.ndarray, k: int = 3) -> np.ndarray:
    """The TF.js knn-classifier's decision: cosine top-k, one vote per neighbour, argmax to the first.

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
    return votes.argmax(axis=1)  # first maximum: the earliest class wins ties


def few_shot_accuracy(
    embedded: dict[str, np.ndarray], shots: int, method: str = "ours", k: int = 3,
    max_queries: int | None = None,
) -> tuple[float, int]:
    """(accuracy, number of queries) with `shots` examples per class."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    ex_rows, ex_labels, q_rows, q_labels = [], [], [], []
    for c, (name, rows) in enumerate(embedded.items()):
        ex_idx, q_idx = few_shot_split(list(range(len(rows))), shots, max_queries)
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
        guess = np.asarray([names.index(p.label) for p in clf.predict_many(queries)])
    return float(np.mean(guess == truth)), len(truth)
