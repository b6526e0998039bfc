"""Record: every processed camera frame becomes an example of one class until a deadline."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..core.classifier import ClassifierError, KNNClassifier


@dataclass
class Recording:
    """A recording into `label` until `deadline` (time.monotonic()), `seconds` long in all."""

    label: str
    deadline: float
    seconds: float
    added: int = 0
    batch: int = 0  # the batch its examples are stored with (knn.persist)
    last_id: int | None = None  # the example the last frame became

    def wants(self, arrived: float) -> bool:
        """Whether a frame that arrived then belongs to the recording (its JPEG is worth making)."""
        return arrived < self.deadline

    def take(self, classifier: KNNClassifier, vectors: np.ndarray, jpeg: bytes | None, arrived: float) -> str | None:
        """Add the frame (its vectors [V, D]); returns the message that ends the recording, or
        None while it goes on."""
        if not self.wants(arrived):
            return f"Recorded {self.added} examples into “{self.label}”."
        if jpeg is None:  # the recording started while this frame was being embedded
            return None
        try:
            (self.last_id,) = classifier.add_many(vectors, [self.label], [jpeg], [len(vectors)])
        except ClassifierError as exc:  # e.g. the per-class cap is reached
            return f"Recording into “{self.label}” stopped after {self.added} examples: {exc}"
        self.added += 1
        return None
