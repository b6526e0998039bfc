"""Predict latency of the kNN classifier against a TF.js-style store and scikit-learn.

At 100, 1k, 10k and 100k stored examples (D=1024, random unit vectors: the timing does not depend
on the values), one query at a time, as the live video loop calls it:

- ours: `knn.core.classifier.KNNClassifier.predict` (one matrix-vector product over a preallocated
  float32 store, argpartition, similarity-weighted votes, a `Prediction` with neighbors);
- TF.js-style: the `@tensorflow-models/knn-classifier` design in NumPy: the store is concatenated
  anew on every add, predict sorts all similarities, one unweighted vote per neighbor;
- scikit-learn: `KNeighborsClassifier(n_neighbors=3, metric="cosine", algorithm="brute").predict`.

Also the cost of one add at that size: ours amortised over building the whole store, the TF.js
style's one whole-store concatenation. Run it on an idle machine (see `uptime`).

    python bench/knn.py [--quick]
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import markdown_table, p50_p95, time_calls
from knn.core.classifier import KNNClassifier

DIM = 1024
N_CLASSES = 50
K = 3


class TFJSStyleKNN:
    """The TF.js knn-classifier's data layout and rules, in NumPy, for comparison only."""

    def __init__(self, dim: int):
        self.store = np.zeros((0, dim), np.float32)
        self.labels = np.zeros(0, np.int64)

    def add(self, embedding: np.ndarray, label: int) -> None:
        row = embedding / np.linalg.norm(embedding)
        self.store = np.concatenate([self.store, row[None, :].astype(np.float32)])  # O(N) every add
        self.labels = np.append(self.labels, label)

    def predict(self, query: np.ndarray, k: int = K) -> int:
        sims = self.store @ (query / np.linalg.norm(query))
        top = np.argsort(-sims)[: min(k, len(sims))]  # full sort
        votes = np.bincount(self.labels[top], minlength=N_CLASSES)  # one vote each
        return int(np.argmax(votes))  # ties go to the first class


def unit_rows(rng: np.random.Generator, n: int) -> np.ndarray:
    rows = rng.standard_normal((n, DIM), dtype=np.float32)
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    return rows


def bench_size(n: int, repeat: int, sk_repeat: int, rng: np.random.Generator) -> list[object]:
    data = unit_rows(rng, n)
    labels = rng.integers(0, N_CLASSES, n)
    names = [f"class {i}" for i in range(N_CLASSES)]
    queries = unit_rows(rng, repeat + 3)
    it = iter(range(10**9))

    def next_query() -> np.ndarray:
        return queries[next(it) % len(queries)]

    # Ours, built one add at a time as the app does.
    # Past the app's limits on purpose: this measures how the product scales.
    ours = KNNClassifier(k=K, max_examples_per_class=n, max_examples=n, max_values=n * DIM)
    t0 = time.perf_counter()
    for row, label in zip(data, labels.tolist(), strict=True):
        ours.add(row, names[label])
    ours_add_us = (time.perf_counter() - t0) / n * 1e6
    ours_ms = time_calls(lambda: ours.predict(next_query()), repeat)
    check = [ours.predict(q).neighbors[0].example_id for q in queries[:5]]
    assert check == [int(np.argmax(data @ q)) for q in queries[:5]], "ours disagrees with brute force"
    ours = None  # freed before the next index is built
    gc.collect()

    # TF.js-style: built directly (concatenating 100k times would take hours), add timed at size n.
    tfjs = TFJSStyleKNN(DIM)
    tfjs.store, tfjs.labels = data.copy(), labels.copy()
    tfjs_ms = time_calls(lambda: tfjs.predict(next_query()), repeat)
    base_store, base_labels = tfjs.store, tfjs.labels

    def one_add() -> None:
        tfjs.store, tfjs.labels = base_store, base_labels
        tfjs.add(next_query(), 0)

    tfjs_add_ms = float(np.median(time_calls(one_add, max(3, min(50, 10**6 // n)), warmup=1)))
    tfjs = base_store = base_labels = None
    gc.collect()

    from sklearn.neighbors import KNeighborsClassifier

    sk = KNeighborsClassifier(n_neighbors=min(K, n), metric="cosine", algorithm="brute").fit(data, labels)
    sk_ms = time_calls(lambda: sk.predict(next_query()[None, :]), sk_repeat)
    sk = None
    gc.collect()

    return [
        f"{n:,}",
        *p50_p95(ours_ms),
        *p50_p95(tfjs_ms),
        *p50_p95(sk_ms),
        ours_add_us,
        tfjs_add_ms * 1e3,
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="100, 1k and 10k examples, fewer queries")
    args = parser.parse_args()
    sizes = [100, 1_000, 10_000] if args.quick else [100, 1_000, 10_000, 100_000]
    load = os.getloadavg()[0]
    if load > 0.5:
        print(f"warning: load average {load:.2f}; timings will be noisy", file=sys.stderr)
    rng = np.random.default_rng(0)
    rows = []
    for n in sizes:
        repeat = (100 if args.quick else 1000) if n <= 10_000 else 200
        sk_repeat = (30 if args.quick else 200) if n <= 10_000 else 20
        print(f"{n:,} examples ...", file=sys.stderr, flush=True)
        rows.append(bench_size(n, repeat, sk_repeat, rng))
    header = [
        "stored",
        "ours p50 ms",
        "ours p95 ms",
        "TF.js-style p50 ms",
        "TF.js-style p95 ms",
        "sklearn p50 ms",
        "sklearn p95 ms",
        "ours add µs (amortised)",
        "TF.js-style add µs",
    ]
    print(
        f"\nPredict latency, one query, D={DIM}, k={K}, {N_CLASSES} classes, {os.cpu_count()} cores, "
        f"NumPy {np.__version__}, load average at start {load:.2f}\n"
    )
    print(markdown_table(header, rows))


if __name__ == "__main__":
    main()
