"""Export round trips on real photos: `.keras` in a fresh process without knn, `.tflite` in LiteRT.

Both must give the engine's class for every test image and its probabilities within 1e-4. The
classifier is small (3 examples per class, queries from the far half of each class) so the module
runs in about a minute on two cores.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import numpy as np
import pytest

import knn
from knn.core.evaluation import few_shot_split
from knn.core.images import augmented_views, center_crop_resize, read_image
from knn.model.export import ExportError, build_head, build_model, export_bytes, export_model, read_metadata
from tests.conftest import class_files

TOLERANCE = 1e-4


def engine_class_index(clf: knn.KNNClassifier, predictions) -> np.ndarray:
    return np.array([-1 if p.label is None else clf.classes.index(p.label) for p in predictions])


@pytest.fixture(scope="module")
def taught(rps_dir: Path, embedder: knn.Embedder):
    """A classifier on 3 photos per class, 12 query photos, the engine's answers, the model inputs."""
    clf = knn.KNNClassifier(k=3)
    queries = []
    for name, files in class_files(rps_dir).items():
        examples, rest = few_shot_split(files, 3, max_queries=4)
        clf.add_many(embedder.embed([read_image(f) for f in examples]), [name] * len(examples))
        queries += rest
    images = [read_image(f) for f in queries]
    embeddings = embedder.embed(images)
    # A threshold midway between two neighboring best similarities: some queries are unknown, and
    # no query sits near the threshold, where runtimes' last-digit differences could flip it.
    best = np.sort([p.similarity for p in clf.predict_many(embeddings)])
    gap = int(np.argmax(np.diff(best[2:-2]))) + 2
    clf.unknown_threshold = float((best[gap] + best[gap + 1]) / 2)
    predictions = clf.predict_many(embeddings)
    assert any(p.unknown for p in predictions) and not all(p.unknown for p in predictions)
    pixels = np.stack([center_crop_resize(im, embedder.input_size) for im in images]).astype(np.float32)
    return {
        "clf": clf,
        "proba": clf.predict_proba(embeddings),
        "class_index": engine_class_index(clf, predictions),
        "similarity": np.array([p.similarity for p in predictions]),
        "pixels": pixels,
    }


@pytest.fixture(scope="module")
def exported(taught, embedder, tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("export")
    return {fmt: export_model(taught["clf"], embedder, out / f"rps.{fmt}") for fmt in ("keras", "tflite")}


def check_outputs(outputs: dict[str, np.ndarray], taught) -> None:
    np.testing.assert_allclose(outputs["probabilities"], taught["proba"], atol=TOLERANCE, rtol=0)
    np.testing.assert_array_equal(outputs["class_index"], taught["class_index"])
    np.testing.assert_allclose(outputs["similarity"], taught["similarity"], atol=TOLERANCE, rtol=0)
    # Without the unknown rule, argmax(probabilities) is the engine's class too (no exact ties here).
    known = taught["class_index"] >= 0
    np.testing.assert_array_equal(outputs["probabilities"].argmax(1)[known], taught["class_index"][known])


FRESH_PROCESS = textwrap.dedent(
    """
    import json, sys, zipfile
    import numpy as np
    import keras

    model = keras.models.load_model(sys.argv[1])          # default safe_mode
    labels = zipfile.ZipFile(sys.argv[1]).read("labels.txt").decode().splitlines()
    pixels = np.load(sys.argv[2])
    out = model.predict(pixels.astype(np.uint8), verbose=0)  # uint8 RGB works as well as float
    np.savez(sys.argv[3], **out)
    print(json.dumps({"labels": labels, "knn_imported": "knn" in sys.modules,
                      "trainable": len(model.trainable_weights)}))
    """
)


def test_keras_file_in_a_fresh_process_without_knn(exported, taught, tmp_path):
    np.save(tmp_path / "pixels.npy", taught["pixels"])
    # -I: no PYTHONPATH, no user site, and the cwd (tmp_path) is not the repository: knn cannot load.
    result = subprocess.run(
        [sys.executable, "-I", "-c", FRESH_PROCESS, str(exported["keras"]), "pixels.npy", "out.npz"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env={"TF_CPP_MIN_LOG_LEVEL": "2", "PATH": "/usr/bin:/bin", "HOME": str(Path.home())},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report == {"labels": taught["clf"].classes, "knn_imported": False, "trainable": 0}
    with np.load(tmp_path / "out.npz") as out:
        check_outputs(dict(out), taught)


def test_tflite_file_in_litert(exported, taught):
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(exported["tflite"]))
    signature = interpreter.get_signature_list()["serving_default"]
    assert signature == {"inputs": ["image"], "outputs": ["class_index", "probabilities", "similarity"]}
    runner = interpreter.get_signature_runner()
    answers = [runner(image=x[None]) for x in taught["pixels"]]
    outputs = {name: np.concatenate([a[name] for a in answers]) for name in answers[0]}
    check_outputs(outputs, taught)
    # The appended archive carries the class names; the interpreter ignores it.
    labels = zipfile.ZipFile(exported["tflite"]).read("labels.txt").decode().splitlines()
    assert labels == taught["clf"].classes


def test_metadata_in_both_files(exported, taught, embedder):
    for path in exported.values():
        meta = read_metadata(path)
        assert meta["classes"] == taught["clf"].classes
        assert meta["backbone"] == embedder.backbone
        assert meta["k"] == 3 and meta["unknown_threshold"] == pytest.approx(taught["clf"].unknown_threshold)
        assert meta["input"]["shape"] == [None, 224, 224, 3]
        assert set(meta["outputs"]) == {"probabilities", "class_index", "similarity"}


def test_export_bytes_runs_in_a_child_process_one_at_a_time(taught, embedder, exported):
    """The app's download path: TensorFlow stays out of the calling process, and while one model
    is being built a second request is refused at once instead of starting another ~1 GB child."""
    import threading

    from knn.model.export import ExportBusy

    steps, results = [], {}
    started = threading.Event()

    def build():
        results["data"] = export_bytes(
            taught["clf"], embedder, "keras", progress=lambda f, text: (steps.append((text, f)), started.set())
        )

    first = threading.Thread(target=build)
    first.start()
    try:
        assert started.wait(120)  # the child reports its first step: the build is under way
        with pytest.raises(ExportBusy, match="try again"):
            export_bytes(taught["clf"], embedder, "tflite")
    finally:
        first.join()
    data = results["data"]
    assert zipfile.ZipFile(io.BytesIO(data)).read("labels.txt").decode().splitlines() == taught["clf"].classes
    assert read_metadata(data) == read_metadata(exported["keras"])
    assert steps and steps[-1][1] == 1.0
    assert export_bytes(taught["clf"], embedder, "keras")[:2] == b"PK"  # free again once it is done


def test_nothing_half_written_on_failure(taught, embedder, tmp_path, monkeypatch):
    import knn.model.export as export

    target = tmp_path / "model.keras"
    target.write_bytes(b"the previous model")

    def crash(model, meta, path):
        Path(path).write_bytes(b"half a model")
        raise OSError("disk full")

    monkeypatch.setattr(export, "_write_keras", crash)
    with pytest.raises(OSError, match="disk full"):
        export_model(taught["clf"], embedder, target)
    assert target.read_bytes() == b"the previous model"
    assert [p.name for p in tmp_path.iterdir()] == ["model.keras"]  # no temporary file left over


def test_refusals(embedder, tmp_path):
    with pytest.raises(ExportError, match="no examples"):
        export_model(knn.KNNClassifier(), embedder, tmp_path / "empty.keras")
    clf = knn.KNNClassifier()
    clf.add(np.ones(8), "a")
    with pytest.raises(ExportError, match=r"\.keras or a \.tflite"):
        export_model(clf, embedder, tmp_path / "model.onnx")
    with pytest.raises(ExportError, match="must end in .keras"):
        export_model(clf, embedder, tmp_path / "model.bin", fmt="keras")
    with pytest.raises(ExportError, match="another backbone"):
        export_model(clf, embedder, tmp_path / "model.keras")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ExportError, match="not a model exported by knn"):
        read_metadata(b"not a zip")


def test_head_follows_the_engine_on_ties_unknowns_and_empty_classes():
    """The Keras head alone, on embeddings built to hit every rule of the engine's vote."""
    rng = np.random.default_rng(7)
    base = rng.normal(size=(6, 32))
    clf = knn.KNNClassifier(k=4, unknown_threshold=0.25)
    for name in ("zeta", "alpha", "empty", "mid"):  # class order is not alphabetical
        clf.add_class(name)
    rows = [(0, "zeta"), (0, "alpha"), (1, "zeta"), (1, "mid"), (2, "alpha"), (2, "alpha"), (3, "mid"), (4, "zeta")]
    for i, name in rows:
        clf.add(base[i], name)
    clf.add(-base[5], "mid")  # an opposite example: a token vote, never a negative one
    queries = np.concatenate([base, -base, rng.normal(size=(300, 32)), base[:4] + 0.05 * rng.normal(size=(4, 32))])
    embeddings, _, _ = clf.embeddings()
    sims = np.sort((queries / np.linalg.norm(queries, axis=1, keepdims=True)) @ embeddings.T, axis=1)[:, ::-1]
    # When the k-th and (k+1)-th neighbors tie exactly, which one counts is unspecified in the
    # engine (argpartition); the export takes the earlier example. Leave those queries out.
    clear = ~np.isclose(sims[:, clf.k - 1], sims[:, clf.k], rtol=0, atol=1e-6)
    queries = queries[clear]
    out = build_head(clf).predict(queries.astype(np.float32), verbose=0)
    predictions = clf.predict_many(queries)
    np.testing.assert_allclose(out["probabilities"], clf.predict_proba(queries), atol=1e-5, rtol=0)
    np.testing.assert_array_equal(out["class_index"], engine_class_index(clf, predictions))
    index = engine_class_index(clf, predictions)
    assert (index == -1).any() and (index == clf.classes.index("alpha")).any()
    assert (out["probabilities"][:, clf.classes.index("empty")] == 0).all()


def test_head_breaks_an_exact_tie_by_name_like_the_engine():
    clf = knn.KNNClassifier(k=2)
    example = np.arange(1.0, 9.0)
    clf.add(example, "zeta")
    clf.add(example, "alpha")  # the same example in two classes: votes, sums and best all tie
    assert clf.predict(example).label == "alpha"
    out = build_head(clf).predict(example[None].astype(np.float32), verbose=0)
    assert out["class_index"].tolist() == [clf.classes.index("alpha")]
    np.testing.assert_allclose(out["probabilities"], [[0.5, 0.5]], atol=1e-6)


def test_head_follows_the_engine_with_augmented_examples():
    """Examples of 1 to 12 vectors: the head takes each example's best vector, as the engine does."""
    rng = np.random.default_rng(11)
    clf = knn.KNNClassifier(k=3, unknown_threshold=0.1)
    counts = [1, 12, 5, 12, 1, 3, 12]
    own = rng.normal(size=(len(counts), 24))
    for i, count in enumerate(counts):
        views = own[i] + 0.6 * rng.normal(size=(count - 1, 24))
        clf.add_many(np.vstack([own[i], views]), [["a", "b", "c"][i % 3]], vectors=[count])
    vectors = clf.state().embeddings
    queries = np.concatenate([vectors + 0.05 * rng.normal(size=vectors.shape), rng.normal(size=(200, 24))])
    out = build_head(clf).predict(queries.astype(np.float32), verbose=0)
    predictions = clf.predict_many(queries)
    np.testing.assert_allclose(out["probabilities"], clf.predict_proba(queries), atol=1e-5, rtol=0)
    np.testing.assert_array_equal(out["class_index"], engine_class_index(clf, predictions))
    np.testing.assert_allclose(out["similarity"], [p.similarity for p in predictions], atol=1e-5, rtol=0)


def rule_classifier(vote: str, centred: bool) -> tuple[knn.KNNClassifier, np.ndarray]:
    """Examples of 1 to 12 vectors in 4 classes and an empty one, names out of alphabetical order,
    features sharing a common component (as MobileNet's do); queries near and far from them, and
    an unknown threshold that some of them fall below."""
    rng = np.random.default_rng(11)
    clf = knn.KNNClassifier(k=3, vote=vote, centred=centred, centroid_weight=0.3)
    clf.add_class("empty")
    counts = [1, 12, 5, 12, 1, 3, 12, 2, 2]
    own = rng.normal(size=(len(counts), 24)) + 1.5
    for i, count in enumerate(counts):
        views = own[i] + 0.6 * rng.normal(size=(count - 1, 24))
        clf.add_many(np.vstack([own[i], views]), [["zeta", "b", "alpha", "d"][i % 4]], vectors=[count])
    vectors = clf.state().embeddings
    queries = np.concatenate([vectors + 0.05 * rng.normal(size=vectors.shape), rng.normal(size=(200, 24)) + 1.5])
    best = np.sort([p.similarity for p in clf.predict_many(queries)])
    gap = int(np.argmax(np.diff(best[20:-20]))) + 20  # midway in a gap: no query sits on the threshold
    clf.unknown_threshold = float((best[gap] + best[gap + 1]) / 2)
    return clf, queries.astype(np.float32)


def check_head(outputs: dict[str, np.ndarray], clf: knn.KNNClassifier, queries: np.ndarray) -> None:
    predictions = clf.predict_many(queries)
    index = engine_class_index(clf, predictions)
    np.testing.assert_allclose(outputs["probabilities"], clf.predict_proba(queries), atol=1e-5, rtol=0)
    np.testing.assert_array_equal(outputs["class_index"], index)
    np.testing.assert_allclose(outputs["similarity"], [p.similarity for p in predictions], atol=1e-5, rtol=0)
    assert (index == -1).any() and (index >= 0).any()


@pytest.mark.parametrize("centred", [False, True])
@pytest.mark.parametrize("vote", ["examples", "centroids", "blend"])
def test_head_follows_the_engine_for_every_rule(vote, centred):
    from knn.model.backbones import get_backbone
    from knn.model.export import metadata

    clf, queries = rule_classifier(vote, centred)
    check_head(build_head(clf).predict(queries, verbose=0), clf, queries)
    meta = metadata(clf, get_backbone("mobilenet_v2_1.0_224"))
    assert (meta["vote"], meta["centroid_weight"], meta["centred"]) == (vote, 0.3, centred)


def test_centred_blend_head_saves_converts_to_litert_and_agrees(tmp_path):
    """The centring layer and the second top_k survive a .keras file (default safe_mode) and
    convert to LiteRT builtins, each giving the engine's answers."""
    import keras
    import tensorflow as tf
    from ai_edge_litert.interpreter import Interpreter

    clf, queries = rule_classifier("blend", True)
    head = build_head(clf)
    head.save(tmp_path / "head.keras")
    check_head(keras.models.load_model(tmp_path / "head.keras").predict(queries, verbose=0), clf, queries)
    path = tmp_path / "head.tflite"
    signature = [tf.TensorSpec([1, queries.shape[1]], tf.float32, name="embedding")]
    head.export(str(path), format="litert", input_signature=signature, verbose=False)
    runner = Interpreter(model_path=str(path)).get_signature_runner()
    answers = [runner(embedding=q[None]) for q in queries]
    check_head({name: np.concatenate([a[name] for a in answers]) for name in answers[0]}, clf, queries)


@pytest.mark.parametrize(
    "backbone", ["mobilenet_v2_1.0_224", "mobilenet_v3_small_224", "mobilenet_v2_1.0_320", "mobilenet_v1_1.0_320"]
)
def test_other_backbone_families(backbone, rps_dir, models_dir, tmp_path):
    """v2 rescales in the export's own layer, v3 inside Keras' model, the accurate mode takes
    320×320 pixels: each must match the engine.

    v2 uses the reference ImageNet weights from ../shared/models; v3 random weights of the right
    architecture (no download here), which test the wiring just as well.
    """
    from knn.model.backbones import get_backbone

    spec = get_backbone(backbone)
    weights = models_dir / spec.weights_filename
    if not weights.is_file():
        weights = tmp_path / spec.weights_filename
        spec.build_keras_model(weights=None).save_weights(weights)
    embedder = knn.Embedder(backbone, weights=weights, runtime="tf")  # no LiteRT build for a one-off
    clf = knn.KNNClassifier(k=3)
    files = class_files(rps_dir)
    augment = spec.size != 224  # the accurate mode's examples with their mirrors and crops, as the app can store them
    for name, paths in files.items():
        squares = [center_crop_resize(read_image(f), spec.size) for f in paths[:40:10]]
        if augment:
            clf.add_many(
                embedder.embed([v for sq in squares for v in (sq, *augmented_views(sq))]), [name] * 4, vectors=[12] * 4
            )
        else:
            clf.add_many(embedder.embed(squares), [name] * 4)
    images = [read_image(paths[-1]) for paths in files.values()]
    embeddings = embedder.embed(images)
    pixels = np.stack([center_crop_resize(im, spec.size) for im in images]).astype(np.float32)
    out = build_model(clf, embedder).predict(pixels, verbose=0)
    np.testing.assert_allclose(out["probabilities"], clf.predict_proba(embeddings), atol=TOLERANCE, rtol=0)
    np.testing.assert_array_equal(out["class_index"], engine_class_index(clf, clf.predict_many(embeddings)))


def test_the_blended_vote_on_real_photos_with_mirrored_examples(rps_dir, embedder: knn.Embedder):
    """The app's backbone, examples stored with their mirrors, the centred blended vote: the whole
    exported model answers as the engine does on real photos."""
    size = embedder.input_size
    clf = knn.KNNClassifier(k=3, vote="blend", centred=True)
    files = class_files(rps_dir)
    for name, paths in files.items():
        squares = [center_crop_resize(read_image(f), size) for f in paths[:60:15]]
        views = [v for sq in squares for v in (sq, np.ascontiguousarray(sq[:, ::-1]))]
        clf.add_many(embedder.embed(views), [name] * len(squares), vectors=[2] * len(squares))
    images = [read_image(f) for paths in files.values() for f in paths[60::20]]
    embeddings = embedder.embed(images)
    pixels = np.stack([center_crop_resize(im, size) for im in images]).astype(np.float32)
    out = build_model(clf, embedder).predict(pixels, verbose=0)
    np.testing.assert_allclose(out["probabilities"], clf.predict_proba(embeddings), atol=TOLERANCE, rtol=0)
    np.testing.assert_array_equal(out["class_index"], engine_class_index(clf, clf.predict_many(embeddings)))
