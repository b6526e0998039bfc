"""Camera frames for the live tests, and the path that serves users to push them through.

`show` hands a frame to a session's pipeline exactly as the camera sink does (`on_frame`) and
returns what the encoder would take from the result track, so unit tests drive the production
frame path, not a twin of it.
"""

from __future__ import annotations

import asyncio
import fractions
import time
from pathlib import Path

import av
import numpy as np
from PIL import Image

from knn.core.images import read_image

RED, BLUE, GREEN = (220, 20, 20), (20, 20, 220), (20, 200, 20)


def solid(colour, width: int = 64, height: int = 48) -> av.VideoFrame:
    """A camera frame of one colour, in the camera's pixel format."""
    rgb = np.zeros((height, width, 3), np.uint8)
    rgb[:] = colour
    return av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")


def grey(level: int, width: int = 64, height: int = 48) -> av.VideoFrame:
    """A camera frame of one grey; greys a few levels apart are different scenes (knn.live.steady)."""
    return solid((level, level, level), width, height)


def halves(left: int, right: int, width: int = 64, height: int = 48) -> av.VideoFrame:
    """A camera frame grey `left` on its left half and `right` on its right half. `Camera(changing=
    True)` steps them by 37 and 97 levels (mod 256) a frame: any two of its first 120 frames
    differ by 10 grey levels or more on average, never still (knn.live.steady)."""
    rgb = np.zeros((height, width, 3), np.uint8)
    rgb[:, : width // 2], rgb[:, width // 2 :] = left, right
    return av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")


def stamped(frame: av.VideoFrame, pts: int) -> av.VideoFrame:
    """The frame with an RTP-like capture timestamp (90 kHz), as aiortc's decoder gives it."""
    frame.pts, frame.time_base = pts, fractions.Fraction(1, 90_000)
    return frame


def photo_frame(path: Path, size: tuple[int, int] = (640, 480)) -> av.VideoFrame:
    """A real photo as a camera frame."""
    rgb = np.asarray(Image.fromarray(read_image(path)).resize(size))
    return av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")


def show(session, frame: av.VideoFrame, timeout: float = 20.0) -> av.VideoFrame:
    """One camera frame through the session's pipeline; the captioned frame sent back."""

    async def run() -> av.VideoFrame:
        session.pipeline.on_frame(frame)
        return await asyncio.wait_for(session.pipeline.output.recv(), timeout)

    return asyncio.run(run())


def wait_until(condition, seconds: float = 10.0, what: str = "the condition") -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {seconds} s waiting for {what}")
        time.sleep(0.005)


class SlowEmbedder:
    """The real embedder, `delay` seconds slower per call: a loaded model, for scheduling tests."""

    def __init__(self, embedder, delay: float):
        self._embedder = embedder
        self.delay = delay
        self.backbone, self.dim, self.input_size = embedder.backbone, embedder.dim, embedder.input_size

    def embed(self, images):
        time.sleep(self.delay)
        return self._embedder.embed(images)

    def embed_one(self, image):
        time.sleep(self.delay)
        return self._embedder.embed_one(image)


class Camera:
    """A 30 fps aiortc track, as a browser's decoded camera arrives: one colour, or with `changing`
    other greys every frame (`halves`: a scene that never holds still, the model sees every frame it can);
    each frame stamped with its capture time on a 90 kHz clock; MediaStreamError once stopped."""

    def __init__(self, colour=RED, fps: float = 30.0, changing: bool = False):
        from aiortc import MediaStreamTrack
        from aiortc.mediastreams import MediaStreamError

        class Track(MediaStreamTrack):
            kind = "video"

            def __init__(self):
                super().__init__()
                self.origin = time.monotonic()
                self.frames = 0

            async def recv(self):
                self.frames += 1
                await asyncio.sleep(max(0.0, self.origin + self.frames / fps - time.monotonic()))
                if self.readyState != "live":
                    raise MediaStreamError
                frame = solid(colour) if not changing else halves(self.frames * 37 % 256, self.frames * 97 % 256)
                return stamped(frame, round((time.monotonic() - self.origin) * 90_000))

        self.track = Track()
