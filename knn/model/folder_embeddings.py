"""Class folders (one subfolder of images per class) through the embedder."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..core.image_folders import class_folders
from ..core.images import read_square

if TYPE_CHECKING:
    from .embedder import Embedder


def embed_folder(
    embedder: Embedder,
    root: str | Path,
    progress: Callable[[list[tuple[str, Path]]], Iterable[tuple[str, Path]]] | None = None,
) -> dict[str, np.ndarray]:
    """Embed every image of a one-subfolder-per-class folder: class -> float32 [n, D], file order.

    `progress` wraps the iterable of (class, path) pairs, e.g. a tqdm bar.
    """
    folders = class_folders(root)
    files = [(name, path) for name, paths in folders.items() for path in paths]
    wrap = progress or (lambda it: it)
    out: dict[str, list[np.ndarray]] = {name: [] for name in folders}
    for name, path in wrap(files):
        out[name].append(embedder.embed_one(read_square(path, embedder.input_size)))
    return {name: np.stack(rows) for name, rows in out.items()}
