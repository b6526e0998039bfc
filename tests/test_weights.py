"""Weights: the offline conversion from the PyPI graph, checked against Google's reference weights."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from knn.model import weights
from knn.model.backbones import get_backbone

# ImageNet class indices (Keras' 1000-class order).
TABBY, TIGER_CAT, EGYPTIAN_CAT = 281, 282, 285
ESPRESSO, CUP, COFFEE_MUG = 967, 968, 504


@pytest.fixture(scope="module")
def converted(tmp_path_factory) -> Path:
    """A cold conversion into an empty cache, the way a new machine does it."""
    cache = tmp_path_factory.mktemp("cache")
    env_note = []
    from knn.model.child import BUILD, run_child

    run_child(BUILD, ["pypi-weights", str(cache)], lambda f, text: env_note.append((f, text)))
    assert env_note[-1][0] == 1.0, "progress should end at 100%"
    return cache


def test_conversion_writes_complete_files_only(converted: Path):
    names = sorted(p.name for p in converted.iterdir())
    assert names == [
        "mobilenet_v1_1.0_224.weights.h5",
        "mobilenet_v1_1.0_224.weights.h5.origin",
        "mobilenet_v1_1.0_224_no_top.weights.h5",
        "mobilenet_v1_1.0_224_no_top.weights.h5.origin",
    ], "no temporary files may be left behind"


def test_conversion_matches_reference_weights(converted: Path, models_dir: Path):
    spec = get_backbone("mobilenet_v1_1.0_224")
    ours = spec.build_keras_model(converted / "mobilenet_v1_1.0_224.weights.h5", include_top=True)
    ref = spec.build_keras_model(models_dir / "mobilenet_v1_1.0_224.weights.h5", include_top=True)
    pairs = list(zip(ours.weights, ref.weights, strict=True))
    assert len(pairs) == len(ref.weights) > 100
    worst = max(float(np.max(np.abs(a.numpy() - b.numpy()))) for a, b in pairs)
    assert worst < 1e-5


@pytest.mark.parametrize(
    "photo, accepted",
    [("chelsea", {TABBY, TIGER_CAT, EGYPTIAN_CAT}), ("coffee", {ESPRESSO, CUP, COFFEE_MUG})],
)
def test_converted_head_recognises_photos(converted: Path, photo: str, accepted: set[int]):
    from skimage import data

    from knn.core.images import center_crop_resize

    spec = get_backbone("mobilenet_v1_1.0_224")
    model = spec.build_keras_model(converted / "mobilenet_v1_1.0_224.weights.h5", include_top=True)
    x = spec.preprocess(center_crop_resize(getattr(data, photo)(), 224)[None])
    top = int(np.argmax(model(x, training=False).numpy()[0]))
    assert top in accepted, f"{photo} came out as ImageNet class {top}"


def test_headless_file_equals_full_model_body(converted: Path):
    spec = get_backbone("mobilenet_v1_1.0_224")
    full = spec.build_keras_model(converted / "mobilenet_v1_1.0_224.weights.h5", include_top=True)
    body = spec.build_keras_model(converted / spec.weights_filename)
    checked = 0
    for layer in (layer for layer in body.layers if layer.weights):
        checked += 1
        for a, b in zip(layer.get_weights(), full.get_layer(layer.name).get_weights(), strict=True):
            np.testing.assert_array_equal(a, b)
    assert checked == 2 * 27  # 27 convolutions, each followed by a batch norm


def test_tampered_graph_is_refused(tmp_path: Path, monkeypatch):
    bad = tmp_path / "retrained_graph.pb"
    bad.write_bytes(b"not the graph")
    from knn.model import build

    monkeypatch.setattr(build, "pypi_graph_path", lambda: bad)
    with pytest.raises(SystemExit, match="sha256"):
        build.convert_pypi_graph(tmp_path / "out")
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_resolution_order(tmp_path: Path, monkeypatch, models_dir: Path):
    monkeypatch.setenv("KNN_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.setenv("KNN_WEIGHTS_DIR", str(models_dir))
    # 2. KNN_WEIGHTS_DIR: ../shared/models holds MobileNetV2's headless file.
    found = weights.resolve_weights("mobilenet_v2_1.0_224")
    assert found.path == models_dir / "mobilenet_v2_1.0_224_no_top.weights.h5"
    assert "KNN_WEIGHTS_DIR" in found.source
    # 1. An explicit path wins over everything.
    explicit = models_dir / "mobilenet_v1_1.0_224_no_top.weights.h5"
    found = weights.resolve_weights("mobilenet_v1_1.0_224", weights=explicit)
    assert found.path == explicit and found.digest == weights.file_digest(explicit)
    with pytest.raises(weights.WeightsUnavailable, match="does not exist"):
        weights.resolve_weights("mobilenet_v1_1.0_224", weights=tmp_path / "nope.weights.h5")


def test_cache_is_used_and_says_where_weights_came_from(converted: Path, monkeypatch):
    monkeypatch.setenv("KNN_CACHE", str(converted))
    monkeypatch.delenv("KNN_WEIGHTS_DIR", raising=False)
    found = weights.resolve_weights("mobilenet_v1_1.0_224")
    assert found.path == converted / "mobilenet_v1_1.0_224_no_top.weights.h5"
    assert "nudity==0.2.3" in found.source and "cache" in found.source


def test_unavailable_weights_name_the_file_and_where_to_put_it(tmp_path: Path):
    """Without the PyPI graph and without internet, the message says what to do."""
    code = (
        "import importlib.util, knn.model.weights as w\n"
        "w.pypi_graph_path = lambda: None\n"
        "for backbone in ('mobilenet_v1_1.0_224', 'mobilenet_v2_1.0_320'):\n"
        "    try:\n"
        "        w.resolve_weights(backbone)\n"
        "    except w.WeightsUnavailable as e:\n"
        "        print(e)\n"
    )
    env = {"KNN_CACHE": str(tmp_path), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "KNN_OFFLINE": "1"}
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=env,
        cwd=Path(__file__).resolve().parents[1],
        timeout=120,
    ).stdout
    v1, v2 = out.splitlines()
    assert "mobilenet_v1_1.0_224_no_top.weights.h5" in v1
    assert "KNN_WEIGHTS_DIR" in v1 and "pip install nudity==0.2.3" in v1
    # One file serves every input size; offline, the message says the download needs internet.
    assert "mobilenet_v2_1.0_224_no_top.weights.h5" in v2
    assert "KNN_WEIGHTS_DIR" in v2 and "needs internet" in v2


def test_the_download_check_fails_fast_and_once(monkeypatch):
    """Offline, Keras' download is not even tried: one connection attempt per process decides."""
    import socket

    attempts = []

    def refuse(address, timeout):
        attempts.append((address, timeout))
        raise ConnectionRefusedError(111, "Connection refused")

    monkeypatch.delenv("KNN_OFFLINE", raising=False)
    monkeypatch.setattr(socket, "create_connection", refuse)
    weights.downloads_possible.cache_clear()
    try:
        for _ in range(3):
            reachable, why = weights.downloads_possible()
            assert not reachable and "cannot be reached" in why and "refused" in why
        assert attempts == [(weights.DOWNLOAD_HOST, weights.DOWNLOAD_CHECK_SECONDS)]
        assert weights.DOWNLOAD_CHECK_SECONDS <= 5
    finally:
        weights.downloads_possible.cache_clear()
