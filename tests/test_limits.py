"""knn.core.limits: each limit holds where the work it guards starts, and the limits agree: a
session filled to all of them can still be saved as a project file."""

from __future__ import annotations

import tomllib
from pathlib import Path

import numpy as np
import pytest

from knn.core import limits
from knn.core.classifier import KNNClassifier
from knn.core.images import encode_jpeg
from knn.core.inputs import ClassifierError
from knn.core.limits import MAX_CLASSES, MAX_EXAMPLES, MAX_PROJECT_BYTES, MAX_STORED_JPEG_BYTES
from knn.core.project import load_project, project_bytes

ROOT = Path(__file__).resolve().parents[1]


def test_a_full_session_fits_in_a_project_file():
    assert limits.worst_project_bytes() <= MAX_PROJECT_BYTES
    assert limits.MAX_DIM >= 1792  # MobileNetV2 α 1.4, the widest backbone offered


def test_the_upload_limits_agree_with_the_largest_project_file():
    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert config["server"]["maxUploadSize"] * 1024**2 >= MAX_PROJECT_BYTES  # Streamlit counts MB of 2**20


def test_examples_are_stored_at_the_largest_input_size_offered():
    from knn.model.backbones import RESOLUTIONS

    assert max(RESOLUTIONS) == limits.STORED_IMAGE_SIZE


def test_the_per_example_arithmetic_holds_for_a_real_file():
    """1,000 examples of the widest embedding with the busiest images the encoder makes (noise at
    the stored size, re-encoded at lower qualities to fit): the file is no larger than the bound
    says per example."""
    rng = np.random.default_rng(0)
    n, dim, side = 1_000, limits.MAX_DIM, limits.STORED_IMAGE_SIZE
    jpegs = [encode_jpeg(rng.integers(0, 255, (side, side, 3), dtype=np.uint8)) for _ in range(n)]
    assert max(map(len, jpegs)) <= MAX_STORED_JPEG_BYTES
    clf = KNNClassifier(max_examples_per_class=n)
    clf.add_many(rng.standard_normal((n, dim)).astype(np.float32), ["noise"] * n, jpegs)
    data = project_bytes(clf, "mobilenet_v1_1.0_224")
    per_example = dim * 4 + MAX_STORED_JPEG_BYTES + 16
    assert len(data) <= n * per_example + 64 * 1024
    assert len(load_project(data)) == n


def test_the_classifier_refuses_more_examples_and_classes_than_the_limits():
    clf = KNNClassifier(max_examples_per_class=MAX_EXAMPLES)
    rows = np.random.default_rng(1).standard_normal((MAX_EXAMPLES, 8)).astype(np.float32)
    clf.add_many(rows, ["a"] * MAX_EXAMPLES)
    with pytest.raises(ClassifierError, match=f"at most {MAX_EXAMPLES:,}"):
        clf.add(rows[0], "a")
    assert len(clf) == MAX_EXAMPLES  # nothing half added
    other = KNNClassifier()
    for i in range(MAX_CLASSES):
        other.add_class(f"c{i}")
    with pytest.raises(ClassifierError, match="delete one first"):
        other.add_class("one more")
    with pytest.raises(ClassifierError, match=f"at most {MAX_CLASSES}"):
        other.add(rows[0], "one more")
    assert len(other.classes) == MAX_CLASSES


def test_a_stored_image_over_its_limit_is_refused():
    clf = KNNClassifier()
    with pytest.raises(ClassifierError, match="kB"):
        clf.add(np.ones(4), "a", b"\xff\xd8" + bytes(MAX_STORED_JPEG_BYTES))


def test_readme_lists_every_limit():
    text = (ROOT / "README.md").read_text()
    names = [name for name in vars(limits) if name.startswith("MAX_")]
    assert names and all(f"`{name}`" in text for name in names)
