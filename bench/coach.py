"""What the teaching coach costs, at 100, 1,000 and 5,000 stored examples.

The coach (knn.core.coach) runs on the analysis thread whenever the examples change: each
example's nearest others (knn.core.neighbors, a full chunked pass the first time, then
incremental), leave-one-out, the confused pair, mislabelled-looking examples, few and near-duplicate
classes. Embeddings are 1,280 values (MobileNetV2, the default backbone), random around one centre
per class: the time depends on the sizes, not the values. For each size:

- full: the first analysis of a classifier (e.g. after a project restore or a backbone switch);
- Add / Record / delete: the analysis after one new example, 90 new ones (a 3 s Record at 30 fps)
  and one deleted example, each from the kept neighbors;
- peak MB: the most memory the full analysis allocates at once (tracemalloc), against the
  N x N float32 matrix a plain leave-one-out would hold.

    python bench/coach.py [--quick]

Run it under `flock /tmp/knn-heavy.lock` on a quiet machine: NumPy uses both cores.
"""

from __future__ import annotations

import argparse
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import markdown_table
from knn.core.classifier import KNNClassifier
from knn.core.coach import coach, neighbors_needed
from knn.core.neighbors import NearestOthers

DIM = 1280
RECORD_FRAMES = 90


def taught(n: int, classes: int, vectors: int, rng: np.random.Generator) -> KNNClassifier:
    centres = rng.standard_normal((classes, DIM)).astype(np.float32)
    labels = [f"class {i % classes}" for i in range(n)]
    rows = np.repeat(centres[np.arange(n) % classes], vectors, axis=0)
    rows += 1.5 * rng.standard_normal(rows.shape).astype(np.float32)
    clf = KNNClassifier(max_examples_per_class=n + 1000, max_examples=n + 1000)  # room for the Adds
    clf.add_many(rows, labels, vectors=[vectors] * n)
    return clf


def analyse(index: NearestOthers, clf: KNNClassifier) -> float:
    """Seconds for one analysis as the analysis thread runs it (state snapshot included)."""
    t0 = time.perf_counter()
    state = clf.state()
    coach(state, index.update(state))
    return time.perf_counter() - t0


def run(n: int, classes: int, vectors: int, repeat: int, rng: np.random.Generator) -> list:
    clf = taught(n, classes, vectors, rng)
    m = neighbors_needed(clf.k)
    full = []
    for _ in range(repeat):
        full.append(analyse(NearestOthers(m), clf))
    tracemalloc.start()
    analyse(NearestOthers(m), clf)
    peak = tracemalloc.get_traced_memory()[1] / 1024**2
    tracemalloc.stop()
    index = NearestOthers(m)
    analyse(index, clf)
    add, record, delete = [], [], []
    for _ in range(repeat):
        clf.add_many(rng.standard_normal((vectors, DIM)).astype(np.float32), ["class 0"], vectors=[vectors])
        add.append(analyse(index, clf))
        assert not index.last_full
        clf.add_many(rng.standard_normal((RECORD_FRAMES, DIM)).astype(np.float32), ["class 1"] * RECORD_FRAMES)
        record.append(analyse(index, clf))
        clf.remove(clf.examples("class 2")[0].example_id)
        delete.append(analyse(index, clf))
        assert not index.last_full
    square = n * n * 4 / 1024**2
    return [f"{n:,}", classes, vectors, *map(_ms, (full, add, record, delete)), f"{peak:.0f}", f"{square:.0f}"]


def _ms(seconds: list[float]) -> str:
    """The median in whole milliseconds."""
    return f"{1e3 * float(np.median(seconds)):.0f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="one repetition per size")
    args = parser.parse_args()
    repeat = 1 if args.quick else 5
    rng = np.random.default_rng(0)
    cases = [(100, 3, 1), (1000, 10, 1), (1000, 10, 12), (5000, 10, 1), (5000, 100, 1)]
    rows = [run(n, classes, vectors, repeat, rng) for n, classes, vectors in cases]
    print(f"Coach analysis, {DIM}-d embeddings, median of {repeat} (ms)\n")
    print(
        markdown_table(
            [
                "examples",
                "classes",
                "vectors each",
                "full",
                "after an Add",
                f"after a Record ({RECORD_FRAMES})",
                "after a delete",
                "peak MB (full)",
                "an N x N float32 matrix MB",
            ],
            rows,
        )
    )


if __name__ == "__main__":
    main()
