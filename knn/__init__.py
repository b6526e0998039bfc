"""knn: a live webcam image classifier's engine — MobileNet embeddings + a k-nearest-neighbour head.

    >>> import knn
    >>> embedder = knn.Embedder()                    # MobileNet v1 1.0/224, weights offline
    >>> clf = knn.KNNClassifier(k=3)
    >>> clf.add(embedder.embed(photo)[0], "mug")
    >>> clf.predict(embedder.embed(frame)[0]).label

Names are re-exported lazily: ``import knn`` imports neither TensorFlow nor LiteRT, and not even
the classifier until it is used.
"""
from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Embedder": "embedder",
    "RUNTIMES": "embedder",
    "BACKBONES": "backbones",
    "DEFAULT_BACKBONE": "backbones",
    "BackboneSpec": "backbones",
    "WeightsUnavailable": "weights",
    "resolve_weights": "weights",
    "cache_dir": "weights",
    "KNNClassifier": "classifier",
    "ClassifierError": "classifier",
    "Prediction": "classifier",
    "Neighbor": "classifier",
    "Example": "classifier",
    "Evaluation": "classifier",
    "ProjectFileError": "project",
    "save_project": "project",
    "load_project": "project",
    "project_bytes": "project",
    "ImageError": "images",
    "read_image": "images",
    "class_folders": "folders",
    "export_model": "export",
    "export_bytes": "export",
    "ExportError": "export",
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
