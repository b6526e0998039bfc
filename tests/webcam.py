"""A fake webcam for Chromium: a YUV4MPEG2 (.y4m) video written from real photos.

Chromium's `--use-file-for-fake-video-capture=FILE.y4m` plays the file in a loop as the camera.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable

import numpy as np
from PIL import Image


def fit(image: Image.Image | np.ndarray, width: int, height: int) -> np.ndarray:
    """Scale and centre-crop to fill width×height exactly (what a camera frame looks like)."""
    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    image = image.convert("RGB")
    scale = max(width / image.width, height / image.height)
    resized = image.resize((max(width, round(image.width * scale)), max(height, round(image.height * scale))))
    left, top = (resized.width - width) // 2, (resized.height - height) // 2
    return np.asarray(resized.crop((left, top, left + width, top + height)))


def rgb_to_i420(rgb: np.ndarray) -> bytes:
    """One frame's Y, U and V planes (BT.601 full range, chroma averaged over 2×2 blocks)."""
    ycbcr = np.asarray(Image.fromarray(rgb).convert("YCbCr"), dtype=np.float32)
    h, w = rgb.shape[:2]
    y = ycbcr[:, :, 0]
    chroma = ycbcr[:, :, 1:].reshape(h // 2, 2, w // 2, 2, 2).mean(axis=(1, 3))
    planes = [y, chroma[:, :, 0], chroma[:, :, 1]]
    return b"".join(np.clip(p + 0.5, 0, 255).astype(np.uint8).tobytes() for p in planes)


def write_y4m(
    path: str | Path,
    images: Iterable[Image.Image | np.ndarray],
    width: int = 640,
    height: int = 480,
    fps: int = 30,
    frames_per_image: int = 10,
) -> Path:
    """Write the images, each held for `frames_per_image` frames, as a 4:2:0 .y4m video."""
    if width % 2 or height % 2:
        raise ValueError("4:2:0 needs an even width and height")
    path = Path(path)
    with path.open("wb") as out:
        out.write(f"YUV4MPEG2 W{width} H{height} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
        n = 0
        for image in images:
            frame = rgb_to_i420(fit(image, width, height))
            for _ in range(frames_per_image):
                out.write(b"FRAME\n")
                out.write(frame)
                n += 1
    if n == 0:
        raise ValueError("no images given")
    return path


def read_y4m(path: str | Path) -> tuple[dict[str, str], list[bytes]]:
    """Header fields and raw frames of a .y4m written by `write_y4m` (for checking it)."""
    data = Path(path).read_bytes()
    header, _, rest = data.partition(b"\n")
    fields = header.decode().split()
    assert fields[0] == "YUV4MPEG2"
    info = {f[0]: f[1:] for f in fields[1:]}
    size = int(info["W"]) * int(info["H"]) * 3 // 2
    frames = []
    while rest:
        marker, _, rest = rest.partition(b"\n")
        assert marker == b"FRAME"
        frames.append(rest[:size])
        rest = rest[size:]
    return info, frames
