"""The stored example image: what each size costs, and what re-embedding from it gives.

A project keeps each example's image as a JPEG (knn.core.images.encode_jpeg, quality 90, lowered
until it fits `MAX_STORED_JPEG_BYTES`), so that switching the input size or the network later can
re-embed the examples. Today it is kept at the model's input, 224 px: re-embedding it at 320 only
upsamples. This measures, on grocery's ``train_*`` photos (348×348, phone photos in shops):

1. bytes per example at quality 90 when stored at 224, 320 and 384 px, and how many would be
   re-encoded at a lower quality under today's limit;
2. how close the re-embedded vectors come to those of the original photo (cosine), at 320 from a
   stored 224 (today), 320 or 384 image, and at 224 from a stored 224 image;
3. few-shot accuracy on grocery's ``test_*`` photos when the examples' vectors come from the
   stored images instead of the photos (queries are always the camera's: the original photos).

Embeddings are cached by bench/embedcache.py (variants ``jpeg224``, ``jpeg320``, ``jpeg384``).

    nice -n 19 python bench/stored.py
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

from bench.common import SHARED, markdown_table
from bench.embedcache import STORED_QUALITY, EmbeddingCache, stored_jpeg
from bench.fewshot import Vectors, draws_for, fill, score
from bench.fewshot_sets import load_set

if (SHARED / "models").is_dir():
    os.environ.setdefault("KNN_WEIGHTS_DIR", str(SHARED / "models"))

SIZES = (224, 320, 384)
CHECKS = {  # backbone -> the stored sizes re-embedded at its input
    "mobilenet_v2_1.0_320": ("jpeg224", "jpeg320", "jpeg384"),
    "mobilenet_v1_1.0_320": ("jpeg224", "jpeg320", "jpeg384"),
    "mobilenet_v2_1.0_224": ("jpeg224",),
    "mobilenet_v1_1.0_224": ("jpeg224",),
}


def byte_costs(files: list[Path]) -> list[list[object]]:
    from tqdm import tqdm

    from knn.core.images import center_crop_resize, read_image
    from knn.core.limits import MAX_STORED_JPEG_BYTES

    sizes = {s: [] for s in SIZES}
    ms = {s: [] for s in SIZES}
    for path in tqdm(files, desc="Encoding", unit="img", file=sys.stderr, leave=False):
        photo = read_image(path)
        for s in SIZES:
            t0 = time.perf_counter()
            sizes[s].append(len(stored_jpeg(center_crop_resize(photo, s), s)))
            ms[s].append((time.perf_counter() - t0) * 1e3)
    rows = []
    for s, values in sizes.items():
        kb = np.asarray(values) / 1024
        over = float(np.mean(np.asarray(values) > MAX_STORED_JPEG_BYTES))
        cells = [f"{kb.mean():.1f}", f"{np.percentile(kb, 95):.1f}", f"{np.percentile(kb, 99):.1f}", f"{kb.max():.1f}"]
        rows.append([s, *cells, f"{100 * over:.1f}%", f"{np.median(ms[s]):.2f}"])
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--draws", type=int, default=10)
    parser.add_argument("--shots", nargs="+", type=int, default=[1, 5, 10])
    parser.add_argument("--vote", default="blend", help="the rule scored beside today's (examples)")
    args = parser.parse_args()
    from knn.core.limits import MAX_STORED_JPEG_BYTES
    from knn.core.voting import DEFAULT_CENTROID_WEIGHT

    dev = load_set("grocery")
    pool = dev.files()[0]
    print(f"\nBytes per stored example, JPEG quality {STORED_QUALITY}, {len(pool)} grocery photos (348 px):\n")
    limit = f"over today's {MAX_STORED_JPEG_BYTES // 1024} kB"
    header = ["stored px", "mean kB", "p95 kB", "p99 kB", "max kB", limit, "resize + encode ms (median)"]
    print(markdown_table(header, byte_costs(pool)))

    fill({"grocery": dev}, list(CHECKS), [])
    for backbone, variants in CHECKS.items():
        cache = EmbeddingCache(backbone)
        cache.fill(pool, "own")
        for v in variants:
            cache.fill(pool, v)
    print("\nCosine similarity of each example's re-embedded vector to its original photo's:\n")
    rows = []
    for backbone, variants in CHECKS.items():
        cache = EmbeddingCache(backbone)
        own = np.concatenate(cache.get(pool, "own"))
        own /= np.linalg.norm(own, axis=1, keepdims=True)
        for v in variants:
            again = np.concatenate(cache.get(pool, v))
            cos = np.sum(own * again / np.linalg.norm(again, axis=1, keepdims=True), axis=1)
            rows.append([backbone, v[4:], f"{cos.mean():.4f}", f"{np.percentile(cos, 5):.4f}", f"{cos.min():.4f}"])
    print(markdown_table(["backbone", "stored px", "mean", "p5", "min"], rows))

    rules = [("examples", DEFAULT_CENTROID_WEIGHT), (args.vote, DEFAULT_CENTROID_WEIGHT)]
    header = ["backbone", "examples from", "vote", *[f"{n} per class" for n in args.shots]]
    print("\nFew-shot accuracy on grocery's test photos, examples from the photos or their stored images")
    print(f"({args.draws} draws, mean ± sd, %):\n")
    rows = []
    for backbone, variants in CHECKS.items():
        vectors = Vectors(dev, EmbeddingCache(backbone), ["own", *variants])
        for source in ("own", *variants):
            acc = {rule: {n: [] for n in args.shots} for rule, _ in rules}
            for n in args.shots:
                for picks in draws_for(dev, n, args.draws):
                    for (rule, _), value in zip(rules, score(vectors, picks, (source,), False, rules), strict=True):
                        acc[rule][n].append(100 * value)
            shown = "the photo" if source == "own" else f"stored {source[4:]} px"
            for rule, _ in rules:
                cells = [f"{np.mean(acc[rule][n]):.1f} ± {np.std(acc[rule][n], ddof=1):.1f}" for n in args.shots]
                rows.append([backbone, shown, rule, *cells])
            print(f"  {backbone} {shown} done", file=sys.stderr, flush=True)
    print(markdown_table(header, rows))


if __name__ == "__main__":
    main()
