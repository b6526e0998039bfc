"""Image folders with one subfolder per class: the layout of `teach`, `evaluate` and the benchmarks."""

from __future__ import annotations

import re
from pathlib import Path

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"})


def natural_key(path: Path) -> list[int | str]:
    """Sort key that puts obj1__2.png before obj1__10.png.

    Frames of a turntable or a video are numbered; natural order keeps "the first half of the files"
    meaning the first half of the recording, which is what a fair few-shot split needs.
    """
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", path.name)]


def class_folders(root: str | Path) -> dict[str, list[Path]]:
    """Map each subfolder name of `root` (a class) to its image files, in natural order.

    Raises FileNotFoundError when `root` is not a folder and ValueError when it holds no class
    subfolder with at least one image.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root} is not a folder")
    classes = {
        d.name: sorted(
            (p for p in d.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES),
            key=natural_key,
        )
        for d in sorted(root.iterdir(), key=natural_key)
        if d.is_dir() and not d.name.startswith(".")
    }
    classes = {name: files for name, files in classes.items() if files}
    if not classes:
        raise ValueError(f"{root} has no class subfolders with images in them")
    return classes
