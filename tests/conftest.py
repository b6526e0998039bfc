"""Shared fixtures: the real photos in ../shared and one real embedder per test run."""
from __future__ import annotations

from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[1].parent / "shared"


def _shared(sub: str) -> Path:
    path = SHARED / sub
    if not path.is_dir():
        pytest.skip(f"{path} is absent: these tests need the real photos and weights in ../shared")
    return path


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    return _shared("")


@pytest.fixture(scope="session")
def models_dir() -> Path:
    return _shared("models")


@pytest.fixture(scope="session")
def rps_dir() -> Path:
    return _shared("data/rps")


@pytest.fixture(scope="session")
def coil_dir() -> Path:
    return _shared("data/coil20")


def class_files(folder: Path) -> dict[str, list[Path]]:
    """Image files per class subfolder, in natural order."""
    from knn.core.folders import class_folders

    return class_folders(folder)


@pytest.fixture(scope="session")
def embedder():
    """The default real embedder (MobileNet v1 1.0/224, weights built offline from PyPI)."""
    import knn

    return knn.Embedder()
