"""Time of captioning one camera frame (knn.live.overlay.overlay): most answered frames are
captioned on the server's event loop, so this is paid there per frame.  `python bench/overlay.py`"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import av
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from knn.live.overlay import overlay  # noqa: E402


def per_frame_us(frame: av.VideoFrame, mirror: bool, n: int = 2000) -> float:
    for _ in range(50):  # the banner's cache and the allocator warm up
        overlay(frame, "rock 97%", 0.97, (20, 200, 20), mirror)
    start = time.perf_counter()
    for _ in range(n):
        overlay(frame, "rock 97%", 0.97, (20, 200, 20), mirror)
    return (time.perf_counter() - start) / n * 1e6


def main() -> None:
    rng = np.random.default_rng(0)
    print("| frame | mirror | µs per frame |\n|---|---|---|")
    for width, height in ((640, 480), (320, 240)):
        picture = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        frame = av.VideoFrame.from_ndarray(picture, format="rgb24").reformat(format="yuv420p")
        for mirror in (False, True):
            print(f"| {width}×{height} | {'yes' if mirror else 'no'} | {per_frame_us(frame, mirror):.0f} |")


if __name__ == "__main__":
    main()
