"""What each candidate rule costs per frame and per Add, offline (the live costs: bench/live.py).

1. `KNNClassifier.predict` per camera frame (one query, as the video loop calls it) for each vote
   rule, centred or not, at 100 / 1,000 / 5,000 stored examples of 1 or 2 vectors (the mirror),
   D = 1,280 (MobileNetV2), 50 classes; and the first predict after an Add, which derives the
   centroids (and the centred vectors) again. Rules are timed interleaved, round after round.
2. An Add's model time with each stored extra: the frame's own embedding is already made (the
   camera's), so an Add embeds only its extras: none, the mirror (1 pass) or mirror and crops (11),
   per backbone and input size, interleaved.
3. Memory per example: its vectors (float32) and its stored JPEG.

Run it on a quiet machine (`uptime`); the table prints the load average at the start and the end.

    python bench/rules.py
    python bench/rules.py --quick
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KNN_OFFLINE", "1")

from bench.common import SHARED, markdown_table, p50_p95
from knn.core.classifier import KNNClassifier

if (SHARED / "models").is_dir():
    os.environ.setdefault("KNN_WEIGHTS_DIR", str(SHARED / "models"))

DIM = 1280
N_CLASSES = 50
RULES = [("examples", False), ("centroids", False), ("blend", False), ("examples", True), ("blend", True)]
BACKBONES = ("mobilenet_v2_1.0_224", "mobilenet_v2_1.0_320", "mobilenet_v1_1.0_224", "mobilenet_v1_1.0_320")


def rule_name(vote: str, centred: bool) -> str:
    return vote + (" centred" if centred else "")


def predict_costs(sizes: list[int], rounds: int, per_round: int) -> list[list[object]]:
    rng = np.random.default_rng(0)
    rows = []
    for n in sizes:
        for views in (1, 2):
            emb = rng.standard_normal((n * views, DIM)).astype(np.float32) + 1.0
            labels = [f"c{i % N_CLASSES}" for i in range(n)]
            classifiers = {}
            for vote, centred in RULES:
                clf = KNNClassifier(k=3, vote=vote, centred=centred, max_examples_per_class=n, max_examples=n + 1)
                clf.add_many(emb, labels, vectors=[views] * n)
                clf.predict(emb[0])  # derive the space once
                classifiers[vote, centred] = clf
            frames = {rule: [] for rule in RULES}
            after_add = {rule: [] for rule in RULES}
            queries = rng.standard_normal((per_round, DIM)).astype(np.float32) + 1.0
            for _ in range(rounds):  # interleaved: every rule in each round
                for rule, clf in classifiers.items():
                    for q in queries:
                        t0 = time.perf_counter()
                        clf.predict(q)
                        frames[rule].append((time.perf_counter() - t0) * 1e3)
                    ids = clf.add_many(emb[:views], ["c0"], vectors=[views])
                    t0 = time.perf_counter()
                    clf.predict(queries[0])
                    after_add[rule].append((time.perf_counter() - t0) * 1e3)
                    clf.remove(ids[0])
            for rule in RULES:
                p50, p95 = p50_p95(np.asarray(frames[rule]))
                rows.append(
                    [
                        f"{n:,}",
                        views,
                        rule_name(*rule),
                        f"{p50:.3f}",
                        f"{p95:.3f}",
                        f"{np.median(after_add[rule]):.2f}",
                    ]
                )
            print(f"  {n:,} examples × {views} done", file=sys.stderr, flush=True)
    return rows


def add_costs(rounds: int) -> list[list[object]]:
    from knn import Embedder
    from knn.core.images import augmented_views, read_square

    photo = SHARED / "data" / "grocery" / "Anjou" / "train_Anjou_001.jpg"
    rows = []
    embedders = {b: Embedder(b, runtime="litert") for b in BACKBONES}
    squares = {b: read_square(photo, e.input_size) for b, e in embedders.items()}
    extras = {
        b: {"none": [], "mirror": [squares[b][:, ::-1].copy()], "crops": augmented_views(squares[b])} for b in embedders
    }
    times = {(b, x): [] for b in embedders for x in ("own", "mirror", "crops")}
    for e in embedders.values():
        e.embed(squares[e.backbone])  # warm up
    for _ in range(rounds):
        for b, e in embedders.items():
            for name, images in (("own", [squares[b]]), ("mirror", extras[b]["mirror"]), ("crops", extras[b]["crops"])):
                t0 = time.perf_counter()
                e.embed(images)
                times[b, name].append((time.perf_counter() - t0) * 1e3)
    for b in embedders:
        own = np.median(times[b, "own"])
        mirror = np.median(times[b, "mirror"])
        crops = np.median(times[b, "crops"])
        rows.append([b, f"{own:.1f}", "0", f"{mirror:.1f}", f"{crops:.1f}"])
    return rows


def memory_rows() -> list[list[object]]:
    rows = []
    for network, dim in (("mobilenet_v2_1.0", 1280), ("mobilenet_v1_1.0", 1024)):
        for extras, vectors in (("none", 1), ("mirror", 2), ("crops", 12)):
            rows.append([network, extras, vectors, f"{vectors * dim * 4 / 1024:.1f}"])
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--no-model", action="store_true", help="skip the Add's model time")
    args = parser.parse_args()
    start_load = os.getloadavg()[0]
    sizes = [100, 1000] if args.quick else [100, 1000, 5000]
    rounds = 5 if args.quick else 20
    print(f"\nOne frame's predict, ms (D = {DIM:,}, {N_CLASSES} classes, k=3), and the first predict after an Add:\n")
    header = ["examples", "vectors each", "rule", "predict p50", "predict p95", "first predict after an Add"]
    print(markdown_table(header, predict_costs(sizes, rounds, 50)))
    if not args.no_model:
        print("\nAn Add's model time, ms (median): the frame's own pass is already made; extras are embedded anew\n")
        header = ["backbone", "own pass (for scale)", "Add with none", "Add with the mirror", "Add with mirror + crops"]
        print(markdown_table(header, add_costs(5 if args.quick else 20)))
    print("\nMemory per example, vectors only (the stored JPEG: bench/stored.py):\n")
    print(markdown_table(["backbone", "extras", "vectors", "kB"], memory_rows()))
    print(f"\nload average {start_load:.2f} at the start, {os.getloadavg()[0]:.2f} at the end", file=sys.stderr)


if __name__ == "__main__":
    main()
