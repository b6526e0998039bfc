"""Record: every processed camera frame becomes an example of one class until a deadline.

A recording ends with the first frame that arrives after its deadline, or, when the camera stopped
before it, by the session's clock `END_GRACE` seconds after it (knn.live.session's snapshot)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..core.classifier import ClassifierError, KNNClassifier

END_GRACE = 0.5
"""Seconds past its deadline after which a recording that got no later frame ends by the clock: a
frame that arrived before the deadline is still being embedded for far less than this."""


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

    def overdue(self, now: float) -> bool:
        """Whether the clock must end it: no frame came after its deadline (the camera stopped)."""
        return now >= self.deadline + END_GRACE

    def finished(self) -> str:
        """The message that ends a recording that ran its time."""
        return f"Recorded {self.added} examples into “{self.label}”."

    def take(self, classifier: KNNClassifier, vectors: np.ndarray, jpeg: bytes | None, arrived: float) -> str | None:
        """Add the frame (its vectors [V, D]); returns the message that ends the recording, or
        None while it goes on."""
        if not self.wants(arrived):
            return self.finished()
        if jpeg is None:  # the recording started while this frame was being embedded
            return None
        try:
            (self.last_id,) = classifier.add_many(vectors, [self.label], [jpeg], [len(vectors)])
        except ClassifierError as exc:  # e.g. the per-class cap is reached
            return f"Recording into “{self.label}” stopped after {self.added} examples: {exc}"
        self.added += 1
        return None
