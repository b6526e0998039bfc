"""The MobileNet backbones the embedder offers: ids, input sizes and how to build them in Keras.

Nothing here imports TensorFlow until `build_keras_model` is called, so the serving process can
look up a backbone (its id, input size, preprocessing) without paying for TensorFlow.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

DEFAULT_BACKBONE = "mobilenet_v1_1.0_224"


@dataclass(frozen=True)
class BackboneSpec:
    """One ImageNet backbone, used headless with global average pooling.

    Attributes:
        id: stable id stored in project files, e.g. ``"mobilenet_v2_1.4_224"``.
        family: ``"mobilenet_v1"``, ``"mobilenet_v2"``, ``"mobilenet_v3_small"`` or
            ``"mobilenet_v3_large"``.
        alpha: width multiplier.
        size: square input size in pixels.
        label: what the page shows.
    """

    id: str
    family: str
    alpha: float
    size: int
    label: str

    @property
    def weights_filename(self) -> str:
        """Name of the headless Keras weights file, as `KNN_WEIGHTS_DIR` and the cache hold it."""
        return f"{self.id}_no_top.weights.h5"

    def preprocess(self, batch: np.ndarray) -> np.ndarray:
        """uint8 RGB [N, S, S, 3] -> float32 model input, as the family's `preprocess_input` does.

        v1 and v2 expect [-1, 1]; Keras' MobileNetV3 rescales inside the model, so it gets [0, 255].
        """
        x = batch.astype(np.float32)
        if self.family in ("mobilenet_v1", "mobilenet_v2"):
            x *= 1.0 / 127.5
            x -= 1.0
        return x

    def build_keras_model(self, weights: str | Path | None, include_top: bool = False):
        """The Keras model (imports Keras): `weights` is a `.weights.h5` path, "imagenet" or None."""
        from keras import applications

        kwargs = dict(
            input_shape=(self.size, self.size, 3),
            alpha=self.alpha,
            include_top=include_top,
            weights=None if weights is None else str(weights),
        )
        if not include_top:
            kwargs["pooling"] = "avg"
        if self.family == "mobilenet_v1":
            return applications.MobileNet(**kwargs)
        if self.family == "mobilenet_v2":
            return applications.MobileNetV2(**kwargs)
        if self.family == "mobilenet_v3_small":
            return applications.MobileNetV3Small(**kwargs)
        return applications.MobileNetV3Large(**kwargs)


def _specs() -> dict[str, BackboneSpec]:
    specs = {}
    for a in (1.0, 0.75, 0.5, 0.25):
        s = BackboneSpec(f"mobilenet_v1_{a}_224", "mobilenet_v1", a, 224, f"MobileNet v1 α {a}")
        specs[s.id] = s
    for a in (1.0, 1.4, 1.3, 0.75, 0.5, 0.35):
        s = BackboneSpec(f"mobilenet_v2_{a}_224", "mobilenet_v2", a, 224, f"MobileNetV2 α {a}")
        specs[s.id] = s
    for kind in ("small", "large"):
        s = BackboneSpec(
            f"mobilenet_v3_{kind}_224", f"mobilenet_v3_{kind}", 1.0, 224, f"MobileNetV3 {kind.title()}"
        )
        specs[s.id] = s
    return specs


BACKBONES: dict[str, BackboneSpec] = _specs()


def get_backbone(backbone: str) -> BackboneSpec:
    """The spec for an id; ValueError listing the valid ids otherwise."""
    try:
        return BACKBONES[backbone]
    except KeyError:
        raise ValueError(
            f"Unknown backbone {backbone!r}; choose one of: {', '.join(BACKBONES)}"
        ) from None
