"""Project files: a classifier's classes, examples and settings in one `.npz`.

Layout (every member a plain NumPy array; no pickles, no object arrays):

=================  ==============  ===================================================
member             dtype, shape    meaning
=================  ==============  ===================================================
``meta``           uint8 [B]       UTF-8 JSON: format, version, backbone, dim, k,
                                   unknown_threshold, max_examples_per_class, vote,
                                   centroid_weight, centred, counts
``classes``        <U{w} [C]       class names in order (classes may be empty)
``embeddings``     float32 [R, D]  L2-normalised: each example's vectors (its own
                                   embedding first), examples in insertion order
``vectors``        int32 [N]       how many of ``embeddings`` each example has (1, or
                                   more with augmentation); they sum to R
``labels``         int32 [N]       index into ``classes``
``image_bytes``    uint8 [T]       the N JPEG images, concatenated
``image_offsets``  int64 [N + 1]   image i is ``image_bytes[offsets[i]:offsets[i+1]]``
                                   (empty for an example without image)
=================  ==============  ===================================================

The backbone id names the input size too (``mobilenet_v2_1.0_320``). Format 1 (before
augmentation) had no ``vectors`` member: one vector per example; formats 1 and 2 (before the vote
rules) have no ``vote``, ``centroid_weight`` or ``centred``: they load with the rule they were made
with (the k nearest examples, not centred), whatever today's defaults are. A project of format 3
is refused by an app that reads 1 and 2 only, rather than answered with another rule.

A project file comes from a user's upload, so `load_project` trusts nothing: it checks the size on
disk, every member's declared uncompressed size against what a full session can hold
(knn.core.limits: zip bombs, millions of identical rows, megabytes of JSON), every member's .npy
header (dtype, shape, no objects) before reading it, then the values; class names go through
knn.core.names. Every problem, whatever the zip, JSON or NumPy parser raises, becomes
`ProjectFileError` with a message for the user. It returns a new classifier, so the caller
replaces the old one only once loading has succeeded.

Examples:

```python
save_project("hands.npz", clf, embedder.backbone)
clf = load_project(uploaded_file, expected_backbone=embedder.backbone)
st.download_button("Save project", project_bytes(clf, embedder.backbone), "project.npz")
```
"""

from __future__ import annotations

import io
import json
import math
import os
import re
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO, TypeGuard

import numpy as np
from numpy.lib import format as npy_format

from .atomic import write_atomic
from .backbone_widths import embedding_width
from .classifier import ClassifierError, ClassifierState, KNNClassifier
from .limits import (
    MAX_CLASSES,
    MAX_DIM,
    MAX_EXAMPLES,
    MAX_META_BYTES,
    MAX_NAME_CHARS,
    MAX_PROJECT_BYTES,
    MAX_STORED_JPEG_BYTES,
    MAX_STORED_VALUES,
    MAX_VECTORS_PER_EXAMPLE,
    member_limits,
)
from .names import normalise_name
from .voting import DEFAULT_CENTROID_WEIGHT, LEGACY_VOTE, VOTES

__all__ = [
    "FORMAT_VERSION",
    "MAX_PROJECT_BYTES",
    "ProjectFileError",
    "load_project",
    "project_bytes",
    "read_project_meta",
    "save_project",
]

FORMAT_VERSION = 3
READS = (1, 2, 3)
_BACKBONE_ID = re.compile(r"[a-z0-9][a-z0-9_.]{0,63}")

_FORMAT_NAME = "knn-project"
_MEMBERS = {
    # name: (allowed dtype kinds, itemsize or None, ndim)
    "meta": ("u", 1, 1),
    "classes": ("U", None, 1),
    "embeddings": ("f", 4, 2),
    "vectors": ("iu", None, 1),
    "labels": ("iu", None, 1),
    "image_bytes": ("u", 1, 1),
    "image_offsets": ("i", 8, 1),
}
_FORMAT_1 = {name for name in _MEMBERS if name != "vectors"}

PathOrFile = str | os.PathLike[str] | BinaryIO | bytes | bytearray | memoryview


class ProjectFileError(ValueError):
    """A project file that cannot be saved or loaded; the message is meant for the user."""


def _backbone_id(backbone: Any) -> str:
    value = getattr(backbone, "backbone", backbone)
    if not isinstance(value, str) or not value:
        raise ProjectFileError(f"the backbone must be an id such as 'mobilenet_v1_1.0_224', got {value!r}")
    return value


def _expected_dim(backbone: Any) -> int | None:
    """The embedding size `backbone` makes: an Embedder's own, else its id's (None for an id not offered)."""
    dim = getattr(backbone, "dim", None)
    return dim if isinstance(dim, int) else embedding_width(_backbone_id(backbone))


def _mb(n: int) -> str:
    return f"{n / 1024**2:.0f} MB" if n >= 1024**2 else f"{n / 1024:.0f} kB"


# ---------------------------------------------------------------------- saving
def project_bytes(classifier: KNNClassifier, backbone: Any) -> bytes:
    """The project file for `classifier` as bytes (e.g. for a download button).

    Args:
        classifier: the classifier to save (read under its lock, so a consistent copy).
        backbone: the embedder's backbone id, or an object with a `.backbone` attribute.

    Raises:
        ProjectFileError: the project would exceed `MAX_PROJECT_BYTES` (it could not be loaded).
    """
    backbone = _backbone_id(backbone)
    state = classifier.state()
    images = [image or b"" for image in state.images]
    offsets = np.zeros(len(images) + 1, dtype=np.int64)
    np.cumsum([len(image) for image in images], out=offsets[1:])
    meta = {
        "format": _FORMAT_NAME,
        "version": FORMAT_VERSION,
        "backbone": backbone,
        "dim": state.dim,
        "k": state.k,
        "unknown_threshold": state.unknown_threshold,
        "max_examples_per_class": state.max_examples_per_class,
        "vote": state.vote,
        "centroid_weight": state.centroid_weight,
        "centred": state.centred,
        "n_examples": len(images),
        "n_classes": len(state.classes),
    }
    arrays = {
        "meta": np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8),
        # Fixed-width unicode; the minimum width 1 keeps a project without classes valid.
        "classes": np.array(state.classes, dtype=f"<U{max([1, *map(len, state.classes)])}"),
        "embeddings": np.ascontiguousarray(state.embeddings, dtype=np.float32),
        "vectors": state.vector_counts().astype(np.int32),
        "labels": state.labels.astype(np.int32),
        "image_bytes": np.frombuffer(b"".join(images), dtype=np.uint8),
        "image_offsets": offsets,
    }
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)  # type: ignore[arg-type]  # the stub fears **arrays fills allow_pickle
    data = buffer.getvalue()
    if len(data) > MAX_PROJECT_BYTES:
        raise ProjectFileError(
            f"this project would be {_mb(len(data))}, over the {_mb(MAX_PROJECT_BYTES)} limit for project "
            "files; remove some examples first"
        )
    return data


def save_project(
    path_or_file: str | os.PathLike[str] | BinaryIO, classifier: KNNClassifier, embedder_backbone: Any
) -> None:
    """Save `classifier` as a project file.

    Args:
        path_or_file: a path (written atomically: a temporary file in the same folder, then
            `os.replace`, so a crash never leaves half a project) or a binary file object.
        classifier: the classifier to save.
        embedder_backbone: the `Embedder.backbone` id, or the embedder itself.

    Raises:
        ProjectFileError: the project is too large, or the backbone id is missing.
        OSError: the file cannot be written.
    """
    data = project_bytes(classifier, embedder_backbone)
    if hasattr(path_or_file, "write"):
        path_or_file.write(data)
        return
    write_atomic(path_or_file, data)


# ---------------------------------------------------------------------- loading
def _read_source(path_or_file: PathOrFile) -> tuple[bytes, str]:
    """All bytes of the file, refusing anything over MAX_PROJECT_BYTES before reading it whole."""
    too_big = (
        "{what} is {size}; project files are limited to " + _mb(MAX_PROJECT_BYTES) + ", so this is not a project "
        "this app saved"
    )
    if isinstance(path_or_file, (bytes, bytearray, memoryview)):
        data, what = bytes(path_or_file), "the uploaded project"
    elif isinstance(path_or_file, (str, os.PathLike)):
        path = Path(path_or_file)
        what = path.name
        try:
            size = path.stat().st_size
            if size > MAX_PROJECT_BYTES:
                raise ProjectFileError(too_big.format(what=what, size=_mb(size)))
            data = path.read_bytes()
        except ProjectFileError:
            raise
        except FileNotFoundError:
            raise ProjectFileError(f"{what}: no such file") from None
        except OSError as exc:
            raise ProjectFileError(f"{what} cannot be read ({exc.strerror or exc})") from None
    elif hasattr(path_or_file, "read"):
        name = getattr(path_or_file, "name", None)
        what = Path(name).name if isinstance(name, str) and name else "the uploaded project"
        data = path_or_file.read(MAX_PROJECT_BYTES + 1)
        if not isinstance(data, (bytes, bytearray)):
            raise ProjectFileError(f"{what} must be opened in binary mode")
        data = bytes(data)
    else:
        raise ProjectFileError(f"cannot read a project from a {type(path_or_file).__name__}")
    if len(data) > MAX_PROJECT_BYTES:
        raise ProjectFileError(too_big.format(what=what, size="over " + _mb(MAX_PROJECT_BYTES)))
    if not data:
        raise ProjectFileError(f"{what} is empty")
    return data, what


def _check_zip(data: bytes, what: str) -> None:
    """Member names and declared sizes, before NumPy decompresses anything."""
    not_project = f"{what} is not a project file (expected a .npz saved by this app)"
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            infos = archive.infolist()
    except Exception:  # zipfile raises many kinds for a damaged directory
        raise ProjectFileError(f"{not_project}; it may be truncated or damaged") from None
    names = [info.filename for info in infos]
    expected = {f"{name}.npy" for name in _MEMBERS}
    if set(names) == {f"{name}.npy" for name in _FORMAT_1}:
        expected = set(names)  # format 1: one vector per example
    if len(names) != len(set(names)) or set(names) != expected:
        missing = sorted(expected - set(names))
        detail = f"missing {', '.join(missing)}" if missing else "unexpected contents"
        raise ProjectFileError(f"{not_project}: {detail}")
    limits = member_limits()
    for info in infos:
        if info.file_size > limits[info.filename]:
            raise ProjectFileError(
                f"{what} would unpack {info.filename} to {_mb(info.file_size)}, more than a project can hold "
                f"({_mb(limits[info.filename])}: {_LIMIT_WORDS[info.filename]}); it is not a project this app saved"
            )


_LIMIT_WORDS = {
    "meta.npy": f"{MAX_META_BYTES // 1024} kB of settings",
    "classes.npy": f"{MAX_CLASSES} classes of up to {MAX_NAME_CHARS} characters",
    "embeddings.npy": f"{MAX_STORED_VALUES:,} embedding values",
    "labels.npy": f"{MAX_EXAMPLES:,} examples",
    "vectors.npy": f"{MAX_EXAMPLES:,} examples",
    "image_bytes.npy": f"{MAX_EXAMPLES:,} images of up to {MAX_STORED_JPEG_BYTES // 1024} kB",
    "image_offsets.npy": f"{MAX_EXAMPLES:,} examples",
}
_MAX_LENGTH = {
    "meta": MAX_META_BYTES,
    "classes": MAX_CLASSES,
    "labels": MAX_EXAMPLES,
    "vectors": MAX_EXAMPLES,
    "image_offsets": MAX_EXAMPLES + 1,
    "image_bytes": MAX_EXAMPLES * MAX_STORED_JPEG_BYTES,
}


def _check_header(archive: zipfile.ZipFile, name: str, what: str) -> None:
    """Validate a member's .npy header (dtype, shape, size) without reading its data."""
    kinds, itemsize, ndim = _MEMBERS[name]
    info = archive.getinfo(f"{name}.npy")
    with archive.open(info) as member:
        version = npy_format.read_magic(member)
        if version == (1, 0):
            shape, fortran, dtype = npy_format.read_array_header_1_0(member)
        elif version in ((2, 0), (3, 0)):
            shape, fortran, dtype = npy_format.read_array_header_2_0(member)
        else:
            raise ValueError(f"unsupported .npy version {version}")
        header_len = member.tell()
    if dtype.hasobject or dtype.kind not in kinds or (itemsize and dtype.itemsize != itemsize):
        raise ProjectFileError(f"{what} is damaged: {name!r} has dtype {dtype}, which this format never uses")
    if len(shape) != ndim:
        raise ProjectFileError(f"{what} is damaged: {name!r} has shape {shape}, expected {ndim} dimensions")
    if header_len + math.prod(shape) * dtype.itemsize != info.file_size:
        # NumPy allocates the array the header declares before reading: a lying header is a bomb.
        raise ProjectFileError(f"{what} is damaged: {name!r} does not hold the data its header declares")
    _check_shape(name, shape, dtype, what)


def _check_shape(name: str, shape: tuple[int, ...], dtype: np.dtype[Any], what: str) -> None:
    """The limits a header's shape must keep (knn.core.limits), before its data is read."""
    if name == "embeddings":
        if shape[0] > MAX_EXAMPLES * MAX_VECTORS_PER_EXAMPLE:
            raise ProjectFileError(
                f"{what} holds {shape[0]:,} vectors; a project holds at most "
                f"{MAX_EXAMPLES:,} examples of up to {MAX_VECTORS_PER_EXAMPLE}"
            )
        if shape[1] > MAX_DIM:
            raise ProjectFileError(f"{what} has embeddings of {shape[1]:,} values; at most {MAX_DIM:,} are possible")
        if shape[0] * shape[1] > MAX_STORED_VALUES:
            raise ProjectFileError(
                f"{what} holds {shape[0] * shape[1]:,} embedding values; a project holds at most {MAX_STORED_VALUES:,}"
            )
    elif shape[0] > _MAX_LENGTH[name]:
        words = {"classes": "classes", "meta": "bytes of settings"}.get(name, "entries")
        raise ProjectFileError(f"{what} has {shape[0]:,} {words}; a project has at most {_MAX_LENGTH[name]:,}")
    if name == "classes" and dtype.itemsize // 4 > MAX_NAME_CHARS:
        raise ProjectFileError(
            f"{what} has class names of {dtype.itemsize // 4} characters; at most {MAX_NAME_CHARS} are allowed"
        )


def _read_arrays(data: bytes, what: str) -> dict[str, np.ndarray]:
    _check_zip(data, what)
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            present = [name for name in _MEMBERS if f"{name}.npy" in archive.namelist()]
            for name in present:
                _check_header(archive, name, what)
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in present}
        if "vectors" not in arrays:  # format 1
            arrays["vectors"] = np.ones(len(arrays["labels"]), np.int32)
        return arrays
    except ProjectFileError:
        raise
    except Exception as exc:  # an encrypted member, an unknown compression, a bad CRC, ...
        raise ProjectFileError(f"{what} is truncated or damaged and cannot be read ({_reason(exc)})") from None


def _reason(exc: BaseException) -> str:
    """A parser's error in a few words (some repeat a whole header)."""
    text = str(exc) or type(exc).__name__
    return text if len(text) <= 120 else text[:117] + "…"


def _read_meta(raw: np.ndarray, what: str) -> dict[str, Any]:
    try:
        meta = json.loads(raw.tobytes().decode("utf-8"))
    except (ValueError, RecursionError):  # not UTF-8, not JSON, nested too deeply
        raise ProjectFileError(f"{what} is damaged: its settings cannot be read") from None
    if not isinstance(meta, dict) or meta.get("format") != _FORMAT_NAME:
        raise ProjectFileError(f"{what} is not a project file saved by this app")
    version = meta.get("version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise ProjectFileError(f"{what} is damaged: its format version is missing")
    if version > FORMAT_VERSION:
        raise ProjectFileError(
            f"{what} uses project format {version}, made by a newer version of this app; "
            f"this version reads formats {' and '.join(map(str, READS))}: update the app"
        )
    if version not in READS:
        raise ProjectFileError(f"{what} uses project format {version}, which this app does not know")

    def field(key: str, check: Callable[[Any], object], expected: str) -> None:
        value = meta.get(key)
        if not check(value):
            raise ProjectFileError(f"{what} is damaged: setting {key!r} is {value!r}, expected {expected}")

    def is_int(v: object) -> TypeGuard[int]:
        return isinstance(v, int) and not isinstance(v, bool)

    field("backbone", lambda v: isinstance(v, str) and _BACKBONE_ID.fullmatch(v), "a backbone id")
    field("dim", lambda v: v is None or (is_int(v) and 1 <= v <= MAX_DIM), f"a whole number in 1..{MAX_DIM}")
    field("k", lambda v: is_int(v) and v >= 1, "a whole number of at least 1")
    field(
        "unknown_threshold",
        lambda v: v is None or (isinstance(v, (int, float)) and not isinstance(v, bool) and -1 <= v <= 1),
        "a similarity in -1..1 or null",
    )
    field("max_examples_per_class", lambda v: is_int(v) and v >= 1, "a whole number of at least 1")
    if version < 3:  # from before the rule was saved: read as it was made, not with today's default
        meta.update(vote=LEGACY_VOTE, centroid_weight=DEFAULT_CENTROID_WEIGHT, centred=False)
    field("vote", lambda v: v in VOTES, f"one of {', '.join(VOTES)}")
    field(
        "centroid_weight",
        lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v <= 1,
        "a share in 0..1",
    )
    field("centred", lambda v: isinstance(v, bool), "true or false")
    field("n_examples", lambda v: is_int(v) and 0 <= v <= MAX_EXAMPLES, f"a count up to {MAX_EXAMPLES:,}")
    field("n_classes", lambda v: is_int(v) and 0 <= v <= MAX_CLASSES, f"a count up to {MAX_CLASSES}")
    return meta


def _check_values(arrays: dict[str, np.ndarray], meta: dict[str, Any], what: str) -> None:
    damaged = f"{what} is damaged:"
    n, n_classes = meta["n_examples"], meta["n_classes"]
    emb, labels, classes = arrays["embeddings"], arrays["labels"], arrays["classes"]
    offsets, image_bytes = arrays["image_offsets"], arrays["image_bytes"]
    if len(classes) != n_classes:
        raise ProjectFileError(f"{damaged} it lists {len(classes)} classes but says it has {n_classes}")
    vectors = arrays["vectors"]
    if not (len(labels) == len(vectors) == n and len(offsets) == n + 1):
        raise ProjectFileError(
            f"{damaged} it has {len(labels)} labels, {len(vectors)} vector counts and {len(offsets) - 1} images "
            f"for {n} examples"
        )
    if n and (vectors.min() < 1 or vectors.max() > MAX_VECTORS_PER_EXAMPLE):
        raise ProjectFileError(f"{damaged} an example has a vector count outside 1..{MAX_VECTORS_PER_EXAMPLE}")
    if int(vectors.sum()) != len(emb):
        raise ProjectFileError(f"{damaged} it has {len(emb)} embeddings for {int(vectors.sum())} vectors")
    if n and emb.shape[1] != meta["dim"]:
        raise ProjectFileError(f"{damaged} its embeddings have {emb.shape[1]} values but it says {meta['dim']}")
    if not np.isfinite(emb).all():
        raise ProjectFileError(f"{damaged} some embeddings are NaN or infinite")
    if n and not (np.linalg.norm(emb, axis=1) > 0).all():
        raise ProjectFileError(f"{damaged} some embeddings are all zeros")
    if n and (labels.min() < 0 or labels.max() >= n_classes):
        raise ProjectFileError(f"{damaged} some examples refer to a class that does not exist")
    if offsets[0] != 0 or offsets[-1] != len(image_bytes) or (np.diff(offsets) < 0).any():
        raise ProjectFileError(f"{damaged} the image offsets do not match the image data")
    lengths = np.diff(offsets)
    starts = offsets[:-1][lengths > 0]
    is_jpeg = (lengths[lengths > 0] >= 2).all() and (
        (image_bytes[starts] == 0xFF) & (image_bytes[np.minimum(starts + 1, len(image_bytes) - 1)] == 0xD8)
    ).all()
    if not is_jpeg:  # every stored image starts with the JPEG marker FF D8
        raise ProjectFileError(f"{damaged} some example images are not JPEG data")
    if (lengths > MAX_STORED_JPEG_BYTES).any():
        raise ProjectFileError(f"{damaged} an example image is over {MAX_STORED_JPEG_BYTES // 1024} kB")


def _class_names(classes: np.ndarray, what: str) -> tuple[str, ...]:
    """The file's class names, normalised as typed names are (knn.core.names), each once."""
    try:
        raw = classes.tolist()
    except Exception:  # code units that are not Unicode at all (above U+10FFFF)
        raise ProjectFileError(f"{what} is damaged: its class names are not valid text") from None
    names = []
    for name in raw:
        try:
            names.append(normalise_name(name))
        except ClassifierError as exc:
            raise ProjectFileError(f"{what} holds a class name that cannot be used: {exc}") from None
    if len(set(names)) != len(names):
        raise ProjectFileError(f"{what} is damaged: its class names repeat")
    return tuple(names)


def read_project_meta(path_or_file: PathOrFile) -> dict[str, Any]:
    """A project file's checked metadata (backbone, dim, k, counts, ...) without its examples.

    Raises:
        ProjectFileError: as `load_project` does for the file's structure and metadata.
    """
    data, what = _read_source(path_or_file)
    return _read_meta(_read_arrays(data, what)["meta"], what)


def load_project(path_or_file: PathOrFile, expected_backbone: Any = None) -> KNNClassifier:
    """Load a project file into a new classifier.

    Args:
        path_or_file: a path, a binary file object read from its current position (e.g.
            Streamlit's `UploadedFile`), or the file's bytes.
        expected_backbone: the backbone id the app is using, or the embedder; a project made with
            another backbone is refused, since its embeddings are not comparable, and so is one
            whose embeddings are not as wide as the backbone's (the embedder's, or the id's
            network's: knn.core.backbone_widths).

    Returns:
        A new `KNNClassifier` with the classes (in order, empty ones too), examples, images, k and
        unknown_threshold of the file. Example ids are renumbered in saved order.

    Raises:
        ProjectFileError: the file is too large, truncated, not a project, of an unknown format
            version, made with another backbone, or holds invalid data.
    """
    data, what = _read_source(path_or_file)
    arrays = _read_arrays(data, what)
    meta = _read_meta(arrays["meta"], what)
    if expected_backbone is not None:
        expected = _backbone_id(expected_backbone)
        if meta["backbone"] != expected:
            raise ProjectFileError(
                f"This project was made with {meta['backbone']} but the app is using {expected}; "
                "switch the backbone in Settings first"
            )
    _check_values(arrays, meta, what)
    dim = None if expected_backbone is None else _expected_dim(expected_backbone)
    if dim is not None and meta["n_examples"] and meta["dim"] != dim:
        raise ProjectFileError(
            f"{what} holds {meta['dim']}-value embeddings but {meta['backbone']} makes {dim}-value ones: "
            "the file is damaged or was made by another model"
        )
    classes = _class_names(arrays["classes"], what)
    offsets, image_bytes = arrays["image_offsets"].tolist(), arrays["image_bytes"]
    images = tuple(bytes(image_bytes[a:b]) or None for a, b in zip(offsets[:-1], offsets[1:], strict=True))
    counts = np.bincount(arrays["labels"].astype(np.int64), minlength=1)
    state = ClassifierState(
        classes=classes,
        embeddings=arrays["embeddings"],
        labels=arrays["labels"].astype(np.int64),
        images=images,
        k=meta["k"],
        unknown_threshold=meta["unknown_threshold"],
        # A file may hold more than the default cap (a user raised it): never refuse its own data.
        max_examples_per_class=max(meta["max_examples_per_class"], int(counts.max())),
        dim=meta["dim"],
        vectors=arrays["vectors"].astype(np.int64),
        vote=meta["vote"],
        centroid_weight=float(meta["centroid_weight"]),
        centred=meta["centred"],
    )
    try:
        return KNNClassifier.from_state(state)
    except ClassifierError as exc:
        raise ProjectFileError(f"{what} holds invalid data: {exc}") from None
