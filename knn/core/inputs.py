"""What the classifier accepts: settings, images and embeddings, each refused with a message that
says what is wrong (`ClassifierError`). Class names: knn.core.names."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeGuard

import numpy as np

from .limits import MAX_STORED_JPEG_BYTES, MAX_VECTORS_PER_EXAMPLE
from .voting import VOTES


class ClassifierError(ValueError):
    """A request the classifier refuses; the message is meant for the user."""


def is_whole_number(value: object) -> TypeGuard[int | np.integer[Any]]:
    """An int or a NumPy integer, never a bool: True is not 1 here."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def check_example_id(example_id: object) -> int:
    """An example id as given: a whole number (so `remove(True)` never removes example 1)."""
    if not is_whole_number(example_id):
        raise ClassifierError(f"an example id is a whole number, got {example_id!r}")
    return int(example_id)


def check_k(k: object) -> int:
    if not is_whole_number(k) or k < 1:
        raise ClassifierError(f"k must be a whole number of at least 1, got {k!r}")
    return int(k)


def check_threshold(threshold: object) -> float | None:
    if threshold is None:
        return None
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float, np.floating, np.integer)):
        raise ClassifierError(f"unknown_threshold must be a number or None, got {threshold!r}")
    value = float(threshold)
    if not -1.0 <= value <= 1.0:  # also refuses nan
        raise ClassifierError(f"unknown_threshold is a cosine similarity, so it must lie in -1..1, got {value}")
    return value


def check_vote(vote: object) -> str:
    if vote not in VOTES:
        raise ClassifierError(f"vote must be one of {', '.join(VOTES)}, got {vote!r}")
    return str(vote)


def check_weight(weight: object) -> float:
    if isinstance(weight, bool) or not isinstance(weight, (int, float, np.floating, np.integer)):
        raise ClassifierError(f"centroid_weight must be a number in 0..1, got {weight!r}")
    value = float(weight)
    if not 0.0 <= value <= 1.0:  # also refuses nan
        raise ClassifierError(f"centroid_weight is a share of the vote, so it must lie in 0..1, got {value}")
    return value


def check_flag(flag: object) -> bool:
    if not isinstance(flag, (bool, np.bool_)):
        raise ClassifierError(f"centred must be True or False, got {flag!r}")
    return bool(flag)


def check_cap(cap: object) -> int:
    if not is_whole_number(cap) or cap < 1:
        raise ClassifierError(f"max_examples_per_class must be a whole number of at least 1, got {cap!r}")
    return int(cap)


def check_image(image: object) -> bytes | None:
    if image is None:
        return None
    if not isinstance(image, (bytes, bytearray, memoryview)):
        raise ClassifierError(f"an example's image must be JPEG bytes or None, got {type(image).__name__}")
    if len(image) > MAX_STORED_JPEG_BYTES:  # so that a full session always fits in a project file
        raise ClassifierError(
            f"an example's image is {len(image) / 1024:.0f} kB; at most "
            f"{MAX_STORED_JPEG_BYTES // 1024} kB are stored (knn.core.images.encode_jpeg keeps to it)"
        )
    return bytes(image) or None


def as_batch(embeddings: object, what: str) -> np.ndarray:
    array = np.asarray(embeddings)
    if array.ndim != 2:
        raise ClassifierError(
            f"{what} expects a 2-D array [n_samples, n_features], got shape {array.shape}; "
            "use predict() for a single embedding or reshape(1, -1)"
        )
    return array


def as_examples(
    embeddings: object,
    labels: Sequence[str] | str,
    images: Sequence[bytes | None] | None,
    vectors: Sequence[int] | None,
) -> tuple[np.ndarray, list[str], list[bytes | None], list[int]]:
    """`add_many`'s arguments checked against each other: (embeddings [R, D], N labels, N images,
    N vector counts summing to R)."""
    batch = as_batch(embeddings, "add_many")
    labels = [labels] if isinstance(labels, str) else list(labels)
    images = [None] * len(labels) if images is None else list(images)
    counts = [1] * len(labels) if vectors is None else [int(v) for v in vectors]
    if not (len(counts) == len(labels) == len(images) and sum(counts) == len(batch)):
        raise ClassifierError(
            f"got {len(batch)} embeddings, {len(labels)} labels, {len(images)} images and {len(counts)} vector "
            "counts; there must be one label, image and count per example and one embedding per vector"
        )
    if any(not 1 <= c <= MAX_VECTORS_PER_EXAMPLE for c in counts):
        raise ClassifierError(f"an example holds 1 to {MAX_VECTORS_PER_EXAMPLE} vectors")
    return batch, labels, [check_image(image) for image in images], counts


def as_single(embedding: object) -> np.ndarray:
    """One embedding ([D] or [1, D]) as a [1, D] batch."""
    array = np.asarray(embedding)
    if array.ndim == 2 and array.shape[0] == 1:
        array = array[0]
    if array.ndim != 1:
        raise ClassifierError(
            f"expected one embedding (a 1-D array), got shape {array.shape}; use predict_many() for a batch"
        )
    return array[None, :]


def normalise(embeddings: np.ndarray, dim: int | None) -> np.ndarray:
    """Validate a [N, D] batch (D must equal `dim` unless None) and return it L2-normalised, float32."""
    if embeddings.dtype.kind not in "fiu" or embeddings.dtype == np.bool_:
        raise ClassifierError(f"embeddings must be numbers, got dtype {embeddings.dtype}")
    if embeddings.shape[1] == 0:
        raise ClassifierError("an embedding cannot be empty")
    if dim is not None and embeddings.shape[1] != dim:
        raise ClassifierError(
            f"this embedding has {embeddings.shape[1]} values but the classifier holds {dim}-value "
            "embeddings; it was probably made by a different backbone"
        )
    values = embeddings.astype(np.float64, copy=False)
    squares: np.ndarray = np.einsum("ij,ij->i", values, values)[:, None]
    if not (np.isfinite(squares).all() and (squares > 0).all()):  # rare: find out what is wrong
        if not np.isfinite(values).all():
            raise ClassifierError("an embedding contains NaN or infinite values")
        if not values.any(axis=1).all():
            raise ClassifierError("an embedding is all zeros, so it has no direction to compare")
        values = values / np.abs(values).max(axis=1, keepdims=True)  # huge or tiny values: rescale first
        squares = np.einsum("ij,ij->i", values, values)[:, None]
    norms = np.sqrt(squares)
    # Rows already of unit length are kept as they are, so normalising is idempotent: a store
    # saved and loaded again (or re-added from embeddings()) holds the same vectors.
    norms[np.abs(norms - 1.0) <= 1e-6] = 1.0
    unit: np.ndarray = (values / norms).astype(np.float32)
    return unit
