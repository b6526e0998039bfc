"""Shared fixtures: the real photos in ../shared and one real embedder per test run."""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

import pytest

from harness import ROOT, SHARED, use_shared_weights

# Tests never download; the app servers the browser tests start inherit this too.
use_shared_weights()


@pytest.fixture(scope="session", autouse=True)
def project_store_folder(tmp_path_factory) -> Path:
    """The app run in this process (AppTest) keeps its projects in a temporary folder, never the
    user's ~/.local/share/knn; the app servers the harness starts each get a folder of their own."""
    folder = tmp_path_factory.mktemp("knn-data")
    os.environ["KNN_DATA_DIR"] = str(folder)
    return folder


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
def grocery() -> Path:
    """The Grocery Store photos (81 look-alike classes; ../shared/README.md)."""
    return _shared("data/grocery")


@pytest.fixture(scope="session")
def photos(rps_dir) -> dict[str, list[Path]]:
    """The rock-paper-scissors photos by class, in file order."""
    from knn.core.image_folders import class_folders

    return class_folders(rps_dir)


@pytest.fixture(scope="session")
def rock_video(photos, tmp_path_factory) -> Path:
    """A fake webcam showing a fist (harness.scenes.rock_video, as README's screenshots have it)."""
    from harness.scenes import rock_video

    return rock_video(tmp_path_factory.mktemp("webcam") / "rock.y4m", photos)


@pytest.fixture(scope="session")
def coil_dir() -> Path:
    return _shared("data/coil20")


def class_files(folder: Path) -> dict[str, list[Path]]:
    """Image files per class subfolder, in natural order."""
    from knn.core.image_folders import class_folders

    return class_folders(folder)


@pytest.fixture(scope="session")
def embedder():
    """The default real embedder (MobileNet v1 1.0/224, weights built offline from PyPI)."""
    import knn

    return knn.Embedder()


# ---- the project store's databases (knn.persist): SQLite in a temporary folder, and a real
# PostgreSQL cluster started once per run (skipped with its reason where it cannot run here).


@pytest.fixture(scope="session")
def postgres():
    """A temporary PostgreSQL cluster (harness.postgres) for the whole run."""
    from harness.postgres import Cluster, missing

    reason = missing()
    if reason:
        pytest.skip(f"no PostgreSQL for the store's tests: {reason}")
    cluster = Cluster().start()
    yield cluster
    cluster.remove()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path) -> str:
    """An empty project database: a SQLite file, then a new database in the PostgreSQL cluster."""
    if request.param == "sqlite":
        from knn.persist import sqlite_url

        return sqlite_url(tmp_path / "data")
    return request.getfixturevalue("postgres").create_database()


# ---- the suite writes no file of the repository --------------------------------------------------

_CHANGED = pytest.StashKey[dict]()


def changed_files() -> dict[str, str] | None:
    """The repository's files that differ from HEAD or are untracked (not ignored), each with a hash
    of its bytes now; None outside a git checkout."""
    try:
        names = [
            subprocess.run(args, cwd=ROOT, capture_output=True, check=True).stdout.split(b"\0")
            for args in (
                ["git", "diff", "HEAD", "--name-only", "-z"],
                ["git", "ls-files", "--others", "--exclude-standard", "-z"],
            )
        ]
    except (OSError, subprocess.CalledProcessError):
        return None
    out = {}
    for name in {n.decode() for part in names for n in part if n}:
        path = ROOT / name
        out[name] = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "absent"
    return out


def pytest_sessionstart(session) -> None:
    changed = changed_files()
    if changed is not None:
        session.config.stash[_CHANGED] = changed


def pytest_sessionfinish(session, exitstatus) -> None:
    """Fail the run if the tests wrote, changed or deleted a file of the repository (screenshots go
    to tmp_path; `python -m harness.screenshots` writes README's). Edit nothing meanwhile: it would count."""
    before, after = session.config.stash.get(_CHANGED, None), changed_files()
    if before is None or after is None:
        return
    written = sorted(name for name in before.keys() | after.keys() if before.get(name) != after.get(name))
    if written:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(f"The tests changed files of the repository: {', '.join(written)}", red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
