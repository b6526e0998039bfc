"""Embeddings of the photos in ../shared, cached on disk so a benchmark's rerun costs no model time.

One `.npy` per (backbone, variant, file) under ``~/.cache/knn-bench/`` (env ``KNN_BENCH_CACHE``),
outside the repository. A variant is what of the photo is embedded:

- ``own``: the centre square at the model's input size, as `python -m knn evaluate` reads it (1 vector);
- ``mirror``: that square mirrored left-right (1 vector);
- ``crops``: the other 10 views of knn.core.images.augmented_views (five 85 % crops and their mirrors);
- ``jpeg224``, ``jpeg320``, ``jpeg384``: the square stored as the app stores an example (JPEG at
  that size, `STORED_QUALITY`), decoded and re-embedded at the model's input size.

With a `capture` (width, height), the photo is first made what a camera of that size delivers
(`camera_frame`) and the square is cut from it as the live path cuts a frame's (knn.live.overlay
`model_input`); those vectors live under ``<backbone>/capture-WxH/``, apart from the photos' own.

Files are embedded under a tqdm bar; photos are decoded on threads ahead of the model.
"""

from __future__ import annotations

import io
import itertools
import os
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from bench.common import SHARED

if TYPE_CHECKING:
    import av

STORED_QUALITY = 90
"""The JPEG quality `knn.core.images.encode_jpeg` starts from: what a stored example gets when it fits."""
VARIANTS = ("own", "mirror", "crops", "jpeg224", "jpeg320", "jpeg384")
AHEAD = 8
"""Photos decoded ahead of the model."""


def cache_root() -> Path:
    return Path(os.environ.get("KNN_BENCH_CACHE") or Path.home() / ".cache" / "knn-bench")


def stored_jpeg(square: np.ndarray, size: int, quality: int = STORED_QUALITY) -> bytes:
    """The square resized to `size` and encoded as JPEG at `quality`, with no size limit (so the
    cost of a size can be measured; knn.core.images.encode_jpeg lowers the quality to its limit)."""
    from PIL import Image

    from knn.core.images import center_crop_resize

    buffer = io.BytesIO()
    Image.fromarray(center_crop_resize(square, size)).save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def camera_frame(path: Path, capture: tuple[int, int]) -> av.VideoFrame:
    """The photo as a camera of `capture` (width, height) delivers it: scaled to cover that size
    and centre-cropped (the fake webcam's `fit`), in the camera's pixel format (yuv420p)."""
    import av

    from harness.webcam import fit
    from knn.core.images import read_image

    rgb = fit(read_image(path), *capture)
    return av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")


def views(path: Path, variant: str, size: int, capture: tuple[int, int] | None = None) -> list[np.ndarray]:
    """The images of one variant of a photo, at the model's input size `size`; with a `capture`,
    of the photo as a camera of that size delivers it."""
    from knn.core.images import augmented_views, center_crop_resize, decode_jpeg, read_image, read_square
    from knn.live.overlay import model_input

    if capture is not None:
        if variant.startswith("jpeg"):
            raise ValueError(f"{variant!r} is not made for a capture; one of own, mirror, crops")
        square = model_input(camera_frame(path, capture), size)
    elif variant.startswith("jpeg"):
        stored = int(variant[4:])
        # The stored square is made from the photo at the stored size, as Add makes it from a frame.
        square = center_crop_resize(read_image(path), stored)
        return [center_crop_resize(decode_jpeg(stored_jpeg(square, stored)), size)]
    else:
        square = read_square(path, size)
    if variant == "own":
        return [square]
    if variant == "mirror":
        return [np.ascontiguousarray(square[:, ::-1])]
    if variant == "crops":
        return augmented_views(square)[1:]
    raise ValueError(f"unknown variant {variant!r}; one of {VARIANTS}")


class EmbeddingCache:
    """Cached embeddings of one backbone: ``cache.get(files, variant)`` -> one [V, D] array per file;
    with a `capture` (width, height), of the photos as a camera of that size delivers them."""

    def __init__(self, backbone: str, root: Path | None = None, capture: tuple[int, int] | None = None) -> None:
        self.backbone = backbone
        self.capture = capture
        self.root = (root or cache_root()) / backbone
        if capture is not None:
            self.root = self.root / f"capture-{capture[0]}x{capture[1]}"
        self._embedder = None

    def _path(self, file: Path, variant: str) -> Path:
        relative = Path(file).resolve().relative_to(SHARED.resolve())
        return self.root / variant / relative.with_suffix(".npy")

    @property
    def embedder(self):
        if self._embedder is None:
            from knn import Embedder

            self._embedder = Embedder(self.backbone, runtime="litert")
        return self._embedder

    def missing(self, files: Sequence[Path], variant: str) -> list[Path]:
        return [f for f in files if not self._path(f, variant).is_file()]

    def fill(self, files: Sequence[Path], variant: str, bar: Callable[[int], None] | None = None) -> None:
        """Embed and store every file of `files` not cached yet."""
        todo = self.missing(files, variant)
        if not todo:
            return
        size = int(self.backbone.rsplit("_", 1)[1])
        with ThreadPoolExecutor(2, thread_name_prefix="bench-decode") as pool:
            # A bounded window ahead of the model: Executor.map would decode every file at once
            # and hold them all (3,540 photos × 10 crops at 320 px are 11 GB).
            pending: deque = deque()
            files = iter(todo)
            for path in itertools.islice(files, AHEAD):
                pending.append((path, pool.submit(views, path, variant, size, self.capture)))
            while pending:
                path, future = pending.popleft()
                for ahead in itertools.islice(files, 1):
                    pending.append((ahead, pool.submit(views, ahead, variant, size, self.capture)))
                images = future.result()
                vectors = np.asarray(self.embedder.embed(images), np.float32)
                target = self._path(path, variant)
                target.parent.mkdir(parents=True, exist_ok=True)
                tmp = target.with_suffix(".tmp.npy")
                np.save(tmp, vectors, allow_pickle=False)
                os.replace(tmp, target)  # a killed run never leaves half a file under the name
                if bar is not None:
                    bar(1)

    def get(self, files: Sequence[Path], variant: str) -> list[np.ndarray]:
        """Each file's cached vectors [V, D] (KeyError naming the first file not cached)."""
        out = []
        for f in files:
            path = self._path(f, variant)
            if not path.is_file():
                raise KeyError(f"{f} ({variant}, {self.root}) is not cached: run with embedding on")
            out.append(np.load(path, allow_pickle=False))
        return out
