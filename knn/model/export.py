"""Export a taught classifier as one self-contained model: Keras (`.keras`) or LiteRT (`.tflite`).

The model is the whole pipeline in built-in Keras layers and `keras.ops`, so it loads with
`keras.models.load_model` (default ``safe_mode``) in a process that has never seen this project,
and converts to LiteRT builtins only (TOPK_V2, GATHER, ...), so `ai_edge_litert` runs it:

    image [B, S, S, 3] float32 RGB 0..255, already centre-cropped and resized to S×S
      -> the backbone's preprocessing (x / 127.5 - 1 for v1/v2; MobileNetV3 rescales inside)
      -> MobileNet, global-average pooled                     [B, D]
      -> UnitNormalization (L2)                               [B, D]
      (-> Normalization (minus the examples' mean), L2        [B, D]  a centred project only)
      -> Dense, kernel = the stored normalised examples^T     [B, N]  cosine similarities
      -> top_k(k)                                             [B, k]
      -> Embedding (example -> one-hot class)                 [B, k, C]
      -> similarity-weighted votes, normalised                [B, C]
      (the same from a Dense of the class centroids, and the mix of the two, for the project's
       centroid or blended vote: knn.core.voting)

Outputs (a dict, by name; LiteRT's signature uses the same names):

- ``probabilities`` float32 [B, C]: the engine's `KNNClassifier.predict_proba`, class order.
- ``class_index`` int32 [B]: the engine's answer with its exact tie rules (knn.core.voting); -1
  when the best similarity is below the project's ``unknown_threshold`` (the engine's
  ``label=None``). ``argmax(probabilities)`` agrees except on exact ties.
- ``similarity`` float32 [B]: cosine similarity of the nearest example.

One case cannot match the engine by construction: when the k-th and (k+1)-th nearest examples are
exactly as similar (duplicated examples), the export counts the earlier-added one, while the
engine's choice there is whatever `np.argpartition` picks.

Class names travel inside the file: both formats are zip archives (a `.keras` file is one; the
`.tflite` flatbuffer has a zip appended, as TFLite metadata does with its ``labels.txt``, which the
interpreter ignores) holding ``labels.txt`` (one name per line, in output order) and ``knn.json``
(classes, backbone, input size, k, unknown_threshold, the vote rule, output names). Read them with the standard
library alone: ``zipfile.ZipFile("model.tflite").read("labels.txt").decode().splitlines()``.

Examples:

```python
export_model(clf, embedder, "hands.keras")                      # in this process (imports TF)
data = export_bytes(clf, embedder, "tflite", progress=callback)  # in a child process, for a download
```
"""

from __future__ import annotations

import io
import json
import os
import tempfile
import threading
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..core.atomic import atomic_output
from ..core.centroids import centred_rows
from ..core.limits import MAX_CONCURRENT_EXPORTS
from ..core.voting import MIN_WEIGHT, TIE_TOLERANCE
from .backbones import BackboneSpec, get_backbone
from .child import EXPORT, BuildError, Progress, report, run_child

if TYPE_CHECKING:  # keep `import knn.model.export` free of TensorFlow and Keras
    import keras

    from ..core.classifier import ClassifierState, KNNClassifier

__all__ = [
    "FORMATS",
    "ExportBusy",
    "ExportError",
    "build_head",
    "build_model",
    "export_bytes",
    "export_model",
    "read_metadata",
]

FORMATS = {"keras": ".keras", "tflite": ".tflite"}
EXPORT_FORMAT = "knn-export"
EXPORT_VERSION = 1
OUTPUTS = ("probabilities", "class_index", "similarity")
VOTE_WORDS = {
    "examples": "similarity-weighted votes of the k nearest examples",
    "centroids": "similarity-weighted votes of the k nearest class centroids",
    "blend": "(1 - centroid_weight) x the k nearest examples' votes + centroid_weight for the nearest centroid's class",
}


class ExportError(ValueError):
    """A classifier that cannot be exported, or a bad format; the message is meant for the user."""


class ExportBusy(ExportError):
    """The server builds as many model files as it may at once; the message says to try later."""


_BUILDS = threading.BoundedSemaphore(MAX_CONCURRENT_EXPORTS)


def _format_of(fmt_or_path: str | os.PathLike[str]) -> str:
    """'keras' / 'tflite' from a format name or a file name's suffix."""
    text = str(fmt_or_path)
    name = text.lower().lstrip(".")
    if name in FORMATS:
        return name
    suffix = Path(text).suffix.lower()
    for fmt, ext in FORMATS.items():
        if suffix == ext:
            return fmt
    raise ExportError(f"cannot tell the export format from {text!r}: use a .keras or a .tflite file name")


def _spec_and_weights(backbone: Any, weights: str | Path | None) -> tuple[BackboneSpec, Path]:
    """An Embedder, a BackboneSpec or a backbone id -> (spec, weights file)."""
    if isinstance(backbone, BackboneSpec):
        spec = backbone
    elif isinstance(backbone, str):
        spec = get_backbone(backbone)
    elif hasattr(backbone, "spec") and hasattr(backbone, "weights"):  # an Embedder
        spec = backbone.spec
        if weights is None:
            weights = backbone.weights.path
    else:
        raise ExportError(f"expected an Embedder, a BackboneSpec or a backbone id, got {type(backbone).__name__}")
    if weights is None:
        from .weights import resolve_weights  # finds a cached file, or converts once in a child

        weights = resolve_weights(spec.id).path
    return spec, Path(weights)


def _require_examples(classifier: KNNClassifier) -> None:
    if len(classifier) == 0:
        raise ExportError("this classifier has no examples yet: teach it something before exporting")


def _head_arrays(state: ClassifierState, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """(`rows` laid out as [N * V, D], one-hot labels [N, C], V).

    V is the most vectors an example holds; each example's vectors take V consecutive rows, an
    example with fewer repeating its own embedding (which leaves its best similarity unchanged).
    """
    counts = state.vector_counts()
    most = int(counts.max())
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
    layout = np.empty(len(counts) * most, np.int64)
    for i, (start, count) in enumerate(zip(starts.tolist(), counts.tolist(), strict=True)):
        layout[i * most : (i + 1) * most] = [start + j if j < count else start for j in range(most)]
    onehot = np.zeros((len(counts), len(state.classes)), np.float32)
    onehot[np.arange(len(counts)), state.labels] = 1.0
    return rows[layout].astype(np.float32), onehot, most


def metadata(classifier: KNNClassifier, spec: BackboneSpec) -> dict[str, Any]:
    """What ``knn.json`` inside an export holds."""
    return {
        "format": EXPORT_FORMAT,
        "version": EXPORT_VERSION,
        "classes": classifier.classes,
        "backbone": spec.id,
        "input": {
            "shape": [None, spec.size, spec.size, 3],
            "dtype": "float32",
            "pixels": "RGB 0..255, centre-cropped to a square and resized (bilinear) to the input size",
        },
        "outputs": {
            "probabilities": f"float32 [batch, classes]: {VOTE_WORDS[classifier.vote]}",
            "class_index": "int32 [batch]: the predicted class (engine tie rules); -1 = unknown",
            "similarity": "float32 [batch]: cosine similarity of the nearest example (centred when the project is)",
        },
        "k": classifier.k,
        "unknown_threshold": classifier.unknown_threshold,
        "vote": classifier.vote,
        "centroid_weight": classifier.centroid_weight,
        "centred": classifier.centred,
        "n_examples": len(classifier),
        "vectors_per_example": int(classifier.state().vector_counts().max()) if len(classifier) else 1,
    }


def build_model(classifier: KNNClassifier, backbone: Any, weights: str | Path | None = None) -> keras.Model:
    """The classifier and its embedder as one Keras functional model (imports TensorFlow).

    Args:
        classifier: a `KNNClassifier` with at least one example (read once; later changes to it do
            not reach the model).
        backbone: the `Embedder` that made the classifier's embeddings, its `BackboneSpec`, or the
            backbone id (its weights are then resolved as `knn.weights` describes).
        weights: an explicit ``*_no_top.weights.h5`` file, overriding the embedder's.

    Returns:
        A `keras.Model` from ``image`` float32 [B, S, S, 3] (RGB 0..255) to the dict of outputs
        described in this module's docstring. All its weights are non-trainable.

    Raises:
        ExportError: the classifier has no examples, or its embeddings do not match the backbone.
    """
    spec, weights_path = _spec_and_weights(backbone, weights)
    _require_examples(classifier)  # before paying for the backbone

    import keras
    from keras import layers

    image = keras.Input((spec.size, spec.size, 3), dtype="float32", name="image")
    x = image
    if spec.family in ("mobilenet_v1", "mobilenet_v2"):
        x = layers.Rescaling(1.0 / 127.5, offset=-1.0, name="preprocess")(x)
    body = spec.build_keras_model(weights=weights_path)
    body.trainable = False
    if int(body.output_shape[-1]) != classifier.dim:
        raise ExportError(
            f"the classifier holds {classifier.dim}-value embeddings but {spec.id} makes "
            f"{body.output_shape[-1]}-value ones: it was taught with another backbone"
        )
    outputs = _knn_head(body(x), classifier)
    return keras.Model(image, outputs, name=f"knn_{spec.id}".replace(".", "_"))


def build_head(classifier: KNNClassifier) -> keras.Model:
    """Just the KNN head: embeddings float32 [B, D] (any length) -> the same outputs as `build_model`.

    For an embedder of your own, and for checking the head against the engine without a backbone.
    """
    import keras

    embedding = keras.Input((classifier.dim or 0,), dtype="float32", name="embedding")
    return keras.Model(embedding, _knn_head(embedding, classifier), name="knn_head")


def _knn_head(features: keras.KerasTensor, classifier: KNNClassifier) -> dict[str, Any]:
    """The engine's `predict` in Keras ops on symbolic [B, D] features; sets the head's weights.

    The rules and constants are knn.core.voting's, and the centroids and the mean are the engine's
    own (`ClassifierState.space`), so the head cannot drift from the engine.
    """
    from keras import layers, ops

    _require_examples(classifier)
    state = classifier.state()
    plain = state.plain_rule
    space = None if plain else state.space()
    x = layers.UnitNormalization(name="l2_normalize")(features)
    if space is not None and space.mean is not None:
        # Subtract the examples' mean (a built-in layer holding it as weights), then re-normalise.
        dim = len(space.mean)
        x = layers.Normalization(mean=space.mean, variance=np.ones(dim), name="centre")(x)
        x = layers.UnitNormalization(name="l2_normalize_centred")(x)
    rows = state.embeddings if space is None else centred_rows(state.embeddings, space)
    vectors, onehot, per_example = _head_arrays(state, rows)
    examples = _nearest(x, vectors, onehot, min(classifier.k, len(onehot)), per_example, "example")
    classes = list(state.classes)
    if state.vote == "examples":
        probabilities, winner = examples["confidences"], _winner(examples, ("votes", "raw", "best"), classes)
    else:
        assert space is not None
        member = np.zeros((len(space.centroid_classes), len(classes)), np.float32)
        member[np.arange(len(member)), space.centroid_classes] = 1.0
        centroids = _nearest(x, space.centroids, member, min(classifier.k, len(member)), 1, "centroid")
        if state.vote == "centroids":
            probabilities, winner = centroids["confidences"], _winner(centroids, ("votes", "raw", "best"), classes)
        else:  # the nearest centroid's class gets w of the vote, the k nearest examples share the rest
            w = float(state.centroid_weight)
            nearest = ops.one_hot(_winner(centroids, ("votes", "raw", "best"), classes), len(classes))
            probabilities = (1.0 - w) * examples["confidences"] + w * nearest
            mixed = {
                "confidences": probabilities,
                "best": ops.maximum(examples["best"], ops.where(nearest > 0, centroids["best"], -3.0)),
                "present": ops.greater(probabilities, 0.0),
            }
            winner = _winner(mixed, ("confidences", "best"), classes)
    nearest = examples["top"][:, 0]
    if classifier.unknown_threshold is not None:
        winner = ops.where(ops.less(nearest, float(classifier.unknown_threshold)), -1, winner)
    return {"probabilities": probabilities, "class_index": winner, "similarity": nearest}


def _nearest(
    x: keras.KerasTensor, vectors: np.ndarray, member: np.ndarray, k: int, per_item: int, name: str
) -> dict[str, Any]:
    """The k nearest items (examples, or class centroids) of [B, D] queries and their votes per class.

    `vectors` holds `per_item` rows per item (an item is as similar as its most similar row);
    `member` [items, C] is each item's one-hot class. Returns [B, C] tensors: similarity-weighted
    ``votes``, ``confidences`` (votes normalised), summed ``raw`` similarity, ``best`` single
    similarity (-3, below any cosine, for a class without a neighbor) and ``present``; and ``top``
    [B, k], the k similarities, most similar first.
    """
    from keras import layers, ops

    items = len(member)
    sims_layer = layers.Dense(len(vectors), use_bias=False, trainable=False, name=f"{name}_similarities")
    sims = sims_layer(x)  # cosine similarity to every stored vector
    sims_layer.set_weights([vectors.T])
    if per_item > 1:  # an example is as similar as its most similar vector
        sims = ops.max(ops.reshape(sims, (-1, items, per_item)), axis=2)
    top_sims, top_rows = ops.top_k(sims, k)
    label_layer = layers.Embedding(items, member.shape[1], trainable=False, name=f"{name}_classes")
    one_hot = label_layer(top_rows)  # [B, k, C]: 1 where neighbor j belongs to class c
    label_layer.set_weights([member])
    s = ops.expand_dims(top_sims, -1)
    votes = ops.sum(one_hot * ops.maximum(s, MIN_WEIGHT), axis=1)
    best = ops.max(one_hot * (s + 3.0), axis=1) - 3.0
    return {
        "votes": votes,
        "confidences": votes / ops.sum(votes, axis=1, keepdims=True),
        "raw": ops.sum(one_hot * s, axis=1),
        "best": best,
        "present": ops.greater(best, -2.0),
        "top": top_sims,
    }


def _winner(parts: dict[str, Any], keys: Sequence[str], classes: list[str]) -> keras.KerasTensor:
    """The engine's tie-break chain over `keys` of `parts`, among its ``present`` classes; last,
    between indistinguishable classes, the alphabetically first name."""
    from keras import ops

    candidates = parts["present"]
    for key in keys:
        value = parts[key]
        top = ops.max(ops.where(candidates, value, -1e9), axis=1, keepdims=True)
        candidates = ops.logical_and(candidates, ops.greater_equal(value, top - TIE_TOLERANCE))
    order = np.argsort(np.array(classes, dtype=object), kind="stable")
    preference = np.empty(len(classes), np.int32)
    preference[order] = np.arange(len(classes), 0, -1, dtype=np.int32)
    # argmax over int32: Keras' float argmax adds a -0.0 fix that LiteRT only has as a Flex op.
    return ops.cast(ops.argmax(ops.where(candidates, preference, 0), axis=1), "int32")


def _archive_entries(meta: dict[str, Any]) -> dict[str, bytes]:
    return {
        "labels.txt": "".join(f"{name}\n" for name in meta["classes"]).encode("utf-8"),
        "knn.json": json.dumps(meta, indent=2, ensure_ascii=False).encode("utf-8"),
    }


def _write_keras(model: keras.Model, meta: dict[str, Any], path: Path) -> None:
    model.save(path)
    # load_model reads only its own members, so extra files ride along untouched.
    with zipfile.ZipFile(path, "a", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in _archive_entries(meta).items():
            archive.writestr(name, data)


def _write_tflite(model: keras.Model, meta: dict[str, Any], path: Path, size: int) -> None:
    import tensorflow as tf

    # A fixed batch of one lets the converter plan every tensor statically (as the embedder does).
    signature = [tf.TensorSpec([1, size, size, 3], tf.float32, name="image")]
    model.export(str(path), format="litert", input_signature=signature, verbose=False)
    # Appended zip: the flatbuffer is read from its start, zip readers find the archive from the end.
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in _archive_entries(meta).items():
            archive.writestr(name, data)
    with open(path, "ab") as file:
        file.write(buffer.getvalue())


def export_model(
    classifier: KNNClassifier,
    backbone: Any,
    path: str | os.PathLike[str],
    fmt: str | None = None,
    weights: str | Path | None = None,
    progress: Progress | None = None,
) -> Path:
    """Write the classifier as a `.keras` or `.tflite` model, in this process (imports TensorFlow).

    Args:
        classifier: the `KNNClassifier` to export (needs at least one example).
        backbone: the `Embedder` it was taught with, its `BackboneSpec` or its backbone id.
        path: the file to write; written to a temporary file beside it and moved into place only
            when complete, so a failure never leaves half a model under this name.
        fmt: ``"keras"`` or ``"tflite"``; by default taken from `path`'s suffix.
        weights: an explicit backbone weights file (default: the embedder's / resolved).
        progress: called as ``progress(fraction, text)`` between the steps.

    Returns:
        The path written.

    Raises:
        ExportError: no examples, unknown format, or embeddings from another backbone.
    """
    step = progress or (lambda fraction, text: None)
    fmt = _format_of(fmt or path)
    if fmt == "keras" and Path(path).suffix != ".keras":
        raise ExportError(f"a Keras model's file name must end in .keras (load_model needs it), got {Path(path).name}")
    classifier = classifier.copy()  # one consistent copy, even if another thread edits it
    path = Path(path)
    spec, weights_path = _spec_and_weights(backbone, weights)
    step(0.05, f"Building {spec.label} with the KNN head")
    model = build_model(classifier, spec, weights_path)
    meta = metadata(classifier, spec)
    with atomic_output(path) as tmp:
        if fmt == "keras":
            step(0.5, "Saving the Keras model")
            _write_keras(model, meta, tmp)
        else:
            step(0.4, "Converting to LiteRT")
            _write_tflite(model, meta, tmp, spec.size)
    step(1.0, "Model exported")
    return path


def export_bytes(
    classifier: KNNClassifier,
    backbone: Any,
    fmt: str,
    weights: str | Path | None = None,
    progress: Progress | None = None,
    in_process: bool = False,
) -> bytes:
    """The exported model as bytes, e.g. for a download button.

    By default the export runs in a child process (``python -m knn.model.export``) that exits
    afterwards, so a serving process never takes on TensorFlow (its cost: docs/performance.md).

    Args:
        classifier: the `KNNClassifier` to export (copied now).
        backbone: the `Embedder` it was taught with, its `BackboneSpec` or its backbone id.
        fmt: ``"keras"`` or ``"tflite"``.
        weights: an explicit backbone weights file (default: the embedder's / resolved).
        progress: called as ``progress(fraction, text)``.
        in_process: build in this process instead (imports TensorFlow here).

    At most `MAX_CONCURRENT_EXPORTS` builds run at once in a process (each child takes ~1 GB);
    another call meanwhile raises `ExportBusy` at once rather than queueing behind them.

    Raises:
        ExportError: no examples or unknown format; ExportBusy (an ExportError) while the process
            builds as many models as it may; RuntimeError when the child process fails.
    """
    fmt = _format_of(fmt)
    _require_examples(classifier)
    spec, weights_path = _spec_and_weights(backbone, weights)
    if not _BUILDS.acquire(blocking=False):
        raise ExportBusy(
            f"another model file is being built on this server (at most {MAX_CONCURRENT_EXPORTS} at a time, "
            "each takes about a minute and 1 GB of memory): try again in a minute"
        )
    try:
        return _export_in_tmp(classifier, spec, weights_path, fmt, progress, in_process)
    finally:
        _BUILDS.release()


def _export_in_tmp(
    classifier: KNNClassifier,
    spec: BackboneSpec,
    weights_path: Path,
    fmt: str,
    progress: Progress | None,
    in_process: bool,
) -> bytes:
    with tempfile.TemporaryDirectory(prefix="knn-export-") as tmp:
        out = Path(tmp) / f"model{FORMATS[fmt]}"
        if in_process:
            export_model(classifier, spec, out, fmt, weights_path, progress)
        else:
            from ..core.project import save_project

            project = Path(tmp) / "project.npz"
            save_project(project, classifier, spec.id)
            _run_child([str(project), str(out), "--weights", str(weights_path)], progress)
        return out.read_bytes()


def read_metadata(path_or_bytes: str | os.PathLike[str] | bytes) -> dict[str, Any]:
    """The ``knn.json`` stored inside an exported `.keras` or `.tflite` file.

    Needs nothing but the standard library; shown here for convenience.
    """
    source = io.BytesIO(path_or_bytes) if isinstance(path_or_bytes, (bytes, bytearray)) else path_or_bytes
    try:
        with zipfile.ZipFile(source) as archive:
            meta = json.loads(archive.read("knn.json"))
    except (zipfile.BadZipFile, KeyError) as exc:
        raise ExportError(f"not a model exported by knn ({exc})") from None
    if not isinstance(meta, dict):
        raise ExportError("not a model exported by knn (its knn.json is not an object)")
    return meta


# --- child process ------------------------------------------------------------------------------


def _run_child(args: Sequence[str], progress: Progress | None) -> None:
    """Run ``python -m knn.model.export ARGS`` in a child process that exits, so TensorFlow goes with it."""
    try:
        run_child(EXPORT, args, progress)
    except BuildError as exc:
        raise RuntimeError(f"the export failed: {exc.message}") from None


def main(argv: Sequence[str] | None = None) -> None:
    """Child entry point: ``python -m knn.model.export PROJECT OUT [--weights FILE]``."""
    import argparse

    from ..core.project import load_project, read_project_meta

    parser = argparse.ArgumentParser(prog="python -m knn.model.export")
    parser.add_argument("project")
    parser.add_argument("out")
    parser.add_argument("--weights")
    args = parser.parse_args(argv)
    classifier = load_project(args.project)  # validates the file before its meta is trusted
    export_model(
        classifier,
        read_project_meta(args.project)["backbone"],
        args.out,
        weights=args.weights,
        progress=report,
    )


if __name__ == "__main__":
    main()
