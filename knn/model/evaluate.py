"""Few-shot accuracy of embedder configurations on class folders: only the files a split uses are
embedded, decoding overlapped with the model, with progress.

A configuration is a backbone at an input size (``mobilenet_v2_1.0_320``) and whether examples are
stored with augmented views (knn.core.images.augmented_views). For each number of examples per
class, examples and queries come from `knn.core.evaluation.SPLITS`; every rule
(`knn.core.evaluation.METHODS`) is scored on the same queries.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..core.evaluation import METHODS, SPLITS, split_accuracy
from ..core.images import ImageError, augmented_views, read_square

if TYPE_CHECKING:
    from .embedder import Embedder

DECODE_THREADS = 2
"""Threads decoding and resizing photos while the model embeds the previous ones."""


@dataclass(frozen=True)
class Configuration:
    """What is evaluated: a backbone id (its input size included) and augmentation on or off."""

    backbone: str
    augment: bool = False

    @property
    def label(self) -> str:
        return f"{self.backbone}{' + augmented examples' if self.augment else ''}"


@dataclass(frozen=True)
class Score:
    configuration: Configuration
    shots: int
    method: str
    accuracy: float
    queries: int


Tick = Callable[[int], object]
"""Told how many more images are done (e.g. a tqdm bar's update); what it returns is ignored."""


def plan(
    folders: dict[str, list[Path]], shots: Sequence[int], split: str = "halves", max_queries: int | None = None
) -> tuple[dict[int, dict[str, list[Path]]], dict[str, list[Path]]]:
    """For each number of shots, each class's example files; and each class's query files (the
    same for every number of shots). ValueError when a class has too few files."""
    split_files = SPLITS[split]
    examples = {n: {name: split_files(files, n, max_queries)[0] for name, files in folders.items()} for n in shots}
    queries = {name: split_files(files, max(shots), max_queries)[1] for name, files in folders.items()}
    return examples, queries


Skip = Callable[[Path, ImageError], None]
"""Told of each file that is not a readable image (it is left out)."""


def evaluate(
    folders: dict[str, list[Path]],
    configurations: Sequence[Configuration],
    shots: Sequence[int],
    split: str = "halves",
    max_queries: int | None = None,
    k: int = 3,
    embedder_for: Callable[[str], Embedder] | None = None,
    tick: Tick | None = None,
    skip: Skip | None = None,
    methods: Sequence[str] = METHODS,
) -> list[Score]:
    """Score every configuration and rule at every number of shots.

    Each configuration embeds the example files (with their views when augmented) and the query
    files once, whatever the number of shots. Unreadable files are left out (`skip` is told);
    ValueError when a class is left without an example or a query.
    """
    from .embedder import Embedder

    embedder_for = embedder_for or (lambda backbone: Embedder(backbone))
    examples_at, queries = plan(folders, shots, split, max_queries)
    example_files = sorted({f for per_class in examples_at.values() for files in per_class.values() for f in files})
    query_files = sorted({f for files in queries.values() for f in files})
    scores = []
    for config in configurations:
        embedder = embedder_for(config.backbone)
        example_vectors = embed_files(embedder, example_files, config.augment, tick, skip)
        query_vectors = embed_files(embedder, query_files, False, tick, skip)
        query_rows = {
            name: _rows([query_vectors[f][0] for f in files if f in query_vectors], name, "queries")
            for name, files in queries.items()
        }
        for n in shots:
            per_class = {
                name: [example_vectors[f] for f in files if f in example_vectors]
                for name, files in examples_at[n].items()
            }
            for name, found in per_class.items():
                if not found:
                    raise ValueError(f"class {name!r} has no readable example image")
            for method in methods:
                accuracy, count = split_accuracy(per_class, query_rows, method, k)
                scores.append(Score(config, n, method, accuracy, count))
    return scores


def _rows(vectors: list[np.ndarray], name: str, what: str) -> np.ndarray:
    if not vectors:
        raise ValueError(f"class {name!r} has no readable {what}")
    return np.stack(vectors)


def embed_files(
    embedder: Embedder, files: Sequence[Path], augment: bool, tick: Tick | None = None, skip: Skip | None = None
) -> dict[Path, np.ndarray]:
    """Each readable file's vectors [V, D]: its embedding, then with `augment` its views' (V = 12).

    Photos are decoded and scaled to the model's input on `DECODE_THREADS` threads, ahead of the
    model, which embeds one image (and its views) at a time.
    """
    out: dict[Path, np.ndarray] = {}
    for path, square in _squares(files, embedder.input_size):
        if isinstance(square, ImageError):
            if skip is not None:
                skip(path, square)
        else:
            images = [square, *augmented_views(square)] if augment else [square]
            out[path] = np.asarray(embedder.embed(images), np.float32)
        if tick is not None:
            tick(1)
    return out


def _squares(files: Sequence[Path], size: int) -> Iterator[tuple[Path, np.ndarray | ImageError]]:
    """(path, centre square at `size`, or the ImageError it raised) for each file, decoded ahead on
    a thread pool, in order."""

    def load(path: Path) -> np.ndarray | ImageError:
        try:
            return read_square(path, size)
        except ImageError as exc:
            return exc

    with ThreadPoolExecutor(DECODE_THREADS, thread_name_prefix="knn-decode") as pool:
        window = DECODE_THREADS * 4
        pending = [(f, pool.submit(load, f)) for f in files[:window]]
        position = len(pending)
        while pending:
            path, future = pending.pop(0)
            if position < len(files):
                pending.append((files[position], pool.submit(load, files[position])))
                position += 1
            yield path, future.result()
