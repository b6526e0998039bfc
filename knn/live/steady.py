"""Steady scenes: a frame that barely differs from the last one the model saw reuses its answer.

A user holding an object still sends ~30 nearly identical frames a second. Each camera frame is
reduced, on arrival, to a 16×16 grey thumbnail of the square the model sees (box means of the Y
plane: ~25-70 µs, no conversion). If its mean absolute difference from the thumbnail of the last
frame the model answered is under `STILL_MAD`, the frame is captioned with that answer instead
of going to the model; once every `REFRESH_SECONDS` such a frame also goes to the model, which
renews the answer for the frames after it. So a still scene costs two model passes a second,
any change that moves the thumbnail is embedded as soon as it arrives, and a change too small to
move it is still seen within 0.5 s. docs/performance.md has the numbers behind the constants.
"""

from __future__ import annotations

from dataclasses import dataclass

import av
import numpy as np

from .overlay import Caption

THUMB_SIDE = 16
"""Thumbnail cells per side: each averages ~900 pixels of a 480-line frame, so per-pixel sensor
noise averages out (σ 4 moves a cell by ~0.13 levels), while another object moves whole cells."""
STILL_MAD = 5.0
"""Grey levels: sensor noise alone (σ up to 8, after VP8) moves the thumbnail by at most 1.1, with
a hand's 3-5 px of tremor by at most 4.0; a sweep to another photo moves it by 9.7 or more, a photo
of another class by 8.4 or more (docs/benchmarks.md, `bench/steady.py`)."""
REFRESH_SECONDS = 0.5
"""The model sees a frame of every streaming session at least this often, however still: a
change too small for the thumbnail (or a changed classifier) shows within half a second."""

_LUMA_FIRST = {"yuv420p", "yuvj420p", "yuv422p", "yuvj422p", "yuv444p", "yuvj444p", "nv12", "nv21", "gray"}
"""Pixel formats whose first plane is the 8-bit luma (what aiortc's decoders give)."""


def thumbnail(frame: av.VideoFrame, side: int = THUMB_SIDE) -> np.ndarray:
    """The frame's centre square as side×side mean grey levels (float32), from its luma plane."""
    if frame.format.name not in _LUMA_FIRST:  # converted as the model's input is: the same greys
        frame = frame.reformat(format="yuv420p")
    plane = frame.planes[0]
    luma = np.frombuffer(memoryview(plane), np.uint8).reshape(plane.height, plane.line_size)[:, : plane.width]
    height, width = luma.shape
    side = max(1, min(side, height, width))
    block = min(height, width) // side
    span = block * side
    top, left = (height - span) // 2, (width - span) // 2
    square = luma[top : top + span, left : left + span]
    # 16-bit sums down each block's rows halve the time of 32-bit ones (a block of up to 257 rows fits)
    rows = square.reshape(side, block, span).sum(axis=1, dtype=np.uint16 if block * 255 < 2**16 else np.uint32)
    return rows.reshape(side, side, block).sum(axis=2, dtype=np.uint32).astype(np.float32) / (block * block)


def mean_abs_diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).mean())


@dataclass(frozen=True)
class ModelAnswer:
    """What the model said of one frame, reused for the still frames after it."""

    thumb: np.ndarray | None  # None when steady scenes are off
    caption: Caption
    label: str | None
    arrived: float  # the pipeline's clock when its frame arrived
    capture: float | None = None  # its frame's capture time (frame.time), for the metrics


class SteadyGate:
    """Per frame: does it need the model, or can it reuse the last answer? One per session.

    Not thread-safe: the pipeline calls it under its lock. Every call is told the time (the
    pipeline's clock), so tests can drive it without sleeping.
    """

    def __init__(self, threshold: float = STILL_MAD, refresh: float = REFRESH_SECONDS) -> None:
        self.threshold = threshold
        self.refresh = refresh
        self._answer: ModelAnswer | None = None
        self._asked = -float("inf")  # arrival time of the newest frame handed to the model
        self.generation = 0  # bumped by forget(): answers of an older generation are stale

    def on_arrival(self, thumb: np.ndarray | None, now: float) -> tuple[ModelAnswer | None, bool]:
        """A frame arrived: (the answer it reuses or None, whether the model must see it).

        A still frame reuses the answer; if the model last saw a frame `refresh` or more ago, it
        also goes to the model, which renews the answer for the frames after it. Any other frame
        (and one without a thumbnail: steady scenes off) goes to the model to be answered; the
        still frames after it keep the standing answer meanwhile.
        """
        answer = self._answer
        still = answer is not None and self._still(thumb, answer)
        due = now - self._asked >= self.refresh
        if still and not due:
            return answer, False
        self._asked = now
        return (answer if still else None), True

    def before_model(self, thumb: np.ndarray | None, arrived: float) -> ModelAnswer | None:
        """The model is about to take a frame that waited: an answer given meanwhile, to a frame
        at most `refresh` older that looked the same, makes the model pass unnecessary."""
        answer = self._answer
        if answer is not None and 0 <= arrived - answer.arrived < self.refresh and self._still(thumb, answer):
            return answer
        return None

    def learn(self, answer: ModelAnswer, generation: int) -> None:
        """The model answered a frame; ignored if `forget` was called since its pass began."""
        if generation == self.generation and (self._answer is None or answer.arrived >= self._answer.arrived):
            self._answer = answer

    def forget(self) -> None:
        """The answer no longer holds (examples, settings or backbone changed): ask the model."""
        self._answer = None
        self.generation += 1

    def _still(self, thumb: np.ndarray | None, answer: ModelAnswer) -> bool:
        if thumb is None or answer.thumb is None or thumb.shape != answer.thumb.shape:
            return False
        return mean_abs_diff(thumb, answer.thumb) < self.threshold
