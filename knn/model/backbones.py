"""The MobileNet backbones the embedder offers: ids, input sizes and how to build them in Keras.

A backbone's id names its input size: ``mobilenet_v2_1.0_224`` is the fast mode and
``mobilenet_v2_1.0_320`` the same network and weights seeing 320×320 pixels (the accurate mode:
headless and average-pooled, the networks take any size). `BACKBONES` lists the networks at their
native 224; `get_backbone` also takes any of them at a size in `RESOLUTIONS`.

Nothing here imports TensorFlow until `build_keras_model` is called, so the serving process can
look up a backbone (its id, input size, preprocessing) without paying for TensorFlow.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..core.backbone_widths import embedding_width

if TYPE_CHECKING:  # keep `import knn.model.backbones` free of Keras
    import keras

DEFAULT_BACKBONE = "mobilenet_v2_1.0_224"
"""The network the app and the CLI use when they can get its weights (knn.model.choice)."""
FALLBACK_BACKBONE = "mobilenet_v1_1.0_224"
"""The network used otherwise: its weights are converted offline from a PyPI package."""
RESOLUTIONS = {224: "fast", 320: "accurate"}
"""Input sizes offered, and what the page calls them."""
NATIVE_SIZE = 224


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
    def network(self) -> str:
        """The id of the network at its native size: what its weights file is named after."""
        return re.sub(r"_\d+$", f"_{NATIVE_SIZE}", self.id)

    @property
    def weights_filename(self) -> str:
        """Name of the headless Keras weights file, as `KNN_WEIGHTS_DIR` and the cache hold it
        (one file for every input size: the weights do not depend on it)."""
        return f"{self.network}_no_top.weights.h5"

    @property
    def dim(self) -> int:
        """Embedding size (knn.core.backbone_widths)."""
        width = embedding_width(self.id)
        if width is None:
            raise ValueError(f"no embedding width is known for {self.id}")
        return width

    @property
    def mode(self) -> str:
        """ "fast" or "accurate" (`RESOLUTIONS`)."""
        return RESOLUTIONS.get(self.size, f"{self.size} px")

    def at(self, size: int) -> BackboneSpec:
        """The same network at another input size."""
        return get_backbone(re.sub(r"_\d+$", f"_{size}", self.id))

    def preprocess(self, batch: np.ndarray) -> np.ndarray:
        """uint8 RGB [N, S, S, 3] -> float32 model input, as the family's `preprocess_input` does.

        v1 and v2 expect [-1, 1]; Keras' MobileNetV3 rescales inside the model, so it gets [0, 255].
        """
        x = batch.astype(np.float32)
        if self.family in ("mobilenet_v1", "mobilenet_v2"):
            x *= 1.0 / 127.5
            x -= 1.0
        return x

    def build_keras_model(self, weights: str | Path | None, include_top: bool = False) -> keras.Model:
        """The Keras model (imports Keras): `weights` is a `.weights.h5` path, "imagenet" or None."""
        from keras import applications

        kwargs: dict[str, object] = dict(
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
        s = BackboneSpec(f"mobilenet_v3_{kind}_224", f"mobilenet_v3_{kind}", 1.0, 224, f"MobileNetV3 {kind.title()}")
        specs[s.id] = s
    return specs


BACKBONES: dict[str, BackboneSpec] = _specs()


def get_backbone(backbone: str) -> BackboneSpec:
    """The spec for an id (a network of `BACKBONES` at a size of `RESOLUTIONS`); ValueError
    listing the valid ids otherwise."""
    if backbone in BACKBONES:
        return BACKBONES[backbone]
    match = re.fullmatch(r"(.+)_(\d+)", backbone) if isinstance(backbone, str) else None
    if match and int(match.group(2)) in RESOLUTIONS and f"{match.group(1)}_{NATIVE_SIZE}" in BACKBONES:
        native = BACKBONES[f"{match.group(1)}_{NATIVE_SIZE}"]
        size = int(match.group(2))
        return dataclasses.replace(native, id=backbone, size=size, label=f"{native.label} · {size} px")
    sizes = ", ".join(f"_{size} ({mode})" for size, mode in RESOLUTIONS.items())
    raise ValueError(
        f"Unknown backbone {backbone!r}; choose one of: {', '.join(BACKBONES)} (each also at {sizes})"
    ) from None
