"""Real-photo projects taught in batches, for the coach's trial of other rules (knn.core.rule_trial).

Each class gets `batches` uploads of `per_batch` consecutive photos, the batches spread over its
sorted files (grocery: its `test_*` photos, then its `train_*` ones). Found offline with the
cached embeddings (MobileNetV2 224, k = 3, on the legacy rule: the k nearest examples, not
centred): on the yoghurts the class centroids win clearly (p < 0.001); on the tomatoes and the red
pepper no rule differs from the legacy one by more than chance (p > 0.5).
"""

from __future__ import annotations

from pathlib import Path

from knn.core.image_folders import class_folders

YOGHURTS = (
    "Arla-Mild-Vanilla-Yoghurt",
    "Arla-Natural-Mild-Low-Fat-Yoghurt",
    "Arla-Natural-Yoghurt",
    "Valio-Vanilla-Yoghurt",
)
"""Look-alike cartons: another rule wins, 2 batches of 8 photos per class."""
TOMATOES = ("Beef-Tomato", "Regular-Tomato", "Vine-Tomato", "Red-Bell-Pepper")
"""Red produce the legacy rule already separates: no rule wins, 2 batches of 6 photos per class."""
SETS = {"yoghurts": (YOGHURTS, 2, 8), "tomatoes": (TOMATOES, 2, 6)}


def photo_batches(grocery: Path, name: str) -> dict[str, list[list[Path]]]:
    """Class -> its upload batches of photos, for the set `name` of `SETS`."""
    classes, batches, per_batch = SETS[name]
    folders = class_folders(grocery)
    out = {}
    for label in classes:
        files = folders[label]
        step = len(files) // batches
        out[label] = [files[b * step : b * step + per_batch] for b in range(batches)]
    return out
