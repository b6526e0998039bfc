"""The development sets of the few-shot benchmarks: for each class, the files examples are drawn
from (the pool) and the query files, never near-duplicates of each other.

- rps, coil20: frames of a recording or a turntable; the pool is the first half of each class's
  sorted files, the queries the second half (../shared/README.md: neighboring frames are
  near-duplicates).
- grocery: the authors' split, ``train_*`` files as the pool and ``test_*`` as the queries.
- grocery-train: the ``train_*`` files alone, halved as rps is: where a rule's free parameter is
  chosen, so that no grocery query it is reported on took part in choosing it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bench.common import shared_path


@dataclass(frozen=True)
class DevSet:
    name: str
    pool: dict[str, list[Path]]
    queries: dict[str, list[Path]]

    def files(self) -> tuple[list[Path], list[Path]]:
        """(every pool file, every query file)."""
        return (
            [f for files in self.pool.values() for f in files],
            [f for files in self.queries.values() for f in files],
        )


def _halves(folders: dict[str, list[Path]]) -> tuple[dict, dict]:
    return (
        {name: files[: len(files) // 2] for name, files in folders.items()},
        {name: files[len(files) // 2 :] for name, files in folders.items()},
    )


def load_set(name: str) -> DevSet:
    from knn.core.image_folders import class_folders

    if name in ("rps", "coil20"):
        return DevSet(name, *_halves(class_folders(shared_path(f"data/{name}"))))
    folders = class_folders(shared_path("data/grocery"))
    train = {c: [f for f in files if f.name.startswith("train_")] for c, files in folders.items()}
    if name == "grocery":
        test = {c: [f for f in files if f.name.startswith("test_")] for c, files in folders.items()}
        return DevSet(name, train, test)
    if name == "grocery-train":
        return DevSet(name, *_halves(train))
    raise ValueError(f"unknown set {name!r}; one of {SETS}")


SETS = ("rps", "coil20", "grocery", "grocery-train")
