"""What one answered frame costs the server: captioning it (knn.live.overlay, on the event loop
for most frames) and aiortc's VP8 encode of it, at the camera's size and at half size
(knn.live.answer_size).  `python bench/overlay.py`"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import av
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import SHARED
from knn.live.overlay import overlay

PHOTO = SHARED / "data" / "rps" / "rock"


def camera_frames(width: int, height: int, n: int) -> list[av.VideoFrame]:
    """A still scene with sensor-like noise (a rock-paper-scissors photo where ../shared has one)."""
    rng = np.random.default_rng(0)
    photos = sorted(PHOTO.glob("*")) if PHOTO.is_dir() else []
    if photos:
        from PIL import Image

        base = np.asarray(Image.open(photos[0]).convert("RGB").resize((width, height)), dtype=np.int16)
    else:
        base = rng.integers(0, 256, (height, width, 3)).astype(np.int16)
    frames = []
    for _ in range(n):
        noisy = np.clip(base + rng.normal(0, 4, base.shape), 0, 255).astype(np.uint8)
        frame = av.VideoFrame.from_ndarray(noisy, format="rgb24").reformat(format="yuv420p")
        frames.append(frame)
    return frames


def overlay_us(frame: av.VideoFrame, mirror: bool, half: bool, n: int = 1000) -> float:
    for _ in range(50):  # the banner's cache and the allocator warm up
        overlay(frame, "rock 97%", 0.97, (20, 200, 20), mirror, half)
    start = time.perf_counter()
    for _ in range(n):
        overlay(frame, "rock 97%", 0.97, (20, 200, 20), mirror, half)
    return (time.perf_counter() - start) / n * 1e6


def encode_ms(frames: list[av.VideoFrame], half: bool) -> float:
    """aiortc's own VP8 encoder (its settings, our 500 kbit/s cap) on captioned frames."""
    from fractions import Fraction

    from aiortc.codecs.vpx import Vp8Encoder

    from knn.serving.settings import MAX_VIDEO_BITRATE

    encoder = Vp8Encoder()
    encoder.target_bitrate = MAX_VIDEO_BITRATE
    captioned = []
    for i, frame in enumerate(frames):
        out = overlay(frame, "rock 97%", 0.97, (20, 200, 20), False, half)
        out.pts, out.time_base = i * 3000, Fraction(1, 90_000)
        captioned.append(out)
    for frame in captioned[:10]:
        encoder.encode(frame)
    start = time.perf_counter()
    for frame in captioned[10:]:
        encoder.encode(frame)
    return (time.perf_counter() - start) / (len(captioned) - 10) * 1000


def main() -> None:
    frames = camera_frames(640, 480, 70)
    scene = "a rock-paper-scissors photo" if PHOTO.is_dir() else "random pixels (../shared/data/rps is absent)"
    print(f"Camera frames: {scene} with sensor-like noise\n")
    print("Captioning one 640×480 camera frame, µs\n\n| sent back at | mirror | µs per frame |\n|---|---|---|")
    for half in (False, True):
        for mirror in (False, True):
            print(
                f"| {'320×240' if half else '640×480'} | {'yes' if mirror else 'no'} | "
                f"{overlay_us(frames[0], mirror, half):.0f} |"
            )
    print("\naiortc's VP8 encode of the captioned frame, ms\n\n| sent back at | ms per frame |\n|---|---|")
    for half in (False, True):
        print(f"| {'320×240' if half else '640×480'} | {encode_ms(frames, half):.2f} |")


if __name__ == "__main__":
    main()
