"""A fake webcam for Chromium: a YUV4MPEG2 (.y4m) video written from real photos.

Chromium's `--use-file-for-fake-video-capture=FILE.y4m` plays the file in a loop as the camera.
`write_y4m` holds each photo perfectly still for a few frames (every frame identical: the
"always-changing" video of the benchmark); `handheld` makes what a real camera sends when a user
holds things up to it: each photo held 1-3 s with per-frame sensor noise and a hand's few pixels
of tremor, then swept out by the next one.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

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
    frames = (frame for image in images for frame in [rgb_to_i420(fit(image, width, height))] * frames_per_image)
    return write_y4m_frames(path, frames, width, height, fps)


def write_y4m_frames(
    path: str | Path, frames: Iterable[bytes], width: int = 640, height: int = 480, fps: int = 30
) -> Path:
    """Write raw I420 frames (Y, U, V planes, `rgb_to_i420`'s layout) as a 4:2:0 .y4m video."""
    if width % 2 or height % 2:
        raise ValueError("4:2:0 needs an even width and height")
    path = Path(path)
    with path.open("wb") as out:
        out.write(f"YUV4MPEG2 W{width} H{height} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
        n = 0
        for frame in frames:
            out.write(b"FRAME\n")
            out.write(frame)
            n += 1
    if n == 0:
        raise ValueError("no images given")
    return path


@dataclass(frozen=True)
class Segment:
    """Frames [start, end) of a video: photo `photo` (class `label`) held, or swept in ("move")."""

    start: int
    end: int
    kind: str  # "hold" or "move"
    photo: int
    label: str


SENSOR_NOISE = 4.0
"""Per-pixel, per-frame noise (standard deviation in 8-bit luma levels) of `handheld` videos: a
webcam indoors shows 2-6 (more in dim light); chroma gets half."""
TREMOR_PIXELS = 3
"""How far (pixels at 640×480) a holding hand wanders from where it first held the photo."""


def handheld(
    images: Sequence[Image.Image | np.ndarray],
    labels: Sequence[str],
    width: int = 640,
    height: int = 480,
    fps: int = 30,
    hold_seconds: tuple[float, float] = (1.0, 3.0),
    move_frames: int = 6,
    noise: float = SENSOR_NOISE,
    tremor: int = TREMOR_PIXELS,
    seed: int = 0,
) -> tuple[Iterator[bytes], list[Segment]]:
    """A hand-held camera's frames (I420 bytes) and their schedule, looping seamlessly.

    Each photo is held for a random 1-3 s while it wanders up to `tremor` pixels (a random walk of
    one pixel a frame) under fresh Gaussian noise every frame; then over `move_frames` frames the
    next photo sweeps it out to the left. The last photo sweeps back to the first, so a looping
    camera never jumps. The frames are made as they are written (a minute is ~800 MB).
    """
    if len(images) != len(labels) or len(images) < 2:
        raise ValueError("need two or more images, one label each")
    rng = np.random.default_rng(seed)
    holds = [int(round(rng.uniform(*hold_seconds) * fps)) for _ in images]
    segments, start = [], 0
    for i, (hold, label) in enumerate(zip(holds, labels, strict=True)):
        segments.append(Segment(start, start + hold, "hold", i, label))
        nxt = (i + 1) % len(images)
        segments.append(Segment(start + hold, start + hold + move_frames, "move", nxt, labels[nxt]))
        start += hold + move_frames
    pad = tremor + 1
    fitted = [fit(image, width + 2 * pad, height + 2 * pad) for image in images]

    def frames() -> Iterator[bytes]:
        x = y = 0
        for i, hold in enumerate(holds):
            for _ in range(hold):
                x = int(np.clip(x + rng.integers(-1, 2), -tremor, tremor))
                y = int(np.clip(y + rng.integers(-1, 2), -tremor, tremor))
                yield _noisy(fitted[i][pad + y : pad + y + height, pad + x : pad + x + width], noise, rng)
            here, there = fitted[i], fitted[(i + 1) % len(images)]
            for step in range(1, move_frames + 1):  # the next photo pushes this one out to the left
                shift = round(width * step / (move_frames + 1))
                both = np.concatenate(
                    [here[pad : pad + height, pad + shift :], there[pad : pad + height, pad:]], axis=1
                )
                yield _noisy(both[:, :width], noise, rng)

    return frames(), segments


def _noisy(rgb: np.ndarray, noise: float, rng: np.random.Generator) -> bytes:
    """One frame as I420 with Gaussian sensor noise (σ `noise` in luma, half that in chroma)."""
    planes = np.frombuffer(rgb_to_i420(np.ascontiguousarray(rgb)), np.uint8).astype(np.float32)
    luma = rgb.shape[0] * rgb.shape[1]
    planes[:luma] += rng.normal(0.0, noise, luma).astype(np.float32)
    planes[luma:] += rng.normal(0.0, noise / 2, planes.size - luma).astype(np.float32)
    return np.clip(planes + 0.5, 0, 255).astype(np.uint8).tobytes()


def write_handheld(
    path: str | Path, images: Sequence[Image.Image | np.ndarray], labels: Sequence[str], fps: int = 30, **options
) -> tuple[Path, list[Segment]]:
    """`handheld`'s video as a .y4m, its schedule beside it as JSON (`read_schedule`)."""
    width, height = options.get("width", 640), options.get("height", 480)
    frames, segments = handheld(images, labels, fps=fps, **options)
    path = write_y4m_frames(path, frames, width, height, fps)
    Path(path).with_suffix(".json").write_text(json.dumps({"fps": fps, "segments": [asdict(s) for s in segments]}))
    return path, segments


def read_schedule(video: str | Path) -> tuple[int, list[Segment]]:
    """The frames per second and the schedule `write_handheld` left beside `video`."""
    data = json.loads(Path(video).with_suffix(".json").read_text())
    return data["fps"], [Segment(**s) for s in data["segments"]]


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
