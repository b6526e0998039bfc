"""One-off TensorFlow work, run as a child process (`knn.model.child.run_child`) that exits.

    python -m knn.model.build pypi-weights OUT_DIR            convert the nudity sdist's frozen MobileNet v1 graph
    python -m knn.model.build keras-weights BACKBONE OUT      Keras' weights="imagenet" download, headless
    python -m knn.model.build litert BACKBONE WEIGHTS OUT     convert the Keras model to a LiteRT flatbuffer

Its functions import TensorFlow; the serving process never imports this module.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..core.atomic import atomic_output
from .backbones import FALLBACK_BACKBONE, get_backbone
from .child import report
from .weights import PYPI_GRAPH_SHA256, PYPI_PACKAGE, file_digest, origin_file, pypi_graph_path


# Keras MobileNet layer -> TF-slim variable scope in the frozen graph.
def _v1_layer_map() -> dict[str, str]:
    layers = {"conv1": "MobilenetV1/Conv2d_0"}
    for i in range(1, 14):
        layers[f"conv_dw_{i}"] = f"MobilenetV1/Conv2d_{i}_depthwise"
        layers[f"conv_pw_{i}"] = f"MobilenetV1/Conv2d_{i}_pointwise"
    return layers


def read_graph_constants(graph_path: Path) -> dict[str, np.ndarray]:
    """All `Const` tensors of a frozen GraphDef, by node name."""
    from tensorflow.core.framework import graph_pb2
    from tensorflow.python.framework import tensor_util

    graph = graph_pb2.GraphDef()
    graph.ParseFromString(graph_path.read_bytes())
    return {n.name: tensor_util.MakeNdarray(n.attr["value"].tensor) for n in graph.node if n.op == "Const"}


def convert_pypi_graph(out_dir: Path) -> None:
    """Write MobileNet v1 1.0/224 weights, with and without the head, from the ``nudity`` graph."""
    graph = pypi_graph_path()
    if graph is None:
        raise SystemExit("The PyPI package nudity==0.2.3 is not installed.")
    report(0.05, "Checking the MobileNet graph from PyPI")
    digest = file_digest(graph)
    if digest != PYPI_GRAPH_SHA256:
        raise SystemExit(f"{graph} has sha256 {digest}, expected {PYPI_GRAPH_SHA256}: refusing it.")
    report(0.15, "Reading the graph's weights")
    consts = read_graph_constants(graph)
    report(0.45, "Building Keras MobileNet v1")
    spec = get_backbone(FALLBACK_BACKBONE)  # the network the PyPI graph holds
    model = spec.build_keras_model(weights=None, include_top=True)
    for layer_name, scope in _v1_layer_map().items():
        kernel_name = "depthwise_weights" if "_depthwise" in scope else "weights"
        model.get_layer(layer_name).set_weights([consts[f"{scope}/{kernel_name}"]])
        bn = [consts[f"{scope}/BatchNorm/{v}"] for v in ("gamma", "beta", "moving_mean", "moving_variance")]
        model.get_layer(f"{layer_name}_bn").set_weights(bn)
    # The slim head has 1001 classes, index 0 "background"; Keras' ImageNet head has the other 1000.
    w = consts["MobilenetV1/Logits/Conv2d_1c_1x1/weights"][..., 1:]
    b = consts["MobilenetV1/Logits/Conv2d_1c_1x1/biases"][1:]
    model.get_layer("conv_preds").set_weights([w, b])
    report(0.8, "Writing the weights to the cache")
    top = out_dir / f"{spec.id}.weights.h5"
    with atomic_output(top) as tmp:
        model.save_weights(tmp)
    # The headless model shares every layer name with the full one up to the pooling.
    headless = spec.build_keras_model(weights=None, include_top=False)
    for layer in headless.layers:
        if layer.weights:
            layer.set_weights(model.get_layer(layer.name).get_weights())
    no_top = out_dir / spec.weights_filename
    with atomic_output(no_top) as tmp:
        headless.save_weights(tmp)
    for path in (top, no_top):
        origin_file(path).write_text(f"Google's MobileNet v1 ImageNet weights from the PyPI {PYPI_PACKAGE} graph\n")
    report(1.0, "Weights ready")


def download_keras_weights(backbone: str, out: Path) -> None:
    """Keras' own ImageNet download (needs internet), saved headless to `out`."""
    report(0.1, f"Downloading ImageNet weights for {backbone} through Keras")
    model = get_backbone(backbone).build_keras_model(weights="imagenet")
    with atomic_output(out) as tmp:
        model.save_weights(tmp)
    origin_file(out).write_text("Keras' ImageNet weights download\n")
    report(1.0, "Weights ready")


def convert_litert(backbone: str, weights: Path, out: Path) -> None:
    """Convert the headless Keras model to a LiteRT flatbuffer with a [1, S, S, 3] float input."""
    import tensorflow as tf

    spec = get_backbone(backbone)
    report(0.1, f"Building {backbone} in Keras")
    model = spec.build_keras_model(weights=weights)
    report(0.4, "Converting to LiteRT")
    # A fixed batch of one lets the converter plan every tensor statically.
    signature = [tf.TensorSpec([1, spec.size, spec.size, 3], tf.float32)]
    with atomic_output(out) as tmp:
        model.export(str(tmp), format="litert", input_signature=signature, verbose=False)
    report(1.0, "LiteRT model ready")


def main(argv: Sequence[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    command, rest = argv[0], argv[1:]
    if command == "pypi-weights":
        convert_pypi_graph(Path(rest[0]))
    elif command == "keras-weights":
        download_keras_weights(rest[0], Path(rest[1]))
    elif command == "litert":
        convert_litert(rest[0], Path(rest[1]), Path(rest[2]))
    else:
        raise SystemExit(f"unknown build command {command!r}")


if __name__ == "__main__":
    main()
