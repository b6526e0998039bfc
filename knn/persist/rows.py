"""A project's rows written and read back: examples as float32 bytes and JPEG, checked on the way in.

Reading trusts the database no more than an uploaded project file (knn.core.project): the counts
are checked against knn.core.limits before any example is fetched, then every row: vector count
and width, the bytes they take, finite and non-zero values, a JPEG no larger than a stored image
may be, a class of the project, names through knn.core.names. No pickle anywhere: vectors are
`numpy.frombuffer` of little-endian float32. Any problem is `UnreadableProject`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np
import sqlalchemy as sa

from ..core.classifier import ClassifierError, ClassifierState, KNNClassifier
from ..core.limits import (
    MAX_CLASSES,
    MAX_DIM,
    MAX_EXAMPLES,
    MAX_STORED_JPEG_BYTES,
    MAX_STORED_VALUES,
    MAX_VECTORS_PER_EXAMPLE,
)
from ..core.names import normalise_name
from .content import NewExample, ProjectSettings
from .errors import UnreadableProject
from .schema import classes, examples

FLOAT32 = np.dtype("<f4")
ROW_OVERHEAD = 64
"""Bytes counted per example beyond its vectors and image, for the quota (ids, sizes, index)."""


def example_row(project_id: int, class_id: int, example: NewExample) -> dict:
    """The `examples` row of a new example."""
    vectors = np.ascontiguousarray(example.vectors, dtype=FLOAT32)
    if vectors.ndim != 2:
        raise ValueError(f"an example's vectors must be [V, D], got shape {vectors.shape}")
    data = vectors.tobytes()
    return {
        "project_id": project_id,
        "class_id": class_id,
        "batch": int(example.batch),
        "vectors": vectors.shape[0],
        "dim": vectors.shape[1],
        "embedding": data,
        "image": example.image,
        "size": example_size(vectors.nbytes, example.image),
        "created": time.time(),
    }


def example_size(vector_bytes: int, image: bytes | None) -> int:
    """Bytes an example counts for the quota."""
    return vector_bytes + len(image or b"") + ROW_OVERHEAD


def read_project(
    conn: sa.Connection, project_id: int, settings_json: object
) -> tuple[KNNClassifier, ProjectSettings, list[int], list[int], dict[str, int]]:
    """A stored project as (classifier, settings, batches, example row ids, class name -> row id).

    The classifier's example ids are 0..N-1 in row order: `row_ids[i]` is example i's row.

    Raises:
        UnreadableProject: any row fails its checks.
    """
    settings = ProjectSettings.from_json(settings_json)
    class_rows = conn.execute(
        sa.select(classes.c.id, classes.c.name)
        .where(classes.c.project_id == project_id)
        .order_by(classes.c.position, classes.c.id)
        .limit(MAX_CLASSES + 1)
    ).all()
    if len(class_rows) > MAX_CLASSES:
        raise UnreadableProject(f"it has more than {MAX_CLASSES} classes")
    names, class_index, class_ids = _class_names([r.name for r in class_rows]), {}, {}
    for i, (row, name) in enumerate(zip(class_rows, names, strict=True)):
        class_index[row.id] = i
        class_ids[name] = row.id
    n, values = conn.execute(
        sa.select(sa.func.count(), sa.func.coalesce(sa.func.sum(examples.c.vectors * examples.c.dim), 0)).where(
            examples.c.project_id == project_id
        )
    ).one()
    if n > MAX_EXAMPLES:
        raise UnreadableProject(f"it has {n:,} examples; a project has at most {MAX_EXAMPLES:,}")
    if values > MAX_STORED_VALUES:
        raise UnreadableProject(f"it holds {values:,} embedding values; a project holds at most {MAX_STORED_VALUES:,}")
    rows = conn.execute(
        sa.select(
            examples.c.id,
            examples.c.class_id,
            examples.c.batch,
            examples.c.vectors,
            examples.c.dim,
            examples.c.embedding,
            examples.c.image,
        )
        .where(examples.c.project_id == project_id)
        .order_by(examples.c.id)
    ).all()
    embeddings, labels, images, counts, batches, row_ids = _examples(rows, class_index)
    state = ClassifierState(
        classes=names,
        embeddings=embeddings,
        labels=np.asarray(labels, np.int64),
        images=tuple(images),
        k=settings.k,
        unknown_threshold=settings.unknown_threshold,
        # Never refuse a project's own data: the cap only limits further adds.
        max_examples_per_class=max(settings.max_examples_per_class, max(np.bincount(labels), default=0)),
        dim=embeddings.shape[1] if len(rows) else None,
        vectors=np.asarray(counts, np.int64),
        vote=settings.vote,
        centroid_weight=settings.centroid_weight,
        centred=settings.centred,
    )
    try:
        classifier = KNNClassifier.from_state(state)
    except ClassifierError as exc:
        raise UnreadableProject(f"it holds invalid data: {exc}") from None
    return classifier, settings, batches, row_ids, class_ids


def _class_names(raw: Sequence[object]) -> tuple[str, ...]:
    names = []
    for name in raw:
        try:
            names.append(normalise_name(name))
        except ClassifierError as exc:
            raise UnreadableProject(f"it holds a class name that cannot be used: {exc}") from None
    if len(set(names)) != len(names):
        raise UnreadableProject("its class names repeat")
    return tuple(names)


def _examples(rows: Sequence, class_index: dict[int, int]):
    dims = {row.dim for row in rows}
    if len(dims) > 1:
        raise UnreadableProject(f"its examples have embeddings of different sizes ({sorted(dims)[:4]})")
    dim = dims.pop() if dims else 0
    if rows and not 1 <= dim <= MAX_DIM:
        raise UnreadableProject(f"its embeddings have {dim} values; between 1 and {MAX_DIM:,} are possible")
    parts, labels, images, counts, batches, row_ids = [], [], [], [], [], []
    for row in rows:
        if not 1 <= row.vectors <= MAX_VECTORS_PER_EXAMPLE:
            raise UnreadableProject(f"an example has {row.vectors} vectors; 1 to {MAX_VECTORS_PER_EXAMPLE} can be")
        data = row.embedding
        if not isinstance(data, bytes | bytearray | memoryview) or len(data) != row.vectors * dim * FLOAT32.itemsize:
            raise UnreadableProject("an example's vectors do not have the size its row declares")
        if row.class_id not in class_index:
            raise UnreadableProject("an example refers to a class that does not exist")
        image = row.image
        if image is not None:
            image = bytes(image)
            if len(image) > MAX_STORED_JPEG_BYTES:
                raise UnreadableProject(f"an example image is over {MAX_STORED_JPEG_BYTES // 1024} kB")
            if image[:2] != b"\xff\xd8":
                raise UnreadableProject("an example image is not JPEG data")
        parts.append(np.frombuffer(bytes(data), FLOAT32).reshape(row.vectors, dim))
        labels.append(class_index[row.class_id])
        images.append(image or None)
        counts.append(row.vectors)
        batches.append(int(row.batch))
        row_ids.append(int(row.id))
    embeddings = np.concatenate(parts).astype(np.float32) if parts else np.zeros((0, 0), np.float32)
    if not np.isfinite(embeddings).all():
        raise UnreadableProject("some embeddings are NaN or infinite")
    if len(embeddings) and not (np.linalg.norm(embeddings, axis=1) > 0).all():
        raise UnreadableProject("some embeddings are all zeros")
    return embeddings, labels, images, counts, batches, row_ids
