"""Embedding one 640×480 webcam frame, preprocessing included: p50/p95 per backbone and runtime.

Beside our two runtimes (LiteRT, one `tf.function`) it times what a naive port would do:
`model.predict` per frame and a plain eager call. Backbones without ImageNet weights on this
machine are timed with randomly initialised weights of the same architecture (speed does not
depend on the values); the table says which.

    python bench/embed.py                 # all default backbones
    python bench/embed.py --quick         # MobileNet v1 1.0 only, fewer repeats
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from bench.common import SHARED, markdown_table, p50_p95, time_calls
from knn import Embedder
from knn.model.backbones import DEFAULT_BACKBONE, get_backbone

os.environ.setdefault("KNN_OFFLINE", "1")  # a benchmark never downloads
from knn.model.weights import WeightsUnavailable, cache_dir, resolve_weights

BACKBONES = [
    "mobilenet_v1_1.0_224",
    "mobilenet_v1_1.0_320",
    "mobilenet_v2_1.0_320",
    "mobilenet_v1_0.25_224",
    "mobilenet_v2_1.0_224",
    "mobilenet_v3_small_224",
    "mobilenet_v3_large_224",
]


def webcam_frame() -> np.ndarray:
    """A 640×480 RGB frame made from a real photo when ../shared is there."""
    from PIL import Image

    photo = SHARED / "data" / "rps" / "rock" / "rock_000.jpg"
    if photo.is_file():
        return np.asarray(Image.open(photo).convert("RGB").resize((640, 480)))
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)


def weights_for(backbone: str) -> tuple[Path, str]:
    """Real weights when they resolve offline, else a cached random-init file (speed only)."""
    spec = get_backbone(backbone)
    models = SHARED / "models"
    if (models / spec.weights_filename).is_file():
        return models / spec.weights_filename, "ImageNet"
    try:
        return resolve_weights(backbone).path, "ImageNet"
    except WeightsUnavailable:
        pass
    path = cache_dir() / "bench-random" / spec.weights_filename
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        spec.build_keras_model(weights=None).save_weights(path)
    return path, "random init (speed only)"


def bench_backbone(backbone: str, frame: np.ndarray, repeat: int) -> list[object]:
    weights, kind = weights_for(backbone)
    lite = Embedder(backbone, weights=weights, runtime="litert")
    tf_embedder = Embedder(backbone, weights=weights, runtime="tf")
    model = tf_embedder.keras_model

    def predict() -> np.ndarray:
        return model.predict(tf_embedder.preprocess(frame), verbose=0)

    def eager() -> np.ndarray:
        return model(tf_embedder.preprocess(frame), training=False).numpy()

    results = {
        "litert": time_calls(lambda: lite.embed(frame), repeat),
        "tf": time_calls(lambda: tf_embedder.embed(frame), repeat),
        "predict": time_calls(predict, max(10, repeat // 3)),
        "eager": time_calls(eager, max(10, repeat // 3)),
    }
    pre = p50_p95(time_calls(lambda: lite.preprocess(frame), repeat))
    cells: list[object] = [backbone, kind, lite.dim, f"{pre[0]:.2f}"]
    for name in ("litert", "tf", "predict", "eager"):
        p50, p95 = p50_p95(results[name])
        cells.append(f"{p50:.1f} / {p95:.1f}")
    lite50 = p50_p95(results["litert"])[0]
    cells.append(f"{p50_p95(results['tf'])[0] / lite50:.1f}×")
    cells.append(f"{p50_p95(results['predict'])[0] / lite50:.1f}×")
    return cells


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="default backbone only, fewer repeats")
    parser.add_argument("--backbones", nargs="+", default=None, help="backbone ids to time")
    parser.add_argument("--repeat", type=int, default=None, help="timed calls per runtime")
    args = parser.parse_args()
    backbones = args.backbones or ([DEFAULT_BACKBONE] if args.quick else BACKBONES)
    repeat = args.repeat or (30 if args.quick else 100)
    frame = webcam_frame()
    rows = []
    for backbone in backbones:
        print(f"timing {backbone} ...", file=sys.stderr, flush=True)
        try:
            rows.append(bench_backbone(backbone, frame, repeat))
        except WeightsUnavailable as err:
            print(f"  skipped: {err}", file=sys.stderr)
    print(f"\nOne 640×480 frame -> embedding, ms (p50 / p95), {os.cpu_count()} cores, {repeat} calls\n")
    print(
        markdown_table(
            [
                "backbone",
                "weights",
                "dim",
                "preprocess p50",
                "LiteRT",
                "tf.function",
                "model.predict",
                "eager call",
                "LiteRT vs tf.function",
                "LiteRT vs predict",
            ],
            rows,
        )
    )


if __name__ == "__main__":
    main()
