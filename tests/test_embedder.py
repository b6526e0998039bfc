"""Embedder on real photos: preprocessing, both runtimes, thread safety, no TensorFlow when warm."""

from __future__ import annotations

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

import knn
from knn.core.images import read_image
from tests.conftest import class_files

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def photos(coil_dir: Path, rps_dir: Path) -> list[np.ndarray]:
    coil = class_files(coil_dir)
    rps = class_files(rps_dir)
    files = [coil["obj1"][0], coil["obj5"][10], rps["rock"][3], rps["paper"][50]]
    return [read_image(f) for f in files]


@pytest.fixture(scope="module")
def tf_embedder() -> knn.Embedder:
    return knn.Embedder(runtime="tf")


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_default_embedder_is_the_best_one_found(embedder: knn.Embedder, models_dir: Path):
    # conftest points KNN_WEIGHTS_DIR at ../shared/models (models_dir skips without it), which holds
    # MobileNetV2's weights.
    assert embedder.backbone == "mobilenet_v2_1.0_224"
    assert embedder.runtime == "litert"
    assert embedder.dim == 1280 and embedder.input_size == 224
    assert "KNN_WEIGHTS_DIR" in embedder.weights_source
    assert "the default" in embedder.choice_reason
    from knn.model.choice import choose_backbone

    assert choose_backbone().backbone == "mobilenet_v2_1.0_224"  # the same choice, asked directly


def test_default_falls_back_to_v1_from_pypi_offline(tmp_path: Path):
    """Without MobileNetV2's file and offline, v1 runs (its weights come from PyPI) and says why."""

    code = "from knn.model.choice import choose_backbone; c = choose_backbone(); print(c.backbone); print(c.reason)"
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "KNN_CACHE": str(tmp_path / "cache"), "KNN_OFFLINE": "1"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    backbone, reason = out.stdout.splitlines()
    assert backbone == "mobilenet_v1_1.0_224"
    assert "MobileNetV2" in reason and "KNN_OFFLINE" in reason and "PyPI" in reason


def test_runtimes_agree(embedder: knn.Embedder, tf_embedder: knn.Embedder, photos):
    lite = embedder.embed(photos)
    tf = tf_embedder.embed(photos)
    assert lite.shape == tf.shape == (len(photos), embedder.dim) and lite.dtype == np.float32
    rel = np.linalg.norm(lite - tf, axis=1) / np.linalg.norm(tf, axis=1)
    assert rel.max() < 1e-4


def test_same_object_closer_than_different_objects(embedder: knn.Embedder, coil_dir: Path):
    files = class_files(coil_dir)
    a0, a1 = (read_image(files["obj3"][i]) for i in (0, 6))  # 30° apart on the turntable
    b0 = read_image(files["obj12"][0])
    ea0, ea1, eb0 = embedder.embed([a0, a1, b0])
    assert cosine(ea0, ea1) > cosine(ea0, eb0) + 0.05


def test_any_size_grey_and_rgba(embedder: knn.Embedder, photos):
    photo = photos[2]  # 300×200 RGB
    base = embedder.embed_one(photo)
    big = np.asarray(__import__("PIL.Image", fromlist=["Image"]).fromarray(photo).resize((1920, 1280)))
    assert cosine(embedder.embed_one(big), base) > 0.95
    rgba = np.dstack([photo, np.full(photo.shape[:2], 255, np.uint8)])
    np.testing.assert_allclose(embedder.embed_one(rgba), base, rtol=1e-5, atol=1e-5)
    grey = photo.mean(axis=2).astype(np.uint8)
    for g in (grey, grey[..., None]):
        e = embedder.embed(g)
        assert e.shape == (1, embedder.dim) and np.isfinite(e).all()


def test_batches_equal_single_images(embedder: knn.Embedder, photos):
    singles = np.concatenate([embedder.embed(p) for p in photos])
    np.testing.assert_allclose(embedder.embed(photos), singles, rtol=1e-6, atol=1e-6)
    same = np.stack([photos[0]] * 3)
    assert embedder.embed(same).shape == (3, embedder.dim)


@pytest.mark.parametrize(
    "bad, words",
    [
        (np.zeros((0, 0, 3), np.uint8), "empty"),
        (np.zeros((10, 10, 5), np.uint8), "channels"),
        (np.zeros((10,), np.uint8), "shape"),
        (np.zeros((0, 224, 224, 3), np.uint8), "empty"),
        ([], "empty"),
        (np.zeros((10, 10, 3), np.float64), "uint8"),
    ],
)
def test_malformed_input_says_what_is_wrong(embedder: knn.Embedder, bad, words):
    with pytest.raises(ValueError, match=f"(?i){words}"):
        embedder.embed(bad)


def test_threads_share_one_embedder(embedder: knn.Embedder, photos):
    expected = embedder.embed(photos)
    jobs = [photos[i % len(photos)] for i in range(24)]
    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(lambda im: embedder.embed_one(im), jobs))
    for i, e in enumerate(got):
        np.testing.assert_allclose(e, expected[i % len(photos)], rtol=1e-6, atol=1e-6)


def test_unknown_backbone_and_runtime():
    with pytest.raises(ValueError, match="mobilenet_v1_1.0_224"):
        knn.Embedder(backbone="resnet50")
    with pytest.raises(ValueError, match="runtime"):
        knn.Embedder(runtime="onnx")


def run_python(code: str) -> str:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout


def test_import_knn_is_light():
    out = run_python(
        "import sys, knn\n"
        "print(sorted(m for m in ('tensorflow', 'keras', 'ai_edge_litert', 'PIL', 'streamlit')"
        " if m in sys.modules))"
    )
    assert out.strip() == "[]"


def test_warm_litert_process_never_imports_tensorflow(embedder: knn.Embedder):
    # `embedder` has warmed the cache; a fresh process must now embed without TensorFlow.
    out = run_python(
        "import sys, numpy as np, knn\n"
        "e = knn.Embedder()\n"
        "print(e.runtime, e.embed(np.zeros((480, 640, 3), np.uint8)).shape,"
        " 'tensorflow' in sys.modules, 'keras' in sys.modules)"
    )
    assert out.split() == ["litert", "(1,", f"{embedder.dim})", "False", "False"]
