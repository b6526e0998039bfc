"""How many values each offered backbone's embeddings have, by network (knn.model.backbones builds
the networks). Here in core so a project file can be checked against a backbone id alone, without
importing the model room."""

from __future__ import annotations

import re

EMBEDDING_WIDTHS: dict[str, int] = {
    "mobilenet_v1_1.0": 1024,
    "mobilenet_v1_0.75": 768,
    "mobilenet_v1_0.5": 512,
    "mobilenet_v1_0.25": 256,
    "mobilenet_v2_1.0": 1280,
    "mobilenet_v2_1.4": 1792,
    "mobilenet_v2_1.3": 1664,
    "mobilenet_v2_0.75": 1280,
    "mobilenet_v2_0.5": 1280,
    "mobilenet_v2_0.35": 1280,
    "mobilenet_v3_small": 576,
    "mobilenet_v3_large": 960,
}
"""Headless and average-pooled, a network's width does not depend on its input size."""


def embedding_width(backbone: str) -> int | None:
    """The embedding width of a backbone id at any input size (``mobilenet_v2_1.0_320``: 1280);
    None for an id that is not offered."""
    return EMBEDDING_WIDTHS.get(re.sub(r"_\d+$", "", backbone))
