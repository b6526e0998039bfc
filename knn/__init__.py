"""knn: a live webcam image classifier's engine — MobileNet embeddings + a k-nearest-neighbor head.

    >>> import knn
    >>> embedder = knn.Embedder()                    # the best backbone here: MobileNetV2 1.0/224, else v1
    >>> clf = knn.KNNClassifier(k=3)
    >>> clf.add(embedder.embed_one(photo), "mug")
    >>> clf.predict(embedder.embed_one(frame)).label

Names are re-exported lazily: ``import knn`` imports neither TensorFlow nor LiteRT, and not even
the classifier until it is used. The rooms: `knn.core` (NumPy and Pillow only), `knn.model`
(MobileNet), `knn.live` (one browser session), `knn.serving` (the server process).
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Embedder": "model.embedder",
    "RUNTIMES": "model.embedder",
    "BACKBONES": "model.backbones",
    "DEFAULT_BACKBONE": "model.backbones",
    "BackboneSpec": "model.backbones",
    "WeightsUnavailable": "model.weights",
    "resolve_weights": "model.weights",
    "cache_dir": "model.weights",
    "export_model": "model.export",
    "export_bytes": "model.export",
    "ExportError": "model.export",
    "KNNClassifier": "core.classifier",
    "ClassifierError": "core.classifier",
    "Prediction": "core.classifier",
    "Neighbor": "core.classifier",
    "Example": "core.classifier",
    "Evaluation": "core.evaluation",
    "leave_one_out": "core.evaluation",
    "ProjectFileError": "core.project",
    "save_project": "core.project",
    "load_project": "core.project",
    "project_bytes": "core.project",
    "ImageError": "core.images",
    "read_image": "core.images",
    "class_folders": "core.image_folders",
    "LiveSession": "live.session",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'knn' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
