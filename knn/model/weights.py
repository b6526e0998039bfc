"""Where an embedder's weights come from.

Resolution order for a backbone's headless Keras weights (`<backbone>_no_top.weights.h5`):

1. an explicit path;
2. the folder named by env ``KNN_WEIGHTS_DIR``;
3. the user cache (``~/.cache/knn/``, or env ``KNN_CACHE``);
4. for MobileNet v1 1.0: converted offline from Google's frozen TF-slim graph that the PyPI sdist
   ``nudity==0.2.3`` ships (no download, no internet);
5. for other backbones: Keras' own ``weights="imagenet"`` download, tried only when its host can
   be reached (checked once per process, a few seconds at most; env ``KNN_OFFLINE=1`` skips it);
6. otherwise `WeightsUnavailable`, naming the file needed and where to put it.

One file serves a network at every input size (`BackboneSpec.network`).

Steps 4 and 5 need TensorFlow, so they run in a child process (`knn.model.build`) that exits afterwards:
the serving process never carries TensorFlow's ~565 MB.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import os
import socket
from dataclasses import dataclass
from pathlib import Path

from .backbones import DEFAULT_BACKBONE, FALLBACK_BACKBONE, get_backbone
from .child import BUILD, BuildError, Progress, run_child

PYPI_PACKAGE = "nudity==0.2.3"
PYPI_GRAPH = "files/retrained_graph.pb"
PYPI_GRAPH_SHA256 = "3b90af536f810f5f75e9f6d431bc2e8a3c4fc2ff4f693aa0dd4ae429816f8735"
PYPI_BACKBONE = FALLBACK_BACKBONE
"""The network the PyPI graph holds."""
DOWNLOAD_HOST = ("storage.googleapis.com", 443)
"""Where Keras downloads ImageNet weights from."""
DOWNLOAD_CHECK_SECONDS = 3.0


class WeightsUnavailable(RuntimeError):
    """No weights for the backbone could be found, converted or downloaded."""


@dataclass(frozen=True)
class ResolvedWeights:
    """A weights file and, in words, where it came from (the page shows `source`)."""

    path: Path
    source: str
    digest: str


def cache_dir() -> Path:
    """The user cache: env ``KNN_CACHE``, else ``~/.cache/knn``."""
    return Path(os.environ.get("KNN_CACHE") or Path.home() / ".cache" / "knn")


def file_digest(path: str | Path) -> str:
    """sha256 of a file, hex."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def pypi_graph_path() -> Path | None:
    """The frozen MobileNet graph inside the installed ``nudity`` sdist, without importing it.

    Importing ``nudity`` would run its TF 1 code, so only its location is looked up.
    """
    spec = importlib.util.find_spec("nudity")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / PYPI_GRAPH
    return path if path.is_file() else None


def _found(path: Path, source: str) -> ResolvedWeights:
    return ResolvedWeights(path=path, source=source, digest=file_digest(path))


def resolve_weights(
    backbone: str = DEFAULT_BACKBONE,
    weights: str | Path | None = None,
    progress: Progress | None = None,
) -> ResolvedWeights:
    """Find (or build once, into the cache) the headless weights file for `backbone`."""
    spec = get_backbone(backbone)
    name = spec.weights_filename
    if weights is not None:
        path = Path(weights).expanduser()
        if not path.is_file():
            raise WeightsUnavailable(f"The weights file {path} does not exist.")
        return _found(path, f"file {path}")
    env_dir = os.environ.get("KNN_WEIGHTS_DIR")
    if env_dir and (Path(env_dir) / name).is_file():
        return _found(Path(env_dir) / name, f"KNN_WEIGHTS_DIR ({Path(env_dir) / name})")
    cached = cache_dir() / name
    if cached.is_file():
        return _found(cached, f"{_origin(cached)} (cache {cached})")
    if spec.network == PYPI_BACKBONE:
        if pypi_graph_path() is None:
            raise WeightsUnavailable(_missing_message(name, f"`pip install {PYPI_PACKAGE}` provides them offline"))
        run_child(BUILD, ["pypi-weights", str(cache_dir())], progress)
        return _found(cached, f"{_origin(cached)} (cache {cached}, converted just now)")
    reachable, why = downloads_possible()
    if not reachable:
        raise WeightsUnavailable(_missing_message(name, f"Keras' download, which needs internet ({why})"))
    try:
        run_child(BUILD, ["keras-weights", spec.network, str(cached)], progress)
    except BuildError as err:
        raise WeightsUnavailable(_missing_message(name, f"Keras' download failed ({err.message})")) from err
    return _found(cached, f"{_origin(cached)} (cache {cached}, downloaded just now)")


@functools.cache
def downloads_possible() -> tuple[bool, str]:
    """Whether Keras' weight downloads can work here, and why not: checked once per process by
    opening a connection to their host, so an offline start waits seconds, not a TensorFlow
    import and a failed download per backbone. Env ``KNN_OFFLINE=1`` answers no at once."""
    if os.environ.get("KNN_OFFLINE", "").strip() not in ("", "0"):
        return False, "KNN_OFFLINE is set"
    try:
        socket.create_connection(DOWNLOAD_HOST, timeout=DOWNLOAD_CHECK_SECONDS).close()
    except OSError as exc:
        return False, f"{DOWNLOAD_HOST[0]} cannot be reached: {exc.strerror or exc}"
    return True, ""


def origin_file(weights_file: Path) -> Path:
    """The one-line note beside a cached weights file that says where it came from."""
    return weights_file.with_name(weights_file.name + ".origin")


def _origin(weights_file: Path) -> str:
    try:
        return origin_file(weights_file).read_text().strip()
    except OSError:
        return "cached weights"


def _missing_message(name: str, how: str) -> str:
    return (
        f"No weights for this backbone: need the file {name}. Put it in the folder named by "
        f"env KNN_WEIGHTS_DIR or in {cache_dir()}, or pass weights=PATH. How to get it: {how}."
    )
